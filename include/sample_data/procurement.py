"""Procurement extracts generated from a simulated world: the supplier catalogue.

The catalogue lists, per supplier and SKU, the contract terms a buyer can order on: unit cost, minimum
order, case pack, lead time and weekly capacity. Every SKU has a row for its primary supplier (the item
master's ``supplier_id``: its cost, the item's MOQ and case pack, the supplier's promised lead time);
about :data:`ALTERNATE_SHARE` of the SKUs also have one or two alternates from other suppliers, dearer
(2-15%), with a lead time shorter or longer than the primary's and a smaller capacity. Everything is drawn
from one generator seeded by ``seed``, so a seed always gives the same catalogue.

:func:`write_supplier_catalogue` lays it out as ``<root>/landing/procurement/ds=<YYYY-MM-DD>/
supplier_catalogue.csv``, as :func:`include.sample_data.orders.write_order_landing` does for the
orchestration extracts (contract: ``data_contracts/procurement/supplier_catalogue.yaml``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd

from include.config import as_date, partition_path
from include.sample_data.generator import World

__all__ = ["ALTERNATE_SHARE", "CATALOGUE_COLUMNS", "CATALOGUE_FILE", "supplier_catalogue",
           "write_supplier_catalogue"]

#: dataset: (landing source, file name, format), as in data_contracts/procurement/supplier_catalogue.yaml.
CATALOGUE_FILE = ("procurement", "supplier_catalogue.csv", "csv")
CATALOGUE_COLUMNS = ["supplier_id", "sku", "unit_cost", "moq_units", "case_pack", "lead_time_days",
                     "capacity_units_per_week", "valid_from"]
#: Share of SKUs with alternate suppliers (each has one or two, when there are other suppliers).
ALTERNATE_SHARE = 0.6
#: Contract start of a catalogue built from bare master frames (a world's starts with its history).
DEFAULT_VALID_FROM = dt.date(2026, 1, 1)


def supplier_catalogue(source: World | tuple[pd.DataFrame, pd.DataFrame], seed: int, *,
                       valid_from: dt.date | None = None) -> pd.DataFrame:
    """The supplier catalogue of a world's items and suppliers.

    Args:
        source: a generated world, or its ``(items, suppliers)`` master frames.
        seed: seed of the draws; the same seed and master data give the same catalogue.
        valid_from: start of the contracts; the world's first history day (else
            :data:`DEFAULT_VALID_FROM`) when omitted.

    Returns:
        One row per supplier x SKU (:data:`CATALOGUE_COLUMNS`), by SKU with the primary supplier first.
    """
    if isinstance(source, World):
        items, suppliers = source.items, source.suppliers
        valid_from = valid_from or source.config.start_date
    else:
        items, suppliers = source
    valid_from = as_date(valid_from or DEFAULT_VALID_FROM)
    rng = np.random.default_rng([seed, 27_011])
    sup_ids = suppliers["supplier_id"].astype(str).to_numpy(object)
    promised = suppliers["promised_lead_time_days"].to_numpy(np.int64)
    n, m = len(items), len(sup_ids)
    primary = pd.Index(sup_ids).get_indexer(items["supplier_id"].astype(str))
    if (primary < 0).any():
        raise ValueError(f"items reference unknown suppliers: {sorted(set(items['supplier_id'][primary < 0]))}")
    skus = items["sku"].astype(str).to_numpy(object)
    cost = items["unit_cost"].to_numpy(float)
    case_pack = items["case_pack"].to_numpy(np.int64)
    moq = items["moq_units"].to_numpy(np.int64)
    lead = promised[primary]
    capacity = np.maximum(moq * np.round(rng.uniform(20, 60, n)), moq).astype(np.int64)

    # Alternates: a random order of the other suppliers per SKU, of which the first one or two are taken.
    wants = (rng.random(n) < ALTERNATE_SHARE) * rng.integers(1, 3, n)
    order = np.argsort(np.where(np.arange(m) == primary[:, None], np.inf, rng.random((n, m))), axis=1)
    take = np.arange(m)[None, :] < np.minimum(wants, m - 1)[:, None]
    sku_row, slot = np.nonzero(take)
    k = len(sku_row)
    alt_lead = np.clip(np.round(lead[sku_row] * rng.uniform(0.5, 1.6, k)), 1, 365).astype(np.int64)
    alt_moq = case_pack[sku_row] * rng.choice([1, 2, 3], k)
    alt_capacity = np.maximum(np.round(capacity[sku_row] * rng.uniform(0.15, 0.5, k)), alt_moq).astype(np.int64)
    frame = pd.DataFrame({
        "supplier_id": np.concatenate([sup_ids[primary], sup_ids[order[sku_row, slot]]]),
        "sku": np.concatenate([skus, skus[sku_row]]),
        "unit_cost": np.concatenate([cost, np.round(cost[sku_row] * rng.uniform(1.02, 1.15, k), 2)]),
        "moq_units": np.concatenate([moq, alt_moq]).astype(np.int64),
        "case_pack": np.concatenate([case_pack, case_pack[sku_row]]).astype(np.int64),
        "lead_time_days": np.concatenate([lead, alt_lead]).astype(np.int64),
        "capacity_units_per_week": np.concatenate([capacity, alt_capacity]),
        "valid_from": pd.Timestamp(valid_from),
        "_order": np.concatenate([np.arange(n) * (m + 1), sku_row * (m + 1) + 1 + slot]),
    })
    return frame.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)[CATALOGUE_COLUMNS]


def write_supplier_catalogue(landing_root: Path | str, ds: dt.date | str, catalogue: pd.DataFrame) -> Path:
    """Write the catalogue as ``<landing_root>/landing/procurement/ds=<ds>/supplier_catalogue.csv``.

    A day written again replaces its file.

    Args:
        landing_root: the data root holding the ``landing`` zone (the ``root`` of
            :func:`include.sample_data.generator.write_landing`).
        ds: the delivery date.
        catalogue: the catalogue (:data:`CATALOGUE_COLUMNS`).

    Returns:
        The path written.
    """
    source, file_name, _ = CATALOGUE_FILE
    root = str(landing_root).rstrip("/")
    fs, _ = fsspec.core.url_to_fs(root)
    folder = partition_path("landing", source, as_date(ds), root)
    fs.makedirs(folder, exist_ok=True)
    frame = catalogue[CATALOGUE_COLUMNS].copy()
    frame["valid_from"] = np.datetime_as_string(pd.to_datetime(frame["valid_from"]).to_numpy()
                                                .astype("datetime64[D]"))
    path = f"{folder}/{file_name}"
    with fs.open(path, "wb") as handle:
        handle.write(frame.to_csv(index=False, lineterminator="\n").encode())
    return Path(path)
