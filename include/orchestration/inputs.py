"""Checks the router's input frames and packs them into integer-coded arrays.

Identifiers become integer codes once, at the entry: the hot path works on ``[nodes, zones]`` rate
matrices and ``[nodes, skus]`` stock matrices indexed by those codes, never on ``object`` columns. Only
the SKUs of the batch's lines are packed, so memory follows the batch, not the assortment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.orchestration.params import (
    FORECAST_COLUMNS,
    LINE_COLUMNS,
    NODE_COLUMNS,
    NODE_TYPES,
    ON_HAND_COLUMNS,
    RATE_COLUMNS,
)

_NON_NEGATIVE = {"lines": ("quantity", "unit_price"), "nodes": ("pick_cost_per_line", "pick_capacity"),
                 "rates": ("cost_per_parcel", "cost_per_extra_item", "transit_days"),
                 "on_hand": ("on_hand",), "forecast": ("mean_daily", "sigma_daily")}


@dataclass
class Problem:
    """One batch, packed: lines sorted by order time then order and line, nodes and SKUs by code."""

    order_id: np.ndarray  # object [lines]
    line_no: np.ndarray  # int64 [lines]
    order: np.ndarray  # int64 [lines], order index, consecutive lines per order
    sku: np.ndarray  # int64 [lines], code into sku_ids
    qty: np.ndarray  # int64 [lines]
    price: np.ndarray  # float [lines]
    zone: np.ndarray  # int64 [lines], code into zone_ids, -1 when no rate reaches it
    order_day: np.ndarray  # datetime64[D] [lines]
    order_hour: np.ndarray  # int64 [lines]
    promised: np.ndarray  # datetime64[D] [lines]
    node_ids: np.ndarray  # object [nodes]
    is_store: np.ndarray  # bool [nodes]
    is_fc: np.ndarray  # bool [nodes]
    pick_cost: np.ndarray  # float [nodes]
    cutoff: np.ndarray  # int64 [nodes]
    capacity: np.ndarray  # float [nodes], pick lines available to the batch
    parcel: np.ndarray  # float [nodes, zones], NaN where the node does not ship to the zone
    extra: np.ndarray  # float [nodes, zones]
    transit: np.ndarray  # float [nodes, zones]
    distance: np.ndarray  # float [nodes, zones], km when the rate card has it, else the parcel cost
    stock: np.ndarray  # int64 [nodes, skus]
    markdown: np.ndarray  # float [nodes, skus]
    demand_mean: np.ndarray  # float [nodes, skus], store demand per day (0 where no forecast)
    demand_sigma: np.ndarray  # float [nodes, skus]
    margin: np.ndarray  # float [nodes, skus], lost margin per unit of store sales (NaN: use the price)
    sku_ids: np.ndarray  # object
    zone_ids: np.ndarray  # object

    @property
    def n_lines(self) -> int:
        """Lines in the batch."""
        return len(self.qty)


def _require(frame: pd.DataFrame, name: str, columns: tuple[str, ...]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it needs {list(columns)}")
    for column in columns:
        if frame[column].isna().any():
            raise ValueError(f"{name}.{column} has {int(frame[column].isna().sum())} empty value(s)")
    for column in _NON_NEGATIVE.get(name, ()):
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any() or (values < 0).any():
            raise ValueError(f"{name}.{column} must hold numbers of at least 0")


def validate_inputs(lines: pd.DataFrame, rates: pd.DataFrame, nodes: pd.DataFrame, on_hand: pd.DataFrame,
                    forecast: pd.DataFrame) -> None:
    """Check every input frame, naming the frame and column of the first problem.

    Raises:
        ValueError: for a missing column, an empty value, a negative quantity or cost, an unknown node
            type, a duplicate key, or a quantity below 1.
    """
    for frame, name, columns in ((lines, "lines", LINE_COLUMNS), (rates, "rates", RATE_COLUMNS),
                                 (nodes, "nodes", NODE_COLUMNS), (on_hand, "on_hand", ON_HAND_COLUMNS),
                                 (forecast, "forecast", FORECAST_COLUMNS)):
        _require(frame, name, columns)
    if (pd.to_numeric(lines["quantity"]) < 1).any():
        raise ValueError("lines.quantity must be at least 1")
    unknown = sorted(set(nodes["node_type"]) - set(NODE_TYPES))
    if unknown:
        raise ValueError(f"nodes.node_type has unknown value(s) {unknown}; expected {list(NODE_TYPES)}")
    for frame, name, key in ((lines, "lines", ["order_id", "line_no"]), (nodes, "nodes", ["location_id"]),
                             (rates, "rates", ["origin_location_id", "zone"]),
                             (on_hand, "on_hand", ["location_id", "sku"])):
        if frame.duplicated(key).any():
            raise ValueError(f"{name} has duplicate keys on {key}")
    if "markdown_risk" in on_hand and not on_hand["markdown_risk"].between(0, 1).all():
        raise ValueError("on_hand.markdown_risk must lie in [0, 1]")


def pack(lines: pd.DataFrame, rates: pd.DataFrame, nodes: pd.DataFrame, on_hand: pd.DataFrame,
         forecast: pd.DataFrame) -> Problem:
    """Validate the inputs and pack them into a :class:`Problem`.

    Args:
        lines: open order lines (see :data:`include.orchestration.params.LINE_COLUMNS`).
        rates: carrier rate card.
        nodes: node capabilities with the pick capacity available to this batch.
        on_hand: live on-hand per node and SKU (optional ``markdown_risk`` in [0, 1]).
        forecast: store demand per day (optional ``unit_margin``).

    Returns:
        The packed batch.

    Raises:
        ValueError: see :func:`validate_inputs`.
    """
    validate_inputs(lines, rates, nodes, on_hand, forecast)
    ordered_at = pd.to_datetime(lines["ordered_at"]).to_numpy("datetime64[s]")
    # Sorting makes the answer independent of the order the caller delivers lines in.
    keys = np.lexsort((lines["line_no"].to_numpy(np.int64), lines["order_id"].astype(str).to_numpy(),
                       ordered_at))
    lines = lines.iloc[keys]
    ordered_at = ordered_at[keys]
    # An order's lines must sit together: order by the order's first line time, then id, then line.
    first = pd.Series(ordered_at).groupby(lines["order_id"].to_numpy()).transform("min").to_numpy()
    keys = np.lexsort((lines["line_no"].to_numpy(np.int64), lines["order_id"].astype(str).to_numpy(), first))
    lines, ordered_at = lines.iloc[keys], ordered_at[keys]
    order_id = lines["order_id"].astype(str).to_numpy(object)
    order = np.cumsum(np.r_[True, order_id[1:] != order_id[:-1]])[:len(order_id)] - 1
    node_ids = nodes["location_id"].astype(str).to_numpy(object)
    sku_ids = np.array(sorted(set(lines["sku"].astype(str))), dtype=object)
    zone_ids = np.array(sorted(set(rates["zone"].astype(str))), dtype=object)
    parcel, extra, transit, distance = _rate_matrices(rates, node_ids, zone_ids)
    mats = _node_sku_matrices(on_hand, forecast, node_ids, sku_ids)
    zone = pd.Index(zone_ids).get_indexer(lines["customer_zone"].astype(str))
    kind = nodes["node_type"].to_numpy(object)
    return Problem(
        order_id=order_id, line_no=lines["line_no"].to_numpy(np.int64), order=order.astype(np.int64),
        sku=pd.Index(sku_ids).get_indexer(lines["sku"].astype(str)).astype(np.int64),
        qty=lines["quantity"].to_numpy(np.int64), price=lines["unit_price"].to_numpy(float),
        zone=zone.astype(np.int64), order_day=ordered_at.astype("datetime64[D]"),
        order_hour=((ordered_at - ordered_at.astype("datetime64[D]")).astype(np.int64) // 3600),
        promised=pd.to_datetime(lines["promised_date"]).to_numpy("datetime64[D]"),
        node_ids=node_ids, is_store=kind == "store", is_fc=kind == "ecom_fc",
        pick_cost=nodes["pick_cost_per_line"].to_numpy(float), cutoff=nodes["cutoff_hour"].to_numpy(np.int64),
        capacity=nodes["pick_capacity"].to_numpy(float),
        parcel=np.where(nodes["ships_parcels"].to_numpy(bool)[:, None], parcel, np.nan),
        extra=extra, transit=transit, distance=distance, sku_ids=sku_ids, zone_ids=zone_ids, **mats,
    )


def _rate_matrices(rates: pd.DataFrame, node_ids: np.ndarray,
                   zone_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    shape = (len(node_ids), len(zone_ids))
    parcel, extra, transit, distance = np.full(shape, np.nan), np.zeros(shape), np.zeros(shape), np.zeros(shape)
    n = pd.Index(node_ids).get_indexer(rates["origin_location_id"].astype(str))
    z = pd.Index(zone_ids).get_indexer(rates["zone"].astype(str))
    ok = n >= 0  # rates of nodes outside the batch are ignored
    parcel[n[ok], z[ok]] = rates["cost_per_parcel"].to_numpy(float)[ok]
    extra[n[ok], z[ok]] = rates["cost_per_extra_item"].to_numpy(float)[ok]
    transit[n[ok], z[ok]] = rates["transit_days"].to_numpy(float)[ok]
    source = "distance_km" if "distance_km" in rates else "cost_per_parcel"
    distance[n[ok], z[ok]] = rates[source].to_numpy(float)[ok]
    return parcel, extra, transit, distance


def _node_sku_matrices(on_hand: pd.DataFrame, forecast: pd.DataFrame, node_ids: np.ndarray,
                       sku_ids: np.ndarray) -> dict[str, np.ndarray]:
    shape = (len(node_ids), len(sku_ids))
    out = {"stock": np.zeros(shape, np.int64), "markdown": np.zeros(shape), "demand_mean": np.zeros(shape),
           "demand_sigma": np.zeros(shape), "margin": np.full(shape, np.nan)}
    n = pd.Index(node_ids).get_indexer(on_hand["location_id"].astype(str))
    k = pd.Index(sku_ids).get_indexer(on_hand["sku"].astype(str))
    ok = (n >= 0) & (k >= 0)
    out["stock"][n[ok], k[ok]] = on_hand["on_hand"].to_numpy(np.int64)[ok]
    if "markdown_risk" in on_hand:
        out["markdown"][n[ok], k[ok]] = on_hand["markdown_risk"].to_numpy(float)[ok]
    n = pd.Index(node_ids).get_indexer(forecast["location_id"].astype(str))
    k = pd.Index(sku_ids).get_indexer(forecast["sku"].astype(str))
    ok = (n >= 0) & (k >= 0)
    out["demand_mean"][n[ok], k[ok]] = forecast["mean_daily"].to_numpy(float)[ok]
    out["demand_sigma"][n[ok], k[ok]] = forecast["sigma_daily"].to_numpy(float)[ok]
    if "unit_margin" in forecast:
        out["margin"][n[ok], k[ok]] = forecast["unit_margin"].to_numpy(float)[ok]
    return out


def batch_nodes(capabilities: pd.DataFrame, labour: pd.DataFrame, day: dt.date | str,
                from_hour: int = 0) -> pd.DataFrame:
    """Node capabilities with the pick lines the labour schedule still offers on ``day`` from ``from_hour``.

    Args:
        capabilities: node capabilities extract.
        labour: labour schedule extract (``location_id, work_date, hour, pick_lines``).
        day: the work date.
        from_hour: first hour still to be worked.

    Returns:
        ``capabilities`` with a ``pick_capacity`` column (0 for nodes without a shift).
    """
    work = pd.to_datetime(labour["work_date"]).dt.date == pd.Timestamp(day).date()
    rows = labour[work & (labour["hour"] >= from_hour)]
    capacity = rows.groupby("location_id")["pick_lines"].sum()
    out = capabilities.copy()
    out["pick_capacity"] = out["location_id"].map(capacity).fillna(0).astype(float)
    return out
