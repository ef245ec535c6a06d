"""Estimation of the multiplicative driver effects of every series at once: a Poisson (quasi-likelihood)
regression of demand on the drivers around a local baseline, with each series' coefficients shrunk toward
its item's and the item's toward the shard's.

The model of an observed period is ``mean = level[block] * season[phase] * exp(x . beta)``: a level per
block of ``block`` periods (so trends and slow swings never count as driver effects), a seasonal index
(for short seasons such as the week) and the drivers. Numeric drivers come as ``[p, n, T]`` arrays, the
event label of each period as an integer code (``0``: no event), so the one-hot columns of the labels are
never materialised: their sums are bincounts.

Each iteration updates the baseline given the effects, then takes one penalised Newton step for the
effects. The step is pooled: the shard's coefficients from the summed information of every series (prior
mean 0), each item's from its series' information with the shard's as prior mean, and each series' own
from its information with its item's as prior mean. A series whose drivers never moved contributes no
information and takes its item's (or the shard's) coefficients; one whose drivers moved often keeps close
to its own. The information is divided by each series' Pearson dispersion, so a noisy series counts less.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DriverDesign", "estimate_effects", "linear_predictor"]

#: Prior standard deviation of the shard's coefficients around 0, of an item's around the shard's, and
#: of a series' around its item's (log-demand effect per unit of the driver).
PRIOR_SD_SHARD = 1.0
PRIOR_SD_ITEM = 0.5
PRIOR_SD_SERIES = 0.5
#: The same for event labels. A label comes once a year, so one series' own effect rests on a handful of
#: days and mostly measures noise: labels are pooled much harder (on the generated world, per-series
#: Black Friday effects at the numeric drivers' prior overshot the held-out Black Friday by half).
PRIOR_SD_ITEM_EVENT = 0.2
PRIOR_SD_SERIES_EVENT = 0.1
#: Penalised Newton iterations (the baseline is refitted before each).
ITERATIONS = 5
#: Bounds of one period's log multiplier: an estimate beyond them is a data problem, not a driver.
LOG_EFFECT_BOUNDS = (-3.0, 3.0)
#: Bounds of one coefficient.
COEF_BOUNDS = (-6.0, 6.0)


@dataclass
class DriverDesign:
    """The drivers of every series on the packed grid.

    Attributes:
        numeric: ``[p, n, T]`` numeric drivers (0: the regular level, and for missing values).
        events: ``[n, T]`` event label codes, ``0`` for none (``None`` without an event column).
        n_labels: Event labels (codes ``1..n_labels``).
        item: ``[n]`` item code of each series, ``-1`` where the series has no item to pool over.
    """

    numeric: np.ndarray
    events: np.ndarray | None
    n_labels: int
    item: np.ndarray

    @property
    def n_coef(self) -> int:
        """Numeric coefficients followed by one per event label."""
        return self.numeric.shape[0] + self.n_labels


def linear_predictor(numeric: np.ndarray, events: np.ndarray | None, beta: np.ndarray) -> np.ndarray:
    """``[n, T]`` log multiplier ``x . beta`` of every series and period, clipped to the bounds."""
    p = numeric.shape[0]
    eta = np.einsum("pnt,np->nt", numeric, beta[:, :p]) if p else np.zeros(numeric.shape[1:])
    if events is not None and beta.shape[1] > p:
        labels = np.concatenate([np.zeros((beta.shape[0], 1)), beta[:, p:]], axis=1)
        eta = eta + np.take_along_axis(labels, events, axis=1)
    return np.clip(eta, *LOG_EFFECT_BOUNDS)


@dataclass(frozen=True)
class _Grid:
    """Time groupings of the packed grid as one-hot matrices, so group sums are matrix products."""

    block: np.ndarray  # [T] block of each period
    blocks: np.ndarray  # [T, n_blocks] one-hot
    phases: np.ndarray | None  # [T, m] one-hot, None without a seasonal index
    phase: np.ndarray | None  # [T] phase of each period
    label_cell: np.ndarray | None  # [n * T] flat (series, label) cell of each period

    @staticmethod
    def of(t: int, block_len: int, m: int, events: np.ndarray | None, n_labels: int) -> _Grid:
        block = (t - 1 - np.arange(t)) // max(block_len, 1)
        blocks = (block[:, None] == np.arange(int(block.max()) + 1)[None, :]).astype(np.float64)
        # A long season (52 weeks) gets its own index once two seasons are in the history.
        use_phase = 1 < m and (m <= block_len or t >= 2 * m)
        phase = (np.arange(t) - t) % m if use_phase else None
        phases = (phase[:, None] == np.arange(m)[None, :]).astype(np.float64) if use_phase else None
        label_cell = None
        if events is not None and n_labels:
            label_cell = (np.arange(events.shape[0])[:, None] * (n_labels + 1) + events).ravel()
        return _Grid(block, blocks, phases, phase, label_cell)


def _baseline(y: np.ndarray, obs: np.ndarray, effect: np.ndarray, grid: _Grid, season: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[n, T]`` baseline mean (level per block times seasonal index) given the drivers' multiplier, and
    the seasonal index ``[n, m]`` it used (one alternation per call, started from ``season``).

    Args:
        y: ``[n, T]`` demand with unknown periods as 0.
        obs: Known periods.
        effect: ``[n, T]`` multiplier of the drivers.
        grid: Time groupings.
        season: ``[n, m]`` seasonal index of the previous call (ones at first).
    """
    e = np.where(obs, effect, 0.0)
    seasonal = season[:, grid.phase] if grid.phases is not None else 1.0
    den = (seasonal * e) @ grid.blocks
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(den > 0, (y @ grid.blocks) / np.maximum(den, 1e-300), 0.0)[:, grid.block]
    if grid.phases is None:
        return level, season
    pden = (level * e) @ grid.phases
    with np.errstate(invalid="ignore", divide="ignore"):
        idx = np.where(pden > 0, (y @ grid.phases) / np.maximum(pden, 1e-300), np.nan)
        known = np.isfinite(idx)
        idx = idx / (np.where(known, idx, 0.0).sum(axis=1, keepdims=True) / known.sum(axis=1, keepdims=True))
    idx = np.where(np.isfinite(idx) & (idx > 0), idx, 1.0)
    return level * idx[:, grid.phase], idx


def _information(design: DriverDesign, Y: np.ndarray, obs: np.ndarray, mu: np.ndarray,
                 grid: _Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per series: information ``[n, k, k]``, score ``[n, k]`` and Pearson dispersion ``[n]``.

    Numeric drivers are centred within each block (weighted by the fitted mean), which accounts for the
    block levels being estimated too; event indicators are sparse within a block and left as they are.
    """
    n, t = Y.shape
    p, k = design.numeric.shape[0], design.n_coef
    w = np.where(obs, mu, 0.0)
    resid = np.where(obs, Y - mu, 0.0)
    wsum = w @ grid.blocks
    centred = np.empty_like(design.numeric)
    for a in range(p):
        wx = (w * design.numeric[a]) @ grid.blocks
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(wsum > 0, wx / np.maximum(wsum, 1e-300), 0.0)[:, grid.block]
        centred[a] = design.numeric[a] - mean
    info = np.zeros((n, k, k))
    score = np.zeros((n, k))
    for a in range(p):
        score[:, a] = (centred[a] * resid).sum(axis=1)
        for b in range(a, p):
            info[:, a, b] = info[:, b, a] = (w * centred[a] * centred[b]).sum(axis=1)
    if grid.label_cell is not None:
        L = design.n_labels + 1

        def per_label(values: np.ndarray) -> np.ndarray:
            return np.bincount(grid.label_cell, weights=values.ravel(), minlength=n * L).reshape(n, L)[:, 1:]

        lab = np.arange(p, k)
        info[:, lab, lab] = per_label(w)
        score[:, p:] = per_label(resid)
        for a in range(p):
            info[:, a, p:] = info[:, p:, a] = per_label(w * centred[a])
    n_obs = obs.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = np.where(w > 0, resid**2 / np.maximum(w, 1e-300), 0.0).sum(axis=1)
        dispersion = pearson / np.maximum(n_obs - grid.blocks.shape[1] - k, 1)
    dispersion = np.where(np.isfinite(dispersion) & (dispersion > 1.0), dispersion, 1.0)
    return info, score, dispersion


def _solve(info: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched ``info^-1 rhs``; a singular system (cannot happen with a prior) gives its least squares."""
    try:
        return np.linalg.solve(info, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.einsum("nij,nj->ni", np.linalg.pinv(info), rhs)


def _pooled_step(info: np.ndarray, target: np.ndarray, item: np.ndarray, p: int) -> np.ndarray:
    """Shrunk coefficients per series (``p`` numeric, then event labels).

    ``target`` is ``info @ working coefficients``: summing it and ``info`` over a group pools the
    group's evidence exactly as one regression over all its series would.
    """
    k = info.shape[1]
    numeric = np.arange(k) < p
    shard_prec = np.full(k, 1.0 / PRIOR_SD_SHARD**2)
    item_prec = np.where(numeric, 1.0 / PRIOR_SD_ITEM**2, 1.0 / PRIOR_SD_ITEM_EVENT**2)
    series_prec = np.where(numeric, 1.0 / PRIOR_SD_SERIES**2, 1.0 / PRIOR_SD_SERIES_EVENT**2)
    shard = _solve((info.sum(axis=0) + np.diag(shard_prec))[None], target.sum(axis=0)[None])[0]
    prior = np.repeat(shard[None, :], len(item), axis=0)
    has_item = item >= 0
    if has_item.any():
        codes = item[has_item]
        n_items = int(codes.max()) + 1
        item_info = np.zeros((n_items, k, k))
        item_target = np.zeros((n_items, k))
        np.add.at(item_info, codes, info[has_item])
        np.add.at(item_target, codes, target[has_item])
        per_item = _solve(item_info + np.diag(item_prec), item_target + (shard * item_prec)[None, :])
        prior[has_item] = per_item[codes]
    return _solve(info + np.diag(series_prec), target + prior * series_prec)


def estimate_effects(Y: np.ndarray, design: DriverDesign, block_len: int, m: int) -> np.ndarray:
    """``[n, k]`` shrunk log-demand coefficients of every series (numeric drivers, then event labels).

    Args:
        Y: ``[n, T]`` demand, ``NaN`` where unknown.
        design: The drivers on the same grid.
        block_len: Periods per baseline level block (blocks end at the origin).
        m: Season length; a seasonal index is fitted when ``1 < m <= block_len``, or when the history
            holds two seasons.
    """
    n, t = Y.shape
    k = design.n_coef
    beta = np.zeros((n, k))
    if k == 0 or n == 0:
        return beta
    obs = np.isfinite(Y)
    # A series whose drivers never move on a known period carries no information on them: its
    # coefficients are its item's or the shard's, which the pooled step gives it with zero evidence.
    # Only the informative series go through the regression (a promotion calendar on a third of the
    # series costs a third of the work).
    moves = (np.abs(design.numeric) > 0).any(axis=0) if design.numeric.shape[0] else np.zeros((n, t), dtype=bool)
    if design.events is not None:
        moves = moves | (design.events > 0)
    sub = np.flatnonzero((moves & obs).any(axis=1))
    if len(sub) == 0:
        return beta
    Ys, obs_s = Y[sub], obs[sub]
    y = np.where(obs_s, Ys, 0.0)
    events = None if design.events is None else design.events[sub]
    local = DriverDesign(design.numeric[:, sub], events, design.n_labels, design.item[sub])
    grid = _Grid.of(t, block_len, m, events, design.n_labels)
    season = np.ones((len(sub), max(m, 1)))
    info = np.zeros((n, k, k))
    score = np.zeros((n, k))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for _ in range(ITERATIONS):
            effect = np.exp(linear_predictor(local.numeric, local.events, beta[sub]))
            base, season = _baseline(y, obs_s, effect, grid, season)
            mu = base * effect
            info_s, score_s, dispersion = _information(local, Ys, obs_s, mu, grid)
            info[sub] = info_s / dispersion[:, None, None]
            score[sub] = score_s / dispersion[:, None]
            target = np.einsum("nij,nj->ni", info, beta) + score
            beta = _pooled_step(info, target, design.item, design.numeric.shape[0])
            beta = np.where(np.isfinite(beta), np.clip(beta, *COEF_BOUNDS), 0.0)
    return beta
