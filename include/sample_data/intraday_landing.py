"""The intraday extracts of a generated day, as the source systems deliver them during trading.

Every hour the tills send that hour's item movement and the web shop that hour's order lines; the WMS sends
a stock snapshot a few times a day. They land under ``<root>/landing/<source>_intraday/ds=<day>/hour=<HH>/``
(:func:`write_intraday_landing`). Summed over the day they agree with the nightly extracts of the same day:
the hourly POS units add up to ``pos_sales``, the order lines are ``ecommerce_orders``' lines, and the last
snapshot's store stock is the end-of-day ``inventory_snapshot``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa

from include.config import as_date, partition_path
from include.sample_data.generator import World, _ecom_for_day, _render, parquet_bytes
from include.sample_data.intraday import HOURS, STORE_HOURS, split_by_hour

#: Hours (end of) at which the WMS sends a stock snapshot during the day.
SNAPSHOT_HOURS = (9, 13, 17, 21)
#: Where each intraday source lands, and its file name.
FILES = {"pos_intraday": "pos_sales.csv", "ecommerce_intraday": "order_lines.jsonl",
         "wms_intraday": "inventory_snapshot.parquet"}
POS_COLUMNS = ["store_id", "sku", "business_date", "hour", "units_sold", "gross_sales", "discount_amount", "promo_id"]


def _day_index(world: World, day: dt.date | str) -> int:
    sim = world._sim
    d = int((np.datetime64(as_date(day), "D") - sim.days[0]).astype(np.int64))
    if not 0 <= d < len(sim.days):
        raise ValueError(f"day {as_date(day)} is outside the generated history {sim.days[0]}..{sim.days[-1]}")
    return d


def hourly_store_sales(world: World, day: dt.date | str) -> pd.DataFrame:
    """Store item movement of ``day`` by hour: one row per store x SKU x hour with units sold.

    Columns as :data:`POS_COLUMNS`; the units of a store x SKU add up to that day's ``pos_sales``.
    """
    sim = world._sim
    d = _day_index(world, day)
    rows, skus = np.nonzero(sim.demand[d][sim.store_rows])
    locs = sim.store_rows[rows]
    extra = sim.shock_extra[d][locs, skus] if d in sim.shock_extra else np.zeros(len(locs), np.int64)
    onset = np.full(len(locs), HOURS)
    today = sim.shocks[(sim.shocks["day"] == d + sim.hist_first) & (sim.shocks["scope"] != "online")]
    for shock in today.itertuples(index=False):
        hit = np.isin(locs, shock.rows) & (skus == shock.sku)
        onset[hit] = np.minimum(onset[hit], shock.onset_hour)
    weekday = int((sim.days[d].astype(np.int64) + 3) % 7)
    shares = np.broadcast_to(STORE_HOURS[weekday], (len(locs), HOURS))
    rng = np.random.default_rng([sim.seed, 7_770_004, d])
    _, sold = split_by_hour(rng, sim.demand[d][locs, skus], sim.sales[d][locs, skus], extra, shares, onset)
    cell, hour = np.nonzero(sold)
    units = sold[cell, hour].astype(np.int64)
    k, loc = skus[cell], locs[cell]
    promo = sim.promo[d][loc, k]
    discount = sim.promo_discount[promo]
    regular = units * sim.unit_price[k]
    frame = pd.DataFrame({
        "store_id": sim.location_ids[loc], "sku": sim.skus[k],
        "business_date": pd.Series(np.full(len(k), sim.days[d])).astype("datetime64[s]"),
        "hour": hour.astype(np.int64), "units_sold": units,
        "gross_sales": np.round(regular * (1.0 - discount), 2), "discount_amount": np.round(regular * discount, 2),
        "promo_id": pd.Series(np.where(promo >= 0, sim.promo_ids[np.maximum(promo, 0)], None), dtype=object),
    })
    return frame.sort_values(["hour", "store_id", "sku"], kind="stable", ignore_index=True)


def on_hand_at(world: World, day: dt.date | str, hour: int, store_sales: pd.DataFrame | None = None,
               orders: pd.DataFrame | None = None) -> pd.DataFrame:
    """Stock per location x SKU at the end of ``hour`` of ``day``.

    Stores and the FC: the evening's stock plus what sold after the hour (the morning's stock less what
    sold through it). DCs: the previous evening's stock plus the day's receipts (they ship in the evening).
    Columns: ``snapshot_at, location_id, sku, on_hand, in_transit``.
    """
    sim = world._sim
    d = _day_index(world, day)
    store_sales = hourly_store_sales(world, day) if store_sales is None else store_sales
    orders = _ecom_for_day(sim, d) if orders is None else orders
    loc_index = pd.Index(sim.location_ids)
    sku_index = pd.Index(sim.skus)
    # The evening's stock plus what sells after the hour.
    stock = sim.on_hand[d].astype(np.int64)
    later = store_sales[store_sales["hour"] > hour]
    np.add.at(stock, (loc_index.get_indexer(later["store_id"]), sku_index.get_indexer(later["sku"])),
              later["units_sold"].to_numpy(np.int64))
    ordered_hour = orders["ordered_at"].dt.hour.to_numpy()
    # Evening orders are picked tomorrow, so they are still on the FC's shelves (as the nightly counts them).
    status = orders["status"].to_numpy()
    late = orders[((ordered_hour > hour) & (status == "shipped")) | (status == "placed")]
    np.add.at(stock[sim.fc_row], sku_index.get_indexer(late["sku"]), late["quantity"].to_numpy(np.int64))
    dcs = np.setdiff1d(np.arange(len(sim.location_ids)), np.append(sim.store_rows, sim.fc_row))
    if d > 0:
        stock[dcs] = sim.on_hand[d - 1][dcs]
        received = world.receipts[world.receipts["received_date"] == np.datetime64(sim.days[d], "s")]
        rows = loc_index.get_indexer(received["location_id"])
        keep = np.isin(rows, dcs)
        np.add.at(stock, (rows[keep], sku_index.get_indexer(received["sku"])[keep]),
                  received["quantity_received"].to_numpy(np.int64)[keep])
    n_loc, n_sku = stock.shape
    return pd.DataFrame({
        "snapshot_at": np.full(n_loc * n_sku, np.datetime64(sim.days[d], "s") + np.timedelta64(hour * 3600 + 3599, "s")),
        "location_id": np.repeat(sim.location_ids, n_sku), "sku": np.tile(sim.skus, n_loc),
        "on_hand": np.maximum(stock, 0).ravel(), "in_transit": sim.in_transit[d].astype(np.int64).ravel(),
    })


def write_intraday_landing(world: World, root: str, day: dt.date | str, hours: Iterable[int] | None = None) -> list[str]:
    """Write the intraday extracts of the given hours of ``day`` (all 24 when omitted).

    Each hour gets ``landing/pos_intraday`` and ``landing/ecommerce_intraday`` files (possibly empty: a
    closed hour still reports), and the hours of :data:`SNAPSHOT_HOURS` a ``landing/wms_intraday``
    snapshot. A file written again is replaced.

    Returns:
        The paths written, in order.
    """
    sim = world._sim
    d = _day_index(world, day)
    hours = sorted(set(range(HOURS) if hours is None else hours))
    if any(not 0 <= h < HOURS for h in hours):
        raise ValueError(f"hours must lie in 0..23, got {hours}")
    store_sales = hourly_store_sales(world, day)
    orders = _ecom_for_day(sim, d)
    ordered_hour = orders["ordered_at"].dt.hour.to_numpy()
    root = str(root).rstrip("/")
    fs, _ = fsspec.core.url_to_fs(root)
    written = []
    for hour in hours:
        lines = orders[ordered_hour == hour].assign(
            status=lambda f: np.where(f["status"] == "cancelled", "cancelled", "placed"))
        payloads = {
            "pos_intraday": store_sales[store_sales["hour"] == hour].to_csv(index=False, lineterminator="\n",
                                                                            date_format="%Y-%m-%d").encode(),
            "ecommerce_intraday": _render(lines, "ecommerce_orders"),
        }
        if hour in SNAPSHOT_HOURS:
            payloads["wms_intraday"] = _snapshot_parquet(on_hand_at(world, day, hour, store_sales, orders))
        for source, payload in payloads.items():
            folder = f"{partition_path('landing', source, sim.days[d].item(), root)}/hour={hour:02d}"
            fs.makedirs(folder, exist_ok=True)
            path = f"{folder}/{FILES[source]}"
            with fs.open(path, "wb") as handle:
                handle.write(payload)
            written.append(path)
    return written


def _snapshot_parquet(frame: pd.DataFrame) -> bytes:
    table = pa.table({
        "snapshot_at": pa.array(frame["snapshot_at"].to_numpy().astype("datetime64[s]"), type=pa.timestamp("s")),
        "location_id": pa.array(frame["location_id"].to_numpy(), type=pa.string()),
        "sku": pa.array(frame["sku"].to_numpy(), type=pa.string()),
        "on_hand": pa.array(frame["on_hand"].to_numpy(np.int64), type=pa.int64()),
        "in_transit": pa.array(frame["in_transit"].to_numpy(np.int64), type=pa.int64()),
    })
    return parquet_bytes(table)
