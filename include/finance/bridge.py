"""Margin bridge: per category x channel x location and night, gross margin against the cell's own baseline
and the change broken down into its causes.

A cell's gross margin over a window is what its sales kept: shelf-price sales, less markdowns and promotion
discounts, refunds, expedited and standard shipping, fulfilment substitutions (substitute items, split
shipments, ship-from-store), shrink valued at cost and the cost of the units sold. The window is the
``window_days`` ending on the night, evaluated every night, so that an event shows from its first day on.

The expected margin comes from the cell's own trailing ``baseline_weeks``: every cost line is a rate on
shelf-price sales (promotion discounts a depth on promoted sales times their share of sales), the baseline
rate is the median of the weekly rates (so one bad week in the baseline does not move it), and the
expected margin applies those rates to this window's sales. The change then splits exactly into

* ``price_markdown``, ``returns_refunds``, ``expedited_shipping``, ``fulfilment_substitution``, ``shrink``:
  ``-(cost this window - baseline rate * sales this window)``;
* ``promotion_depth``: ``-(promotion discount - baseline depth * promoted sales)``, deeper promotions;
* ``mix``: the cost-of-goods and standard shipping share (which items and how they ship) and the share of
  sales on promotion at the baseline depth (how much was promoted).

The causes add up to the change by construction; ``residual`` is what is left in floating point (or by a
cost line that the causes do not cover) and is reported per row. Shrink has no channel: a location's
shrink of a category is spread over the channels it sells through by their cost of goods.

An event that started two nights ago is two sevenths of a week: in a small cell it costs less than a week's
noise. So the rate causes are also reported over a short window, the last ``short_days`` nights (``short_``
columns): the margin each cost there against the cell's expected rate, and the window's rate with the median,
MAD and standard deviation of the rates of the baseline days cut into consecutive blocks of ``short_days``
(so that the short window is judged against spans as short as itself, and a lumpy cause's spread shows).

Every frame is reduced to dense ``[cells, days]`` arrays with ``np.bincount`` and windows are differences
of cumulative sums; nights are evaluated in chunks so that memory stays proportional to a chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.finance.params import (
    CAUSES,
    CELL_KEYS,
    CHANNELS,
    DEFAULT_BRIDGE,
    ITEM_COLUMNS,
    MIX,
    PROMOTION_DEPTH,
    RATE_CAUSES,
    SALES_COLUMNS,
    BridgeParams,
)
from include.finance.sales import sales_lines

__all__ = ["BRIDGE_COLUMNS", "FinanceFrames", "margin_bridge", "sales_frame"]

#: Costs that are a plain rate on shelf-price sales, by cause.
_RATE_CAUSES = dict(zip(RATE_CAUSES, ("markdown", "refund", "ship_expedited", "substitution", "shrink"), strict=True))
_MEASURES = ("gross", "cogs", "markdown", "promo", "promo_gross", "refund", "ship_standard", "ship_expedited",
             "substitution", "shrink")
#: Columns of :func:`margin_bridge`: keys, margins, one money column per cause, then per cause the window's
#: rate, the baseline median, MAD and standard deviation of the weekly rates (``rate_``, ``median_``, ``mad_``,
#: ``sd_`` prefixes); the two windows' lengths; the short window's sales and per rate cause the same money and
#: statistics against the baseline's short blocks (``short_`` prefix).
BRIDGE_COLUMNS = [*CELL_KEYS, "night", "gross_sales", "actual_margin", "expected_margin", "actual_margin_pct",
                  "expected_margin_pct", "margin_change", *CAUSES, "residual", "residual_pct", "baseline_weeks",
                  *[f"{p}_{c}" for c in CAUSES for p in ("rate", "median", "mad", "sd")],
                  "window_days", "short_days", "short_gross_sales",
                  *[f"short_{p}{c}" for c in RATE_CAUSES for p in ("", "rate_", "median_", "mad_", "sd_")]]
#: Cells x nights x baseline weeks (or short blocks) held at once.
_CHUNK_ELEMENTS = 1_000_000


@dataclass(frozen=True)
class FinanceFrames:
    """The curated frames of the bridge.

    Attributes:
        sales: :data:`include.finance.params.SALES_COLUMNS` (see :func:`sales_frame`).
        returns: ``returned_at, channel, location_id, sku, refund_amount``.
        shipments: ``shipped_at, channel, location_id, sku, service_level, shipping_cost``.
        substitutions: ``recorded_at, channel, location_id, sku, extra_cost``.
        shrink: ``adjusted_at, location_id, sku, value_at_cost`` (negative when units were lost).
        items: ``sku, category, unit_cost``.
    """

    sales: pd.DataFrame
    returns: pd.DataFrame
    shipments: pd.DataFrame
    substitutions: pd.DataFrame
    shrink: pd.DataFrame
    items: pd.DataFrame


def sales_frame(pos: pd.DataFrame, orders: pd.DataFrame, items: pd.DataFrame,
                promotions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Store and ecommerce sales at shelf price with the discount split into markdown and promotion.

    Shelf-price sales and discounts are :func:`include.finance.sales.sales_lines`'s. A till line is
    promoted when it carries a ``promo_id``; an order line when a promotion of its SKU covers its day at
    its fulfilment location or chain-wide (``promotions``), else its discount is a markdown.

    Args:
        pos: curated POS sales (``store_id, sku, business_date, units_sold, gross_sales, discount_amount,
            promo_id``).
        orders: curated ecommerce order lines (``ordered_at, channel, sku, quantity, unit_price,
            fulfilment_location_id, status``).
        items: curated item master (``sku, unit_price``).
        promotions: curated promotions (``sku, location_id, start_date, end_date``); none when omitted.

    Returns:
        :data:`include.finance.params.SALES_COLUMNS`; cancelled order lines and SKUs not in ``items`` left out.
    """
    empty, parts = pd.DataFrame(), []
    if len(pos):
        pos = pos[pos["sku"].isin(items["sku"])]
        parts.append(_split(sales_lines(pos, empty, items), "store", pos["store_id"], pos["promo_id"].notna()))
    if len(orders):
        o = orders[(orders["status"].astype(str) != "cancelled") & orders["sku"].isin(items["sku"])]
        promoted = _promoted(o, promotions)
        parts.append(_split(sales_lines(empty, o, items), o["channel"], o["fulfilment_location_id"], promoted))
    if not parts:
        return pd.DataFrame(columns=list(SALES_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(SALES_COLUMNS)]


def _split(lines: pd.DataFrame, channel, location: pd.Series, promoted: pd.Series) -> pd.DataFrame:
    if len(lines) != len(location):
        raise ValueError(f"sales lines without a shelf price: {len(location) - len(lines)} of {len(location)}")
    promo = np.asarray(promoted, bool)
    discount, gross = lines["discount_amount"].to_numpy(float), lines["gross_sales"].to_numpy(float)
    return lines.assign(channel=np.asarray(channel, object) if not isinstance(channel, str) else channel,
                        location_id=location.to_numpy(object), markdown_amount=np.where(promo, 0.0, discount),
                        promo_discount=np.where(promo, discount, 0.0), promo_gross=np.where(promo, gross, 0.0))


def _promoted(orders: pd.DataFrame, promotions: pd.DataFrame | None) -> np.ndarray:
    """Whether a promotion of the line's SKU covers its day at its location or chain-wide."""
    if promotions is None or not len(promotions) or not len(orders):
        return np.zeros(len(orders), bool)
    day = pd.to_datetime(orders["ordered_at"]).dt.normalize()
    keys = pd.DataFrame({"sku": orders["sku"].to_numpy(), "loc": orders["fulfilment_location_id"].to_numpy(),
                         "day": day.to_numpy()})
    uniq = keys.drop_duplicates()
    m = uniq.merge(promotions[["sku", "location_id", "start_date", "end_date"]], on="sku")
    hit = ((pd.to_datetime(m["start_date"]) <= m["day"]) & (m["day"] <= pd.to_datetime(m["end_date"]))
           & (m["location_id"].isna() | (m["location_id"] == m["loc"])))
    covered = m.loc[hit, ["sku", "loc", "day"]].drop_duplicates().assign(_promo=True)
    return keys.merge(covered, on=["sku", "loc", "day"], how="left")["_promo"].fillna(False).to_numpy(bool)


def margin_bridge(frames: FinanceFrames, nights, params: BridgeParams = DEFAULT_BRIDGE) -> pd.DataFrame:
    """The margin bridge of every cell with activity in the window, for each night.

    Args:
        frames: the curated frames (rows after the last night or before the first baseline day are ignored).
        nights: one night (a date) or several; each window ends on its night, inclusive.
        params: window, short window and baseline lengths.

    Returns:
        :data:`BRIDGE_COLUMNS`, by night then cell. Money is in the currency of the frames; cause columns
        are negative when the cause cost margin; ``residual_pct`` is ``100 * |residual| / |actual_margin|``.

    Raises:
        ValueError: on a missing column.
    """
    nights = np.unique(np.atleast_1d(np.asarray(nights, "datetime64[D]")))
    w, k = params.window_days, params.baseline_weeks
    first = nights[0] - w * (k + 1) + 1
    cells, dense = _dense(frames, first, nights[-1])
    night_idx = (nights - first).astype(np.int64)
    cum = {m: np.concatenate([np.zeros((len(cells), 1)), np.cumsum(dense.pop(m), axis=1)], axis=1)
           for m in list(dense)}
    step = max(1, _CHUNK_ELEMENTS // max(len(cells) * max(k, k * w // params.short_days), 1))
    parts = [_chunk(cells, cum, nights[i:i + step], night_idx[i:i + step], w, k, params.short_days)
             for i in range(0, len(nights), step)]
    return pd.concat(parts, ignore_index=True)[BRIDGE_COLUMNS]


def _require(frame: pd.DataFrame, name: str, columns) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}")


def _dense(frames: FinanceFrames, first: np.datetime64, last: np.datetime64) -> tuple[pd.DataFrame, dict]:
    """The cells (keys) and one ``[cells, days]`` array per measure from ``first`` to ``last``."""
    _require(frames.items, "items", ITEM_COLUMNS)
    items = frames.items.drop_duplicates("sku")
    categories, cat_of_sku = np.unique(items["category"].astype(str).to_numpy(), return_inverse=True)
    parts = (frames.sales, frames.returns, frames.shipments, frames.substitutions, frames.shrink)
    locations = pd.Index(sorted(set().union(*[set(f["location_id"].unique().astype(str)) for f in parts if len(f)])))
    coder = _Coder(pd.Index(items["sku"].astype(str)), cat_of_sku, locations, first,
                   int((last - first).astype(np.int64)) + 1)
    sales = coder.rows(frames.sales, "sales", "date", ["units", "gross_sales", "markdown_amount", "promo_discount",
                                                       "promo_gross"])
    returns = coder.rows(frames.returns, "returns", "returned_at", ["refund_amount"])
    ships = coder.rows(frames.shipments, "shipments", "shipped_at", ["shipping_cost", "service_level"])
    subs = coder.rows(frames.substitutions, "substitutions", "recorded_at", ["extra_cost"])
    shrink = coder.rows(frames.shrink, "shrink", "adjusted_at", ["value_at_cost"], channel=False)
    n_ch, n_loc, n_days = len(CHANNELS), max(len(locations), 1), coder.n_days
    coded = (sales, returns, ships, subs)
    shrink_catloc = (shrink["code"] // (n_ch * n_loc)) * n_loc + shrink["code"] % n_loc
    uniq = np.unique(np.concatenate([*[c["code"] for c in coded],
                                     _orphan_shrink([c["code"] for c in coded], shrink_catloc, n_ch, n_loc)]))
    cat, rest = np.divmod(uniq, n_ch * n_loc)
    ch, loc = np.divmod(rest, n_loc)
    cells = pd.DataFrame({"category": categories[cat] if len(categories) else [], "channel": np.asarray(CHANNELS)[ch],
                          "location_id": locations.to_numpy(object)[loc] if len(locations) else []})

    def add(c, weight):
        flat = np.searchsorted(uniq, c["code"]) * n_days + c["day"]
        return np.bincount(flat, weights=weight, minlength=len(uniq) * n_days).reshape(len(uniq), n_days)

    expedited = ships["service_level"].astype(str) == "expedited"
    unit_cost = items["unit_cost"].to_numpy(float)
    dense = {"gross": add(sales, sales["gross_sales"]), "cogs": add(sales, sales["units"] * unit_cost[sales["sku"]]),
             "markdown": add(sales, sales["markdown_amount"]), "promo": add(sales, sales["promo_discount"]),
             "promo_gross": add(sales, sales["promo_gross"]), "refund": add(returns, returns["refund_amount"]),
             "ship_standard": add(ships, np.where(expedited, 0.0, ships["shipping_cost"])),
             "ship_expedited": add(ships, np.where(expedited, ships["shipping_cost"], 0.0)),
             "substitution": add(subs, subs["extra_cost"])}
    dense["shrink"] = _spread_shrink(dense["cogs"], cat * n_loc + loc, shrink_catloc, -shrink["value_at_cost"],
                                     shrink["day"], n_days)
    return cells, dense


@dataclass(frozen=True)
class _Coder:
    """Reduces a frame to cell codes ``(category * channels + channel) * locations + location``, day indices
    from ``first``, SKU rows and the value columns, so that no text column is held past its frame."""

    sku_index: pd.Index
    cat_of_sku: np.ndarray
    locations: pd.Index
    first: np.datetime64
    n_days: int

    def rows(self, frame: pd.DataFrame, name: str, when: str, values: list[str], channel: bool = True) -> dict:
        """Rows of known SKUs and channels inside the days (a frame without rows may lack columns)."""
        columns = [when, "location_id", "sku", *(["channel"] if channel else []), *values]
        if not len(frame):
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        _require(frame, name, columns)
        sku = self.sku_index.get_indexer(frame["sku"].astype(str))
        day = (pd.to_datetime(frame[when]).to_numpy().astype("datetime64[D]") - self.first).astype(np.int64)
        ch = (pd.Index(CHANNELS).get_indexer(frame["channel"].astype(str)) if channel
              else np.zeros(len(frame), np.int64))
        loc = self.locations.get_indexer(frame["location_id"].astype(str))
        keep = (sku >= 0) & (ch >= 0) & (day >= 0) & (day < self.n_days)
        code = (self.cat_of_sku[sku[keep]] * len(CHANNELS) + ch[keep]) * max(len(self.locations), 1) + loc[keep]
        out = {"code": code, "day": day[keep], "sku": sku[keep]}
        for v in values:
            column = frame[v].to_numpy()[keep]
            out[v] = column if v == "service_level" else column.astype(float)
        return out


def _orphan_shrink(codes: list[np.ndarray], shrink_catloc: np.ndarray, n_ch: int, n_loc: int) -> np.ndarray:
    """Cells for shrink of a category x location that sells through no channel: the location's commonest."""
    all_codes = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    cat, rest = np.divmod(all_codes, n_ch * n_loc)
    ch, loc = np.divmod(rest, n_loc)
    orphans = np.setdiff1d(np.unique(shrink_catloc), cat * n_loc + loc)
    usual = np.zeros(n_loc, np.int64)
    if len(all_codes):
        counts = np.zeros((n_loc, n_ch))
        np.add.at(counts, (loc, ch), 1)
        usual = counts.argmax(axis=1)
    o_cat, o_loc = np.divmod(orphans, n_loc)
    return (o_cat * n_ch + usual[o_loc]) * n_loc + o_loc


def _spread_shrink(cogs: np.ndarray, cell_catloc: np.ndarray, catloc: np.ndarray, loss: np.ndarray,
                   day: np.ndarray, n_days: int) -> np.ndarray:
    """Shrink per cell and day: each category x location's loss shared by its cells' cost of goods."""
    group, cell_group = np.unique(cell_catloc, return_inverse=True)
    per_cell = cogs.sum(axis=1)
    total = np.bincount(cell_group, weights=per_cell, minlength=len(group))
    count = np.bincount(cell_group, minlength=len(group))
    share = np.where(total[cell_group] > 0, per_cell / np.where(total > 0, total, 1.0)[cell_group],
                     1.0 / count[cell_group])
    g = np.searchsorted(group, catloc)
    by_group = np.bincount(g * n_days + day, weights=loss, minlength=len(group) * n_days).reshape(len(group), n_days)
    return by_group[cell_group] * share[:, None]


def _median(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over the last axis ignoring NaN, and the count of values (median NaN where none)."""
    s = np.sort(x, axis=-1)
    n = (~np.isnan(x)).sum(axis=-1)
    lo, hi = np.maximum((n - 1) // 2, 0), np.maximum(n // 2, 0)
    med = 0.5 * (np.take_along_axis(s, lo[..., None], -1)[..., 0] + np.take_along_axis(s, hi[..., None], -1)[..., 0])
    return np.where(n > 0, med, np.nan), n


def _robust(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD and standard deviation over the baseline weeks of ``num / den`` (weeks with ``den == 0``
    left out; the deviation is 0 with fewer than two weeks)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(den > 0, num / den, np.nan)
    med, n = _median(rate)
    mad, _ = _median(np.abs(rate - med[..., None]))
    valid = ~np.isnan(rate)
    mean = np.where(valid, rate, 0.0).sum(axis=-1) / np.maximum(n, 1)
    sq = np.where(valid, (rate - mean[..., None]) ** 2, 0.0).sum(axis=-1)
    return med, mad, np.sqrt(sq / np.maximum(n - 1, 1))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den > 0``, else NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _short(cum: dict, idx: np.ndarray, w: int, k: int, s: int, fill: dict) -> dict[str, np.ndarray]:
    """The short window's columns: the last ``s`` nights' sales, and per rate cause the margin it cost against
    the cell's expected rate (``fill``) and the window's rate against the rates of the ``k * w // s``
    consecutive ``s``-day blocks of the baseline weeks (the same days as the weekly baseline)."""
    ends = idx[None, :] - w - s * np.arange(k * w // s)[:, None]  # [blocks, nights] day index of each block's end
    now = {m: cum[m][:, idx + 1] - cum[m][:, idx + 1 - s] for m in ("gross", *_RATE_CAUSES.values())}
    base = {m: np.moveaxis(cum[m][:, ends + 1] - cum[m][:, ends + 1 - s], 1, 2) for m in now}
    g = now["gross"]
    out = {"window_days": np.full(g.shape, w), "short_days": np.full(g.shape, s), "short_gross_sales": g}
    for cause, measure in _RATE_CAUSES.items():
        med, mad, sd = _robust(base[measure], base["gross"])
        out.update({f"short_{cause}": -(now[measure] - fill[cause] * g), f"short_rate_{cause}": _ratio(now[measure], g),
                    f"short_median_{cause}": med, f"short_mad_{cause}": mad, f"short_sd_{cause}": sd})
    return out


def _chunk(cells: pd.DataFrame, cum: dict, nights: np.ndarray, idx: np.ndarray, w: int, k: int,
           s: int) -> pd.DataFrame:
    """Bridge rows of a chunk of nights (see :func:`margin_bridge`)."""
    ends = idx[None, :] - w * np.arange(1, k + 1)[:, None]  # [weeks, nights] day index of each baseline week's end
    now = {m: c[:, idx + 1] - c[:, idx + 1 - w] for m, c in cum.items()}
    base = {m: np.moveaxis(c[:, ends + 1] - c[:, ends + 1 - w], 1, 2) for m, c in cum.items()}
    g = now["gross"]
    with np.errstate(divide="ignore", invalid="ignore"):
        weeks = (base["gross"] > 0).sum(axis=-1)
        stats, causes = {}, {}
        for cause, measure in _RATE_CAUSES.items():
            stats[cause] = (_ratio(now[measure], g), *_robust(base[measure], base["gross"]))
        depth_med, depth_mad, depth_sd = _robust(base["promo"], base["promo_gross"])
        share_med, _, _ = _robust(base["promo_gross"], base["gross"])
        depth_now = _ratio(now["promo"], now["promo_gross"])
        # Without promotions in the baseline, a promotion's depth is its own: it shows as mix (more promoted).
        depth_med = np.where(np.isnan(depth_med), np.nan_to_num(depth_now), depth_med)
        stats[PROMOTION_DEPTH] = (depth_now, depth_med, depth_mad, depth_sd)
        mix_cost = {"now": now["cogs"] + now["ship_standard"], "base": base["cogs"] + base["ship_standard"]}
        stats[MIX] = (_ratio(mix_cost["now"], g), *_robust(mix_cost["base"], base["gross"]))
    # A cell without baseline weeks expects its own rates: nothing is attributed.
    fill = {c: np.where(weeks > 0, s[1], np.nan_to_num(s[0])) for c, s in stats.items()}
    share_med = np.where(weeks > 0, share_med, np.nan_to_num(_ratio(now["promo_gross"], g)))
    for cause, measure in _RATE_CAUSES.items():
        causes[cause] = -(now[measure] - fill[cause] * g)
    causes[PROMOTION_DEPTH] = -(now["promo"] - fill[PROMOTION_DEPTH] * now["promo_gross"])
    causes[MIX] = (-(mix_cost["now"] - fill[MIX] * g)
                   - (now["promo_gross"] - share_med * g) * fill[PROMOTION_DEPTH])
    costs = sum(now[m] for m in _MEASURES if m not in ("gross", "promo_gross"))
    actual = g - costs
    expected = g * (1 - sum(fill[c] for c in _RATE_CAUSES) - share_med * fill[PROMOTION_DEPTH] - fill[MIX])
    active = (g > 0) | (costs != 0)
    night_i, cell_i = np.nonzero(active.T)
    pick = (cell_i, night_i)
    change = (actual - expected)[pick]
    total = sum(causes[c][pick] for c in CAUSES)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {**{key: cells[key].to_numpy()[cell_i] for key in CELL_KEYS},
               "night": nights[night_i], "gross_sales": g[pick], "actual_margin": actual[pick],
               "expected_margin": expected[pick], "actual_margin_pct": 100 * _ratio(actual, g)[pick],
               "expected_margin_pct": 100 * _ratio(expected, g)[pick], "margin_change": change,
               **{c: causes[c][pick] for c in CAUSES}, "residual": change - total,
               "residual_pct": 100 * np.abs(change - total) / np.abs(actual[pick]), "baseline_weeks": weeks[pick]}
    for cause, (rate, med, mad, sd) in stats.items():
        out.update({f"rate_{cause}": rate[pick], f"median_{cause}": med[pick], f"mad_{cause}": mad[pick],
                    f"sd_{cause}": sd[pick]})
    out.update({key: value[pick] for key, value in _short(cum, idx, w, k, s, fill).items()})
    frame = pd.DataFrame(out)
    frame["night"] = frame["night"].astype("datetime64[s]")
    return frame
