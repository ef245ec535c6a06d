"""Finance extracts generated from a simulated world, with injected margin events kept apart as truth.

On top of a world's sales (:mod:`include.sample_data.generator`), every shipped ecommerce order line gets
a shipment cost (:data:`SHIPMENT_COLUMNS`: standard, or expedited at a premium), a few lines a
fulfilment substitution (a dearer substitute item at the same price, a split shipment or a ship-from-store,
:data:`SUBSTITUTION_COLUMNS`), and stores and the FC book inventory adjustments valued at cost
(:data:`SHRINK_COLUMNS`: losses in proportion to units sold, some count corrections that find units).

Four kinds of margin event are injected, ``events_per_kind`` of each, each on its own cell
(category x channel x location, among cells selling at least ``min_cell_weekly_sales`` a week) from a
random start for ``event_weeks`` weeks:

* ``price_markdown`` (runaway markdown): unpromoted sales of the cell sold ``markdown_depth`` below shelf;
* ``expedited_shipping`` (expedite surge): an ecommerce cell ships ``expedite_share`` of its lines expedited;
* ``fulfilment_substitution`` (substitution storm): ``substitution_rate`` of an ecommerce cell's lines;
* ``shrink`` (shrink spike): a store cell loses ``shrink_share`` of its usual daily sales at cost every day.

The truth (:data:`EVENT_COLUMNS`) is never part of an extract. Everything derives from the world's seed and
``seed``. :func:`write_finance_landing` lays a day out as ``<root>/landing/finance/ds=<YYYY-MM-DD>/<file>.csv``
(contracts: ``data_contracts/finance/*.yaml``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd

from include.config import as_date, partition_path
from include.finance.bridge import FinanceFrames, sales_frame
from include.finance.params import (
    EXPEDITED_SHIPPING,
    FULFILMENT_SUBSTITUTION,
    PRICE_MARKDOWN,
    SHIPMENT_COLUMNS,
    SHRINK,
    SHRINK_COLUMNS,
    SUBSTITUTION_COLUMNS,
    SUBSTITUTION_KINDS,
)
from include.sample_data.generator import World

__all__ = ["EVENT_COLUMNS", "FILES", "SOURCE", "FinanceConfig", "FinanceWorld", "finance_world",
           "write_finance_landing"]

SOURCE = "finance"
#: dataset -> file name, as in data_contracts/finance/*.yaml (all CSV).
FILES = {"shipment_costs": "shipment_costs.csv", "fulfilment_substitutions": "fulfilment_substitutions.csv",
         "shrink_adjustments": "shrink_adjustments.csv"}
_TIMESTAMPS = {"shipment_costs": "shipped_at", "fulfilment_substitutions": "recorded_at",
               "shrink_adjustments": "adjusted_at"}
_COLUMNS = {"shipment_costs": SHIPMENT_COLUMNS, "fulfilment_substitutions": SUBSTITUTION_COLUMNS,
            "shrink_adjustments": SHRINK_COLUMNS}
#: Ground truth of the injected events, for evaluation only.
EVENT_COLUMNS = ["event_id", "cause", "category", "channel", "location_id", "start", "end", "magnitude"]
EVENT_KINDS = (PRICE_MARKDOWN, EXPEDITED_SHIPPING, FULFILMENT_SUBSTITUTION, SHRINK)


@dataclass(frozen=True)
class FinanceConfig:
    """Costs of the ordinary days and size of the injected events.

    Attributes:
        events_per_kind: events of each kind.
        event_weeks: fewest and most weeks an event lasts.
        first_start: days after the world's first day before an event can start (its baseline).
        min_cell_weekly_sales: shelf-price sales a week a cell needs to carry an event.
        expedite_share: share of ecommerce lines shipped expedited on ordinary days.
        expedite_premium: cost of an expedited line over a standard one.
        substitution_rate: share of ecommerce lines with a fulfilment substitution on ordinary days.
        shrink_rate: units lost per unit sold (about 1% of sales at cost); a tenth as many count corrections
            find a unit.
        markdown_depth, expedite_share_event, substitution_rate_event, shrink_share: lowest and highest
            size of each kind of event (see the module docstring).
    """

    events_per_kind: int = 3
    event_weeks: tuple[int, int] = (2, 4)
    first_start: int = 98
    min_cell_weekly_sales: float = 1500.0
    expedite_share: float = 0.06
    expedite_premium: float = 3.0
    substitution_rate: float = 0.03
    shrink_rate: float = 0.01
    markdown_depth: tuple[float, float] = (0.25, 0.4)
    expedite_share_event: tuple[float, float] = (0.7, 0.95)
    substitution_rate_event: tuple[float, float] = (0.6, 0.9)
    shrink_share: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        if self.events_per_kind < 0 or not 1 <= self.event_weeks[0] <= self.event_weeks[1]:
            raise ValueError(f"FinanceConfig needs events_per_kind >= 0 and 1 <= event_weeks[0] <= event_weeks[1], "
                             f"got {self.events_per_kind} and {self.event_weeks}")
        for name in ("expedite_share", "substitution_rate", "markdown_depth", "expedite_share_event",
                     "substitution_rate_event"):
            for value in np.atleast_1d(getattr(self, name)):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"FinanceConfig.{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class FinanceWorld:
    """A world's finance extracts (after the events) and the truth of the events."""

    world: World
    pos: pd.DataFrame
    orders: pd.DataFrame
    shipments: pd.DataFrame
    substitutions: pd.DataFrame
    shrink: pd.DataFrame
    events: pd.DataFrame

    def frames(self) -> FinanceFrames:
        """The bridge's frames, as the finance review reads them once curated."""
        w = self.world
        return FinanceFrames(sales=sales_frame(self.pos, self.orders, w.items, w.promotions), returns=w.returns,
                             shipments=self.shipments, substitutions=self.substitutions, shrink=self.shrink,
                             items=w.items[["sku", "category", "unit_cost"]])


def finance_world(world: World, seed: int = 0, config: FinanceConfig = FinanceConfig()) -> FinanceWorld:
    """The finance extracts of ``world`` with ``config.events_per_kind`` events of each kind injected.

    Returns:
        The extracts, POS and order lines with the markdown events applied, and the events' truth.
    """
    rng = np.random.default_rng([world.config.seed, seed, 31_007])
    items = world.items.set_index("sku")
    pos = world.pos_sales.copy()
    orders = world.ecommerce_orders.copy()
    events = _plan_events(rng, world, pos, orders, config)
    pos, orders = _apply_markdowns(rng, pos, orders, items, events)
    shipped = orders[orders["status"].astype(str) != "cancelled"].reset_index(drop=True)
    shipments = _shipments(rng, shipped, items, events, config)
    substitutions = _substitutions(rng, shipped, items, events, config)
    shrink = _shrink(rng, world, pos, orders, items, events, config)
    return FinanceWorld(world=world, pos=pos, orders=orders, shipments=shipments, substitutions=substitutions,
                        shrink=shrink, events=events)


def _cell_sales(pos: pd.DataFrame, orders: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Mean shelf-price sales a week per cell."""
    cat = items.set_index("sku")["category"]
    price = items.set_index("sku")["unit_price"]
    store = pd.DataFrame({"category": pos["sku"].map(cat), "channel": "store", "location_id": pos["store_id"],
                          "value": pos["gross_sales"] + pos["discount_amount"], "day": pos["business_date"]})
    web = pd.DataFrame({"category": orders["sku"].map(cat), "channel": orders["channel"],
                        "location_id": orders["fulfilment_location_id"],
                        "value": orders["quantity"] * orders["sku"].map(price), "day": orders["ordered_at"]})
    both = pd.concat([store, web], ignore_index=True)
    weeks = max((pd.to_datetime(both["day"]).max() - pd.to_datetime(both["day"]).min()).days / 7, 1.0)
    return (both.groupby(["category", "channel", "location_id"], as_index=False)["value"].sum()
            .assign(weekly=lambda f: f["value"] / weeks))


def _plan_events(rng, world: World, pos: pd.DataFrame, orders: pd.DataFrame, config: FinanceConfig) -> pd.DataFrame:
    cells = _cell_sales(pos, orders, world.items)
    cells = cells[cells["weekly"] >= config.min_cell_weekly_sales].sample(frac=1.0, random_state=rng.integers(2**31))
    start0 = np.datetime64(world.config.start_date, "D") + config.first_start
    end = np.datetime64(world.config.end_date, "D")
    rows, used = [], set()
    for cause in EVENT_KINDS:
        pool = cells[cells["channel"] == "store"] if cause == SHRINK else (
            cells[cells["channel"] != "store"] if cause in (EXPEDITED_SHIPPING, FULFILMENT_SUBSTITUTION) else cells)
        pool = [c for c in pool[["category", "channel", "location_id"]].itertuples(index=False) if tuple(c) not in used]
        size = {PRICE_MARKDOWN: config.markdown_depth, EXPEDITED_SHIPPING: config.expedite_share_event,
                FULFILMENT_SUBSTITUTION: config.substitution_rate_event, SHRINK: config.shrink_share}[cause]
        for cell in pool[:config.events_per_kind]:
            used.add(tuple(cell))
            length = 7 * int(rng.integers(config.event_weeks[0], config.event_weeks[1] + 1))
            latest = int((end - start0).astype(np.int64)) - length
            if latest < 0:
                raise ValueError(f"the world's history is too short for events of {length} days after "
                                 f"{config.first_start} days of baseline")
            start = start0 + int(rng.integers(0, latest + 1))
            rows.append((f"FE{len(rows) + 1:04d}", cause, *cell, start, start + length - 1,
                         round(float(rng.uniform(*size)), 3)))
    frame = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    for col in ("start", "end"):
        frame[col] = frame[col].astype("datetime64[s]")
    return frame


def _event_of(events: pd.DataFrame, cause: str, category, channel, location, day) -> np.ndarray:
    """Per row, the magnitude of the ``cause`` event covering it (NaN where none)."""
    out = np.full(len(day), np.nan)
    day = np.asarray(day, "datetime64[D]")
    for e in events[events["cause"] == cause].itertuples(index=False):
        hit = ((np.asarray(category) == e.category) & (np.asarray(channel) == e.channel)
               & (np.asarray(location) == e.location_id) & (day >= np.datetime64(e.start, "D"))
               & (day <= np.datetime64(e.end, "D")))
        out[hit] = e.magnitude
    return out


def _apply_markdowns(rng, pos, orders, items, events) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runaway markdowns: unpromoted till and order lines of the cell sold below shelf."""
    depth = _event_of(events, PRICE_MARKDOWN, pos["sku"].map(items["category"]), "store", pos["store_id"],
                      pos["business_date"])
    hit = ~np.isnan(depth) & pos["promo_id"].isna().to_numpy() & (rng.random(len(pos)) < 0.8)
    shelf = (pos["gross_sales"] + pos["discount_amount"]).to_numpy()
    pos.loc[hit, "discount_amount"] = np.round(shelf[hit] * depth[hit], 2)
    pos.loc[hit, "gross_sales"] = np.round(shelf[hit] - pos.loc[hit, "discount_amount"].to_numpy(), 2)
    o_depth = _event_of(events, PRICE_MARKDOWN, orders["sku"].map(items["category"]), orders["channel"],
                        orders["fulfilment_location_id"], orders["ordered_at"])
    list_price = orders["sku"].map(items["unit_price"]).to_numpy()
    o_hit = ~np.isnan(o_depth) & (orders["unit_price"].to_numpy() >= list_price) & (rng.random(len(orders)) < 0.8)
    orders.loc[o_hit, "unit_price"] = np.round(list_price[o_hit] * (1 - o_depth[o_hit]), 2)
    return pos, orders


def _shipments(rng, shipped: pd.DataFrame, items: pd.DataFrame, events, config: FinanceConfig) -> pd.DataFrame:
    n = len(shipped)
    category = shipped["sku"].map(items["category"])
    share = _event_of(events, EXPEDITED_SHIPPING, category, shipped["channel"], shipped["fulfilment_location_id"],
                      shipped["ordered_at"])
    expedited = rng.random(n) < np.where(np.isnan(share), config.expedite_share, share)
    value = shipped["quantity"].to_numpy() * shipped["sku"].map(items["unit_price"]).to_numpy()
    standard = 1.2 + 0.04 * value + rng.uniform(0.0, 0.6, n)
    day = shipped["ordered_at"].to_numpy().astype("datetime64[D]")
    return pd.DataFrame({
        "shipment_id": [f"SH{i + 1:09d}" for i in range(n)], "order_id": shipped["order_id"].to_numpy(),
        "line_no": shipped["line_no"].to_numpy(), "shipped_at": (day + np.timedelta64(23, "h")).astype("datetime64[s]"),
        "channel": shipped["channel"].to_numpy(), "location_id": shipped["fulfilment_location_id"].to_numpy(),
        "sku": shipped["sku"].to_numpy(), "quantity": shipped["quantity"].to_numpy(np.int64),
        "service_level": np.where(expedited, "expedited", "standard"),
        "shipping_cost": np.round(standard * np.where(expedited, 1 + config.expedite_premium, 1.0), 2)})[
        list(SHIPMENT_COLUMNS)]


def _substitutions(rng, shipped: pd.DataFrame, items: pd.DataFrame, events, config: FinanceConfig) -> pd.DataFrame:
    category = shipped["sku"].map(items["category"])
    rate = _event_of(events, FULFILMENT_SUBSTITUTION, category, shipped["channel"], shipped["fulfilment_location_id"],
                     shipped["ordered_at"])
    pick = np.flatnonzero(rng.random(len(shipped)) < np.where(np.isnan(rate), config.substitution_rate, rate))
    lines = shipped.iloc[pick].reset_index(drop=True)
    n = len(lines)
    # In a storm stock is short at the FC: lines split or ship from stores more than they are substituted.
    storm = ~np.isnan(rate[pick])
    kind = np.where(storm, rng.choice(3, n, p=[0.2, 0.4, 0.4]), rng.choice(3, n, p=[0.5, 0.3, 0.2]))
    qty = lines["quantity"].to_numpy(np.int64)
    cost = lines["sku"].map(items["unit_cost"]).to_numpy()
    extra = np.select([kind == 0, kind == 1], [cost * qty * rng.uniform(0.2, 0.5, n), rng.uniform(4.0, 8.0, n)],
                      rng.uniform(3.0, 6.0, n))
    # A substitute from the same category: the next SKU of it in the item master.
    skus = items.index.to_numpy(object)
    same = items["category"].to_numpy(object)
    pos = items.index.get_indexer(lines["sku"])
    nxt = np.array([np.flatnonzero(same == same[p]) for p in pos], dtype=object) if n else np.array([])
    sub = [skus[c[(np.searchsorted(c, p) + 1) % len(c)]] for c, p in zip(nxt, pos, strict=True)]
    substitute = np.where(kind == 0, np.array(sub, dtype=object), None) if n else np.array([], object)
    day = lines["ordered_at"].to_numpy().astype("datetime64[D]")
    return pd.DataFrame({
        "substitution_id": [f"FS{i + 1:09d}" for i in range(n)], "order_id": lines["order_id"].to_numpy(),
        "line_no": lines["line_no"].to_numpy(np.int64),
        "recorded_at": (day + np.timedelta64(22, "h")).astype("datetime64[s]"), "channel": lines["channel"].to_numpy(),
        "location_id": lines["fulfilment_location_id"].to_numpy(), "sku": lines["sku"].to_numpy(),
        "substitute_sku": substitute, "kind": np.asarray(SUBSTITUTION_KINDS, object)[kind], "quantity": qty,
        "extra_cost": np.round(extra, 2)})[list(SUBSTITUTION_COLUMNS)]


def _shrink(rng, world: World, pos: pd.DataFrame, orders: pd.DataFrame, items: pd.DataFrame, events,
            config: FinanceConfig) -> pd.DataFrame:
    days = pd.date_range(world.config.start_date, world.config.end_date).to_numpy().astype("datetime64[D]")
    # Ordinary shrink follows what moves: damage, spoilage and theft in proportion to units sold.
    moved = pd.concat([
        pd.DataFrame({"day": pos["business_date"], "loc": pos["store_id"], "sku": pos["sku"], "units": pos["units_sold"]}),
        pd.DataFrame({"day": orders["ordered_at"], "loc": orders["fulfilment_location_id"], "sku": orders["sku"],
                      "units": orders["quantity"]})], ignore_index=True)
    lost = rng.poisson(config.shrink_rate * moved["units"].to_numpy(float))
    found = rng.random(len(moved)) < config.shrink_rate * 0.1
    keep = (lost > 0) | found
    qty = np.where(lost > 0, -lost, 1)[keep]
    day = moved["day"].to_numpy().astype("datetime64[D]")[keep]
    loc, sku = moved["loc"].to_numpy(object)[keep], moved["sku"].to_numpy(object)[keep]
    n = len(qty)
    reason = np.where(qty > 0, "count_correction", rng.choice(["theft", "damage", "spoilage", "admin_error"], n))
    parts = [(day, loc, sku, qty, reason)]
    shelf = (pos["gross_sales"] + pos["discount_amount"]).groupby(
        [pos["store_id"], pos["sku"].map(items["category"])]).sum() / len(days)
    for e in events[events["cause"] == SHRINK].itertuples(index=False):
        cell = items.index.to_numpy(object)[items["category"].to_numpy(object) == e.category]
        span = pd.date_range(e.start, e.end).to_numpy().astype("datetime64[D]")
        daily_cost = e.magnitude * shelf.get((e.location_id, e.category), 0.0)
        for d in span:
            pick = rng.choice(cell, 3)
            cost = items.loc[pick, "unit_cost"].to_numpy()
            units = np.maximum(np.round(daily_cost / 3 / cost), 1).astype(np.int64)
            parts.append((np.full(3, d), np.full(3, e.location_id, object), pick, -units, np.full(3, "theft", object)))
    day, loc, sku, qty, reason = (np.concatenate([p[i] for p in parts]) for i in range(5))
    order = np.lexsort((sku, loc, day))
    day, loc, sku, qty, reason = day[order], loc[order], sku[order], qty[order], reason[order]
    unit_cost = items["unit_cost"].reindex(sku).to_numpy()
    seconds = rng.integers(6 * 3600, 22 * 3600, len(day)).astype("timedelta64[s]")
    return pd.DataFrame({
        "adjustment_id": [f"IA{i + 1:09d}" for i in range(len(day))], "adjusted_at": day.astype("datetime64[s]") + seconds,
        "location_id": loc, "sku": sku, "quantity": qty.astype(np.int64), "reason": reason, "unit_cost": unit_cost,
        "value_at_cost": np.round(qty * unit_cost, 2)})[list(SHRINK_COLUMNS)]


def write_finance_landing(root: Path | str, ds: dt.date | str, fw: FinanceWorld) -> list[str]:
    """Write the day ``ds`` of each finance extract as ``<root>/landing/finance/ds=<ds>/<file>.csv``.

    A day written again replaces its files; a day without rows gets a header.

    Returns:
        The paths written.
    """
    root = str(root).rstrip("/")
    fs, _ = fsspec.core.url_to_fs(root)
    folder = partition_path("landing", SOURCE, as_date(ds), root)
    fs.makedirs(folder, exist_ok=True)
    day = np.datetime64(as_date(ds), "D")
    paths = []
    for name, frame in (("shipment_costs", fw.shipments), ("fulfilment_substitutions", fw.substitutions),
                        ("shrink_adjustments", fw.shrink)):
        when = _TIMESTAMPS[name]
        part = frame.loc[frame[when].to_numpy().astype("datetime64[D]") == day, list(_COLUMNS[name])].copy()
        part[when] = np.datetime_as_string(part[when].to_numpy().astype("datetime64[s]"))
        path = f"{folder}/{FILES[name]}"
        with fs.open(path, "wb") as handle:
            handle.write(part.to_csv(index=False, lineterminator="\n").encode())
        paths.append(path)
    return paths
