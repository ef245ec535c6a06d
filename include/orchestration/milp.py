"""The mixed-integer problem of one chunk of order lines, solved with scipy's ``milp`` (HiGHS).

Variables, for the chunk's candidate (line, node) pairs ``c``, its (order, node) parcels ``p``, its lines
``l`` and the nodes ``n`` whose pick capacity may bind::

    x[c] in {0, 1}   line of c ships from the node of c
    y[p] in {0, 1}   the order sends a parcel from the node of p
    u[l] in [0, 1]   line l is left for the next batch (only when stock runs out under it)
    o[n] >= 0        lines picked at n beyond its capacity share (picked a day later)

    minimise  sum line_cost[c] x[c] + sum parcel_cost[p] y[p] + unfilled_penalty sum u[l]
              + (late_penalty_per_day + overflow_penalty) sum o[n]
    s.t.      sum_{c of l} x[c] + u[l] = 1                 every line once
              x[c] <= y[p(c)]                              a line travels in its node's parcel
              sum_{c at (n, sku)} qty[c] x[c] <= on_hand    for the cells the candidates could exhaust
              sum_{c at n} x[c] - o[n] <= capacity share    for the nodes the candidates could overload

A parcel that only one candidate line could use has no ``y``: its cost sits on that line's ``x``.
The parcel cost carries the carrier's price per parcel, the split penalty and the parcel's lateness;
lines carry pick, extra items, store stock-out cost and the aging credit (see
:mod:`include.orchestration.costs`). Stock and capacity rows are written only where the candidates could
break them, which keeps the matrix small; the linking rows ``x <= y`` are disaggregated, which keeps the
LP relaxation tight, so that it is integral for most lines. The relaxation is solved first and the
variables it sets to 0 or 1 are fixed; HiGHS then branches over the few fractional lines only (an
"LP-and-fix" solve: the answer is optimal among assignments that keep the relaxation's integral choices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array, csr_array

from include.orchestration.costs import Candidates
from include.orchestration.inputs import Problem
from include.orchestration.params import RoutingParams


@dataclass
class ChunkResult:
    """Solution of one chunk: the node per line (-1: left unfilled) and what bound."""

    node_of_line: np.ndarray  # int64 [chunk lines]
    capacity_bound: np.ndarray  # bool [nodes]: the chunk used its whole capacity share there
    stock_bound: np.ndarray  # int64 cell codes (node * skus + sku) whose stock the chunk used up
    status: int
    objective: float


def solve_chunk(p: Problem, params: RoutingParams, lines: np.ndarray, cand: Candidates, stock: np.ndarray,
                capacity: np.ndarray) -> ChunkResult:
    """Assign the chunk's lines to nodes at least total cost.

    Args:
        p: the packed batch.
        params: router parameters.
        lines: positions of the chunk's lines, ascending.
        cand: their candidates (:func:`include.orchestration.costs.candidates`).
        stock: on-hand ``[nodes, skus]`` left by earlier chunks.
        capacity: pick lines per node available to this chunk.

    Returns:
        The assignment of the chunk's lines.

    Raises:
        RuntimeError: when HiGHS returns no feasible solution (cannot happen: ``u`` keeps it feasible).
    """
    model = _Model(p, params, lines, cand, stock, capacity)
    constraints = LinearConstraint(model.matrix(), model.lower_rhs(), model.upper_rhs())
    options = {"time_limit": params.time_limit_s, "mip_rel_gap": params.mip_rel_gap,
               "node_limit": params.node_limit, "disp": False}
    lower, upper = np.zeros(model.n_var), model.upper.copy()
    relaxed = milp(model.cost, integrality=np.zeros(model.n_var), bounds=Bounds(lower, upper),
                   constraints=constraints, options=options)
    if relaxed.x is not None:
        # Most of the relaxation is integral already: fix those choices and branch on the rest only.
        # HiGHS spends far longer closing the last fraction of a percent of the root gap than this loses.
        integer = model.integrality == 1
        lower[integer & (relaxed.x > 1 - 1e-6)] = 1.0
        upper[integer & (relaxed.x < 1e-6)] = 0.0
    res = milp(model.cost, integrality=model.integrality, bounds=Bounds(lower, upper), constraints=constraints,
               options=options)
    if res.x is None:
        raise RuntimeError(f"HiGHS found no solution for a chunk of {len(lines)} lines: {res.message}")
    chosen = res.x[:len(cand.line)] > 0.5
    node_of_line = np.full(len(lines), -1, np.int64)
    node_of_line[model.li[chosen]] = cand.node[chosen]
    used = np.bincount(cand.node[chosen], minlength=len(p.node_ids))
    taken = np.bincount(model.cinv[chosen], weights=p.qty[cand.line][chosen], minlength=len(model.cells))
    return ChunkResult(node_of_line=node_of_line, capacity_bound=used >= np.floor(capacity),
                       stock_bound=model.cells[model.tight_cell & (taken >= model.cell_stock)],
                       status=int(res.status), objective=float(res.fun))


class _Model:
    """Variables, costs and sparse rows of one chunk's problem.

    A parcel (order, node) that only one candidate line could use needs no ``y`` of its own: its cost
    goes onto that line's ``x``, which removes most ``y`` columns and linking rows from the problem.
    """

    def __init__(self, p: Problem, params: RoutingParams, lines: np.ndarray, cand: Candidates,
                 stock: np.ndarray, capacity: np.ndarray) -> None:
        n_sku = len(p.sku_ids)
        self.li = np.searchsorted(lines, cand.line)
        pairs, pinv = np.unique(p.order[cand.line] * len(p.node_ids) + cand.node, return_inverse=True)
        pair_cost = np.zeros(len(pairs))
        np.maximum.at(pair_cost, pinv, cand.parcel_cost + params.late_penalty_per_day * cand.late)
        shared = np.bincount(pinv, minlength=len(pairs)) > 1
        y_of_pair = np.cumsum(shared) - 1
        self.cells, self.cinv = np.unique(cand.node * n_sku + p.sku[cand.line], return_inverse=True)
        self.cell_stock = stock[self.cells // n_sku, self.cells % n_sku]
        self.tight_cell = np.bincount(self.cinv, weights=p.qty[cand.line]) > self.cell_stock
        load = np.bincount(cand.node, minlength=len(p.node_ids))
        tight_node = np.nonzero(load > np.floor(capacity))[0]
        n_cand, n_y, n_lines, n_over = len(cand.line), int(shared.sum()), len(lines), len(tight_node)
        self.n_var = n_cand + n_y + n_lines + n_over
        x_cost = cand.line_cost + np.where(shared[pinv], 0.0, pair_cost[pinv])
        self.cost = np.concatenate([x_cost, pair_cost[shared], np.full(n_lines, params.unfilled_penalty),
                                    np.full(n_over, params.late_penalty_per_day + params.overflow_penalty)])
        self.integrality = np.r_[np.ones(n_cand + n_y), np.zeros(n_lines + n_over)]
        self.upper = np.r_[np.ones(n_cand + n_y + n_lines), np.full(n_over, np.inf)]
        self._rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._rhs: list[tuple[np.ndarray, np.ndarray]] = []
        x, u0, o0 = np.arange(n_cand), n_cand + n_y, n_cand + n_y + n_lines
        # Every line exactly once, or left unfilled.
        self._block(n_lines, [(self.li, x, 1.0), (np.arange(n_lines), u0 + np.arange(n_lines), 1.0)],
                    np.ones(n_lines), np.ones(n_lines))
        # x[c] - y[p(c)] <= 0 for lines of a parcel that several lines could share.
        link = np.nonzero(shared[pinv])[0]
        self._block(len(link), [(np.arange(len(link)), link, 1.0),
                                (np.arange(len(link)), n_cand + y_of_pair[pinv[link]], -1.0)],
                    np.full(len(link), -np.inf), np.zeros(len(link)))
        # Stock of the cells the candidates could exhaust.
        tight = np.nonzero(self.tight_cell)[0]
        row = np.full(len(self.cells), -1)
        row[tight] = np.arange(len(tight))
        hit = np.nonzero(row[self.cinv] >= 0)[0]
        self._block(len(tight), [(row[self.cinv][hit], hit, p.qty[cand.line][hit].astype(float))],
                    np.full(len(tight), -np.inf), self.cell_stock[tight].astype(float))
        # Pick capacity of the nodes the candidates could overload, with paid overflow.
        row = np.full(len(p.node_ids), -1)
        row[tight_node] = np.arange(n_over)
        hit = np.nonzero(row[cand.node] >= 0)[0]
        self._block(n_over, [(row[cand.node][hit], hit, 1.0), (np.arange(n_over), o0 + np.arange(n_over), -1.0)],
                    np.full(n_over, -np.inf), np.floor(capacity[tight_node]))

    def _block(self, n_rows: int, entries: list, lower: np.ndarray, upper: np.ndarray) -> None:
        offset = sum(len(lo) for lo, _ in self._rhs)
        for r, c, v in entries:
            r = np.asarray(r, np.int64)
            self._rows.append((r + offset, np.asarray(c, np.int64), np.broadcast_to(np.asarray(v, float), r.shape)))
        self._rhs.append((lower, upper))

    def matrix(self) -> csr_array:
        """The constraint matrix, rows in the order they were added."""
        n_rows = sum(len(lo) for lo, _ in self._rhs)
        rows, cols, vals = (np.concatenate([e[i] for e in self._rows]) for i in range(3))
        return coo_array((vals, (rows, cols)), shape=(n_rows, self.n_var)).tocsr()

    def lower_rhs(self) -> np.ndarray:
        """Lower bounds of the rows."""
        return np.concatenate([lo for lo, _ in self._rhs])

    def upper_rhs(self) -> np.ndarray:
        """Upper bounds of the rows."""
        return np.concatenate([hi for _, hi in self._rhs])
