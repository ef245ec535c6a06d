"""The two routing rules retailers run before an optimiser, priced with the router's own accounting.

* ``nearest``: each order ships whole from the nearest parcel-shipping node that holds every line; when
  no node does, each line ships from the nearest node that holds it.
* ``fc_first``: each line ships from the ecommerce fulfilment centre when it holds the line, otherwise
  from the nearest store that does.

Neither looks at pick capacity, store stock-outs or cost: that is what makes them baselines. Stock is
taken line by line in order time, so a rule empties a shelf exactly as it would in the stores; lines
beyond a node's capacity are picked a day later when the routing is priced
(:func:`include.orchestration.costs.price_routing`), the same rule the router is held to.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import pandas as pd

from include.orchestration.inputs import Problem, pack
from include.orchestration.params import RoutingParams
from include.orchestration.routing import Routing, build_routing, not_routed

POLICIES = ("nearest", "fc_first")


def _nearest_order(p: Problem) -> np.ndarray:
    """Per zone, parcel-shipping nodes from nearest to farthest (by distance, else parcel cost)."""
    distance = np.where(np.isfinite(p.parcel), p.distance, np.inf)
    return np.argsort(distance, axis=0, kind="stable").T  # [zones, nodes]


def nearest_with_stock(p: Problem) -> np.ndarray:
    """Node per line under the ``nearest`` rule (-1 where no node holds the line)."""
    ranked = _nearest_order(p)
    stock = p.stock.copy()
    node_of_line = np.full(p.n_lines, -1, np.int64)
    starts = np.r_[np.nonzero(np.r_[True, p.order[1:] != p.order[:-1]])[0], p.n_lines]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        lines = np.arange(a, b)
        zone = p.zone[a]
        if zone < 0:
            continue
        nodes = ranked[zone][np.isfinite(p.parcel[ranked[zone], zone])]
        skus, inverse = np.unique(p.sku[lines], return_inverse=True)
        need = np.bincount(inverse, weights=p.qty[lines])
        whole = np.nonzero((stock[np.ix_(nodes, skus)] >= need).all(axis=1))[0]
        if len(whole):
            node_of_line[lines] = nodes[whole[0]]
            np.subtract.at(stock, (nodes[whole[0]], p.sku[lines]), p.qty[lines])
            continue
        for i in lines:
            _take_first(stock, nodes, p.sku[i], p.qty[i], node_of_line, i)
    return node_of_line


def fc_first(p: Problem) -> np.ndarray:
    """Node per line under the ``fc_first`` rule (-1 where no node holds the line)."""
    ranked = _nearest_order(p)
    stock = p.stock.copy()
    node_of_line = np.full(p.n_lines, -1, np.int64)
    for i in range(p.n_lines):
        zone = p.zone[i]
        if zone < 0:
            continue
        nodes = ranked[zone][np.isfinite(p.parcel[ranked[zone], zone])]
        nodes = np.r_[nodes[p.is_fc[nodes]], nodes[p.is_store[nodes]]]
        _take_first(stock, nodes, p.sku[i], p.qty[i], node_of_line, i)
    return node_of_line


def _take_first(stock: np.ndarray, nodes: np.ndarray, sku: int, qty: int, node_of_line: np.ndarray,
                line: int) -> None:
    holding = np.nonzero(stock[nodes, sku] >= qty)[0]
    if len(holding):
        node_of_line[line] = nodes[holding[0]]
        stock[nodes[holding[0]], sku] -= qty


def route_baseline(policy: str, lines: pd.DataFrame, rates: pd.DataFrame, nodes: pd.DataFrame,
                   on_hand: pd.DataFrame, forecast: pd.DataFrame, params: RoutingParams | None = None,
                   already_routed: Iterable[str] = ()) -> Routing:
    """Route a batch with a baseline rule; same inputs, outputs and cost accounting as the router.

    Args:
        policy: ``nearest`` or ``fc_first``.
        lines, rates, nodes, on_hand, forecast, already_routed: as for
            :func:`include.orchestration.router.route_orders`.
        params: cost parameters used to price the result.

    Returns:
        The routing.

    Raises:
        ValueError: for an unknown policy or bad inputs.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown baseline policy {policy!r}; expected one of {list(POLICIES)}")
    params = params or RoutingParams()
    started = time.perf_counter()
    p = pack(not_routed(lines, already_routed), rates, nodes, on_hand, forecast)
    node_of_line = nearest_with_stock(p) if policy == "nearest" else fc_first(p)
    reason = np.where(node_of_line >= 0, policy, "no_stock").astype(object)
    text = np.where(node_of_line >= 0, p.node_ids[np.maximum(node_of_line, 0)], "").astype(object)
    summary = {"policy": policy, "seconds": round(time.perf_counter() - started, 3)}
    return build_routing(p, params, node_of_line, text, reason, reason.copy(), summary)
