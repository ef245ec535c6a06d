"""The returns system's extract, generated from a simulated world, with its ground truth kept apart.

Every returned line of :func:`returns_detail` carries what the returns desk records: the original order and
its date (when the receipt is matched), a pseudonymous customer, how it was bought and how it came back,
where it was received, the price it sold at, the refund, the reason and the grade after inspection
(A new, B open box, C damaged, D unsellable), and the supplier batch printed on the unit.

Ordinary returns follow the world's sales per channel: an SKU's store and web sales, each weighted by
its department's return rate, web purchases :data:`ONLINE_RETURN_FACTOR` times as often as store ones
(online shoppers cannot try before they buy), so that a channel's return rate stays a share of what it
sold; reasons are department-specific: apparel comes back for size and fit, electronics for defects. On top,
deterministically from the world's seed, ``seed`` and the day, the generator injects patterns whose truth
(``return_id, pattern, is_fraud, fraud_value``) stays in a separate frame:

* ``apparel_size``: the ordinary apparel size returns (not fraud, labelled for the pattern classifier);
* ``defect_batch``: from ``defect_start`` a surge of defective returns of one supplier batch (not fraud);
* ``wardrobing``: worn event outfits back within days of an event (abuse, not prosecuted: not fraud);
* ``serial_returner``: a few customers returning every few days at several stores (fraud);
* ``receiptless_high_value``: new customers bringing high-value units back without a receipt (fraud);
* ``return_ring``: a ring of customers returning at several stores of one region, mostly through one
  colluding store, refunded above the sale price (fraud).

A day's lines depend only on the world, ``seed``, the config and the day itself, so a day generated alone
equals the same day generated in a range. :func:`write_returns_detail` lays a day out as
``<root>/landing/returns_system/ds=<YYYY-MM-DD>/returns_detail.jsonl``.

Loss prevention's case system exports the cases it closed each day (:func:`lp_cases`, written by
:func:`write_lp_cases` as ``.../ds=<closed day>/lp_cases.csv``): every fraud of the truth and a sample of
legitimate lines are investigated and closed a few days after the return, ``confirmed_fraud`` or ``cleared``.
The fraud model learns from these outcomes, never from the truth itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import fsspec
import numpy as np
import pandas as pd

from include.config import as_date, partition_path
from include.returns.params import (
    DETAIL_COLUMNS,
    GRADES,
    PATTERNS,
    PURCHASE_CHANNELS,
    REASON_CODES,
    RETURN_CHANNELS,
    TRUTH_COLUMNS,
)
from include.sample_data.generator import World

SOURCE, FILE_NAME = "returns_system", "returns_detail.jsonl"
LP_FILE_NAME = "lp_cases.csv"
#: Columns of the loss-prevention case export.
LP_COLUMNS = ("return_id", "outcome", "closed_on")
#: Returns per unit sold, by department (``*`` for the rest).
DEPT_RETURN_RATE = {"Apparel": 0.12, "Electronics": 0.06, "Home": 0.05, "Toys & Games": 0.04, "Garden": 0.03,
                    "Health & Beauty": 0.02, "Grocery": 0.004, "*": 0.03}
#: Reason mix by department, in the order of REASON_CODES (size_fit, defective, damaged_in_transit,
#: not_as_described, wrong_item, changed_mind, late_delivery).
DEPT_REASONS = {"Apparel": (0.50, 0.05, 0.04, 0.12, 0.05, 0.21, 0.03),
                "Electronics": (0.00, 0.30, 0.08, 0.15, 0.10, 0.32, 0.05),
                "*": (0.00, 0.15, 0.12, 0.15, 0.10, 0.43, 0.05)}
#: Grade mix (A, B, C, D) by reason, in the order of REASON_CODES.
REASON_GRADES = np.array([(0.75, 0.22, 0.03, 0.00), (0.00, 0.10, 0.50, 0.40), (0.00, 0.10, 0.50, 0.40),
                          (0.50, 0.40, 0.08, 0.02), (0.80, 0.18, 0.02, 0.00), (0.60, 0.33, 0.05, 0.02),
                          (0.85, 0.15, 0.00, 0.00)])
_CHANNEL_P = (0.62, 0.23, 0.15)  # store, web, app: the injected patterns' purchase channels
#: How many times as often a unit bought online comes back as one bought in a store.
ONLINE_RETURN_FACTOR = 2.5
#: Of the online purchases, the share made in the app (the rest on the web).
_APP_SHARE = 0.4
#: Units on an ordinary returned line, and how often.
_QTY, _QTY_P = (1, 2, 3), (0.88, 0.10, 0.02)
#: Batch codes are ``supplier * 100_000 + week since 1970-01-05``; codes from _RELATIVE on count weeks back
#: from the return day until the day is known.
_RELATIVE = 50_000
_EPOCH = np.datetime64("1970-01-05")


@dataclass(frozen=True)
class ReturnsConfig:
    """Volume and injected patterns of the generated returns.

    Attributes:
        returns_per_day: ordinary returns of an average day.
        customers_per_daily_return: size of the customer pool per ordinary daily return.
        store_receipt_rate: share of store purchases returned with a matched receipt.
        n_serial: serial returners; each returns ``serial_rate`` lines a day on average.
        receiptless_share: receipt-less high-value fraud per ordinary return.
        ring_size: members of the return ring; the ring is active on ``ring_active`` of the days and
            brings ``ring_share`` lines per ordinary return when active.
        defect_start: first day of the defect surge (default: 20 days before the world's end).
        defect_share: extra defective returns per ordinary return from ``defect_start``.
        event_dates: events whose outfits come back worn (default: 15 and 45 days before the world's end).
        wardrobe_share: wardrobing returns per ordinary return on each of the 5 days after an event.
    """

    returns_per_day: int = 600
    customers_per_daily_return: int = 60
    store_receipt_rate: float = 0.9
    n_serial: int = 6
    serial_rate: float = 0.35
    receiptless_share: float = 0.015
    ring_size: int = 6
    ring_active: float = 0.7
    ring_share: float = 0.015
    defect_start: dt.date | None = None
    defect_share: float = 0.02
    event_dates: tuple[dt.date, ...] | None = None
    wardrobe_share: float = 0.04

    def __post_init__(self) -> None:
        for name in ("returns_per_day", "customers_per_daily_return", "ring_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ReturnsConfig.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("store_receipt_rate", "ring_active"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ReturnsConfig.{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class _Entities:
    """What stays the same across days: items, stores, the fraudsters and the defective batch."""

    price: np.ndarray
    dept: np.ndarray  # object
    supplier: np.ndarray  # int
    weight: np.ndarray  # [2 * skus] sampling weight of ordinary returns: store purchases, then online ones
    store_weight: np.ndarray  # [skus] sampling weight of a return bought in a store
    reason_cum: np.ndarray  # [skus, reasons] cumulative reason mix
    stores: np.ndarray  # location rows of stores
    store_region: np.ndarray
    fc: int
    n_cust: int
    serial_stores: np.ndarray  # [n_serial, 3]
    ring_stores: np.ndarray  # colluding store first
    defect_skus: np.ndarray
    defect_batch: int
    defect_start: np.datetime64
    events: np.ndarray  # datetime64[D]


def _entities(world: World, seed: int, config: ReturnsConfig) -> _Entities:
    rng = np.random.default_rng([world.config.seed, seed, 17_001])
    items, locs = world.items, world.locations
    dept = items["department"].to_numpy(object)
    in_store, online = _expected_returns(world, slice(None))
    in_store = in_store + _dept_rates(dept)  # every SKU can come back, even one that never sold in a store
    returned = in_store.sum() + online.sum()
    mix = np.array([DEPT_REASONS.get(d, DEPT_REASONS["*"]) for d in dept])
    supplier = pd.Index(world.suppliers["supplier_id"]).get_indexer(items["supplier_id"])
    kind = locs["location_type"].to_numpy(object)
    stores = np.nonzero(kind == "store")[0]
    region = locs["region"].to_numpy(object)[stores]
    electronics = dept == "Electronics"
    pool = electronics if electronics.any() else np.ones(len(dept), bool)
    bad_supplier = int(np.bincount(supplier[pool], minlength=len(world.suppliers)).argmax())
    defect_skus = np.nonzero(pool & (supplier == bad_supplier))[0]
    end = np.datetime64(world.config.end_date, "D")
    start = np.datetime64(config.defect_start, "D") if config.defect_start else end - 20
    events = (np.array([np.datetime64(d, "D") for d in config.event_dates], "datetime64[D]")
              if config.event_dates is not None else np.array([end - 45, end - 15]))
    ring_region = region[rng.integers(len(stores))]
    ring = rng.permutation(stores[region == ring_region])[:4]
    return _Entities(
        price=items["unit_price"].to_numpy(float), dept=dept, supplier=supplier,
        weight=np.concatenate([in_store, online]) / returned, store_weight=in_store / in_store.sum(),
        reason_cum=np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1), stores=stores, store_region=region,
        fc=int(np.nonzero(kind == "ecom_fc")[0][0]) if (kind == "ecom_fc").any() else int(stores[0]),
        n_cust=config.returns_per_day * config.customers_per_daily_return,
        serial_stores=rng.choice(stores, (config.n_serial, 3)), ring_stores=ring, defect_skus=defect_skus,
        defect_batch=bad_supplier * 100_000 + int((start - _EPOCH).astype(np.int64) // 7 - 4),
        defect_start=start, events=events)


def _dept_rates(dept: np.ndarray) -> np.ndarray:
    return np.array([DEPT_RETURN_RATE.get(d, DEPT_RETURN_RATE["*"]) for d in dept])


def _expected_returns(world: World, days: slice) -> tuple[np.ndarray, np.ndarray]:
    """Per SKU, the units the ``days`` of store sales and of web sales bring back at the department rates."""
    sim = world._sim
    rate = _dept_rates(world.items["department"].to_numpy(object))
    in_store = sim.sales[days][:, sim.store_rows].sum(axis=(0, 1)).astype(float) * rate
    return in_store, sim.sales[days][:, sim.fc_row].sum(axis=0).astype(float) * rate * ONLINE_RETURN_FACTOR


def implied_returns_per_day(world: World, window: int = 28) -> int:
    """Ordinary returned lines a day that the world's last ``window`` days of sales imply at the department
    return rates (web purchases :data:`ONLINE_RETURN_FACTOR` times as often): the ``returns_per_day`` at
    which each channel's and category's return rate is its department's."""
    in_store, online = _expected_returns(world, slice(-window, None))
    units_per_line = float(np.dot(_QTY, _QTY_P))
    return max(1, round(float(in_store.sum() + online.sum()) / window / units_per_line))


def _draw(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Category per row from per-row cumulative probabilities ``cum`` [rows, k] and uniforms ``u``."""
    return np.minimum((u[:, None] > cum).sum(axis=1), cum.shape[1] - 1)


def _ordinary(rng, ent: _Entities, config: ReturnsConfig, n: int) -> dict[str, np.ndarray]:
    """``n`` ordinary returns: customers from the pool, SKUs and channels by sales and return rate."""
    cust = np.floor(ent.n_cust * rng.random(n) ** 1.6).astype(np.int64)  # some customers return more
    bought = rng.choice(len(ent.weight), n, p=ent.weight)
    sku, online = bought % len(ent.price), bought >= len(ent.price)
    pchan = np.where(online, np.where(rng.random(n) < _APP_SHARE, 2, 1), 0)
    mail = online & (rng.random(n) < 0.7)
    home = ent.stores[(cust * 2_654_435_761) % len(ent.stores)]
    loc = np.where(rng.random(n) < 0.85, home, rng.choice(ent.stores, n))
    reason = _draw(ent.reason_cum[sku], rng.random(n))
    discount = rng.choice([0.0, 0.1, 0.2, 0.3], n, p=[0.72, 0.12, 0.1, 0.06])
    receipt = np.where(online, rng.random(n) < 0.99, rng.random(n) < config.store_receipt_rate)
    dsp = np.where(online, 4 + np.minimum(rng.geometric(0.1, n), 56), np.minimum(rng.geometric(0.15, n), 60))
    return _assemble(rng, ent, sku, cust, pchan, np.where(mail, 1, 0), np.where(mail, ent.fc, loc), dsp, reason,
                     _draw(np.cumsum(REASON_GRADES, axis=1)[reason], rng.random(n)), receipt, discount,
                     np.where((ent.dept[sku] == "Apparel") & (reason == 0), 1, 0))


def _assemble(rng, ent, sku, cust, pchan, rchan, loc, dsp, reason, grade, receipt, discount, pattern,
              refund_factor=None, batch=None) -> dict[str, np.ndarray]:
    n = len(sku)
    qty = rng.choice(_QTY, n, p=_QTY_P)
    # Without a receipt the desk cannot see the price paid: the refund is at today's shelf price.
    price = np.round(ent.price[sku] * np.where(receipt, 1.0 - discount, 1.0), 2)
    factor = np.ones(n) if refund_factor is None else refund_factor
    if batch is None:
        # Produced some weeks before it was sold: a week relative to the return day, made absolute per day.
        batch = ent.supplier[sku] * 100_000 + _RELATIVE + (-dsp - rng.integers(7, 57, n)) // 7
    return {"sku": sku, "cust": cust, "pchan": pchan, "rchan": rchan, "loc": loc, "dsp": dsp.astype(np.int64),
            "qty": qty, "price": price, "refund": np.round(price * qty * factor, 2), "reason": reason,
            "grade": grade, "receipt": receipt.astype(bool), "batch": np.asarray(batch, np.int64), "pattern": pattern}


def _injected(rng, ent: _Entities, config: ReturnsConfig, day: np.datetime64, n0: int) -> list[dict]:
    """The patterns of ``day`` beyond ordinary returns (see the module docstring)."""
    parts = []
    n_stores = len(ent.stores)
    # Serial returners: ids right after the pool, each at one of their three stores.
    k = rng.poisson(config.serial_rate, config.n_serial)
    who = np.repeat(np.arange(config.n_serial), k)
    if len(who):
        n = len(who)
        sku = rng.choice(len(ent.price), n, p=ent.store_weight)
        parts.append(_assemble(rng, ent, sku, ent.n_cust + who, np.zeros(n, int), np.zeros(n, int),
                               ent.serial_stores[who, rng.integers(0, 3, n)], rng.integers(15, 46, n),
                               rng.choice([5, 3, 0], n, p=[0.5, 0.3, 0.2]), rng.choice(3, n, p=[0.3, 0.6, 0.1]),
                               rng.random(n) < 0.95, np.zeros(n), np.full(n, 4)))
    # Receipt-less high-value: a new customer each, units among the dearest quarter of the range.
    n = rng.poisson(config.receiptless_share * n0)
    if n:
        dear = np.nonzero(ent.price >= np.quantile(ent.price, 0.75))[0]
        p = ent.price[dear] / ent.price[dear].sum()
        fresh = ent.n_cust + 1_000 + (day.astype(np.int64) % 100_000) * 1_000_000 + np.arange(n)
        parts.append(_assemble(rng, ent, dear[rng.choice(len(dear), n, p=p)], fresh, np.zeros(n, int),
                               np.zeros(n, int), rng.choice(ent.stores, n), rng.integers(1, 30, n),
                               np.full(n, 5), np.zeros(n, int), np.zeros(n, bool), np.zeros(n), np.full(n, 5)))
    # The ring: mostly through its colluding store, refunded above the price paid.
    n = rng.poisson(config.ring_share * n0) if rng.random() < config.ring_active else 0
    if n:
        stores = np.where(rng.random(n) < 0.5, ent.ring_stores[0], rng.choice(ent.ring_stores, n))
        p = ent.price / ent.price.sum()
        parts.append(_assemble(rng, ent, rng.choice(len(ent.price), n, p=p),
                               ent.n_cust + 500 + rng.integers(0, config.ring_size, n), np.zeros(n, int),
                               np.zeros(n, int), stores, rng.integers(1, 11, n), rng.choice([5, 3], n),
                               rng.choice(2, n, p=[0.7, 0.3]), rng.random(n) < 0.5, np.zeros(n), np.full(n, 6),
                               refund_factor=rng.uniform(1.15, 1.6, n)))
    if day >= ent.defect_start and len(ent.defect_skus):
        n = rng.poisson(config.defect_share * n0)
        cust = np.floor(ent.n_cust * rng.random(n)).astype(np.int64)
        parts.append(_assemble(rng, ent, rng.choice(ent.defect_skus, n), cust, rng.choice(3, n, p=_CHANNEL_P),
                               np.zeros(n, int), ent.stores[(cust * 2_654_435_761) % n_stores],
                               rng.integers(3, 26, n), np.full(n, 1), rng.choice([1, 2, 3], n, p=[0.1, 0.5, 0.4]),
                               rng.random(n) < 0.95, np.zeros(n), np.full(n, 2),
                               batch=np.full(n, ent.defect_batch)))
    after = (day - ent.events).astype(np.int64)
    if ((after >= 1) & (after <= 5)).any():
        n = rng.poisson(config.wardrobe_share * n0)
        apparel = np.nonzero(ent.dept == "Apparel")[0]
        pool = apparel if len(apparel) else np.arange(len(ent.price))
        cust = np.floor(ent.n_cust * rng.random(n)).astype(np.int64)
        since = int(after[(after >= 1) & (after <= 5)].min())
        parts.append(_assemble(rng, ent, rng.choice(pool, n), cust, np.zeros(n, int), np.zeros(n, int),
                               ent.stores[(cust * 2_654_435_761) % n_stores], since + rng.integers(1, 4, n),
                               np.full(n, 5), rng.choice(2, n, p=[0.2, 0.8]), rng.random(n) < 0.97, np.zeros(n),
                               np.full(n, 3)))
    return parts


def _day_parts(world: World, ent: _Entities, seed: int, config: ReturnsConfig, day: np.datetime64) -> dict:
    """Every returned line of ``day`` as arrays, ordinary then injected, with the day's index."""
    rng = np.random.default_rng([world.config.seed, seed, 17_002, int(day.astype(np.int64))])
    weekday = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    n0 = rng.poisson(config.returns_per_day * (1.25 if weekday in (0, 5) else 0.95))
    parts = [_ordinary(rng, ent, config, n0), *_injected(rng, ent, config, day, n0)]
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    out["seconds"] = rng.integers(9 * 3600, 21 * 3600, len(out["sku"]))
    week = out["batch"] % 100_000
    relative = week >= _RELATIVE // 2
    out["batch"] = np.where(relative, out["batch"] - _RELATIVE + (day - _EPOCH).astype(np.int64) // 7, out["batch"])
    return out


def _frames(world: World, ent: _Entities, day: np.datetime64, a: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(a["sku"])
    order = np.argsort(a["seconds"], kind="stable")
    a = {key: value[order] for key, value in a.items()}
    stamp = str(day).replace("-", "")
    seq = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(7)
    return_id = ("RD" + stamp + seq).to_numpy(object)
    bought = day - a["dsp"].astype("timedelta64[D]")
    order_id = pd.Series("SO" + pd.Series(np.datetime_as_string(bought)).str.replace("-", "").to_numpy(object)
                         + (a["cust"] % 9_973_001).astype(str).astype(object) + "-" + seq.to_numpy(object))
    order_id[~a["receipt"]] = None
    codes, uniq = pd.factorize(a["cust"], sort=True)
    customers = pd.Categorical.from_codes(codes, ["C" + str(u).zfill(10) for u in uniq])
    bcodes, buniq = pd.factorize(a["batch"], sort=True)
    batches = [f"{world.suppliers['supplier_id'].iat[b // 100_000]}-W{(_EPOCH + 7 * (b % 100_000)).item():%G%V}"
               for b in buniq]
    extract = pd.DataFrame({
        "return_id": return_id,
        "returned_at": np.datetime64(day, "s") + a["seconds"].astype("timedelta64[s]"),
        "original_order_id": order_id.to_numpy(object),
        "original_order_date": np.where(a["receipt"], bought, np.datetime64("NaT")).astype("datetime64[s]"),
        "customer_id": customers,
        "purchase_channel": pd.Categorical.from_codes(a["pchan"], PURCHASE_CHANNELS),
        "return_channel": pd.Categorical.from_codes(a["rchan"], RETURN_CHANNELS),
        "location_id": pd.Categorical.from_codes(a["loc"], world.locations["location_id"].astype(str)),
        "sku": pd.Categorical.from_codes(a["sku"], world.items["sku"].astype(str)),
        "quantity": a["qty"].astype(np.int64),
        "unit_price": a["price"],
        "refund_amount": a["refund"],
        "reason_code": pd.Categorical.from_codes(a["reason"], REASON_CODES),
        "condition_grade": pd.Categorical.from_codes(a["grade"], GRADES),
        "receipt_matched": a["receipt"],
        "supplier_batch_id": pd.Categorical.from_codes(bcodes, batches),
    })
    fraud = a["pattern"] >= PATTERNS.index("serial_returner")
    truth = pd.DataFrame({"return_id": return_id, "pattern": pd.Categorical.from_codes(a["pattern"], PATTERNS),
                          "is_fraud": fraud, "fraud_value": np.where(fraud, a["refund"], 0.0)})
    return extract, truth


def returns_detail(world: World, days: int | Sequence[dt.date | str], seed: int = 0,
                   config: ReturnsConfig = ReturnsConfig()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The returns system's extract of ``days`` and, apart, the truth of every line.

    Args:
        world: the generated world (items, locations, suppliers, sales).
        days: the return dates, or a number of days ending at the world's last day.
        seed: seed of the returns, on top of the world's.
        config: volume and injected patterns.

    Returns:
        ``(extract, truth)``: the extract with columns :data:`include.returns.params.DETAIL_COLUMNS`, in
        return-time order; the truth with :data:`include.returns.params.TRUTH_COLUMNS`, one row per return.
    """
    end = np.datetime64(world.config.end_date, "D")
    dates = (end - np.arange(days)[::-1] if isinstance(days, int)
             else np.array(sorted({np.datetime64(as_date(d), "D") for d in days}), "datetime64[D]"))
    ent = _entities(world, seed, config)
    frames = [_frames(world, ent, day, _day_parts(world, ent, seed, config, day)) for day in dates]
    if not frames:
        return (pd.DataFrame({c: [] for c in DETAIL_COLUMNS}), pd.DataFrame({c: [] for c in TRUTH_COLUMNS}))
    extract = pd.concat([f[0] for f in frames], ignore_index=True)
    for column in ("customer_id", "supplier_batch_id"):  # union of the days' categories
        extract[column] = extract[column].astype(str).astype("category")
    return extract, pd.concat([f[1] for f in frames], ignore_index=True)


def write_returns_detail(root: str, ds: dt.date | str, extract: pd.DataFrame) -> str:
    """Write the lines of ``extract`` returned on ``ds`` as the day's landing file (JSON lines).

    A day written again replaces its file; lines of other days in ``extract`` are left out.

    Args:
        root: data root, a local path or fsspec URL.
        ds: the return date.
        extract: the returns system's extract (columns of :data:`DETAIL_COLUMNS`).

    Returns:
        The path written: ``<root>/landing/returns_system/ds=<ds>/returns_detail.jsonl``.
    """
    root = str(root).rstrip("/")
    day = np.datetime64(as_date(ds), "D")
    frame = extract.loc[extract["returned_at"].to_numpy().astype("datetime64[D]") == day, list(DETAIL_COLUMNS)]
    fs, _ = fsspec.core.url_to_fs(root)
    folder = partition_path("landing", SOURCE, as_date(ds), root)
    fs.makedirs(folder, exist_ok=True)
    path = f"{folder}/{FILE_NAME}"
    with fs.open(path, "wb") as handle:
        handle.write(render_returns_detail(frame))
    return path


def render_returns_detail(frame: pd.DataFrame) -> bytes:
    """Serialise returns detail lines as JSON lines, dates as ISO text and empty values as ``null``."""
    frame = frame.astype({c: object for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})
    frame["returned_at"] = np.datetime_as_string(frame["returned_at"].to_numpy().astype("datetime64[s]"))
    dates = frame["original_order_date"].to_numpy().astype("datetime64[D]")
    frame["original_order_date"] = np.where(np.isnat(dates), None, np.datetime_as_string(dates))
    return frame.to_json(orient="records", lines=True, force_ascii=False).encode()


def demand_rates(world: World, day: dt.date | str, window: int = 28, ahead: bool = False) -> pd.DataFrame:
    """Mean daily demand per selling location (stores and the FC) and SKU around ``day``.

    Args:
        world: the generated world.
        day: the day of the returns.
        window: days averaged.
        ahead: ``False`` averages the ``window`` days before ``day`` (what a forecast knows);
            ``True`` the days from ``day`` on (what was really sold, for evaluation only).

    Returns:
        Columns ``location_id, sku, mean_daily, on_hand`` (stock at the start of ``day``).
    """
    sim = world._sim
    d = int((np.datetime64(as_date(day), "D") - sim.days[0]).astype(np.int64))
    lo, hi = (d, min(d + window, len(sim.days))) if ahead else (max(d - window, 0), d)
    if hi <= lo:
        raise ValueError(f"no world days to average {'after' if ahead else 'before'} {as_date(day)}")
    rows = sim.sell_rows
    mean = sim.demand[lo:hi][:, rows].mean(axis=0)
    return pd.DataFrame({"location_id": np.repeat(sim.location_ids[rows], len(sim.skus)),
                         "sku": np.tile(sim.skus, len(rows)), "mean_daily": mean.ravel(),
                         "on_hand": sim.on_hand[max(d - 1, 0)][rows].ravel().astype(np.int64)})


@dataclass(frozen=True)
class LpConfig:
    """Which returned lines loss prevention investigates and when it closes them.

    Attributes:
        cleared_share: share of legitimate lines investigated (and cleared).
        close_days: fewest and most days from the return to the case's closing.
    """

    cleared_share: float = 0.02
    close_days: tuple[int, int] = (1, 6)

    def __post_init__(self) -> None:
        if not 0.0 <= self.cleared_share <= 1.0 or not 1 <= self.close_days[0] <= self.close_days[1]:
            raise ValueError(f"LpConfig needs cleared_share in [0, 1] and 1 <= close_days[0] <= close_days[1], "
                             f"got {self.cleared_share} and {self.close_days}")


def lp_cases(extract: pd.DataFrame, truth: pd.DataFrame, seed: int = 0, config: LpConfig = LpConfig()) -> pd.DataFrame:
    """The cases loss prevention closes on the lines of ``extract``: every fraud and a sample of the rest.

    A line's case depends only on ``seed`` and its return day, so a day generated alone gives the same cases.

    Returns:
        ``return_id, outcome (confirmed_fraud | cleared), closed_on`` (a date ``close_days`` after the return),
        in closing order.
    """
    fraud = extract["return_id"].map(truth.set_index("return_id")["is_fraud"]).fillna(False).to_numpy(bool)
    day = extract["returned_at"].to_numpy().astype("datetime64[D]")
    picked, after = np.zeros(len(day), bool), np.zeros(len(day), np.int64)
    lo, hi = config.close_days
    for d in np.unique(day):
        rows = np.flatnonzero(day == d)
        rng = np.random.default_rng([seed, int(d.astype(np.int64)), 11])
        picked[rows] = fraud[rows] | (rng.random(len(rows)) < config.cleared_share)
        after[rows] = rng.integers(lo, hi + 1, len(rows))
    cases = pd.DataFrame({"return_id": extract["return_id"].to_numpy()[picked].astype(str),
                          "outcome": np.where(fraud[picked], "confirmed_fraud", "cleared"),
                          "closed_on": day[picked] + after[picked].astype("timedelta64[D]")})
    return cases.sort_values(["closed_on", "return_id"], kind="stable").reset_index(drop=True)


def write_lp_cases(root: str, ds: dt.date | str, cases: pd.DataFrame) -> str:
    """Write the cases of ``cases`` closed on ``ds`` as the day's export (CSV; a day without cases has a header).

    Returns:
        The path written: ``<root>/landing/returns_system/ds=<ds>/lp_cases.csv``.
    """
    root = str(root).rstrip("/")
    day = np.datetime64(as_date(ds), "D")
    frame = cases.loc[cases["closed_on"].to_numpy().astype("datetime64[D]") == day, list(LP_COLUMNS)]
    frame = frame.assign(closed_on=np.datetime_as_string(frame["closed_on"].to_numpy().astype("datetime64[D]")))
    fs, _ = fsspec.core.url_to_fs(root)
    folder = partition_path("landing", SOURCE, as_date(ds), root)
    fs.makedirs(folder, exist_ok=True)
    path = f"{folder}/{LP_FILE_NAME}"
    with fs.open(path, "wb") as handle:
        handle.write(frame.to_csv(index=False).encode())
    return path
