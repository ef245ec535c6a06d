"""Daily demand per item x location x channel, built from curated sales and inventory.

Store demand comes from POS item movement, ecommerce demand from order lines (by the fulfilment
centre that ships them). A day on which the location ended with nothing on hand is flagged
``censored``: what sold that day is a floor on demand, not demand, and the forecasting models treat
it so. A day without any stock snapshot of the location (an imported sales history, a location whose
warehouse system delivers none) says nothing of the shelf: there a run of zero sales that only an empty
shelf explains is censored too (:func:`include.demand.stockouts.zero_run_stockouts`), as the replay reads
a sales history; where a snapshot exists, it decides. Each day also carries its known regressors (promotion depth, price, retail event; see
:mod:`include.demand.regressors`), so models can tell a promotion's lift from a change in demand.

The nightly builds demand shard by shard (:func:`demand_shards`). One pass over the window reads the
curated partitions a day at a time and spools each day's sales and stock-outs to local Parquet as integer
codes; then each shard of SKUs (:mod:`include.demand.shards`) is read back from the spool, only its rows,
and made dense. Memory follows one day's extract and one shard, never the whole retailer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from include.config import as_date
from include.demand.regressors import known_regressors
from include.demand.shards import n_shards_for, shard_of
from include.demand.stockouts import zero_run_stockouts
from include.progress import Progress
from include.storage import iter_range, read_partition

log = logging.getLogger(__name__)

SERIES_SEP = "|"
DEMAND_COLUMNS = ["unique_id", "location_id", "sku", "channel", "ds", "y", "censored", "promo", "price", "event"]
CHANNELS = ("store", "ecommerce")
#: ``attrs`` key of a built demand frame: its censored days read off zero runs, without a stock snapshot.
INFERRED_ATTR = "stockouts_inferred_days"

#: Columns each streamed source is read with (nothing else of the extract is loaded).
_SOURCES = {
    "pos_sales": ["store_id", "sku", "business_date", "units_sold"],
    "ecommerce_orders": ["fulfilment_location_id", "sku", "ordered_at", "quantity", "status"],
    "inventory_snapshot": ["location_id", "sku", "snapshot_date", "on_hand"],
}
_SALES_SCHEMA = pa.schema([("loc", pa.int32()), ("sku", pa.int32()), ("channel", pa.int8()),
                           ("day", pa.int32()), ("y", pa.float64())])
_STOCKOUT_SCHEMA = pa.schema([("loc", pa.int32()), ("sku", pa.int32()), ("day", pa.int32())])
_STOCK_DAY_SCHEMA = pa.schema([("loc", pa.int32()), ("day", pa.int32())])


def series_id(location_id: pd.Series | str, sku: pd.Series | str):
    """``location|sku``: the id of one demand series."""
    return location_id + SERIES_SEP + sku


def split_series_id(unique_id: pd.Series) -> tuple[pd.Series, pd.Series]:
    parts = unique_id.str.split(SERIES_SEP, n=1, expand=True)
    return parts[0], parts[1]


class _Codes:
    """Stable integer codes of one identifier (location or SKU) across every day of a window."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def _code(self, name: str) -> int:
        code = self._index.get(name)
        if code is None:
            code = self._index[name] = len(self.names)
            self.names.append(name)
        return code

    def encode(self, values: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(values.astype(str))
        lookup = np.fromiter((self._code(u) for u in uniques), dtype=np.int32, count=len(uniques))
        return lookup[codes]


@dataclasses.dataclass
class _Window:
    start: dt.date
    end: dt.date
    locations: _Codes = dataclasses.field(default_factory=_Codes)
    skus: _Codes = dataclasses.field(default_factory=_Codes)

    @property
    def days(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, self.end, freq="D")

    def day_index(self, when: pd.Series) -> np.ndarray:
        return (pd.to_datetime(when).dt.normalize() - pd.Timestamp(self.start)).dt.days.to_numpy(np.int32)

    def sales(self, pos: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
        """Units per location, SKU, channel and day of the window (``loc, sku, channel, day, y``, codes)."""
        parts = []
        if len(pos):
            p = pos[pos["units_sold"].notna() & pos["store_id"].notna() & pos["sku"].notna()]
            parts.append((p["store_id"], p["sku"], 0, p["business_date"], p["units_sold"]))
        if len(orders):
            o = orders[(orders["status"].astype(str) != "cancelled") & orders["fulfilment_location_id"].notna()
                       & orders["sku"].notna()]
            parts.append((o["fulfilment_location_id"], o["sku"], 1, o["ordered_at"], o["quantity"]))
        frames = [pd.DataFrame({"loc": self.locations.encode(loc), "sku": self.skus.encode(sku),
                                "channel": np.full(len(y), channel, np.int8), "day": self.day_index(when),
                                "y": y.to_numpy(dtype=float)}) for loc, sku, channel, when, y in parts if len(y)]
        if not frames:
            return pd.DataFrame({f.name: pd.Series(dtype=f.type.to_pandas_dtype()) for f in _SALES_SCHEMA})
        sales = pd.concat(frames, ignore_index=True)
        sales = sales[(sales["day"] >= 0) & (sales["day"] <= (self.end - self.start).days)]
        return sales.groupby(["loc", "sku", "channel", "day"], as_index=False, sort=False)["y"].sum()

    def stockouts(self, inventory: pd.DataFrame) -> pd.DataFrame:
        """Days a location ended with nothing on hand (``loc, sku, day``, codes)."""
        if len(inventory):
            inventory = inventory[inventory["on_hand"].astype(float) <= 0]
        return self._snapshot_days(inventory, _STOCKOUT_SCHEMA)

    def stock_days(self, inventory: pd.DataFrame) -> pd.DataFrame:
        """Days each location has a stock snapshot at all (``loc, day``, codes): its stock is known then."""
        return self._snapshot_days(inventory, _STOCK_DAY_SCHEMA)

    def _snapshot_days(self, inventory: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
        """The snapshot rows of a known location as ``schema``'s codes (``loc``, ``sku`` where the schema has
        it, ``day``), each once, inside the window."""
        if not len(inventory):
            return pd.DataFrame({f.name: pd.Series(dtype=f.type.to_pandas_dtype()) for f in schema})
        inv = inventory[inventory["location_id"].notna()]
        codes = {"loc": self.locations.encode(inv["location_id"]), "day": self.day_index(inv["snapshot_date"])}
        if "sku" in schema.names:
            codes["sku"] = self.skus.encode(inv["sku"])
        out = pd.DataFrame({name: codes[name] for name in schema.names})
        return out[(out["day"] >= 0) & (out["day"] <= (self.end - self.start).days)].drop_duplicates()

    def key_names(self, keys: np.ndarray) -> pd.DataFrame:
        """``unique_id, location_id, sku, channel`` of series keys (:func:`_series_keys`)."""
        location = pd.Series(np.asarray(self.locations.names, dtype=object)[keys >> 33], dtype="str")
        sku = pd.Series(np.asarray(self.skus.names, dtype=object)[(keys >> 1) & 0xFFFFFFFF], dtype="str")
        channel = pd.Series(np.asarray(CHANNELS, dtype=object)[keys & 1], dtype="str")
        return pd.DataFrame({"unique_id": series_id(location, sku), "location_id": location, "sku": sku,
                             "channel": channel})


def _series_keys(loc: np.ndarray, sku: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """One int64 per location x SKU x channel, ordered by location, SKU, channel."""
    return (loc.astype(np.int64) << 33) | (sku.astype(np.int64) << 1) | channel.astype(np.int64)


def _dense(window: _Window, keys: np.ndarray, sales: pd.DataFrame, stockouts: pd.DataFrame,
           promotions: pd.DataFrame | None, items: pd.DataFrame | None,
           stock_days: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every day of the window for each of the sorted series ``keys``, with censoring and regressors.

    ``stock_days`` (``loc, day``): the days each location has a stock snapshot; on the others a zero run
    only an empty shelf explains is censored as well (none: no day's stock is known)."""
    days = window.days
    n_keys, n_days = len(keys), len(days)
    y = np.zeros((n_keys, n_days))
    row = np.searchsorted(keys, _series_keys(sales["loc"].to_numpy(), sales["sku"].to_numpy(),
                                             sales["channel"].to_numpy()))
    np.add.at(y, (row, sales["day"].to_numpy()), sales["y"].to_numpy())
    censored = np.zeros((n_keys, n_days), dtype=bool)
    pairs = keys >> 1  # location x SKU: a stock-out censors every channel the location sells through
    wanted = (stockouts["loc"].to_numpy(np.int64) << 32) | stockouts["sku"].to_numpy(np.int64)
    first = np.searchsorted(pairs, wanted)
    for offset in (0, 1):
        at = first + offset
        hit = at < n_keys
        hit[hit] = pairs[at[hit]] == wanted[hit]
        censored[at[hit], stockouts["day"].to_numpy()[hit]] = True
    inferred = _unrecorded_stockouts(keys, y, n_days, stock_days) & ~censored
    censored |= inferred
    names = window.key_names(keys)
    series = names.drop_duplicates("unique_id")
    known = known_regressors(series[["unique_id", "location_id", "sku"]], days, promotions, items)
    # Regressor rows are series-major in ``series`` order: the first row of each key's series, then its days.
    first_row = np.repeat(pd.Index(series["unique_id"]).get_indexer(names["unique_id"]) * n_days, n_days)
    take = first_row + np.tile(np.arange(n_days), n_keys)
    repeat = np.repeat(np.arange(n_keys), n_days)
    frame = pd.DataFrame({
        **{col: names[col].take(repeat).reset_index(drop=True) for col in ("unique_id", "location_id", "sku",
                                                                             "channel")},
        "ds": np.tile(days.to_numpy(), n_keys), "y": y.ravel(), "censored": censored.ravel(),
        **{col: known[col].take(take).reset_index(drop=True) for col in ("promo", "price", "event")},
    })[DEMAND_COLUMNS]
    frame.attrs[INFERRED_ATTR] = int(inferred.sum())
    return frame


def build_demand(
    pos: pd.DataFrame,
    orders: pd.DataFrame,
    inventory: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    promotions: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Dense daily demand for every series seen in the window, all at once (the nightly streams shards).

    Args:
        pos: curated ``pos_sales`` rows.
        orders: curated ``ecommerce_orders`` rows.
        inventory: curated ``inventory_snapshot`` rows.
        start: first day of the window.
        end: last day (the logical date).
        promotions: curated ``promotions`` rows known on ``end`` (``None``: no promotion assumed).
        items: curated ``items`` rows, for list prices (``None``: ``price`` is ``NaN``).

    Returns:
        Long frame ``unique_id, location_id, sku, channel, ds, y, censored, promo, price, event`` with
        one row per series and day in the window (days without sales are ``y = 0``).
    """
    window = _Window(as_date(start), as_date(end))
    sales = window.sales(pos, orders)
    if sales.empty:
        return pd.DataFrame(columns=DEMAND_COLUMNS)
    keys = np.unique(_series_keys(sales["loc"].to_numpy(), sales["sku"].to_numpy(), sales["channel"].to_numpy()))
    return _dense(window, keys, sales, window.stockouts(inventory), promotions, items, window.stock_days(inventory))


@dataclasses.dataclass(frozen=True)
class DemandShard:
    """One shard's dense demand (``frame``), shard ``shard`` of ``n_shards``."""

    shard: int
    n_shards: int
    frame: pd.DataFrame


class _Spool:
    """The window's sales, stock-outs and stock days as integer codes in local Parquet, one row group per day."""

    _SCHEMAS = {"sales": _SALES_SCHEMA, "stockouts": _STOCKOUT_SCHEMA, "stock_days": _STOCK_DAY_SCHEMA}

    def __init__(self, folder: str) -> None:
        self.paths = {name: Path(folder) / f"{name}.parquet" for name in self._SCHEMAS}
        self._writers = {name: pq.ParquetWriter(self.paths[name], schema) for name, schema in self._SCHEMAS.items()}

    def add(self, **frames: pd.DataFrame) -> None:
        for name, frame in frames.items():
            if len(frame):
                self._writers[name].write_table(pa.Table.from_pandas(frame, schema=self._SCHEMAS[name],
                                                                     preserve_index=False))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def read(self, name: str, skus: np.ndarray | None = None) -> pd.DataFrame:
        """The spooled rows of the SKUs ``skus`` (codes) only (``None``: every row)."""
        filters = None if skus is None else [("sku", "in", skus.tolist())]
        return pq.read_table(self.paths[name], filters=filters).to_pandas()


def _days(window: _Window, root: str | None) -> Iterator[tuple[dt.date, dict[str, pd.DataFrame]]]:
    """Each day of the window that has any curated sales or inventory: its frames by source, one day at a time."""
    streams = {s: iter_range("curated", s, window.start, window.end, root, columns=c) for s, c in _SOURCES.items()}
    heads = {s: next(it, None) for s, it in streams.items()}
    while any(heads.values()):
        day = min(head[0] for head in heads.values() if head)
        frames = {}
        for source, stream in streams.items():
            head = heads[source]
            frames[source] = head[1].to_pandas() if head and head[0] == day else pd.DataFrame()
            if head and head[0] == day:
                heads[source] = next(stream, None)
        yield day, frames


def _spool_window(window: _Window, spool: _Spool, root: str | None) -> np.ndarray:
    """Read the window a day at a time into ``spool``; the sorted keys of every series that sold."""
    n_days = (window.end - window.start).days + 1
    progress = Progress(f"demand: reading up to {n_days} days", n_days)
    keys = np.empty(0, dtype=np.int64)
    for _, frames in _days(window, root):
        sales = window.sales(frames["pos_sales"], frames["ecommerce_orders"])
        inventory = frames["inventory_snapshot"]
        spool.add(sales=sales, stockouts=window.stockouts(inventory), stock_days=window.stock_days(inventory))
        keys = pd.unique(np.concatenate([keys, _series_keys(sales["loc"].to_numpy(), sales["sku"].to_numpy(),
                                                            sales["channel"].to_numpy())]))
        progress.step(len(sales))
    spool.close()
    return np.sort(keys)


def demand_shards(ds: str | dt.date, lookback_days: int, shard_size: int,
                  root: str | None = None) -> Iterator[DemandShard]:
    """Dense demand of the window ending at ``ds``, one shard of SKUs at a time.

    A SKU's series (every location and channel) are all in one shard, so a shard can also decide
    transfers between locations. Shards with no series are not yielded.

    Args:
        ds: the run's logical date (the window's last day).
        lookback_days: days in the window.
        shard_size: series per shard, about (shards hold whole SKUs).
        root: data root.

    Raises:
        ValueError: when the window holds no curated sales at all, saying how to load history.
    """
    end = as_date(ds)
    window = _Window(end - dt.timedelta(days=lookback_days - 1), end)
    with tempfile.TemporaryDirectory(prefix="shelfwise-demand-") as folder:
        spool = _Spool(folder)
        keys = _spool_window(window, spool, root)
        if not len(keys):
            raise ValueError(f"no curated sales found for the {lookback_days} days up to {end}: load history "
                             "first (python -m include.ingest history --start YYYY-MM-DD --end YYYY-MM-DD)")
        n_shards = n_shards_for(len(keys), shard_size)
        key_shard = shard_of(pd.Series(window.skus.names), n_shards)[(keys >> 1) & 0xFFFFFFFF]
        promotions = read_partition("curated", "promotions", end, root, missing_ok=True)
        items = read_partition("curated", "items", end, root, missing_ok=True)
        stock_days = spool.read("stock_days")
        progress = Progress(f"demand: {len(keys):,} series in {n_shards} shards", n_shards)
        for shard in range(n_shards):
            mine = keys[key_shard == shard]
            skus = np.unique((mine >> 1) & 0xFFFFFFFF).astype(np.int32)
            if len(mine):
                frame = _dense(window, mine, spool.read("sales", skus), spool.read("stockouts", skus),
                               promotions, items, stock_days)
                yield DemandShard(shard, n_shards, frame)
                progress.step(len(frame))


def _unrecorded_stockouts(keys: np.ndarray, y: np.ndarray, n_days: int, stock_days: pd.DataFrame | None
                          ) -> np.ndarray:
    """``[keys, days]``: days without a stock snapshot of the series' location that a zero run only an
    empty shelf explains marks as stock-outs (the days before a series' first sale are not judged)."""
    locs = (keys >> 33).astype(np.int64)
    known = np.zeros((int(locs.max()) + 1 if len(locs) else 0, n_days), dtype=bool)
    if stock_days is not None and len(stock_days):
        loc = stock_days["loc"].to_numpy(np.int64)
        inside = loc < len(known)
        known[loc[inside], stock_days["day"].to_numpy(np.int64)[inside]] = True
    unknown = ~known[locs]
    if not unknown.any():
        return np.zeros_like(unknown)
    started = np.maximum.accumulate(y > 0, axis=1)
    return zero_run_stockouts(np.where(started, y, np.nan)) & unknown


def demand_summary(demand: pd.DataFrame, earlier: dict | None = None) -> dict:
    """Series, rows, censored (stock-out) days, of them those read off zero runs on days without a stock
    snapshot, and units of a demand frame, added to ``earlier``'s.

    Shards hold whole series, so the summaries of a night's shards add up to the night's.
    """
    earlier = earlier or {}
    return {"series": earlier.get("series", 0) + int(demand["unique_id"].nunique()),
            "rows": earlier.get("rows", 0) + int(len(demand)),
            "censored_days": earlier.get("censored_days", 0) + int(demand["censored"].sum()),
            "stockouts_inferred_days": earlier.get("stockouts_inferred_days", 0)
            + int(demand.attrs.get(INFERRED_ATTR, 0)),
            "units": earlier.get("units", 0.0) + float(demand["y"].sum())}
