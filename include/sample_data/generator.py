"""A seeded, believable omnichannel retailer: master data, demand, stock and the extracts it produces.

The generator simulates a retailer day by day: stores sell from shelves that their regional distribution
centre (DC) refills on a periodic rule, DCs and the ecommerce fulfilment centre (FC) buy from suppliers
whose deliveries are often late, and customers bring some of what they bought back. Because sales are
capped by what is on hand, stock-outs censor demand exactly as they do in real item-movement files, and
:attr:`World.true_demand` keeps the uncensored demand so that tests and benchmarks can score against it.
Supplier disruptions (:class:`DisruptionConfig`, none by default) delay the deliveries of chosen suppliers
for a while; :attr:`World.disruptions` records them, as :attr:`World.shocks` records the demand shocks.

Every array in the day loop has shape ``[locations, skus]``, so the ``large`` preset (150 stores x 2,000
SKUs x 730 days) runs in minutes on one machine. Everything derives from ``WorldConfig.seed``: the same
config always produces identical frames and files.

The extracts follow ``data_contracts/*.yaml`` column for column; :func:`write_landing` lays them out as
``<root>/landing/<source>/ds=<YYYY-MM-DD>/<file>``, the way the source systems deliver them.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from include.config import as_date, partition_path
from include.demand.calendar import easter as calendar_easter
from include.sample_data.intraday import ECOM_HOURS, ShockConfig, plan_shocks, shock_lines, shock_units

DEFAULT_END_DATE = dt.date(2026, 11, 27)

#: Days simulated before the first written day, so stock levels and open purchase orders have settled.
WARMUP_DAYS = 56
#: Days at the end of history during which the drifting supplier delivers late.
DRIFT_DAYS = 75
#: How far ahead the promotion calendar is published: a day's promotions file lists promotions starting
#: up to this many days later.
PROMO_PLANNING_DAYS = 42
#: Sentinel day index for events that never happen (cancelled lines never receive).
_NEVER = np.iinfo(np.int32).max // 2

_FILES = {
    # dataset: (source folder, file name, format) as in data_contracts/*.yaml
    "items": ("master", "items.csv", "csv"),
    "locations": ("master", "locations.csv", "csv"),
    "suppliers": ("master", "suppliers.csv", "csv"),
    "promotions": ("master", "promotions.csv", "csv"),
    "pos_sales": ("pos", "pos_sales.csv", "csv"),
    "ecommerce_orders": ("ecommerce", "order_lines.jsonl", "jsonl"),
    "inventory_snapshot": ("wms", "inventory_snapshot.parquet", "parquet"),
    "purchase_orders": ("supplier", "purchase_orders.csv", "csv"),
    "receipts": ("supplier", "receipts.csv", "csv"),
    "returns": ("returns", "returns.jsonl", "jsonl"),
}

COLUMNS = {
    "items": ["sku", "description", "category", "department", "unit_price", "unit_cost", "case_pack",
              "moq_units", "shelf_capacity", "supplier_id", "velocity_class"],
    "locations": ["location_id", "name", "location_type", "region", "parent_dc", "transfer_lead_time_days",
                  "transfer_cost_per_unit"],
    "suppliers": ["supplier_id", "name", "promised_lead_time_days", "region", "return_credit_rate"],
    "promotions": ["promo_id", "sku", "location_id", "start_date", "end_date", "discount_pct"],
    "pos_sales": ["store_id", "sku", "business_date", "units_sold", "gross_sales", "discount_amount",
                  "promo_id"],
    "ecommerce_orders": ["order_id", "line_no", "ordered_at", "channel", "sku", "quantity", "unit_price",
                         "fulfilment_location_id", "status"],
    "inventory_snapshot": ["snapshot_date", "location_id", "sku", "on_hand", "allocated", "in_transit"],
    "purchase_orders": ["po_id", "po_line", "supplier_id", "sku", "destination_location_id", "order_date",
                        "promised_date", "quantity_ordered", "quantity_received", "unit_cost", "status"],
    "receipts": ["receipt_id", "po_id", "po_line", "sku", "location_id", "received_date",
                 "quantity_received"],
    "returns": ["return_id", "returned_at", "channel", "location_id", "sku", "quantity", "reason", "condition",
                "refund_amount"],
}
_DATE_COLUMNS = {"promotions": ("start_date", "end_date"), "pos_sales": ("business_date",),
                 "inventory_snapshot": ("snapshot_date",), "purchase_orders": ("order_date", "promised_date"),
                 "receipts": ("received_date",)}
_TIMESTAMP_COLUMNS = {"ecommerce_orders": ("ordered_at",), "returns": ("returned_at",)}


@dataclass(frozen=True)
class DisruptionConfig:
    """Supplier disruptions injected into the simulated deliveries (none by default).

    Each disrupted supplier has one episode: the lines it is sent from the onset day until the episode
    ends arrive late, by a delay that grows over ``ramp_days`` from the onset to ``extra_days`` (capacity
    trouble builds up before it peaks). Lines already in transit at the onset are unaffected. The late
    deliveries feed the simulation, so the stock-outs they cause are in the world's own stock.

    Attributes:
        n_suppliers: Suppliers disrupted, never the drifting one (see :data:`DRIFT_DAYS`).
        onset_window: First and last onset, as shares of the history (0: its first day).
        extra_days: Days of delay added at full strength.
        ramp_days: Days after the onset over which the delay grows linearly to ``extra_days``.
        duration_days: Days from the onset during which the lines ordered are delayed.
    """

    n_suppliers: int = 0
    onset_window: tuple[float, float] = (0.35, 0.7)
    extra_days: int = 18
    ramp_days: int = 35
    duration_days: int = 56

    def __post_init__(self) -> None:
        lo, hi = self.onset_window
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"DisruptionConfig.onset_window must satisfy 0 <= first <= last <= 1, got "
                             f"{self.onset_window}")
        for name in ("n_suppliers", "extra_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"DisruptionConfig.{name} must be at least 0, got {getattr(self, name)}")
        for name in ("ramp_days", "duration_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"DisruptionConfig.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class WorldConfig:
    """Size and shape of the simulated retailer.

    Attributes:
        seed: seed of every random draw; the same config gives identical output.
        n_regions: regions, each with one DC.
        stores_per_region: stores replenished by each region's DC.
        n_skus: items in the assortment.
        n_suppliers: suppliers the DCs and the ecommerce FC buy from.
        history_days: days of history, ending at ``end_date`` inclusive.
        end_date: last business day generated.
        ecommerce_share: share of total demand that arrives through the web shop and app.
        volume: multiplies every SKU's units per day (a hypermarket sells many times what a convenience
            store does; 1 is a mid-sized store).
        shocks: demand surges on the last days of history (none by default), see
            :mod:`include.sample_data.intraday`.
        disruptions: supplier disruptions injected into the deliveries (none by default); their ground
            truth is :attr:`World.disruptions`.
    """

    seed: int = 7
    n_regions: int = 2
    stores_per_region: int = 4
    n_skus: int = 60
    n_suppliers: int = 6
    history_days: int = 400
    end_date: dt.date = DEFAULT_END_DATE
    ecommerce_share: float = 0.2
    volume: float = 1.0
    shocks: ShockConfig = ShockConfig()
    disruptions: DisruptionConfig = DisruptionConfig()

    def __post_init__(self) -> None:
        for name in ("n_regions", "stores_per_region", "n_skus", "n_suppliers", "history_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.ecommerce_share < 1.0:
            raise ValueError(f"WorldConfig.ecommerce_share must be in [0, 1), got {self.ecommerce_share}")
        if not self.volume > 0.0:
            raise ValueError(f"WorldConfig.volume must be above 0, got {self.volume}")
        if self.disruptions.n_suppliers > self.n_suppliers - 1:
            raise ValueError(f"WorldConfig.disruptions.n_suppliers must leave the drifting supplier out: at most "
                             f"{self.n_suppliers - 1}, got {self.disruptions.n_suppliers}")
        # Accept a string or datetime from callers such as the CLI, but always store a date.
        object.__setattr__(self, "end_date", as_date(self.end_date))

    @property
    def start_date(self) -> dt.date:
        """First business day of the history."""
        return self.end_date - dt.timedelta(days=self.history_days - 1)


PRESETS: dict[str, WorldConfig] = {
    "tiny": WorldConfig(n_regions=2, stores_per_region=2, n_skus=12, n_suppliers=3, history_days=120),
    "small": WorldConfig(n_regions=3, stores_per_region=4, n_skus=150, n_suppliers=8, history_days=400),
    "large": WorldConfig(n_regions=6, stores_per_region=25, n_skus=2000, n_suppliers=25, history_days=730),
}


# department, category, median price, P(fast, medium, slow), store return rate, holiday sensitivity,
# yearly seasonality amplitude, day of year of the seasonal peak, product nouns
_CATEGORIES = [
    ("Grocery", "Pantry", 3.2, (0.45, 0.40, 0.15), 0.005, 0.4, 0.05, 340,
     ("Penne Pasta", "Basmati Rice", "Olive Oil", "Tomato Passata", "Oat Cereal", "Peanut Butter")),
    ("Grocery", "Snacks", 2.6, (0.45, 0.40, 0.15), 0.005, 0.6, 0.08, 200,
     ("Sea Salt Crisps", "Choc Chip Cookies", "Granola Bars", "Popcorn", "Trail Mix")),
    ("Grocery", "Beverages", 2.1, (0.50, 0.35, 0.15), 0.005, 0.5, 0.20, 195,
     ("Sparkling Water", "Orange Juice", "Cola", "Iced Tea", "Cold Brew Coffee")),
    ("Health & Beauty", "Personal Care", 5.5, (0.30, 0.45, 0.25), 0.02, 0.5, 0.05, 180,
     ("Shampoo", "Toothpaste", "Body Wash", "Deodorant", "Hand Cream")),
    ("Health & Beauty", "Cosmetics", 12.0, (0.10, 0.40, 0.50), 0.05, 1.0, 0.05, 350,
     ("Lipstick", "Mascara", "Foundation", "Nail Polish", "Eyeliner")),
    ("Home", "Kitchen", 18.0, (0.10, 0.35, 0.55), 0.05, 1.0, 0.10, 350,
     ("Chef Knife", "Frying Pan", "Storage Jars", "Mixing Bowls", "Cutting Board")),
    ("Home", "Bedding", 34.0, (0.05, 0.30, 0.65), 0.07, 0.9, 0.15, 20,
     ("Duvet Cover", "Pillow Pair", "Fitted Sheet", "Throw Blanket", "Mattress Topper")),
    ("Apparel", "Womenswear", 32.0, (0.10, 0.40, 0.50), 0.11, 1.0, 0.20, 100,
     ("Linen Shirt", "Denim Jacket", "Knit Sweater", "Midi Skirt", "Rain Coat")),
    ("Apparel", "Menswear", 29.0, (0.10, 0.40, 0.50), 0.09, 1.0, 0.20, 100,
     ("Oxford Shirt", "Chino Trousers", "Crew Sweater", "Polo Shirt", "Parka")),
    ("Apparel", "Footwear", 55.0, (0.05, 0.35, 0.60), 0.10, 0.9, 0.15, 110,
     ("Running Shoe", "Leather Boot", "Canvas Sneaker", "Sandal", "Slipper")),
    ("Electronics", "Audio", 65.0, (0.05, 0.30, 0.65), 0.06, 1.4, 0.10, 350,
     ("Wireless Earbuds", "Bluetooth Speaker", "Headphones", "Soundbar")),
    ("Electronics", "Accessories", 14.0, (0.20, 0.45, 0.35), 0.05, 1.3, 0.05, 350,
     ("USB-C Cable", "Phone Case", "Power Bank", "Wall Charger", "Screen Protector")),
    ("Toys & Games", "Toys", 22.0, (0.10, 0.35, 0.55), 0.04, 1.6, 0.15, 355,
     ("Building Set", "Plush Bear", "Toy Car", "Puzzle", "Craft Kit")),
    ("Toys & Games", "Board Games", 28.0, (0.05, 0.35, 0.60), 0.03, 1.5, 0.15, 355,
     ("Strategy Game", "Card Game", "Family Quiz", "Party Game")),
    ("Garden", "Garden Care", 19.0, (0.10, 0.35, 0.55), 0.03, 0.3, 0.45, 135,
     ("Seed Mix", "Pruning Shears", "Plant Feed", "Garden Hose", "Planter")),
    ("Garden", "Outdoor Living", 45.0, (0.05, 0.30, 0.65), 0.05, 0.4, 0.50, 165,
     ("Folding Chair", "Parasol", "Lantern", "Charcoal Grill", "Cool Box")),
]
_ATTRIBUTES = ("Classic", "Premium", "Everyday", "Eco", "Family Size", "Compact", "Deluxe", "Essentials")
_VELOCITY = np.array(["fast", "medium", "slow"])
_REGION_NAMES = ["North", "South", "East", "West", "Central", "Coastal", "Highlands", "Valley"]
_TOWNS = ["Ashford", "Brookfield", "Carlton", "Dunmore", "Eastwick", "Fairview", "Glenwood", "Hillcrest",
          "Kingsbridge", "Lakeside", "Millbrook", "Newport", "Oakridge", "Parkside", "Queensway", "Riverside",
          "Stonegate", "Thornbury", "Upton", "Westfield", "Whitby", "Yardley"]
_SUPPLIER_STEMS = ["Northwind", "Bluepeak", "Harbor", "Cedar", "Summit", "Meridian", "Evergreen", "Ironbridge",
                   "Silverline", "Redwood", "Crescent", "Oakhaven", "Brightwater", "Granite", "Sunfield"]
_SUPPLIER_KINDS = ["Foods", "Trading", "Brands", "Manufacturing", "Goods", "Distribution", "Imports"]

# Weekday profiles, Monday first: stores peak at the weekend, the web shop on Sunday evening and Monday.
_STORE_WEEKDAY = np.array([0.85, 0.82, 0.88, 0.95, 1.12, 1.38, 1.00])
_ECOM_WEEKDAY = np.array([1.12, 1.04, 0.98, 0.95, 0.90, 0.88, 1.13])
#: Orders placed from this hour on miss the day's dispatch and stay allocated at the FC overnight.
ECOM_CUTOFF_HOUR = 20

_STORE_REASONS = (["changed_mind", "defective", "damaged", "not_as_described", "wrong_item"],
                  [0.45, 0.25, 0.14, 0.11, 0.05])
_WEB_REASONS = (["changed_mind", "not_as_described", "defective", "damaged", "wrong_item", "late_delivery"],
                [0.36, 0.20, 0.13, 0.12, 0.10, 0.09])


@dataclass
class _Simulation:
    """Dense day x location x SKU results of the simulation, indexed by history day."""

    days: np.ndarray  # datetime64[D], one per history day
    calendar: np.ndarray  # datetime64[D], one per simulated day (warm-up, then history)
    hist_first: int  # simulated day of the first history day
    supplier_ids: np.ndarray  # object
    location_ids: np.ndarray  # object, in simulation row order
    sell_rows: np.ndarray  # rows of stores and the FC, which face customers
    store_rows: np.ndarray
    fc_row: int
    skus: np.ndarray  # object
    unit_price: np.ndarray  # float, per SKU
    promo_ids: np.ndarray  # object, per promotion index
    promo_discount: np.ndarray  # float, per promotion index, with a trailing 0 for "no promotion"
    demand: np.ndarray  # int32 [days, locations, skus]
    sales: np.ndarray  # int32 [days, locations, skus]
    on_hand: np.ndarray  # int32 [days, locations, skus], end of day, before the FC's overnight allocation
    in_transit: np.ndarray  # int32 [days, locations, skus]
    promo: np.ndarray  # int32 [days, locations, skus], promotion index or -1
    po_lines: dict[str, np.ndarray]  # every purchase order line with its receipt and cancellation schedule
    seed: int
    shocks: pd.DataFrame  # demand shocks, by simulated day (see include.sample_data.intraday)
    shock_extra: dict[int, np.ndarray]  # history day -> [locations, skus] units the day's shocks added


@dataclass
class World:
    """The simulated retailer, with every extract for every history day as a DataFrame.

    Master data, purchase orders, receipts and returns are built eagerly. The per-day extracts that grow
    with locations x SKUs x days (``pos_sales``, ``ecommerce_orders``, ``inventory_snapshot`` and
    ``true_demand``) are assembled on first access from the dense simulation arrays, so that writing the
    ``large`` preset day by day never has to hold them in long format.

    Date columns are ``datetime64`` at midnight, timestamp columns ``datetime64`` to the second, integer
    columns ``int64``; optional text columns hold ``NaN`` when empty.
    """

    config: WorldConfig
    items: pd.DataFrame
    locations: pd.DataFrame
    suppliers: pd.DataFrame
    promotions: pd.DataFrame
    purchase_orders: pd.DataFrame
    receipts: pd.DataFrame
    returns: pd.DataFrame
    _sim: _Simulation = field(repr=False)
    #: Ground truth of the injected supplier disruptions, for evaluation only (no extract carries it):
    #: ``supplier_id, onset_date, end_date`` (lines ordered from onset until before end are delayed),
    #: ``extra_days, ramp_days, lines_delayed``. Empty unless ``config.disruptions`` asks for some.
    disruptions: pd.DataFrame = field(default_factory=lambda: _disruption_truth({}, None, None), repr=False)

    @cached_property
    def shocks(self) -> pd.DataFrame:
        """Ground truth of the demand shocks, for evaluation only (no extract carries it).

        Columns: ``shock_id, date, sku, scope`` (online, region or store), ``location_ids``
        (``;``-separated), ``onset_hour, ratio, extra_units`` (the units the surge added that day).
        """
        sim = self._sim
        frame = sim.shocks
        day = frame["day"].to_numpy(np.int64) - sim.hist_first
        extra = [int(sim.shock_extra[d][list(rows), k].sum()) for d, rows, k in
                 zip(day, frame["rows"], frame["sku"], strict=True)]
        return pd.DataFrame({
            "shock_id": frame["shock_id"].to_numpy(object),
            "date": sim.days[day].astype("datetime64[s]"),
            "sku": sim.skus[frame["sku"].to_numpy(np.int64)],
            "scope": frame["scope"].to_numpy(object),
            "location_ids": [";".join(sim.location_ids[list(rows)]) for rows in frame["rows"]],
            "onset_hour": frame["onset_hour"].to_numpy(np.int64),
            "ratio": frame["ratio"].to_numpy(float),
            "extra_units": np.asarray(extra, np.int64),
        })

    @cached_property
    def pos_sales(self) -> pd.DataFrame:
        """Store item movement, one row per store x SKU x day with units sold."""
        return _concat(COLUMNS["pos_sales"], (_pos_for_day(self._sim, d) for d in range(len(self._sim.days))))

    @cached_property
    def ecommerce_orders(self) -> pd.DataFrame:
        """Ecommerce order lines of every day, including lines cancelled for lack of stock."""
        return _concat(COLUMNS["ecommerce_orders"],
                       (_ecom_for_day(self._sim, d) for d in range(len(self._sim.days))))

    @cached_property
    def inventory_snapshot(self) -> pd.DataFrame:
        """End-of-day stock per location x SKU x day."""
        return _concat(COLUMNS["inventory_snapshot"],
                       (_inventory_for_day(self._sim, d) for d in range(len(self._sim.days))))

    @cached_property
    def true_demand(self) -> pd.DataFrame:
        """Uncensored demand and the sales it became, per customer-facing location x SKU x day.

        Columns: ``location_id, sku, date, demand, sales``; zero-demand days are included so intermittent
        series are complete. For the FC, ``sales`` counts the units of order lines that were not cancelled.
        """
        sim = self._sim
        n_days, n_rows, n_skus = len(sim.days), len(sim.sell_rows), len(sim.skus)
        day = np.repeat(np.arange(n_days), n_rows * n_skus)
        row = np.tile(np.repeat(sim.sell_rows, n_skus), n_days)
        sku = np.tile(np.arange(n_skus), n_days * n_rows)
        return pd.DataFrame({
            "location_id": sim.location_ids[row],
            "sku": sim.skus[sku],
            "date": sim.days[day],
            "demand": sim.demand[day, row, sku].astype(np.int64),
            "sales": sim.sales[day, row, sku].astype(np.int64),
        })


def landing_days(world: World) -> list[dt.date]:
    """Business days the world has extracts for, oldest first."""
    return [d.item() for d in world._sim.days]


def generate_world(config: WorldConfig) -> World:
    """Simulate the retailer described by ``config``.

    Args:
        config: sizes, seed and history window.

    Returns:
        The world with its master data, extracts and uncensored demand.
    """
    rng = np.random.default_rng(config.seed)
    n_sim = WARMUP_DAYS + config.history_days
    sim_start = np.datetime64(config.start_date, "D") - WARMUP_DAYS
    sim_days = sim_start + np.arange(n_sim)

    locations, loc = _make_locations(config, rng)
    suppliers, sup = _make_suppliers(config, rng)
    # One supplier's lead times deteriorate over the last weeks of history (capacity trouble), so
    # the supplier lead-time models have real drift to find.
    sup["drift_supplier"] = 0
    sup["drift_from_day"] = n_sim - min(DRIFT_DAYS, config.history_days // 2)
    if config.disruptions.n_suppliers:
        sup.update(_plan_disruptions(config, sup, n_sim))
    items, sku = _make_items(config, rng, loc, sup)
    promotions, promo = _make_promotions(config, rng, sku, loc, sim_start, n_sim)
    shocks = plan_shocks(config.shocks, seed=config.seed, n_days=n_sim, first_day=WARMUP_DAYS,
                         usual=_usual_rates(config, loc, sku), store_rows=loc["store_rows"],
                         store_region=loc["store_region"], fc_row=loc["fc_row"])
    sim, po_lines, returns_raw = _simulate(config, rng, loc, sup, sku, promo, sim_days, shocks)

    hist_first = WARMUP_DAYS
    simulation = _Simulation(
        days=sim_days[hist_first:], calendar=sim_days, hist_first=hist_first, supplier_ids=sup["ids"],
        location_ids=loc["ids"], sell_rows=loc["sell_rows"],
        store_rows=loc["store_rows"], fc_row=loc["fc_row"], skus=sku["ids"], unit_price=sku["price"],
        promo_ids=promo["ids"], promo_discount=np.append(promo["discount"], 0.0),
        demand=sim["demand"], sales=sim["sales"], on_hand=sim["on_hand"], in_transit=sim["in_transit"],
        promo=sim["promo"], po_lines=po_lines, seed=config.seed, shocks=shocks, shock_extra=sim["shock_extra"],
    )
    purchase_orders = _purchase_orders_as_of(simulation, len(simulation.days) - 1, keep_closed_since=0)
    receipts = _make_receipts(simulation)
    returns = _make_returns(config, rng, returns_raw, loc, sku, sim_days, hist_first)
    return World(config=config, items=items, locations=locations, suppliers=suppliers, promotions=promotions,
                 purchase_orders=purchase_orders, receipts=receipts, returns=returns, _sim=simulation,
                 disruptions=_disruption_truth(sup, po_lines, sim_days))


def _plan_disruptions(config: WorldConfig, sup: dict, n_sim: int) -> dict[str, np.ndarray]:
    """Per supplier: onset and end (simulated days, :data:`_NEVER` when undisrupted), full delay and ramp.

    Drawn from a stream of their own, so the rest of the world's draws are the same with or without them.
    """
    cfg = config.disruptions
    rng = np.random.default_rng([config.seed, 31_337])
    n = len(sup["ids"])
    hist_first = n_sim - config.history_days
    candidates = np.setdiff1d(np.arange(n), [sup["drift_supplier"]])
    chosen = np.sort(rng.choice(candidates, size=cfg.n_suppliers, replace=False))
    lo, hi = (hist_first + int(round(share * (config.history_days - 1))) for share in cfg.onset_window)
    onset = np.full(n, _NEVER, dtype=np.int64)
    onset[chosen] = rng.integers(lo, hi + 1, size=len(chosen))
    end = np.where(onset < _NEVER, onset + cfg.duration_days, _NEVER)
    return {"disrupt_onset": onset, "disrupt_end": end, "disrupt_extra": np.full(n, float(cfg.extra_days)),
            "disrupt_ramp": np.full(n, float(cfg.ramp_days))}


def _disruption_delay(sup: dict, supplier: np.ndarray, t: int) -> np.ndarray:
    """Days the disruptions add to lines ordered on simulated day ``t`` from ``supplier`` (0 when none)."""
    if "disrupt_onset" not in sup:
        return np.zeros(len(supplier))
    since = t - sup["disrupt_onset"][supplier]
    active = (since >= 0) & (t < sup["disrupt_end"][supplier])
    strength = np.minimum(1.0, (since + 1) / sup["disrupt_ramp"][supplier])
    return np.where(active, np.ceil(sup["disrupt_extra"][supplier] * strength), 0.0)


def _disruption_truth(sup: dict, po_lines: dict | None, sim_days: np.ndarray | None) -> pd.DataFrame:
    """The injected disruptions as :attr:`World.disruptions` shows them."""
    columns = {"supplier_id": object, "onset_date": "datetime64[s]", "end_date": "datetime64[s]",
               "extra_days": np.int64, "ramp_days": np.int64, "lines_delayed": np.int64}
    if "disrupt_onset" not in sup:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    chosen = np.nonzero(sup["disrupt_onset"] < _NEVER)[0]
    onset, end = sup["disrupt_onset"][chosen], sup["disrupt_end"][chosen]
    same = po_lines["supplier"][None, :] == chosen[:, None]
    ordered = po_lines["order_day"][None, :]
    delayed = (same & (ordered >= onset[:, None]) & (ordered < end[:, None])).sum(axis=1)
    return pd.DataFrame({
        "supplier_id": sup["ids"][chosen].astype(object),
        "onset_date": sim_days[onset].astype("datetime64[s]"),
        "end_date": (sim_days[0] + end).astype("datetime64[s]"),
        "extra_days": sup["disrupt_extra"][chosen].astype(np.int64),
        "ramp_days": sup["disrupt_ramp"][chosen].astype(np.int64),
        "lines_delayed": delayed.astype(np.int64),
    }).astype(columns)


# --------------------------------------------------------------------------------------------- master data


def _make_locations(config: WorldConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    regions = [_REGION_NAMES[r] if r < len(_REGION_NAMES) else f"Region {r + 1}" for r in range(config.n_regions)]
    towns = rng.permutation(_TOWNS)
    rows, store_region, dc_rows, store_rows = [], [], [], []
    store_no = 0
    for r, region in enumerate(regions):
        dc_id = f"DC{r + 1:02d}"
        dc_rows.append(len(rows))
        rows.append((dc_id, f"{region} Distribution Centre", "dc", region, None, int(rng.integers(2, 5)),
                     round(float(rng.uniform(0.25, 0.6)), 2)))
        for _ in range(config.stores_per_region):
            store_no += 1
            town = towns[store_no % len(towns)]
            suffix = "" if store_no <= len(towns) else f" {store_no // len(towns) + 1}"
            store_rows.append(len(rows))
            store_region.append(r)
            rows.append((f"S{store_no:04d}", f"{town}{suffix} Store", "store", region, dc_id,
                         int(rng.choice([1, 1, 2])), round(float(rng.uniform(0.12, 0.45)), 2)))
    fc_row = len(rows)
    # The FC ships parcels straight to customers in every region, so nothing replenishes it but suppliers.
    rows.append(("FC01", "National Ecommerce Fulfilment Centre", "ecom_fc", regions[0], None, 2, 0.35))
    frame = pd.DataFrame(rows, columns=COLUMNS["locations"])
    frame["transfer_lead_time_days"] = frame["transfer_lead_time_days"].astype(np.int64)
    store_rows_arr = np.array(store_rows)
    info = {
        "ids": frame["location_id"].to_numpy(dtype=object),
        "n": len(frame),
        "dc_rows": np.array(dc_rows),
        "store_rows": store_rows_arr,
        "store_region": np.array(store_region),
        "fc_row": fc_row,
        "sell_rows": np.append(store_rows_arr, fc_row),
        "lead": frame["transfer_lead_time_days"].to_numpy()[store_rows_arr],
        # Bigger stores sell more of everything; the spread is what makes store-level series differ.
        "size": rng.lognormal(0.0, 0.3, size=len(store_rows)),
        "regions": regions,
    }
    return frame, info


def _make_suppliers(config: WorldConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    n = config.n_suppliers
    stems = rng.permutation(_SUPPLIER_STEMS)
    names = [f"{stems[i % len(stems)]} {_SUPPLIER_KINDS[(i * 3) % len(_SUPPLIER_KINDS)]}"
             + ("" if i < len(stems) else f" {i // len(stems) + 1}") for i in range(n)]
    lead = rng.choice([3, 5, 7, 10, 14, 21], size=n, p=[0.15, 0.25, 0.25, 0.15, 0.12, 0.08])
    # Most suppliers are late on a tenth of their lines; a few are chronically unreliable.
    p_late = np.clip(rng.beta(2.0, 14.0, size=n), 0.02, 0.5)
    p_late[rng.random(n) < 0.25] += 0.2
    regions = rng.choice(["Domestic", "Europe", "Asia"], size=n, p=[0.6, 0.25, 0.15])
    # Return-to-vendor terms, drawn apart so the rest of the world does not move with them: 60% of the
    # suppliers (which ones is drawn) credit a returned defective or damaged unit at 60-100% of its cost, the
    # others take none back.
    terms = np.random.default_rng([config.seed, 4_040_001])
    takes_back = np.zeros(n, bool)
    takes_back[terms.permutation(n)[: int(round(0.6 * n))]] = True
    credit = np.where(takes_back, np.round(terms.uniform(0.6, 1.0, n), 2), 0.0)
    frame = pd.DataFrame({
        "supplier_id": [f"SUP{i + 1:03d}" for i in range(n)],
        "name": names,
        "promised_lead_time_days": lead.astype(np.int64),
        "region": regions,
        "return_credit_rate": credit,
    })
    info = {"ids": frame["supplier_id"].to_numpy(dtype=object), "lead": lead.astype(np.int64),
            "p_late": p_late, "order_weekday": rng.integers(0, 5, size=n)}
    return frame, info


def _make_items(config: WorldConfig, rng: np.random.Generator, loc: dict, sup: dict) -> tuple[pd.DataFrame, dict]:
    n = config.n_skus
    cat = np.sort(rng.integers(0, len(_CATEGORIES), size=n))
    table = [_CATEGORIES[c] for c in cat]
    velocity = np.array([rng.choice(3, p=t[3]) for t in table])
    # Units per day for an average store: a long tail of slow movers, as in any real assortment.
    rate = np.select([velocity == 0, velocity == 1],
                     [rng.lognormal(np.log(3.0), 0.45, n), rng.lognormal(np.log(0.6), 0.45, n)],
                     rng.lognormal(np.log(0.08), 0.5, n)) * config.volume
    median = np.array([t[2] for t in table])
    price = np.maximum(np.floor(median * rng.lognormal(0.0, 0.35, n)) + 0.99, 0.99)
    margin = rng.uniform(0.25, 0.60, n)
    cost = np.maximum(np.round(price * (1.0 - margin), 2), 0.01)
    case_pack = np.select([velocity == 0, velocity == 1],
                          [rng.choice([12, 24, 48], n), rng.choice([6, 12, 24], n)], rng.choice([4, 6, 12], n))
    moq = case_pack * np.select([velocity == 0, velocity == 1],
                                [rng.choice([2, 4, 5], n), rng.choice([1, 2, 4], n)], rng.choice([1, 2], n))
    # Room for a couple of review cycles of an above-average store; promotions and holidays can overflow it.
    cover = 2 + 2 + np.select([velocity == 0, velocity == 1], [1.5, 2.0], 3.0)
    min_display = np.select([velocity == 0, velocity == 1], [4, 3], 2)
    shelf = np.maximum(np.ceil(rate * loc["size"].max() * cover * 1.6), min_display + 2).astype(np.int64)
    supplier = rng.integers(0, config.n_suppliers, size=n)
    attrs = rng.choice(_ATTRIBUTES, size=n)
    descriptions = [f"{a} {t[8][rng.integers(len(t[8]))]}" for a, t in zip(attrs, table, strict=True)]
    ids = np.array([f"SKU{i + 1:05d}" for i in range(n)], dtype=object)
    frame = pd.DataFrame({
        "sku": ids,
        "description": descriptions,
        "category": [t[1] for t in table],
        "department": [t[0] for t in table],
        "unit_price": np.round(price, 2),
        "unit_cost": cost,
        "case_pack": case_pack.astype(np.int64),
        "moq_units": moq.astype(np.int64),
        "shelf_capacity": shelf,
        "supplier_id": sup["ids"][supplier],
        "velocity_class": _VELOCITY[velocity],
    })
    info = {
        "ids": ids, "n": n, "velocity": velocity, "rate": rate, "price": np.round(price, 2), "cost": cost,
        "case_pack": case_pack, "moq": moq, "shelf": shelf, "supplier": supplier, "min_display": min_display,
        "safety_days": cover - 4,
        "return_rate": np.array([t[4] for t in table]),
        "holiday_sens": np.array([t[5] for t in table]),
        "season_amp": np.array([t[6] for t in table]),
        "season_peak": np.array([t[7] for t in table]),
        # Negative binomial dispersion: slow movers are intermittent, with many zero days and small bursts.
        "shape": np.select([velocity == 0, velocity == 1], [6.0, 2.5], 0.6) * rng.uniform(0.8, 1.2, n),
        "elasticity": rng.uniform(1.3, 3.0, n),
        "trend": rng.normal(0.03, 0.12, n),
    }
    return frame, info


def _make_promotions(config: WorldConfig, rng: np.random.Generator, sku: dict, loc: dict,
                     sim_start: np.datetime64, n_sim: int) -> tuple[pd.DataFrame, dict]:
    horizon = n_sim + PROMO_PLANNING_DAYS
    per_year = np.select([sku["velocity"] == 0, sku["velocity"] == 1], [6.0, 4.0], 1.5)
    rows = []
    for k in range(sku["n"]):
        starts = np.sort(rng.integers(0, horizon - 7, size=rng.poisson(per_year[k] * horizon / 365)))
        last_end = -10
        for s in starts:
            # One promotion at a time per SKU, with a gap, so every store-day has at most one price.
            if s <= last_end + 7:
                continue
            length = int(rng.choice([7, 10, 14]))
            end = min(int(s) + length - 1, horizon - 1)
            local = rng.random() < 0.15
            row = int(rng.choice(loc["store_rows"])) if local else -1
            rows.append((int(s), end, k, row, float(rng.choice([0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]))))
            last_end = end
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    order = np.lexsort((arr[:, 2], arr[:, 0]))
    arr = arr[order]
    start, end, k, row = (arr[:, i].astype(np.int64) for i in range(4))
    ids = np.array([f"PR{i + 1:06d}" for i in range(len(arr))], dtype=object)
    frame = pd.DataFrame({
        "promo_id": ids,
        "sku": sku["ids"][k],
        "location_id": pd.Series(np.where(row >= 0, loc["ids"][np.maximum(row, 0)], None), dtype=object),
        "start_date": pd.Series(sim_start + start).astype("datetime64[s]"),
        "end_date": pd.Series(sim_start + end).astype("datetime64[s]"),
        "discount_pct": arr[:, 4],
    })
    return frame, {"ids": ids, "start": start, "end": end, "sku": k, "row": row, "discount": arr[:, 4]}


# --------------------------------------------------------------------------------------------- calendar


def _holiday_multipliers(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Demand multipliers per day for stores and for the web shop."""
    dates = [d.item() for d in days]
    store = np.ones(len(dates))
    ecom = np.ones(len(dates))
    index = {d: i for i, d in enumerate(dates)}

    def bump(day: dt.date, s: float, e: float) -> None:
        if day in index:
            store[index[day]] *= s
            ecom[index[day]] *= e

    for year in sorted({d.year for d in dates}):
        nov1 = dt.date(year, 11, 1)
        thanksgiving = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)
        bump(thanksgiving, 0.6, 1.3)
        bump(thanksgiving + dt.timedelta(days=1), 2.4, 2.2)  # Black Friday
        bump(thanksgiving + dt.timedelta(days=2), 1.4, 1.4)
        bump(thanksgiving + dt.timedelta(days=3), 1.2, 1.5)
        bump(thanksgiving + dt.timedelta(days=4), 1.0, 2.3)  # Cyber Monday
        for offset in range(10, 24):  # the run-up to Christmas builds week by week
            bump(dt.date(year, 12, offset), 1.1 + 0.035 * (offset - 10), 1.15 + 0.03 * (offset - 10))
        bump(dt.date(year, 12, 24), 1.3, 0.8)
        # Open on Christmas Day with a skeleton range, so the POS extract is never empty.
        bump(dt.date(year, 12, 25), 0.3, 0.6)
        bump(dt.date(year, 12, 26), 1.5, 1.3)
        for offset in range(27, 32):
            bump(dt.date(year, 12, offset), 1.1, 1.1)
        bump(dt.date(year, 1, 1), 0.5, 0.9)
        easter = calendar_easter(year)
        for offset in range(-14, -2):  # spring peak in the fortnight before Easter
            bump(easter + dt.timedelta(days=offset), 1.1, 1.05)
        for offset in range(-2, 2):
            bump(easter + dt.timedelta(days=offset), 1.3, 1.1)
    return store, ecom


# --------------------------------------------------------------------------------------------- simulation


def _usual_rates(config: WorldConfig, loc: dict, sku: dict) -> np.ndarray:
    """``[locations, skus]`` expected units per day: stores scale with size, the FC takes the web share."""
    base = np.zeros((loc["n"], sku["n"]))
    base[loc["store_rows"]] = loc["size"][:, None] * sku["rate"][None, :]
    share = config.ecommerce_share
    base[loc["fc_row"]] = base[loc["store_rows"]].sum(axis=0) * share / (1.0 - share)
    return base


def _simulate(config: WorldConfig, rng: np.random.Generator, loc: dict, sup: dict, sku: dict, promo: dict,
              sim_days: np.ndarray, shocks: pd.DataFrame) -> tuple[dict, pd.DataFrame, dict]:
    n_sim, n_hist = len(sim_days), config.history_days
    hist_first = n_sim - n_hist
    n_loc, n_sku = loc["n"], sku["n"]
    stores, dcs, fc = loc["store_rows"], loc["dc_rows"], loc["fc_row"]
    sells = loc["sell_rows"]
    n_regions = len(dcs)
    buy_rows = np.append(dcs, fc)  # locations that buy from suppliers

    base = _usual_rates(config, loc, sku)
    # Planners' run-rate estimates are decent but not perfect, which is one source of stock-outs.
    est = base * rng.lognormal(0.0, 0.2, size=base.shape)
    region_onehot = np.zeros((n_regions, len(stores)))
    region_onehot[loc["store_region"], np.arange(len(stores))] = 1.0
    est_buy = np.vstack([region_onehot @ est[stores], est[fc][None, :]])

    doy = ((sim_days - sim_days.astype("datetime64[Y]")).astype(np.int64) + 1).astype(float)
    years = np.arange(n_sim) / 365.0
    season = 1.0 + sku["season_amp"][None, :] * np.cos(2 * np.pi * (doy[:, None] - sku["season_peak"][None, :])
                                                         / 365.25)
    level = season * np.exp(sku["trend"][None, :] * (years[:, None] - years[hist_first]))
    hol_store, hol_ecom = _holiday_multipliers(sim_days)
    weekday = ((sim_days.astype(np.int64) + 3) % 7).astype(int)  # 1970-01-01 was a Thursday
    weekday_factor = np.ones((7, n_loc))
    weekday_factor[:, stores] = _STORE_WEEKDAY[:, None]
    weekday_factor[:, fc] = _ECOM_WEEKDAY

    shape = np.broadcast_to(sku["shape"][None, :], (n_loc, n_sku))
    elasticity = sku["elasticity"][None, :]
    return_rate = np.zeros((n_loc, n_sku))
    return_rate[stores] = sku["return_rate"][None, :]
    # Online shoppers return more, mostly because what arrives is not what they pictured.
    return_rate[fc] = np.minimum(sku["return_rate"] * 2.0 + 0.01, 0.35)

    # Stores review every two or three days on a staggered schedule; DCs and the FC review each
    # supplier's range weekly on that supplier's ordering day.
    review_period = np.where(loc["size"] > 1.0, 2, 3)
    review_offset = np.arange(len(stores)) % review_period
    store_cover = review_period[:, None] + loc["lead"][:, None] + sku["safety_days"][None, :]
    sku_lead = sup["lead"][sku["supplier"]]
    buy_cover = 7 + sku_lead + 3 + 0.5 * sku_lead
    sku_order_weekday = sup["order_weekday"][sku["supplier"]]
    lead_max = int(loc["lead"].max())
    pipeline = np.zeros((lead_max + 1, len(stores), n_sku), dtype=np.int32)

    on_hand = np.zeros((n_loc, n_sku), dtype=np.int32)
    in_transit = np.zeros((n_loc, n_sku), dtype=np.int32)
    on_hand[stores] = np.clip(np.ceil(est[stores] * store_cover), sku["min_display"], sku["shelf"])
    on_hand[buy_rows] = np.ceil(est_buy * (buy_cover - 3.5)).astype(np.int32)

    out = {name: np.zeros((n_hist, n_loc, n_sku), dtype=np.int32)
           for name in ("demand", "sales", "on_hand", "in_transit", "promo")}
    out["shock_extra"] = {}
    shock_days = set(shocks["day"].tolist())
    is_store = np.isin(np.arange(n_loc), stores)
    receipts_due: dict[int, list] = {}
    cancels_due: dict[int, list] = {}
    po_parts: list[dict] = []
    returns_parts: list[tuple] = []
    next_po = 1

    promo_today = np.full((n_loc, n_sku), -1, dtype=np.int32)
    promo_discount = np.append(promo["discount"], 0.0)
    starts_on = pd.Series(np.arange(len(promo["ids"]))).groupby(promo["start"]).agg(list).to_dict()
    ends_after = pd.Series(np.arange(len(promo["ids"]))).groupby(promo["end"] + 1).agg(list).to_dict()

    def set_promos(indices: list, value_from_index: bool) -> None:
        idx = np.asarray(indices)
        rows = promo["row"][idx]
        for p, r in zip(idx, rows, strict=True):
            value = p if value_from_index else -1
            if r < 0:
                promo_today[sells, promo["sku"][p]] = value
            else:
                promo_today[r, promo["sku"][p]] = value

    for t in range(n_sim):
        if t in ends_after:
            set_promos(ends_after[t], value_from_index=False)
        if t in starts_on:
            set_promos(starts_on[t], value_from_index=True)

        # Morning: store transfers and supplier deliveries arrive before trading starts.
        arriving = pipeline[t % (lead_max + 1)]
        on_hand[stores] += arriving
        in_transit[stores] -= arriving
        arriving[:] = 0
        for events, sign_on_hand in ((receipts_due.pop(t, None), 1), (cancels_due.pop(t, None), 0)):
            if events:
                rows_e = np.concatenate([e[0] for e in events])
                skus_e = np.concatenate([e[1] for e in events])
                qty_e = np.concatenate([e[2] for e in events])
                if sign_on_hand:
                    np.add.at(on_hand, (rows_e, skus_e), qty_e)
                np.add.at(in_transit, (rows_e, skus_e), -qty_e)

        # Trading: demand is censored by what is on the shelf.
        discount = promo_discount[promo_today]
        lift = (1.0 - discount) ** (-elasticity)
        holiday = np.ones(n_loc)
        holiday[stores] = hol_store[t]
        holiday[fc] = hol_ecom[t]
        lam = (base * weekday_factor[weekday[t]][:, None] * level[t][None, :] * lift
               * holiday[:, None] ** sku["holiday_sens"][None, :])
        demand = rng.poisson(lam * rng.gamma(shape, 1.0 / shape)).astype(np.int32)
        if t in shock_days:
            extra = shock_units(shocks, t, lam, is_store, int(weekday[t]), config.seed)
            demand += extra
            out["shock_extra"][t - hist_first] = extra
        sales = np.minimum(demand, on_hand)
        on_hand -= sales

        sold = np.nonzero(sales)
        returned = rng.binomial(sales[sold], return_rate[sold])
        keep = returned > 0
        if keep.any():
            r_rows, r_skus = sold[0][keep], sold[1][keep]
            paid = sku["price"][r_skus] * (1.0 - discount[r_rows, r_skus])
            returns_parts.append((np.full(keep.sum(), t), r_rows, r_skus, returned[keep], paid))

        # Evening: stores due for review order up to their target; the DC ships what it has.
        due = np.nonzero((t + review_offset) % review_period == 0)[0]
        if due.size:
            rows = stores[due]
            planned_lift = 1.0 + 0.7 * (lift[rows] - 1.0)  # planners see promotions coming, not fully
            target = np.clip(np.ceil(est[rows] * level[t][None, :] * planned_lift * store_cover[due]),
                             sku["min_display"], sku["shelf"])
            request = np.maximum(target - on_hand[rows] - in_transit[rows], 0)
            onehot = region_onehot[:, due]
            requested = onehot @ request
            available = on_hand[dcs].astype(float)
            fill = np.where(requested > available, available / np.maximum(requested, 1.0), 1.0)
            ship = np.floor(request * fill[loc["store_region"][due]]).astype(np.int32)
            on_hand[dcs] -= np.rint(onehot @ ship).astype(np.int32)
            pipeline[(t + loc["lead"][due]) % (lead_max + 1), due] += ship
            in_transit[rows] += ship

        # DCs and the FC order each supplier's range on its weekly ordering day.
        ordering = np.nonzero(sku_order_weekday == weekday[t])[0]
        if ordering.size:
            target = np.ceil(est_buy[:, ordering] * level[t][ordering] * buy_cover[ordering])
            position = on_hand[buy_rows][:, ordering] + in_transit[buy_rows][:, ordering]
            shortfall = target - position
            pack = sku["case_pack"][ordering]
            qty = np.maximum(np.ceil(shortfall / pack) * pack, sku["moq"][ordering])
            qty = np.where(shortfall > 0, qty, 0).astype(np.int64)
            if qty.any():
                next_po = _place_purchase_orders(rng, t, qty, ordering, buy_rows, sku, sup, next_po, po_parts,
                                                 receipts_due, cancels_due, in_transit)

        if t >= hist_first:
            d = t - hist_first
            out["demand"][d] = demand
            out["sales"][d] = sales
            out["on_hand"][d] = on_hand
            out["in_transit"][d] = in_transit
            out["promo"][d] = promo_today

    keys = ("po_num", "po_line", "supplier", "sku", "dest", "order_day", "promised_day", "quantity_ordered",
            "unit_cost", "first_day", "first_qty", "second_day", "second_qty", "cancel_day", "disruption_days")
    po_lines = {key: np.concatenate([p[key] for p in po_parts]).astype(float if key == "unit_cost" else np.int64)
                if po_parts else np.zeros(0, dtype=float if key == "unit_cost" else np.int64) for key in keys}
    po_lines["po_id"] = np.array([f"PO{n:07d}" for n in po_lines["po_num"]], dtype=object)
    returns_raw = {key: np.concatenate([p[i] for p in returns_parts]) if returns_parts else np.array([])
                   for i, key in enumerate(("day", "row", "sku", "quantity", "paid"))}
    return out, po_lines, returns_raw


def _place_purchase_orders(rng: np.random.Generator, t: int, qty: np.ndarray, ordering: np.ndarray,
                           buy_rows: np.ndarray, sku: dict, sup: dict, next_po: int, po_parts: list,
                           receipts_due: dict, cancels_due: dict, in_transit: np.ndarray) -> int:
    """Turn one day's order quantities into PO lines and schedule their deliveries or cancellation."""
    b, j = np.nonzero(qty)
    k = ordering[j]
    dest = buy_rows[b]
    q = qty[b, j]
    supplier = sku["supplier"][k]
    # One PO per supplier and destination per day, its lines in SKU order.
    key = b * len(sup["ids"]) + supplier
    order = np.lexsort((k, key))
    k, dest, q, supplier, key = k[order], dest[order], q[order], supplier[order], key[order]
    n = len(k)
    new_group = np.r_[True, key[1:] != key[:-1]]
    group = np.cumsum(new_group) - 1
    group_start = np.nonzero(new_group)[0]
    line_no = np.arange(n) - group_start[group] + 1
    po_num = next_po + group

    promised = sup["lead"][supplier]
    late = rng.random(n) < sup["p_late"][supplier]
    delay = np.where(late, np.ceil(rng.gamma(2.0, 0.2 * promised + 0.8)),
                     -((rng.random(n) < 0.25) * rng.integers(0, 3, n)))
    drifting = (supplier == sup.get("drift_supplier", -1)) & (t >= sup.get("drift_from_day", _NEVER))
    delay = delay + np.where(drifting, np.ceil(0.6 * promised) + rng.integers(0, 3, n), 0)
    # Recorded per line, so an evaluation can tell when the line would have arrived without the disruption.
    disruption_days = _disruption_delay(sup, supplier, t)
    delay = delay + disruption_days
    arrival = t + np.maximum(promised + delay, 1).astype(np.int64)
    split = rng.random(n) < 0.08  # some lines arrive in two drops
    first_qty = np.where(split, np.maximum(np.floor(q * rng.uniform(0.5, 0.9, n)), 1), q).astype(np.int64)
    second_qty = q - first_qty
    second_day = np.where(second_qty > 0, arrival + rng.integers(2, 11, n), _NEVER)
    cancelled = rng.random(n) < 0.02
    cancel_day = np.where(cancelled, t + rng.integers(1, promised + 1), _NEVER)
    first_day = np.where(cancelled, _NEVER, arrival)
    second_day = np.where(cancelled, _NEVER, second_day)

    np.add.at(in_transit, (dest, k), q.astype(np.int32))
    for days, amounts, book in ((first_day, first_qty, receipts_due), (second_day, second_qty, receipts_due),
                                (cancel_day, q, cancels_due)):
        for day in np.unique(days[days < _NEVER]):
            sel = days == day
            book.setdefault(int(day), []).append((dest[sel], k[sel], amounts[sel].astype(np.int32)))

    po_parts.append({
        "po_num": po_num, "po_line": line_no, "supplier": supplier, "sku": k, "dest": dest,
        "order_day": np.full(n, t), "promised_day": t + promised, "quantity_ordered": q,
        "unit_cost": np.round(sku["cost"][k] * rng.normal(1.0, 0.015, n), 2),
        "first_day": first_day, "first_qty": first_qty, "second_day": second_day, "second_qty": second_qty,
        "cancel_day": cancel_day, "disruption_days": disruption_days,
    })
    return int(po_num[-1]) + 1


# --------------------------------------------------------------------------------------------- documents


def _purchase_orders_as_of(sim: _Simulation, d: int, keep_closed_since: int | None = None) -> pd.DataFrame:
    """PO lines as the supplier portal shows them at the end of history day ``d``.

    Args:
        sim: the simulation, with its PO lines and their receipt and cancellation schedules.
        d: history day index.
        keep_closed_since: history day from which closed lines are still listed; ``None`` lists only lines
            closed on ``d`` itself (the daily extract).
    """
    lines, sim_days = sim.po_lines, sim.calendar
    t = sim.hist_first + d
    since = t if keep_closed_since is None else sim.hist_first + keep_closed_since
    received = (np.where(lines["first_day"] <= t, lines["first_qty"], 0)
                + np.where(lines["second_day"] <= t, lines["second_qty"], 0))
    ordered = lines["quantity_ordered"]
    cancel_day = lines["cancel_day"]
    cancelled = cancel_day <= t
    last_receipt = np.where(lines["second_qty"] > 0, lines["second_day"], lines["first_day"])
    close_day = np.where(cancel_day < _NEVER, cancel_day, last_receipt)
    keep = np.nonzero((lines["order_day"] <= t) & (close_day >= since))[0]
    status = np.select([cancelled[keep], received[keep] >= ordered[keep], received[keep] > 0],
                       ["cancelled", "received", "partial"], "open")
    return pd.DataFrame({
        "po_id": lines["po_id"][keep],
        "po_line": lines["po_line"][keep],
        "supplier_id": sim.supplier_ids[lines["supplier"][keep]],
        "sku": sim.skus[lines["sku"][keep]],
        "destination_location_id": sim.location_ids[lines["dest"][keep]],
        "order_date": sim_days[lines["order_day"][keep]].astype("datetime64[s]"),
        "promised_date": (sim_days[0] + lines["promised_day"][keep]).astype("datetime64[s]"),
        "quantity_ordered": ordered[keep],
        "quantity_received": received[keep],
        "unit_cost": lines["unit_cost"][keep],
        "status": status,
    })


def _make_receipts(sim: _Simulation) -> pd.DataFrame:
    lines, sim_days, hist_first = sim.po_lines, sim.calendar, sim.hist_first
    index, day, qty = [], [], []
    for which in ("first", "second"):
        keep = ((lines[f"{which}_day"] >= hist_first) & (lines[f"{which}_day"] < len(sim_days))
                & (lines[f"{which}_qty"] > 0))
        index.append(np.nonzero(keep)[0])
        day.append(lines[f"{which}_day"][keep])
        qty.append(lines[f"{which}_qty"][keep])
    index, day, qty = np.concatenate(index), np.concatenate(day), np.concatenate(qty)
    order = np.lexsort((lines["po_line"][index], lines["po_num"][index], day))
    index, day, qty = index[order], day[order], qty[order]
    return pd.DataFrame({
        "receipt_id": np.array([f"RC{i:08d}" for i in range(1, len(index) + 1)], dtype=object),
        "po_id": lines["po_id"][index],
        "po_line": lines["po_line"][index],
        "sku": sim.skus[lines["sku"][index]],
        "location_id": sim.location_ids[lines["dest"][index]],
        "received_date": sim_days[day].astype("datetime64[s]"),
        "quantity_received": qty,
    })


def _make_returns(config: WorldConfig, rng: np.random.Generator, raw: dict, loc: dict, sku: dict,
                  sim_days: np.ndarray, hist_first: int) -> pd.DataFrame:
    n = len(raw["day"])
    web = raw["row"] == loc["fc_row"]
    # Store returns come back within days; parcels take a delivery and a trip to the post office first.
    delay = np.where(web, 3 + np.minimum(rng.geometric(0.12, n), 42), np.minimum(rng.geometric(0.2, n), 30))
    day = raw["day"].astype(np.int64) + delay
    keep = (day >= hist_first) & (day < len(sim_days))
    reason = np.where(web, rng.choice(_WEB_REASONS[0], n, p=_WEB_REASONS[1]),
                      rng.choice(_STORE_REASONS[0], n, p=_STORE_REASONS[1]))
    u = rng.random(n)
    condition = np.select([reason == "defective", reason == "damaged", u < 0.12],
                          ["defective", np.where(u < 0.9, "damaged", "resellable"), "damaged"], "resellable")
    hour_seconds = np.where(web, rng.integers(8 * 3600, 18 * 3600, n), rng.integers(9 * 3600, 21 * 3600, n))
    quantity = raw["quantity"].astype(np.int64)
    frame = pd.DataFrame({
        "returned_at": (sim_days[np.minimum(day, len(sim_days) - 1)].astype("datetime64[s]")
                        + hour_seconds.astype("timedelta64[s]")),
        "channel": np.where(web, "web", "store"),
        "location_id": loc["ids"][raw["row"].astype(np.int64)],
        "sku": sku["ids"][raw["sku"].astype(np.int64)],
        "quantity": quantity,
        "reason": reason,
        "condition": condition,
        "refund_amount": np.round(raw["paid"] * quantity, 2),
    })[keep].sort_values(["returned_at", "location_id", "sku"], kind="stable").reset_index(drop=True)
    frame.insert(0, "return_id", "RT" + pd.Series(np.arange(1, len(frame) + 1)).astype(str).str.zfill(9))
    return frame


def _pos_for_day(sim: _Simulation, d: int) -> pd.DataFrame:
    sales = sim.sales[d][sim.store_rows]
    s, k = np.nonzero(sales)
    rows = sim.store_rows[s]
    units = sales[s, k].astype(np.int64)
    promo = sim.promo[d][rows, k]
    discount = sim.promo_discount[promo]
    regular = units * sim.unit_price[k]
    return pd.DataFrame({
        "store_id": sim.location_ids[rows],
        "sku": sim.skus[k],
        "business_date": pd.Series(np.full(len(k), sim.days[d])).astype("datetime64[s]"),
        "units_sold": units,
        "gross_sales": np.round(regular * (1.0 - discount), 2),
        "discount_amount": np.round(regular * discount, 2),
        "promo_id": pd.Series(np.where(promo >= 0, sim.promo_ids[np.maximum(promo, 0)], None), dtype=object),
    })


def _ecom_for_day(sim: _Simulation, d: int) -> pd.DataFrame:
    """Order lines of one day, built from the FC's demand and fulfilled units for that day.

    Each day draws from its own seeded stream, so a day's lines are the same whether it is built alone
    (for its landing file) or with all the others.
    """
    rng = np.random.default_rng([sim.seed, 20_251, d])
    # A shock's units arrive as orders of their own, after its onset; the usual orders are served first.
    surge = sim.shock_extra[d][sim.fc_row].astype(np.int64) if d in sim.shock_extra else 0
    demand = sim.demand[d, sim.fc_row].astype(np.int64) - surge
    served = sim.sales[d, sim.fc_row].astype(np.int64)
    filled = np.minimum(served, demand)
    cells = np.nonzero(demand)[0]
    units = demand[cells]
    unit_cell = np.repeat(np.arange(len(cells)), units)
    rank = np.arange(unit_cell.size) - np.repeat(np.cumsum(units) - units, units)
    # Mostly one unit per line, sometimes two or three; a line is either filled or cancelled whole.
    new_line = (rng.random(unit_cell.size) < 0.75) | (rank == 0) | (rank == filled[cells][unit_cell])
    line_unit = np.nonzero(new_line)[0]
    line_cell = unit_cell[line_unit]
    quantity = np.diff(np.append(line_unit, unit_cell.size))
    fulfilled = rank[line_unit] < filled[cells][line_cell]
    n_lines = len(line_unit)

    perm = rng.permutation(n_lines)
    line_cell, quantity, fulfilled = line_cell[perm], quantity[perm], fulfilled[perm]
    sizes = rng.choice([1, 2, 3], size=max(n_lines, 1), p=[0.6, 0.28, 0.12])
    order_of_line = np.searchsorted(np.cumsum(sizes), np.arange(n_lines), side="right")
    n_orders = int(order_of_line[-1]) + 1 if n_lines else 0
    order_start = np.searchsorted(order_of_line, np.arange(n_orders))
    line_no = np.arange(n_lines) - order_start[order_of_line] + 1

    hour = rng.choice(24, size=n_orders, p=ECOM_HOURS)
    seconds = np.sort(hour * 3600 + rng.integers(0, 3600, n_orders))
    channel = rng.choice(["web", "app"], size=n_orders, p=[0.55, 0.45])
    k = cells[line_cell]
    discount = sim.promo_discount[sim.promo[d][sim.fc_row, k]]
    status = np.where(~fulfilled, "cancelled",
                      np.where(seconds[order_of_line] >= ECOM_CUTOFF_HOUR * 3600, "placed", "shipped"))
    stamp = sim.days[d].item().strftime("%Y%m%d")
    frame = pd.DataFrame({
        "order_id": [f"EO{stamp}{i + 1:06d}" for i in order_of_line],
        "line_no": line_no.astype(np.int64),
        "ordered_at": (np.datetime64(sim.days[d], "s") + seconds[order_of_line].astype("timedelta64[s]")),
        "channel": channel[order_of_line],
        "sku": sim.skus[k],
        "quantity": quantity.astype(np.int64),
        "unit_price": np.round(sim.unit_price[k] * (1.0 - discount), 2),
        "fulfilment_location_id": sim.location_ids[sim.fc_row],
        "status": status,
    })
    if np.any(surge):
        onset = _fc_onsets(sim, d)
        extra = shock_lines(np.random.default_rng([sim.seed, 7_770_003, d]), surge, served - filled, onset,
                            first_order=n_orders + 1, cutoff_hour=ECOM_CUTOFF_HOUR)
        k = extra["sku_index"].to_numpy()
        extra = extra.assign(
            order_id=[f"EO{stamp}{i:06d}" for i in extra["order_no"]],
            ordered_at=np.datetime64(sim.days[d], "s") + extra["second"].to_numpy().astype("timedelta64[s]"),
            sku=sim.skus[k],
            unit_price=np.round(sim.unit_price[k] * (1.0 - sim.promo_discount[sim.promo[d][sim.fc_row, k]]), 2),
            fulfilment_location_id=sim.location_ids[sim.fc_row],
        )
        frame = pd.concat([frame, extra[frame.columns]], ignore_index=True)
        frame = frame.sort_values("ordered_at", kind="stable", ignore_index=True)
    # Orders are in time order and their lines are consecutive.
    return frame


def _fc_onsets(sim: _Simulation, d: int) -> np.ndarray:
    """Onset hour per SKU of the day's online shocks (24: none)."""
    onset = np.full(len(sim.skus), 24, dtype=np.int64)
    today = sim.shocks[(sim.shocks["day"] == d + sim.hist_first) & (sim.shocks["scope"] == "online")]
    for k, hour in zip(today["sku"], today["onset_hour"], strict=True):
        onset[k] = min(onset[k], hour)
    return onset


def _inventory_for_day(sim: _Simulation, d: int, ecom: pd.DataFrame | None = None) -> pd.DataFrame:
    quantities = _inventory_quantities(sim, d, ecom)
    n_loc, n_sku = sim.on_hand.shape[1:]
    return pd.DataFrame({
        "snapshot_date": np.full(n_loc * n_sku, sim.days[d]).astype("datetime64[s]"),
        "location_id": np.repeat(sim.location_ids, n_sku),
        "sku": np.tile(sim.skus, n_loc),
        **quantities,
    })


def _inventory_quantities(sim: _Simulation, d: int, ecom: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """On-hand, allocated and in-transit units of one day, flattened location-major."""
    on_hand = sim.on_hand[d].astype(np.int64)
    allocated = np.zeros_like(on_hand)
    # Evening web orders are picked tomorrow: still on the FC's shelves tonight, but promised away.
    ecom = _ecom_for_day(sim, d) if ecom is None else ecom
    placed = ecom["status"].to_numpy() == "placed"
    if placed.any():
        sku_index = pd.Index(sim.skus).get_indexer(ecom["sku"].to_numpy()[placed])
        allocated[sim.fc_row] = np.bincount(sku_index, weights=ecom["quantity"].to_numpy()[placed],
                                            minlength=len(sim.skus)).astype(np.int64)
        on_hand[sim.fc_row] += allocated[sim.fc_row]
    return {"on_hand": on_hand.ravel(), "allocated": allocated.ravel(),
            "in_transit": sim.in_transit[d].astype(np.int64).ravel()}


def _inventory_parquet(sim: _Simulation, d: int, ecom: pd.DataFrame, keys: tuple[pa.Array, pa.Array]) -> bytes:
    """The day's WMS snapshot as Parquet, dates as date32 and quantities as int64."""
    quantities = _inventory_quantities(sim, d, ecom)
    n = len(quantities["on_hand"])
    table = pa.table({
        "snapshot_date": pa.array(np.full(n, sim.days[d]), type=pa.date32()),
        "location_id": keys[0],
        "sku": keys[1],
        **{name: pa.array(values, type=pa.int64()) for name, values in quantities.items()},
    })
    return parquet_bytes(table)


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes of a Parquet file."""
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _concat(columns: list[str], frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


# --------------------------------------------------------------------------------------------- landing


def write_landing(world: World, root: str, days: Iterable[dt.date | str] | None = None) -> list[str]:
    """Write the landing extracts of the given days, as the source systems deliver them.

    Each day gets ``<root>/landing/<source>/ds=<day>/<file>`` for every source; a day written again
    replaces its files.

    Args:
        world: the generated world.
        root: data root, a local path or fsspec URL.
        days: business days to write; all of :func:`landing_days` when omitted.

    Returns:
        The paths written, in order.

    Raises:
        ValueError: if a day lies outside the world's history.
    """
    sim = world._sim
    first, last = sim.days[0].item(), sim.days[-1].item()
    wanted = landing_days(world) if days is None else sorted({as_date(d) for d in days})
    for day in wanted:
        if not first <= day <= last:
            raise ValueError(f"day {day} is outside the generated history {first}..{last}")
    root = str(root).rstrip("/")
    fs, _ = fsspec.core.url_to_fs(root)
    # The master snapshot is identical every day except for which promotions are already published;
    # receipts and returns are dated documents, cut by day from frames sorted by date.
    static = {name: _render(getattr(world, name), name) for name in ("items", "locations", "suppliers")}
    promotions = _DaySlicer(world.promotions, "promotions", world.promotions["start_date"])
    receipts = _DaySlicer(world.receipts, "receipts", world.receipts["received_date"])
    returns = _DaySlicer(world.returns, "returns", world.returns["returned_at"])
    n_sku = len(sim.skus)
    inventory_keys = (pa.array(np.repeat(sim.location_ids, n_sku), type=pa.string()),
                      pa.array(np.tile(sim.skus, len(sim.location_ids)), type=pa.string()))
    written: list[str] = []
    for day in wanted:
        d = int((np.datetime64(day, "D") - sim.days[0]).astype(np.int64))
        today = sim.days[d]
        ecom = _ecom_for_day(sim, d)
        payloads = dict(static)
        payloads["promotions"] = promotions.until(today + PROMO_PLANNING_DAYS)
        payloads["pos_sales"] = _render(_pos_for_day(sim, d), "pos_sales")
        payloads["ecommerce_orders"] = _render(ecom, "ecommerce_orders")
        payloads["inventory_snapshot"] = _inventory_parquet(sim, d, ecom, inventory_keys)
        payloads["purchase_orders"] = _render(_purchase_orders_as_of(sim, d), "purchase_orders")
        payloads["receipts"] = receipts.on(today)
        payloads["returns"] = returns.on(today)
        for name, payload in payloads.items():
            source, file_name, _ = _FILES[name]
            folder = partition_path("landing", source, day, root)
            fs.makedirs(folder, exist_ok=True)
            path = f"{folder}/{file_name}"
            with fs.open(path, "wb") as handle:
                handle.write(payload)
            written.append(path)
    return written


class _DaySlicer:
    """Cuts the rows of one day (or up to one day) out of a date-sorted extract and renders them.

    Args:
        frame: the extract, sorted by ``when``.
        name: dataset name, for its columns and format.
        when: date or timestamp of each row.
    """

    def __init__(self, frame: pd.DataFrame, name: str, when: pd.Series) -> None:
        self.days = when.to_numpy().astype("datetime64[D]")
        if len(self.days) and (np.diff(self.days.astype(np.int64)) < 0).any():
            raise ValueError(f"{name} must be sorted by date to be cut into days")
        self.frame, self.name = frame, name
        self._last: tuple[tuple[int, int], bytes] | None = None

    def _cut(self, start: int, end: int) -> bytes:
        # The published promotion calendar changes only now and then: reuse the previous day's bytes.
        if self._last is None or self._last[0] != (start, end):
            self._last = ((start, end), _render(self.frame.iloc[start:end], self.name))
        return self._last[1]

    def on(self, day: np.datetime64) -> bytes:
        """Rows dated ``day``."""
        return self._cut(int(np.searchsorted(self.days, day, "left")), int(np.searchsorted(self.days, day, "right")))

    def until(self, day: np.datetime64) -> bytes:
        """Rows dated up to and including ``day``."""
        return self._cut(0, int(np.searchsorted(self.days, day, "right")))


def _render(frame: pd.DataFrame, name: str) -> bytes:
    """Serialise one extract in its contract's file format."""
    frame = frame[COLUMNS[name]].copy()
    fmt = _FILES[name][2]
    if fmt == "parquet":
        schema = pa.schema([
            ("snapshot_date", pa.date32()), ("location_id", pa.string()), ("sku", pa.string()),
            ("on_hand", pa.int64()), ("allocated", pa.int64()), ("in_transit", pa.int64()),
        ])
        frame["snapshot_date"] = frame["snapshot_date"].to_numpy().astype("datetime64[D]")
        return parquet_bytes(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
    # numpy formats datetime64[D] as YYYY-MM-DD and datetime64[s] as YYYY-MM-DDTHH:MM:SS, the contract forms.
    for column in _DATE_COLUMNS.get(name, ()):
        frame[column] = np.datetime_as_string(frame[column].to_numpy().astype("datetime64[D]"))
    for column in _TIMESTAMP_COLUMNS.get(name, ()):
        frame[column] = np.datetime_as_string(frame[column].to_numpy().astype("datetime64[s]"))
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n").encode()
    if not len(frame):
        return b""
    return frame.to_json(orient="records", lines=True, force_ascii=False).encode()
