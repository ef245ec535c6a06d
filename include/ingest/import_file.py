"""An analyst's history file turned into the landing extracts the nightly ingests.

``python -m include.ingest import-file sales.csv --root R`` reads the file
(:mod:`include.demand.history_file`) and writes, under ``<root>/landing/``:

* ``pos/ds=<day>/pos_sales.csv`` for every day of the file that has a known value: one row per location
  and item (``store_id, sku, business_date, units_sold``), ``gross_sales = units x price`` (the
  ``--price-column`` of the row, else the item's list price), no discount and no promotion. Units are
  rounded to whole units (the contract's type); a missing period (empty ``units`` or no row) gets no row,
  which the nightly reads as no sales.
* ``master/ds=<last day>/items.csv``, ``locations.csv``, ``suppliers.csv`` and ``promotions.csv``: the
  master files already landed for that day are kept, and a row is added for every item, location and
  supplier they lack, with these defaults: an item's ``unit_price`` is the highest price of its rows
  (regular shelf price; ``--default-price`` without a price column), ``unit_cost`` the median
  ``unit_cost`` of its rows, else 60% of the price; ``case_pack`` and ``moq_units`` 1, ``shelf_capacity``
  twice its largest day; ``velocity_class`` fast from 5 units a day, medium from 1, else slow; category
  and department ``imported``; its supplier ``IMPORT-LT<n>`` promises the item's median ``lead_time``
  (days; 7 without one). A location is a ``store`` in region ``imported`` without a parent DC.
  ``promotions.csv`` is written with its header only when none landed.

Then ``python -m include.ingest history --start <first day> --end <last day>`` validates them with the
usual contracts. The nightly for the last day also reads that day's other sources (ecommerce, wms,
supplier, returns), which a sales history does not hold; they come from the retailer's systems.

Weekly files are refused: the POS contract holds daily item movement, and spreading a week's units over
its days would invent a flat week that the daily models (weekday seasonality, per-day stock-outs) would
learn as demand. Days that already have a landed POS file are refused too, unless ``replace`` is set.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pandas as pd

from include.config import data_root
from include.contracts.contract import Contract, load_contracts
from include.demand.history_file import HistoryFile, HistoryFileError, read_history_file
from include.ingest.parse import file_exists, landing_file
from include.storage import write_text

#: What the master contracts accept as an identifier.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
DEFAULT_LEAD_TIME_DAYS = 7
COST_SHARE = 0.6


@dataclass
class ImportSummary:
    """What :func:`import_history_file` wrote."""

    start: dt.date
    end: dt.date
    pos_files: int = 0
    pos_rows: int = 0
    missing_periods: int = 0
    rounded_rows: int = 0
    new_items: list[str] = field(default_factory=list)
    new_locations: list[str] = field(default_factory=list)
    new_suppliers: list[str] = field(default_factory=list)

    def lines(self, root: str) -> list[str]:
        """A few lines for the console, ending with the command that loads the history."""
        return [
            f"{self.pos_files} POS extracts {self.start}..{self.end}: {self.pos_rows} rows "
            f"({self.missing_periods} missing periods left out, {self.rounded_rows} fractional units rounded)",
            f"master for {self.end}: {len(self.new_items)} items, {len(self.new_locations)} locations, "
            f"{len(self.new_suppliers)} suppliers added",
            f"next: python -m include.ingest history --start {self.start} --end {self.end} --root {root}",
        ]


def import_history_file(path: str, *, root: str | None = None, freq: str = "D", price_column: str | None = None,
                        default_price: float = 1.0, replace: bool = False,
                        contracts: dict[str, Contract] | None = None) -> ImportSummary:
    """Write a history file's POS extracts and master rows into the landing zone.

    Args:
        path: the history file (CSV or Parquet).
        root: data root; defaults to ``SHELFWISE_DATA_ROOT``.
        freq: the file's frequency; only ``"D"`` is accepted (see the module docstring).
        price_column: a column of the file with the unit price of each row.
        default_price: an item's list price when there is no price column.
        replace: overwrite POS files already landed for the file's days.
        contracts: loaded contracts; defaults to ``data_contracts/``.

    Returns:
        What was written.

    Raises:
        HistoryFileError: when the file cannot be read, is weekly, or its identifiers or prices do not
            fit the contracts; nothing is written then.
    """
    if freq == "W":
        raise HistoryFileError(f"{path}: a weekly file cannot become daily POS extracts (spreading a week's units "
                               f"over its days would invent a flat week); import daily sales, or use the weekly "
                               f"file with the replay (python -m include.simulation) and the accuracy benchmark")
    if not default_price > 0:
        raise HistoryFileError(f"{path}: --default-price must be above 0, got {default_price}")
    history = read_history_file(path, freq=freq, regressors=(price_column,) if price_column else ())
    _check_daily(history)
    _check_identifiers(history)
    root = root or data_root()
    contracts = contracts or load_contracts()
    frame = history.frame
    prices = _list_prices(history, price_column, default_price)
    summary = ImportSummary(start=frame["ds"].min().date(), end=frame["ds"].max().date())
    pos = _pos_rows(history, price_column, prices, summary)
    days = sorted(pos["business_date"].unique())
    if not replace:
        taken = [d for d in days if file_exists(landing_file(root, contracts["pos_sales"], d))]
        if taken:
            raise HistoryFileError(f"{path}: a POS extract already landed for {taken[0]} ({len(taken)} days in all) "
                                   f"under {root}; use --replace to overwrite them, or another --root")
    for day, rows in pos.groupby("business_date", sort=True):
        _land(rows[contracts["pos_sales"].column_names], contracts["pos_sales"], day, root)
        summary.pos_files += 1
    _write_master(history, prices, root, summary, contracts)
    return summary


def _check_daily(history: HistoryFile) -> None:
    """Refuse a weekly file read as daily: its dates all 7 days apart would land as one sales day a week."""
    dates = np.sort(history.frame.loc[history.frame["y"].notna(), "ds"].unique())
    steps = np.diff(dates).astype("timedelta64[D]").astype(np.int64)
    if len(steps) >= 2 and (steps % 7 == 0).all():
        raise HistoryFileError(f"{history.path}: column 'date' holds dates 7 days apart ({pd.Timestamp(dates[0]).date()}, "
                               f"{pd.Timestamp(dates[1]).date()}, ...): a weekly file, which cannot become daily POS "
                               f"extracts (spreading a week's units over its days would invent a flat week); "
                               f"import daily sales")


def _check_identifiers(history: HistoryFile) -> None:
    for column in ("item", "location"):
        values = history.frame[column].drop_duplicates()
        bad = values[~values.str.fullmatch(ID_PATTERN.pattern)]
        if len(bad):
            raise HistoryFileError(f"{history.path}: column '{column}' holds {bad.iloc[0]!r}, which the nightly's "
                                   f"master data does not accept (1 to 40 letters, digits, '_' or '-'); rename it "
                                   f"in the file")


def _list_prices(history: HistoryFile, price_column: str | None, default_price: float) -> pd.Series:
    """Each item's regular shelf price: its highest price in the file, or ``default_price``."""
    items = history.frame["item"].drop_duplicates().sort_values()
    if not price_column:
        return pd.Series(default_price, index=items.to_numpy(), dtype=float)
    price = history.frame.groupby("item")[price_column].max()
    bad = price[~(price > 0)]
    if len(bad):
        raise HistoryFileError(f"{history.path}: column '{price_column}' (--price-column) is never above 0 for "
                               f"item {bad.index[0]!r}; give its prices, or drop --price-column")
    return price.round(2).clip(lower=0.01)


def _pos_rows(history: HistoryFile, price_column: str | None, prices: pd.Series,
              summary: ImportSummary) -> pd.DataFrame:
    frame = history.frame
    known = frame["y"].notna().to_numpy()
    summary.missing_periods = int((~known).sum())
    rows = frame[known]
    units = np.rint(rows["y"].to_numpy())
    summary.rounded_rows = int((units != rows["y"].to_numpy()).sum())
    price = rows[price_column].to_numpy() if price_column else rows["item"].map(prices).to_numpy(float)
    summary.pos_rows = len(rows)
    return pd.DataFrame({
        "store_id": rows["location"].to_numpy(), "sku": rows["item"].to_numpy(),
        "business_date": rows["ds"].dt.strftime("%Y-%m-%d").to_numpy(), "units_sold": units.astype(np.int64),
        "gross_sales": np.round(units * np.clip(price, 0.0, None), 2), "discount_amount": 0.0, "promo_id": "",
    })


def _master_rows(history: HistoryFile, prices: pd.Series) -> dict[str, pd.DataFrame]:
    """Default master rows for every item, location and supplier of the file."""
    frame = history.frame
    per_item = frame.groupby("item")
    cost = per_item["unit_cost"].median() if "unit_cost" in frame.columns else pd.Series(dtype=float)
    lead = per_item["lead_time"].median() if "lead_time" in frame.columns else pd.Series(dtype=float)
    items = pd.DataFrame({"sku": prices.index.astype(str)})
    items["unit_price"] = prices.to_numpy()
    items["unit_cost"] = items["sku"].map(cost).where(lambda c: c > 0, items["unit_price"] * COST_SHARE)
    items["unit_cost"] = items["unit_cost"].round(2).clip(lower=0.01)
    lead_days = items["sku"].map(lead).fillna(DEFAULT_LEAD_TIME_DAYS).round().clip(1, 180).astype(int)
    daily = per_item["y"].mean().reindex(items["sku"]).fillna(0.0).to_numpy()  # per location and day
    biggest = per_item["y"].max().reindex(items["sku"]).fillna(0.0).to_numpy()
    items = items.assign(description=items["sku"], category="imported", department="imported", case_pack=1,
                         moq_units=1, shelf_capacity=np.maximum(1, np.ceil(2 * biggest)).astype(int),
                         supplier_id=[f"IMPORT-LT{n}" for n in lead_days],
                         velocity_class=np.select([daily >= 5, daily >= 1], ["fast", "medium"], "slow"))
    suppliers = pd.DataFrame({"supplier_id": sorted(set(items["supplier_id"]))})
    suppliers = suppliers.assign(name="Imported history supplier", region="imported",
                                 promised_lead_time_days=suppliers["supplier_id"].str.removeprefix("IMPORT-LT"))
    locations = pd.DataFrame({"location_id": sorted(frame["location"].unique())})
    locations = locations.assign(name=locations["location_id"], location_type="store", region="imported",
                                 parent_dc="", transfer_lead_time_days=0, transfer_cost_per_unit=0.0)
    return {"suppliers": suppliers, "locations": locations, "items": items}


def _write_master(history: HistoryFile, prices: pd.Series, root: str, summary: ImportSummary,
                  contracts: dict[str, Contract]) -> None:
    """Add the file's unknown items, locations and suppliers to the master files of its last day."""
    day = summary.end.isoformat()
    key = {"suppliers": "supplier_id", "locations": "location_id", "items": "sku"}
    added = {"suppliers": summary.new_suppliers, "locations": summary.new_locations, "items": summary.new_items}
    for name, rows in _master_rows(history, prices).items():
        contract = contracts[name]
        target = landing_file(root, contract, day)
        landed = _read_csv(target) if file_exists(target) else pd.DataFrame(columns=contract.column_names)
        new = rows[~rows[key[name]].isin(set(landed[key[name]].astype(str)))]
        added[name].extend(new[key[name]].tolist())
        columns = list(landed.columns) if len(landed.columns) else contract.column_names
        merged = pd.concat([landed, new.reindex(columns=columns)], ignore_index=True)
        _land(merged[columns], contract, day, root)
    promotions = contracts["promotions"]
    if not file_exists(landing_file(root, promotions, day)):
        _land(pd.DataFrame(columns=promotions.column_names), promotions, day, root)


def _read_csv(path: str) -> pd.DataFrame:
    with fsspec.open(path, "rb") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def _land(frame: pd.DataFrame, contract: Contract, day: str, root: str) -> None:
    """Write ``frame`` as the contract's CSV extract landed for ``day``."""
    write_text(frame.to_csv(index=False).encode(), "landing", contract.source, day, contract.file_name, root)
