"""Order orchestration extracts generated from a simulated world: open order lines, rate card, nodes, labour.

The retailer of :func:`include.sample_data.generator.generate_world` gets a map: regions sit on a circle
of 250 km radius with their DC at the centre, stores scatter within 60 km of it, and the ecommerce
fulfilment centre (FC) sits near the first region's centre. Customers live in zones (a few per region,
each with a centroid and a population weight). From that map the module derives, deterministically from
the world's seed and the day:

* **open order lines** waiting for a node: multi-line orders (so that splitting is a real choice), SKUs
  drawn by online popularity, a promise (next day, two day or standard) and the order time;
* a **carrier rate card** per origin node x customer zone: cost per parcel, per extra item and transit
  days, banded by distance (stores ship with a regional courier that charges a collection fee);
* **node capabilities**: whether a node ships parcels (ship-from-store is allowed in most stores, never
  in DCs), pick cost per line and the dispatch cut-off hour;
* a **labour schedule**: pick lines per hour per node and day; on peak days store staff serve the shop
  floor, so store pick capacity collapses exactly when order volume surges;
* **live on-hand** per node and SKU (the world's stock at the start of the day) with a markdown-risk score
  for aged, over-covered stock;
* a **store forecast** (mean and spread of daily store demand over the last four weeks), standing in for
  the nightly's forecasts.

:func:`write_order_landing` lays the extracts out as ``<root>/landing/<source>/ds=<YYYY-MM-DD>/<file>``,
as :func:`include.sample_data.generator.write_landing` does for the nightly's extracts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa

from include.config import as_date, partition_path
from include.sample_data.generator import World, parquet_bytes

#: dataset: (landing source, file name, format), as in data_contracts/orchestration/*.yaml.
ORDER_FILES = {
    "open_order_lines": ("oms", "open_order_lines.jsonl", "jsonl"),
    "carrier_rate_card": ("carrier", "rate_card.csv", "csv"),
    "node_capabilities": ("labour", "node_capabilities.csv", "csv"),
    "labour_schedule": ("labour", "labour_schedule.csv", "csv"),
    "node_on_hand": ("wms_live", "node_on_hand.parquet", "parquet"),
}
ORDER_COLUMNS = {
    "open_order_lines": ["order_id", "line_no", "ordered_at", "channel", "sku", "quantity", "unit_price",
                         "customer_zone", "promised_date"],
    "carrier_rate_card": ["origin_location_id", "zone", "distance_km", "cost_per_parcel", "cost_per_extra_item",
                          "transit_days"],
    "node_capabilities": ["location_id", "node_type", "ships_parcels", "pick_cost_per_line", "cutoff_hour"],
    "labour_schedule": ["location_id", "work_date", "hour", "pick_lines"],
    "node_on_hand": ["snapshot_at", "location_id", "sku", "on_hand", "markdown_risk"],
}

#: Distance bands (km) of the carrier's zones and, per band, parcel cost, cost per extra item, transit days.
BAND_EDGES_KM = (40.0, 120.0, 250.0, 450.0)
BAND_PARCEL = (4.10, 4.80, 5.90, 7.20, 8.60)
BAND_EXTRA_ITEM = (0.55, 0.65, 0.80, 0.95, 1.10)
BAND_TRANSIT = (1, 1, 2, 2, 3)
#: A store's parcels are collected by a courier van: a fixed fee on top of the carrier's rate.
STORE_COLLECTION_FEE = 0.60
#: Promises offered at checkout: days after the order day, and their shares.
PROMISE_DAYS = (1, 2, 3)
PROMISE_SHARE = (0.15, 0.35, 0.50)
#: Lines per order and units per line.
ORDER_SIZES, ORDER_SIZE_P = (1, 2, 3, 4, 5), (0.50, 0.25, 0.13, 0.07, 0.05)
LINE_QTY, LINE_QTY_P = (1, 2, 3), (0.82, 0.13, 0.05)
#: Online hours of the day (order arrival shape), midnight first.
_ORDER_HOURS = np.array([1, 0.5, 0.3, 0.2, 0.3, 0.6, 1.5, 3, 4, 5, 5.5, 5.5, 6, 5.5, 5, 5, 5.5, 6, 6.5, 7,
                         7, 6, 4, 2], float)


@dataclass(frozen=True)
class OrderConfig:
    """Shape of the generated order stream and network.

    Attributes:
        zones_per_region: customer zones in each region.
        lines_per_day: open order lines of an ordinary day; ``None`` takes the world's online demand.
        peak_dates: days of a peak (a sale event): more orders, and stores keep their staff on the floor.
        peak_volume: order volume multiplier of a peak day.
        peak_store_labour: share of the usual store pick capacity left on a peak day.
        ship_from_store_share: share of stores allowed to ship parcels.
        fc_capacity_ratio: FC pick lines per day over ordinary daily lines (below 1, the FC alone cannot
            serve every day).
    """

    zones_per_region: int = 6
    lines_per_day: int | None = None
    peak_dates: tuple[dt.date, ...] = ()
    peak_volume: float = 2.2
    peak_store_labour: float = 0.35
    ship_from_store_share: float = 0.85
    fc_capacity_ratio: float = 0.9

    def __post_init__(self) -> None:
        if self.zones_per_region < 1:
            raise ValueError(f"OrderConfig.zones_per_region must be at least 1, got {self.zones_per_region}")
        if self.lines_per_day is not None and self.lines_per_day < 1:
            raise ValueError(f"OrderConfig.lines_per_day must be at least 1, got {self.lines_per_day}")
        for name in ("peak_volume", "fc_capacity_ratio"):
            if not getattr(self, name) > 0:
                raise ValueError(f"OrderConfig.{name} must be above 0, got {getattr(self, name)}")
        for name in ("peak_store_labour", "ship_from_store_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"OrderConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        object.__setattr__(self, "peak_dates", tuple(as_date(d) for d in self.peak_dates))


@dataclass(frozen=True)
class Network:
    """Where nodes and customer zones are: coordinates in km and zone population weights."""

    location_ids: np.ndarray  # object, world row order
    node_type: np.ndarray  # object: store, ecom_fc, dc
    node_xy: np.ndarray  # float [locations, 2]
    zone_ids: np.ndarray  # object
    zone_xy: np.ndarray  # float [zones, 2]
    zone_weight: np.ndarray  # float [zones], sums to 1


def build_network(world: World, config: OrderConfig = OrderConfig()) -> Network:
    """Place the world's nodes and customer zones on a map, from the world's seed.

    Args:
        world: the generated world.
        config: order stream shape (zones per region).

    Returns:
        The network.
    """
    rng = np.random.default_rng([world.config.seed, 15_001])
    locs = world.locations
    regions = list(dict.fromkeys(locs["region"]))
    angle = 2 * np.pi * np.arange(len(regions)) / len(regions)
    centre = np.c_[250.0 * np.cos(angle), 250.0 * np.sin(angle)] if len(regions) > 1 else np.zeros((1, 2))
    region_of = locs["region"].map({r: i for i, r in enumerate(regions)}).to_numpy()
    kind = locs["location_type"].to_numpy(object)
    xy = centre[region_of].copy()
    stores = kind == "store"
    xy[stores] += _disc(rng, int(stores.sum()), 60.0)
    xy[kind == "ecom_fc"] += np.array([30.0, 10.0])
    n_zones = config.zones_per_region
    zone_region = np.repeat(np.arange(len(regions)), n_zones)
    zone_xy = centre[zone_region] + _disc(rng, len(zone_region), 70.0)
    weight = rng.lognormal(0.0, 0.5, len(zone_region))
    zone_ids = np.array([f"Z{r + 1:02d}{k + 1:02d}" for r in range(len(regions)) for k in range(n_zones)], object)
    return Network(location_ids=locs["location_id"].to_numpy(object), node_type=kind, node_xy=xy,
                   zone_ids=zone_ids, zone_xy=zone_xy, zone_weight=weight / weight.sum())


def _disc(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """``n`` points uniform in a disc of ``radius`` km around the origin."""
    r = radius * np.sqrt(rng.random(n))
    a = 2 * np.pi * rng.random(n)
    return np.c_[r * np.cos(a), r * np.sin(a)]


def node_capabilities(world: World, config: OrderConfig = OrderConfig()) -> pd.DataFrame:
    """Which nodes ship parcels, what a picked line costs there and when the day's last dispatch leaves.

    Args:
        world: the generated world.
        config: order stream shape (share of stores that may ship).

    Returns:
        One row per location, columns of ``ORDER_COLUMNS["node_capabilities"]``.
    """
    rng = np.random.default_rng([world.config.seed, 15_002])
    kind = world.locations["location_type"].to_numpy(object)
    n = len(kind)
    # Store associates pick from shop shelves between customers: slower, so dearer per line than the FC.
    pick = np.where(kind == "store", np.round(rng.uniform(1.3, 1.9, n), 2), 0.55)
    ships = np.where(kind == "store", rng.random(n) < config.ship_from_store_share, kind == "ecom_fc")
    return pd.DataFrame({
        "location_id": world.locations["location_id"].to_numpy(object),
        "node_type": kind,
        "ships_parcels": ships.astype(bool),
        "pick_cost_per_line": np.where(kind == "dc", 0.0, pick),
        "cutoff_hour": np.where(kind == "ecom_fc", 20, 17).astype(np.int64),
    })


def rate_card(world: World, config: OrderConfig = OrderConfig()) -> pd.DataFrame:
    """The carrier's rates from every parcel-shipping node to every customer zone, banded by distance.

    Args:
        world: the generated world.
        config: order stream shape.

    Returns:
        One row per origin x zone, columns of ``ORDER_COLUMNS["carrier_rate_card"]``.
    """
    net = build_network(world, config)
    caps = node_capabilities(world, config)
    origins = np.nonzero(caps["ships_parcels"].to_numpy())[0]
    dist = np.linalg.norm(net.node_xy[origins, None, :] - net.zone_xy[None, :, :], axis=2)
    band = np.searchsorted(BAND_EDGES_KM, dist)
    fee = np.where(net.node_type[origins] == "store", STORE_COLLECTION_FEE, 0.0)[:, None]
    n_zones = len(net.zone_ids)
    return pd.DataFrame({
        "origin_location_id": np.repeat(net.location_ids[origins], n_zones),
        "zone": np.tile(net.zone_ids, len(origins)),
        "distance_km": np.round(dist.ravel(), 1),
        "cost_per_parcel": np.round((np.asarray(BAND_PARCEL)[band] + fee).ravel(), 2),
        "cost_per_extra_item": np.asarray(BAND_EXTRA_ITEM)[band].ravel(),
        "transit_days": np.asarray(BAND_TRANSIT, np.int64)[band].ravel(),
    })


def _day_index(world: World, day: dt.date | str) -> int:
    days = world._sim.days
    d = int((np.datetime64(as_date(day), "D") - days[0]).astype(np.int64))
    if not 1 <= d < len(days):
        raise ValueError(f"day {as_date(day)} must lie in the world's history after its first day "
                         f"{days[0].item()}..{days[-1].item()}")
    return d


def _ordinary_lines(world: World, d: int) -> float:
    """Lines of an ordinary day: the FC's online demand of the last four weeks, in lines."""
    sim = world._sim
    units = sim.demand[max(d - 28, 0):d, sim.fc_row].sum(axis=1).mean()
    return float(units) / float(np.dot(LINE_QTY, LINE_QTY_P))


def labour_schedule(world: World, day: dt.date | str, config: OrderConfig = OrderConfig()) -> pd.DataFrame:
    """Pick lines per hour of every parcel-shipping node on ``day``, from its labour plan.

    The FC works 06:00-22:00 at a rate that covers ``fc_capacity_ratio`` of an ordinary day; stores pick
    09:00-18:00 with one or two associates, and on a peak day keep only ``peak_store_labour`` of it.

    Args:
        world: the generated world.
        day: the work date.
        config: order stream shape.

    Returns:
        One row per node x working hour, columns of ``ORDER_COLUMNS["labour_schedule"]``.
    """
    d = _day_index(world, day)
    rng = np.random.default_rng([world.config.seed, 15_003, d])
    caps = node_capabilities(world, config)
    ships = caps["ships_parcels"].to_numpy()
    kind = caps["node_type"].to_numpy(object)
    ordinary = config.lines_per_day or _ordinary_lines(world, d)
    n_stores = max(int((ships & (kind == "store")).sum()), 1)
    peak = as_date(day) in config.peak_dates
    frames = []
    for row in np.nonzero(ships)[0]:
        if kind[row] == "ecom_fc":
            hours = np.arange(6, 22)
            # The FC books temporary pickers for a peak; stores cannot, their staff serve the shop floor.
            surge = 0.8 * config.peak_volume if peak else 1.0
            rate = np.full(len(hours), config.fc_capacity_ratio * surge * ordinary / len(hours))
        else:
            hours = np.arange(9, 18)
            # Enough for about a third of the day's orders across all stores, in ordinary times.
            rate = 0.35 * ordinary / n_stores / len(hours) * rng.uniform(0.7, 1.3, len(hours))
            rate = rate * (config.peak_store_labour if peak else 1.0)
        frames.append(pd.DataFrame({"location_id": caps["location_id"].iat[row], "work_date": as_date(day),
                                    "hour": hours.astype(np.int64),
                                    "pick_lines": np.maximum(np.round(rate), 0).astype(np.int64)}))
    out = pd.concat(frames, ignore_index=True)
    out["work_date"] = pd.to_datetime(out["work_date"])
    return out[ORDER_COLUMNS["labour_schedule"]]


def open_order_lines(world: World, day: dt.date | str, config: OrderConfig = OrderConfig()) -> pd.DataFrame:
    """The day's online order lines, all waiting for a fulfilment node.

    Args:
        world: the generated world.
        day: the order date.
        config: order stream shape.

    Returns:
        Lines in order-time order with consecutive lines per order, columns of
        ``ORDER_COLUMNS["open_order_lines"]``.
    """
    d = _day_index(world, day)
    sim = world._sim
    rng = np.random.default_rng([world.config.seed, 15_004, d])
    net = build_network(world, config)
    target = (config.lines_per_day or _ordinary_lines(world, d)) * (
        config.peak_volume if as_date(day) in config.peak_dates else 1.0)
    n_orders = max(int(round(target / float(np.dot(ORDER_SIZES, ORDER_SIZE_P)))), 1)
    sizes = rng.choice(ORDER_SIZES, n_orders, p=ORDER_SIZE_P)
    order_of_line = np.repeat(np.arange(n_orders), sizes)
    n_lines = len(order_of_line)
    line_no = np.arange(n_lines) - np.repeat(np.cumsum(sizes) - sizes, sizes) + 1
    popularity = sim.demand[max(d - 28, 0):d, sim.fc_row].sum(axis=0).astype(float) + 0.5
    sku = rng.choice(len(sim.skus), n_lines, p=popularity / popularity.sum())
    seconds = np.sort(rng.choice(24, n_orders, p=_ORDER_HOURS / _ORDER_HOURS.sum()) * 3600
                      + rng.integers(0, 3600, n_orders))
    zone = rng.choice(len(net.zone_ids), n_orders, p=net.zone_weight)
    promise = rng.choice(PROMISE_DAYS, n_orders, p=PROMISE_SHARE)
    today = np.datetime64(as_date(day), "D")
    stamp = as_date(day).strftime("%Y%m%d")
    discount = sim.promo_discount[sim.promo[d][sim.fc_row, sku]]
    return pd.DataFrame({
        "order_id": [f"OO{stamp}{i + 1:07d}" for i in order_of_line],
        "line_no": line_no.astype(np.int64),
        "ordered_at": (np.datetime64(today, "s") + seconds[order_of_line].astype("timedelta64[s]")),
        "channel": rng.choice(["web", "app"], n_orders, p=[0.55, 0.45])[order_of_line],
        "sku": sim.skus[sku],
        "quantity": rng.choice(LINE_QTY, n_lines, p=LINE_QTY_P).astype(np.int64),
        "unit_price": np.round(sim.unit_price[sku] * (1.0 - discount), 2),
        "customer_zone": net.zone_ids[zone[order_of_line]],
        "promised_date": (today + promise[order_of_line]).astype("datetime64[s]"),
    })


def node_on_hand(world: World, day: dt.date | str) -> pd.DataFrame:
    """Stock per node and SKU at the start of ``day`` (the previous day's close), with markdown risk.

    Markdown risk grows with cover beyond 60 days of the node's recent demand: aged stock that the
    router may prefer to ship before it has to be marked down.

    Args:
        world: the generated world.
        day: the day whose opening stock is wanted.

    Returns:
        One row per location x SKU with stock, columns of ``ORDER_COLUMNS["node_on_hand"]``.
    """
    d = _day_index(world, day)
    sim = world._sim
    stock = sim.on_hand[d - 1].astype(np.int64)
    rate = sim.demand[max(d - 28, 0):d].mean(axis=0)
    cover = stock / np.maximum(rate, 0.02)
    risk = np.clip((cover - 60.0) / 120.0, 0.0, 1.0)
    loc, k = np.nonzero(stock > 0)
    return pd.DataFrame({
        "snapshot_at": np.full(len(k), np.datetime64(as_date(day), "s")),
        "location_id": sim.location_ids[loc],
        "sku": sim.skus[k],
        "on_hand": stock[loc, k],
        "markdown_risk": np.round(risk[loc, k], 3),
    })


def store_forecast(world: World, day: dt.date | str) -> pd.DataFrame:
    """Mean and standard deviation of each store's daily demand over the 28 days before ``day``.

    A stand-in for the nightly's forecasts where a benchmark or test has none; the DAG passes the real ones.

    Args:
        world: the generated world.
        day: the day being routed.

    Returns:
        Columns ``location_id, sku, mean_daily, sigma_daily, unit_margin``.
    """
    d = _day_index(world, day)
    sim = world._sim
    window = sim.demand[max(d - 28, 0):d][:, sim.store_rows].astype(float)
    n_rows, n_sku = window.shape[1:]
    margin = (world.items["unit_price"] - world.items["unit_cost"]).to_numpy(float)
    return pd.DataFrame({
        "location_id": np.repeat(sim.location_ids[sim.store_rows], n_sku),
        "sku": np.tile(sim.skus, n_rows),
        "mean_daily": window.mean(axis=0).ravel(),
        "sigma_daily": window.std(axis=0).ravel(),
        "unit_margin": np.tile(np.round(margin, 2), n_rows),
    })


def order_extracts(world: World, day: dt.date | str, config: OrderConfig = OrderConfig()) -> dict[str, pd.DataFrame]:
    """Every orchestration extract of ``day``, keyed by dataset name (see :data:`ORDER_FILES`)."""
    return {
        "open_order_lines": open_order_lines(world, day, config),
        "carrier_rate_card": rate_card(world, config),
        "node_capabilities": node_capabilities(world, config),
        "labour_schedule": labour_schedule(world, day, config),
        "node_on_hand": node_on_hand(world, day),
    }


def write_order_landing(world: World, root: str, days: list[dt.date | str],
                        config: OrderConfig = OrderConfig()) -> list[str]:
    """Write the orchestration extracts of ``days`` as ``<root>/landing/<source>/ds=<day>/<file>``.

    A day written again replaces its files.

    Args:
        world: the generated world.
        root: data root, a local path or fsspec URL.
        days: order dates to write.
        config: order stream shape.

    Returns:
        The paths written, in order.
    """
    root = str(root).rstrip("/")
    fs, _ = fsspec.core.url_to_fs(root)
    written = []
    for day in sorted({as_date(d) for d in days}):
        for name, frame in order_extracts(world, day, config).items():
            source, file_name, _ = ORDER_FILES[name]
            folder = partition_path("landing", source, day, root)
            fs.makedirs(folder, exist_ok=True)
            path = f"{folder}/{file_name}"
            with fs.open(path, "wb") as handle:
                handle.write(render_extract(frame, name))
            written.append(path)
    return written


def render_extract(frame: pd.DataFrame, name: str) -> bytes:
    """Serialise one orchestration extract in its contract's file format."""
    frame = frame[ORDER_COLUMNS[name]].copy()
    fmt = ORDER_FILES[name][2]
    if fmt == "parquet":
        table = pa.table({
            "snapshot_at": pa.array(frame["snapshot_at"].to_numpy().astype("datetime64[s]"), pa.timestamp("s")),
            "location_id": pa.array(frame["location_id"].astype(str), pa.string()),
            "sku": pa.array(frame["sku"].astype(str), pa.string()),
            "on_hand": pa.array(frame["on_hand"].to_numpy(np.int64), pa.int64()),
            "markdown_risk": pa.array(frame["markdown_risk"].to_numpy(float), pa.float64()),
        })
        return parquet_bytes(table)
    for column in ("promised_date", "work_date"):
        if column in frame:
            frame[column] = np.datetime_as_string(frame[column].to_numpy().astype("datetime64[D]"))
    if "ordered_at" in frame:
        frame["ordered_at"] = np.datetime_as_string(frame["ordered_at"].to_numpy().astype("datetime64[s]"))
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n").encode()
    return frame.to_json(orient="records", lines=True, force_ascii=False).encode()
