"""Route open order lines to fulfilment nodes at least total cost: the entry point of order orchestration.

Design, for 100,000 lines in well under a minute on two cores:

1. **Pack once.** Inputs are checked and coded as integers (:mod:`include.orchestration.inputs`); lines
   are sorted by order time, so the answer never depends on the caller's row order.
2. **Few candidates per line.** Each customer zone has a pool of its ``candidate_pool`` nearest
   parcel-shipping nodes (by parcel and pick cost) plus the FC; a line keeps the ``max_candidates``
   cheapest of them that hold its quantity, plus the FC when it has stock, the node most likely to take
   a whole order in one parcel. Far nodes never win on cost, so dropping them loses almost nothing.
3. **Chunks in order time.** Lines are cut into chunks of about ``chunk_lines`` whole orders. A chunk
   may use the share of each node's pick capacity that matches the share of the batch's lines seen so
   far, so early orders cannot starve later ones; the stock and capacity it uses are taken off before
   the next chunk, whose store stock-out costs are re-priced at the lower stock. This is how the
   workflow runs anyway (a batch every few minutes).
4. **Cheap where nothing collides, exact where it does.** Within a chunk every order first takes its
   own best plan (one parcel from one node, or each line from its cheapest node;
   :mod:`include.orchestration.heuristic`), under capacity prices raised by a few subgradient steps
   where nodes are overloaded. The orders those prices moved, the orders on a node still over its
   capacity and the orders on a stock cell asked for more than it holds are then solved jointly as one
   mixed-integer problem (:mod:`include.orchestration.milp`, HiGHS through ``scipy.optimize.milp``)
   around what the other orders took: parcels per (order, node), split penalties, store stock-out
   costs, lateness, stock per cell and pick capacity per node. Up to ``milp_max_lines`` lines per
   chunk are solved this way; beyond that (labour short nearly everywhere) the priced plan stands. A
   line whose candidates all ran dry gets the cheapest pool node that still holds it.
5. **Explain and flag.** Every line gets its candidates with their stand-alone cost, a reason code
   (``cheapest``, ``consolidated``, ``capacity``, ``stock``, ``lower_total_cost``, ``no_stock``) and the
   exception codes of :mod:`include.orchestration.params`; the costs are those of
   :func:`include.orchestration.costs.price_routing`, the same accounting the baselines are priced with.

Idempotency: the caller passes the keys (``order_id:line_no``) of lines already routed and they are
skipped; the same inputs always give the same routing (HiGHS is deterministic, and its search is bounded
by a node limit, not by the clock; the time limit is a safety net only).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import pandas as pd

from include.orchestration.costs import Candidates, candidate_pool, candidates
from include.orchestration.heuristic import colliding_orders, price_capacity
from include.orchestration.inputs import Problem, pack
from include.orchestration.milp import solve_chunk
from include.orchestration.params import RoutingParams
from include.orchestration.routing import Routing, build_routing, not_routed

REASONS = {
    "cheapest": "cheapest candidate",
    "consolidated": "ships with other lines of the order, saving a parcel",
    "capacity": "the cheaper node's pick capacity is used up",
    "stock": "the cheaper node's stock went to other lines",
    "lower_total_cost": "lowest total cost with the batch's other lines (store stock-out or lateness)",
    "no_stock": "no node holds the quantity: left for the next batch",
    "left_unfilled": "stock ran out under competing lines: left for the next batch",
}


def route_orders(lines: pd.DataFrame, rates: pd.DataFrame, nodes: pd.DataFrame, on_hand: pd.DataFrame,
                 forecast: pd.DataFrame, params: RoutingParams | None = None,
                 already_routed: Iterable[str] = ()) -> Routing:
    """Assign every open order line to a fulfilment node (or leave it for the next batch).

    Args:
        lines: open order lines: ``order_id, line_no, sku, quantity, unit_price, customer_zone,
            promised_date, ordered_at``.
        rates: carrier rate card: ``origin_location_id, zone, cost_per_parcel, cost_per_extra_item,
            transit_days``.
        nodes: ``location_id, node_type, ships_parcels, pick_cost_per_line, cutoff_hour, pick_capacity``
            (pick lines available to this batch; :func:`include.orchestration.inputs.batch_nodes`).
        on_hand: ``location_id, sku, on_hand`` and optionally ``markdown_risk`` in [0, 1].
        forecast: store demand ``location_id, sku, mean_daily, sigma_daily`` and optionally ``unit_margin``.
        params: router parameters; defaults when omitted.
        already_routed: ``order_id:line_no`` keys of lines routed by an earlier batch, skipped here.

    Returns:
        The routing: assignments, exceptions and a summary.

    Raises:
        ValueError: for a missing column, an empty or negative value, or a duplicate key in any input.
    """
    params = params or RoutingParams()
    started = time.perf_counter()
    todo = not_routed(lines, already_routed)
    p = pack(todo, rates, nodes, on_hand, forecast)
    node_of_line, cands, bound_nodes, bound_cells, stats = solve(p, params)
    text, reason, explanation = explain(p, node_of_line, cands, bound_nodes, bound_cells)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    stats["lines_skipped_already_routed"] = len(lines) - len(todo)
    return build_routing(p, params, node_of_line, text, reason, explanation, stats)


def chunks(p: Problem, size: int) -> list[np.ndarray]:
    """Positions of the lines of each chunk: whole orders, about ``size`` lines each, in order time."""
    if not p.n_lines:
        return []
    starts = np.nonzero(np.r_[True, p.order[1:] != p.order[:-1]])[0]
    cut = starts[np.searchsorted(starts, np.arange(size, p.n_lines, size))]
    edges = np.unique(np.r_[0, cut, p.n_lines])
    return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def solve(p: Problem, params: RoutingParams) -> tuple[np.ndarray, Candidates, np.ndarray, np.ndarray, dict]:
    """Solve the batch chunk by chunk, carrying stock and capacity from one chunk to the next.

    Returns:
        Node per line (-1: unfilled), every candidate considered, per line whether its cheapest node's
        capacity and stock bound in its chunk, and solver statistics.
    """
    stock, capacity = p.stock.copy(), p.capacity.astype(float).copy()
    node_of_line = np.full(p.n_lines, -1, np.int64)
    bound = (np.zeros(p.n_lines, bool), np.zeros(p.n_lines, bool))
    pool = candidate_pool(p, params)
    # The second chance looks at every node that ships to the zone, not only the nearest few.
    everyone = replace(params, candidate_pool=len(p.node_ids), max_candidates=len(p.node_ids))
    wide_pool = candidate_pool(p, everyone)
    parts, stats = [], {"policy": "router", "chunks": 0, "milp_solves": 0, "milp_lines": 0, "milp_not_optimal": 0}
    start_capacity, seen = capacity.copy(), 0
    for lines in chunks(p, params.chunk_lines):
        cand = candidates(p, params, lines, stock, pool)
        parts.append(cand)
        # Whole picks pro rata to the lines seen so far: a small store's few picks spread over the chunks
        # instead of rounding to none, and what a chunk leaves unused rolls on to the next.
        seen += len(lines)
        share = np.minimum(np.maximum(np.floor(start_capacity * seen / p.n_lines) - (start_capacity - capacity),
                                      0.0), capacity)
        plan, moved, price = price_capacity(p, params, lines, cand, share)
        best = _best_node(lines, cand)
        # A line kept off its cheapest node by that node's capacity price: capacity is the reason.
        bound[0][lines[best >= 0]] = price[best[best >= 0]] > 0
        hard = np.isin(p.order[lines], colliding_orders(p, lines, cand, plan, stock, share, moved,
                                                            params.milp_max_lines))
        if hard.any():
            plan[hard] = _solve_collisions(p, params, lines, cand, plan, hard, stock, share, bound, stats)
        ok = plan >= 0
        np.subtract.at(stock, (plan[ok], p.sku[lines[ok]]), p.qty[lines[ok]])
        if not ok.all():
            left = capacity - np.bincount(plan[ok], minlength=len(capacity))
            _second_chance(p, everyone, lines, plan, stock, left, wide_pool)
            ok = plan >= 0
        node_of_line[lines] = plan
        capacity = np.maximum(capacity - np.bincount(plan[ok], minlength=len(capacity)), 0.0)
        stats["chunks"] += 1
    fields = ("line", "node", "line_cost", "parcel_cost", "late", "standalone")
    empty = [np.zeros(0, np.int64) if f in ("line", "node", "late") else np.zeros(0) for f in fields]
    cands = Candidates(*(np.concatenate([getattr(c, f) for c in parts]) if parts else e
                         for f, e in zip(fields, empty, strict=True)))
    stats["candidates_per_line"] = round(len(cands.line) / max(p.n_lines, 1), 2)
    return node_of_line, cands, bound[0], bound[1], stats


def _second_chance(p: Problem, params: RoutingParams, lines: np.ndarray, plan: np.ndarray, stock: np.ndarray,
                   capacity: np.ndarray, pool: np.ndarray) -> None:
    """Give lines the chunk left unfilled the cheapest node that still holds them, in order time.

    A line's few candidates can all run dry inside one chunk while a node further down its pool still
    has the units; shipping from there beats leaving the customer waiting. A node with picks left is
    preferred; one without is taken only when a day's delay costs less than leaving the line unfilled.
    ``plan``, ``stock`` and ``capacity`` are updated in place.
    """
    overflow_ok = params.late_penalty_per_day + params.overflow_penalty < params.unfilled_penalty
    missing = np.nonzero(plan < 0)[0]
    cand = candidates(p, params, lines[missing], stock, pool)
    starts = np.searchsorted(cand.line, lines[missing])
    ends = np.searchsorted(cand.line, lines[missing], side="right")
    for i, a, b in zip(missing, starts, ends, strict=True):
        k, q = p.sku[lines[i]], p.qty[lines[i]]
        held = [n for n in cand.node[a:b] if stock[n, k] >= q]
        ready = [n for n in held if capacity[n] >= 1] or (held if overflow_ok else [])
        if ready:
            plan[i] = ready[0]
            stock[ready[0], k] -= q
            capacity[ready[0]] -= 1


def _solve_collisions(p: Problem, params: RoutingParams, lines: np.ndarray, cand: Candidates, plan: np.ndarray,
                      hard: np.ndarray, stock: np.ndarray, share: np.ndarray,
                      bound: tuple[np.ndarray, np.ndarray], stats: dict) -> np.ndarray:
    """Re-solve the colliding orders of a chunk jointly, around what the other orders already took."""
    easy = ~hard & (plan >= 0)
    left = stock.copy()
    np.subtract.at(left, (plan[easy], p.sku[lines[easy]]), p.qty[lines[easy]])
    cap = np.maximum(share - np.bincount(plan[easy], minlength=len(share)), 0.0)
    sub_lines = lines[hard]
    keep = np.isin(cand.line, sub_lines)
    sub = Candidates(*(getattr(cand, f)[keep] for f in ("line", "node", "line_cost", "parcel_cost", "late",
                                                         "standalone")))
    result = solve_chunk(p, params, sub_lines, sub, left, cap)
    best = _best_node(sub_lines, sub)
    has = best >= 0
    bound[0][sub_lines[has]] = result.capacity_bound[best[has]]
    bound[1][sub_lines[has]] = np.isin(best[has] * len(p.sku_ids) + p.sku[sub_lines[has]], result.stock_bound)
    stats["milp_solves"] += 1
    stats["milp_lines"] += len(sub_lines)
    stats["milp_not_optimal"] += int(result.status != 0)
    return result.node_of_line


def _best_node(lines: np.ndarray, cand: Candidates) -> np.ndarray:
    """Cheapest stand-alone candidate node per line (candidates come sorted by line, then cost)."""
    best = np.full(len(lines), -1, np.int64)
    first = np.r_[True, cand.line[1:] != cand.line[:-1]] if len(cand.line) else np.zeros(0, bool)
    best[np.searchsorted(lines, cand.line[first])] = cand.node[first]
    return best


def explain(p: Problem, node_of_line: np.ndarray, cand: Candidates, bound_node: np.ndarray,
            bound_cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates with their cost, a reason code and a sentence for every line.

    Returns:
        ``(candidates, reason, explanation)``, one string per line each.
    """
    n = p.n_lines
    starts = np.searchsorted(cand.line, np.arange(n + 1))
    labels = [f"{node}={cost:.2f}" for node, cost in zip(p.node_ids[cand.node], cand.standalone, strict=True)]
    text = np.array([";".join(labels[a:b]) for a, b in zip(starts[:-1], starts[1:], strict=True)], dtype=object)
    has = starts[1:] > starts[:-1]
    best = np.where(has, cand.node[np.minimum(starts[:-1], max(len(cand.node) - 1, 0))] if len(cand.node)
                    else -1, -1)
    best_cost = np.where(has, cand.standalone[np.minimum(starts[:-1], max(len(cand.node) - 1, 0))]
                         if len(cand.node) else 0.0, 0.0)
    pair = p.order * len(p.node_ids) + node_of_line
    _, inverse, counts = np.unique(pair, return_inverse=True, return_counts=True)
    shared = (counts[inverse] > 1) & (node_of_line >= 0)
    reason = np.select(
        [~has, node_of_line < 0, node_of_line == best, shared, bound_node, bound_cell],
        ["no_stock", "left_unfilled", "cheapest", "consolidated", "capacity", "stock"], "lower_total_cost")
    chosen = np.where(node_of_line >= 0, p.node_ids[np.maximum(node_of_line, 0)], "-")
    explanation = np.array([
        f"{REASONS[r]}: {c} chosen of {b - a} candidate(s); cheapest alone {p.node_ids[bn]} at {bc:.2f}"
        if a < b else REASONS[r]
        for r, c, a, b, bn, bc in zip(reason, chosen, starts[:-1], starts[1:], np.maximum(best, 0), best_cost,
                                      strict=True)], dtype=object)
    return text, reason.astype(object), explanation
