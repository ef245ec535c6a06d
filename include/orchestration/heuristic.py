"""Order-by-order best choice for the bulk of a chunk, and the orders whose choices collide.

Most orders do not compete for anything: their best choice alone is their best choice in the batch. For
each order this module compares two plans on the candidates' costs: the cheapest node that can ship the
whole order in one parcel, and every line from its own cheapest node (lines that land on the same node
share the parcel). Where the chosen plans together ask a node for more picks than its capacity share, or
a stock cell for more units than it holds, every order with a candidate on that resource is handed to the
mixed-integer problem; the others keep their choice.
"""

from __future__ import annotations

import numpy as np

from include.orchestration.costs import Candidates
from include.orchestration.inputs import Problem
from include.orchestration.params import RoutingParams


def order_level_choice(p: Problem, params: RoutingParams, lines: np.ndarray, cand: Candidates,
                       surcharge: np.ndarray | None = None) -> np.ndarray:
    """Best node per line of each order taken alone (-1 for lines without a candidate).

    Args:
        p: the packed batch.
        params: router parameters.
        lines: positions of the chunk's lines, ascending.
        cand: their candidates, sorted by line then stand-alone cost.
        surcharge: price per picked line at each node (capacity prices), added to the line cost.

    Returns:
        Node per chunk line.
    """
    m = len(p.node_ids)
    if surcharge is not None and surcharge.any():
        cost = cand.line_cost + surcharge[cand.node]
        ranked = np.lexsort((cost + cand.parcel_cost + params.late_penalty_per_day * cand.late, cand.line))
        cand = Candidates(cand.line[ranked], cand.node[ranked], cost[ranked], cand.parcel_cost[ranked],
                          cand.late[ranked], cand.standalone[ranked])
    li = np.searchsorted(lines, cand.line)
    order = p.order[cand.line]
    parcel = cand.parcel_cost + params.late_penalty_per_day * cand.late
    pair = order * m + cand.node
    pairs, pinv = np.unique(pair, return_inverse=True)
    pair_parcel = np.zeros(len(pairs))
    np.maximum.at(pair_parcel, pinv, parcel)
    # Plan A, whole order from one node: valid where the node is a candidate of every line.
    count = np.bincount(pinv, minlength=len(pairs))
    lines_of_order = np.bincount(p.order[lines], minlength=p.order[lines].max() + 1)
    pair_order = pairs // m
    whole = np.bincount(pinv, weights=cand.line_cost, minlength=len(pairs)) + pair_parcel
    whole = np.where(count == lines_of_order[pair_order], whole, np.inf)
    best_whole = np.full(len(lines_of_order), np.inf)
    np.minimum.at(best_whole, pair_order, whole)
    # Plan B, each line from its cheapest node alone (candidates come sorted, so the first is cheapest).
    first = np.r_[True, cand.line[1:] != cand.line[:-1]] if len(cand.line) else np.zeros(0, bool)
    split_node = np.full(len(lines), -1, np.int64)
    split_node[li[first]] = cand.node[first]
    used_pairs = np.unique(pinv[first])
    split_cost = np.bincount(order[first], weights=cand.line_cost[first], minlength=len(lines_of_order))
    split_cost += np.bincount(pair_order[used_pairs], weights=pair_parcel[used_pairs],
                              minlength=len(lines_of_order))
    complete = np.bincount(order[first], minlength=len(lines_of_order)) == lines_of_order
    split_cost = np.where(complete, split_cost, np.inf)
    take_whole = best_whole < split_cost
    # The node of each order's cheapest whole-order pair (ties go to the lower node code: deterministic).
    is_best = np.isfinite(whole) & (whole == best_whole[pair_order])
    whole_node = np.full(len(lines_of_order), -1, np.int64)
    hits = np.nonzero(is_best)[0][::-1]
    whole_node[pair_order[hits]] = pairs[hits] % m
    line_order = p.order[lines]
    return np.where(take_whole[line_order], whole_node[line_order], split_node)


def price_capacity(p: Problem, params: RoutingParams, lines: np.ndarray, cand: Candidates,
                   capacity: np.ndarray, rounds: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order-level choices under capacity prices that bring each node's picks within its capacity.

    A subgradient search on the Lagrangian of the capacity rows: a node asked for more picks than its
    capacity gets dearer per line, one with room gets cheaper (never below zero), until the choices fit
    or the rounds run out. What still does not fit is solved exactly by :func:`colliding_orders` and the
    mixed-integer problem.

    Args:
        p: the packed batch.
        params: router parameters.
        lines: positions of the chunk's lines, ascending.
        cand: their candidates.
        capacity: pick lines per node available to the chunk.
        rounds: price updates at most.

    Returns:
        Node per chunk line; per chunk line whether the prices moved it off its own best node (the
        prices move lines in herds, so the exact solve decides these again); the price per node.
    """
    price = np.zeros(len(p.node_ids))
    limit = np.floor(capacity)
    plan = base = order_level_choice(p, params, lines, cand)
    # A step of a few currency units per line of relative overload: the scale of the cost differences.
    step = 2.0
    for _ in range(rounds):
        picks = np.bincount(plan[plan >= 0], minlength=len(price))
        if not (picks > limit).any():
            break
        price = np.maximum(price + step * (picks - limit) / np.maximum(limit, 1.0), 0.0)
        step *= 0.8
        plan = order_level_choice(p, params, lines, cand, price)
    return plan, plan != base, price



def colliding_orders(p: Problem, lines: np.ndarray, cand: Candidates, node_of_line: np.ndarray,
                     stock: np.ndarray, capacity: np.ndarray, moved: np.ndarray,
                     max_lines: int | None = None) -> np.ndarray:
    """Orders (codes) placed on a node or stock cell that the chosen plans overload.

    Args:
        p: the packed batch.
        lines: positions of the chunk's lines.
        cand: their candidates.
        node_of_line: the chosen node per chunk line (-1: none).
        stock: on-hand ``[nodes, skus]`` available to the chunk.
        capacity: pick lines per node available to the chunk.
        moved: per chunk line, whether capacity prices moved it (:func:`price_capacity`).
        max_lines: when the capacity collisions alone hold more lines than this (labour short nearly
            everywhere, as on a peak day), the capacity prices' plan stands and only the stock collisions
            are returned: a problem that size gains little from an exact solve and costs seconds.

    Returns:
        Sorted order codes to solve jointly; lines without a candidate are never included.
    """
    n_sku = len(p.sku_ids)
    ok = node_of_line >= 0
    picks = np.bincount(node_of_line[ok], minlength=len(p.node_ids))
    over_node = picks > np.floor(capacity)
    cell = node_of_line[ok] * n_sku + p.sku[lines[ok]]
    cells, inverse = np.unique(cell, return_inverse=True)
    units = np.bincount(inverse, weights=p.qty[lines[ok]])
    over_cells = cells[units > stock[cells // n_sku, cells % n_sku]]
    # Only orders placed on an overloaded resource must move; the solve gives them every candidate.
    placed = lines[ok]
    on_node = np.union1d(p.order[placed[over_node[node_of_line[ok]]]], p.order[lines[moved]])
    if max_lines is not None and np.isin(p.order[lines], on_node).sum() > max_lines:
        on_node = on_node[:0]
    on_cell = np.unique(p.order[placed[np.isin(cell, over_cells)]])
    return np.union1d(on_node, on_cell)
