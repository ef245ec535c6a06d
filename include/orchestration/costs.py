"""One cost accounting for every routing policy: candidate costs for the solver, and the price of a routing.

The router's objective and the benchmark's figures come from the same formulas, so a baseline is never
judged by rules the router does not pay:

* **shipping**: the carrier's cost per parcel for each (order, node) used, plus the cost per extra item;
* **pick**: the node's cost per picked line;
* **split penalty**: every parcel beyond an order's first;
* **lateness**: ``late_penalty_per_day`` per parcel and day past the promise; a parcel leaves on the order
  day if ordered before the node's cut-off hour, else the next day, and a line picked beyond the node's
  pick capacity leaves one day later still;
* **store stock-out**: shipping ``q`` of a store's ``x`` units raises the store's expected lost sales over
  the protection window from ``E[(D - x)+]`` to ``E[(D - x + q)+]`` with ``D ~ Normal(mean * W,
  sigma * sqrt(W))``; the increase is priced at the store's unit margin. Stock far above the store's
  demand costs nothing, the last units on a busy shelf cost almost a full margin each.
* **aging credit**: a small negative cost for shipping units with markdown risk, a preference only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from include.orchestration.inputs import Problem
from include.orchestration.params import RoutingParams

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def expected_shortfall(stock: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``E[(D - stock)+]`` for ``D ~ Normal(mean, sigma)``; with ``sigma == 0``, ``max(mean - stock, 0)``."""
    sigma = np.asarray(sigma, float)
    safe = np.where(sigma > 0, sigma, 1.0)
    z = (np.asarray(stock, float) - mean) / safe
    loss = safe * (np.exp(-0.5 * z * z) / _SQRT_2PI - z * (1.0 - ndtr(z)))
    return np.where(sigma > 0, loss, np.maximum(mean - stock, 0.0))


def window_demand(p: Problem, params: RoutingParams, node: np.ndarray,
                  sku: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of store demand over the protection window, per (node, sku)."""
    w = params.protection_days
    return p.demand_mean[node, sku] * w, p.demand_sigma[node, sku] * np.sqrt(w)


def stockout_cost(p: Problem, params: RoutingParams, node: np.ndarray, sku: np.ndarray, stock: np.ndarray,
                  units: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Expected lost store margin of shipping ``units`` from ``stock`` at ``node`` (0 outside stores)."""
    mean, sigma = window_demand(p, params, node, sku)
    lost = expected_shortfall(stock - units, mean, sigma) - expected_shortfall(stock, mean, sigma)
    margin = p.margin[node, sku]
    margin = np.where(np.isfinite(margin), margin, price * params.default_margin_rate)
    return np.where(p.is_store[node], np.maximum(lost, 0.0) * margin, 0.0)


def safety_stock(p: Problem, params: RoutingParams, node: np.ndarray, sku: np.ndarray) -> np.ndarray:
    """Store safety stock: window mean plus ``safety_z`` standard deviations (0 outside stores)."""
    mean, sigma = window_demand(p, params, node, sku)
    return np.where(p.is_store[node], mean + params.safety_z * sigma, 0.0)


def late_days(p: Problem, line: np.ndarray, node: np.ndarray, delay: np.ndarray | int = 0) -> np.ndarray:
    """Days past the promise at which ``line`` arrives from ``node`` (0 when on time)."""
    dispatch = p.order_day[line] + (p.order_hour[line] >= p.cutoff[node]).astype("timedelta64[D]")
    arrive = dispatch + (p.transit[node, p.zone[line]].astype(np.int64) + delay).astype("timedelta64[D]")
    return np.maximum((arrive - p.promised[line]).astype(np.int64), 0)


@dataclass
class Candidates:
    """Candidate (line, node) pairs of a set of lines, with the parts of their cost."""

    line: np.ndarray  # int64, position in the Problem
    node: np.ndarray  # int64
    line_cost: np.ndarray  # pick + extra items + store stock-out - aging credit: paid per line
    parcel_cost: np.ndarray  # parcel - one extra item + split penalty: paid once per (order, node)
    late: np.ndarray  # int64 days past the promise
    standalone: np.ndarray  # the line alone in its own parcel: line_cost + parcel - penalty + lateness


def candidate_pool(p: Problem, params: RoutingParams) -> np.ndarray:
    """Per customer zone, the nearest parcel-shipping nodes by parcel cost, then every FC; -1 pads."""
    pool = np.full((len(p.zone_ids), params.candidate_pool + int(p.is_fc.sum())), -1, np.int64)
    fcs = np.nonzero(p.is_fc)[0]
    for z in range(len(p.zone_ids)):
        cost = p.parcel[:, z] + p.pick_cost
        near = [n for n in np.argsort(cost, kind="stable") if np.isfinite(cost[n]) and not p.is_fc[n]]
        near = near[:params.candidate_pool] + [n for n in fcs if np.isfinite(cost[n])]
        pool[z, :len(near)] = near
    return pool


def candidates(p: Problem, params: RoutingParams, lines: np.ndarray, stock: np.ndarray,
               pool: np.ndarray) -> Candidates:
    """The cheapest ``max_candidates`` nodes with stock for each line, plus the FC when it has stock.

    Args:
        p: the packed batch.
        params: router parameters.
        lines: positions of the lines to consider.
        stock: current on-hand ``[nodes, skus]``.
        pool: :func:`candidate_pool`.

    Returns:
        The candidates, ordered by line then standalone cost.
    """
    zone = p.zone[lines]
    nodes = np.where(zone[:, None] >= 0, pool[np.maximum(zone, 0)], -1)
    line = np.broadcast_to(lines[:, None], nodes.shape)
    safe = np.maximum(nodes, 0)
    ok = (nodes >= 0) & (stock[safe, p.sku[line]] >= p.qty[line])
    line, node = line[ok], nodes[ok]
    cand = _price_candidates(p, params, line, node, stock)
    # Keep the cheapest per line, and the FC: the one node that can often take a whole order.
    order = np.lexsort((cand.standalone, line))
    line_sorted = line[order]
    start = np.searchsorted(line_sorted, line_sorted, side="left")
    rank = np.arange(len(order)) - start
    keep = order[(rank < params.max_candidates) | p.is_fc[node[order]]]
    keep = keep[np.lexsort((cand.standalone[keep], line[keep]))]
    return Candidates(*(getattr(cand, f)[keep] for f in ("line", "node", "line_cost", "parcel_cost", "late",
                                                          "standalone")))


def _price_candidates(p: Problem, params: RoutingParams, line: np.ndarray, node: np.ndarray,
                      stock: np.ndarray) -> Candidates:
    z, k, q = p.zone[line], p.sku[line], p.qty[line]
    extra = p.extra[node, z]
    aging = params.aging_credit * p.markdown[node, k] * p.price[line] * q
    line_cost = (p.pick_cost[node] + extra * q
                 + stockout_cost(p, params, node, k, stock[node, k], q, p.price[line]) - aging)
    parcel_cost = p.parcel[node, z] - extra + params.split_penalty
    late = late_days(p, line, node)
    standalone = line_cost + parcel_cost - params.split_penalty + params.late_penalty_per_day * late
    return Candidates(line, node, line_cost, parcel_cost, late, standalone)


@dataclass
class Priced:
    """The cost of a routing, per line (all arrays have one entry per line of the Problem)."""

    shipping: np.ndarray
    pick: np.ndarray
    split: np.ndarray
    late_cost: np.ndarray
    stockout: np.ndarray
    unfilled: np.ndarray
    aging_credit: np.ndarray
    late: np.ndarray  # int64 days past the promise, -1 for unfilled lines
    parcels: np.ndarray  # int64 parcels of the line's order
    below_safety: np.ndarray  # bool: a store line that leaves the store under its safety stock
    stock_after: np.ndarray  # int64 [nodes, skus]

    @property
    def total(self) -> np.ndarray:
        """Fulfilment cost per line (the aging credit is a preference, not a cost, and is left out)."""
        return self.shipping + self.pick + self.split + self.late_cost + self.stockout + self.unfilled


def price_routing(p: Problem, params: RoutingParams, node_of_line: np.ndarray) -> Priced:
    """Price a complete routing of the batch with the shared cost accounting.

    Lines beyond a node's pick capacity (in order-time order) are picked the next day, one day later.

    Args:
        p: the packed batch.
        params: router parameters.
        node_of_line: node code per line, -1 for a line left unfilled.

    Returns:
        Costs per line, parcels per order, store safety-stock breaches and the stock left.
    """
    n = len(node_of_line)
    done = node_of_line >= 0
    line, node = np.nonzero(done)[0], node_of_line[done]
    units, k = p.qty[line], p.sku[line]
    # Overflow: the i-th line of a node (in order time) beyond its capacity waits for tomorrow's pick.
    by_node = np.argsort(node, kind="stable")
    rank = np.empty(len(node), np.int64)
    rank[by_node] = np.arange(len(node)) - np.searchsorted(node[by_node], node[by_node], side="left")
    delay = (rank >= np.floor(p.capacity[node])).astype(np.int64)
    late = np.full(n, -1, np.int64)
    late[line] = late_days(p, line, node, delay)
    out = {name: np.zeros(n) for name in ("shipping", "pick", "split", "late_cost", "stockout", "aging")}
    out["pick"][line] = p.pick_cost[node]
    _parcels(p, params, line, node, late[line], out)
    stock_after = p.stock.copy()
    np.subtract.at(stock_after, (node, k), units)
    cell = node * len(p.sku_ids) + k
    cells, inverse = np.unique(cell, return_inverse=True)
    shipped = np.bincount(inverse, weights=units)
    cn, ck = cells // len(p.sku_ids), cells % len(p.sku_ids)
    price = np.bincount(inverse, weights=units * p.price[line]) / np.maximum(shipped, 1)
    cost = stockout_cost(p, params, cn, ck, p.stock[cn, ck], shipped, price)
    out["stockout"][line] = cost[inverse] * units / shipped[inverse]
    out["aging"][line] = params.aging_credit * p.markdown[node, k] * p.price[line] * units
    below = np.zeros(n, bool)
    below[line] = p.is_store[node] & (stock_after[node, k] < safety_stock(p, params, node, k))
    n_orders = int(p.order.max()) + 1 if n else 0
    pairs = np.unique(p.order[line] * len(p.node_ids) + node)
    parcels = np.bincount(pairs // len(p.node_ids), minlength=n_orders).astype(np.int64)
    return Priced(shipping=out["shipping"], pick=out["pick"], split=out["split"], late_cost=out["late_cost"],
                  stockout=out["stockout"], unfilled=np.where(done, 0.0, params.unfilled_penalty),
                  aging_credit=out["aging"], late=late, parcels=parcels[p.order],
                  below_safety=below, stock_after=stock_after)


def _parcels(p: Problem, params: RoutingParams, line: np.ndarray, node: np.ndarray, late: np.ndarray,
             out: dict[str, np.ndarray]) -> None:
    """Shipping, split penalty and lateness of each (order, node) parcel, shared by its lines' units."""
    if not len(line):
        return
    pair = p.order[line] * len(p.node_ids) + node
    pairs, inverse = np.unique(pair, return_inverse=True)
    units = p.qty[line]
    parcel_units = np.bincount(inverse, weights=units)
    first = np.searchsorted(pair[np.argsort(pair, kind="stable")], pairs)  # any line of the pair
    rep = np.argsort(pair, kind="stable")[first]
    z, pn = p.zone[line[rep]], node[rep]
    ship = p.parcel[pn, z] + p.extra[pn, z] * (parcel_units - 1)
    order_of_pair = pairs // len(p.node_ids)
    # Every parcel but the order's first pays the split penalty (pairs are sorted by order).
    is_first = np.r_[True, order_of_pair[1:] != order_of_pair[:-1]]
    split = np.where(is_first, 0.0, params.split_penalty)
    pair_late = np.zeros(len(pairs))
    np.maximum.at(pair_late, inverse, late.astype(float))
    share = units / parcel_units[inverse]
    out["shipping"][line] = ship[inverse] * share
    out["split"][line] = split[inverse] * share
    out["late_cost"][line] = params.late_penalty_per_day * pair_late[inverse] * share
