"""Fraud score of every returned line: a fitted logistic regression on customer and line signals.

**Signals** (:data:`SIGNALS`), each computed for a line *as of its return day* from the lines of the
``window_days`` before it and the same day (so a line is scored as it would have been on its day):
the customer's returns, refund value and distinct stores in the window, a serial-returner flag, whether
the customer had no earlier return, the customer's share of receipt-less returns, days since purchase
(and whether the purchase date is unknown), no receipt, refund above the sale price, the refund itself
and its interaction with a missing receipt, grade A (a new unit) and a defect reason.

**Model.** A ridge-penalised logistic regression on standardised signals, fitted by Newton's method in
numpy (scikit-learn is not installed; the model has 15 coefficients and closed-form gradients). The
labels are what loss prevention confirmed: the truth of past days, never of the day scored. Each of the
``train_days`` days before the scored day is one anchor whose lines get their signals as of that day.
Beyond ``max_train_rows`` training lines, legitimate lines are subsampled at rate ``r`` and the intercept
moved by ``log r``, so the score stays a calibrated probability (the mean score of the training lines
equals their fraud rate at the optimum of an unpenalised intercept).

**Evidence** per line: the two signals that pushed its score up most (coefficient x standardised value),
as a categorical; :func:`review_queue` spells out the numbers for the lines a reviewer sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.returns.params import DEFAULT_FRAUD, FraudParams

SIGNALS = ("customer_returns", "customer_value", "customer_stores", "serial_returner", "new_customer",
           "customer_no_receipt_share", "days_since_purchase", "purchase_date_unknown", "no_receipt",
           "refund_above_price", "log_refund", "no_receipt_x_log_refund", "grade_a", "defect_reason")
#: Signal columns added to the scored frame (what a reviewer reads), besides ``fraud_score`` and ``evidence``.
SCORED_COLUMNS = ("return_id", "fraud_score", "evidence", "customer_returns_window", "customer_value_window",
                  "customer_stores_window", "serial_returner", "days_since_purchase", "refund_ratio")
_NEEDED = ("return_id", "returned_at", "original_order_date", "customer_id", "location_id", "quantity",
           "unit_price", "refund_amount", "reason_code", "condition_grade", "receipt_matched")


@dataclass(frozen=True)
class FraudModel:
    """A fitted fraud model: standardisation, coefficients and what it was trained on."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # per signal
    intercept: float
    train_rows: int
    train_fraud_rate: float
    params: FraudParams

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and per-signal contributions (coefficient x standardised value) of ``x``."""
        contrib = ((x - self.mean) / self.scale) * self.coef
        return _sigmoid(contrib.sum(axis=1) + self.intercept), contrib


def _days(frame: pd.DataFrame) -> np.ndarray:
    return pd.to_datetime(frame["returned_at"]).to_numpy().astype("datetime64[D]").astype(np.int64)


def _signals(window: pd.DataFrame, target: np.ndarray, params: FraudParams) -> tuple[np.ndarray, pd.DataFrame]:
    """Signals of the rows ``target`` (a mask) of ``window``: every line of one customer window ending on
    the target rows' day. Returns the signal matrix and the readable signal columns."""
    cust, _ = pd.factorize(window["customer_id"].to_numpy(), sort=False)
    loc, _ = pd.factorize(window["location_id"].to_numpy(), sort=False)
    day = _days(window)
    n_c = int(cust.max()) + 1 if len(cust) else 0
    refund = window["refund_amount"].to_numpy(float)
    no_receipt = ~window["receipt_matched"].to_numpy(bool)
    count = np.bincount(cust, minlength=n_c)
    value = np.bincount(cust, weights=refund, minlength=n_c)
    stores = np.bincount(np.unique(cust.astype(np.int64) * (int(loc.max()) + 1) + loc) // (int(loc.max()) + 1),
                         minlength=n_c)
    earlier = np.bincount(cust[day < day[target].max()], minlength=n_c)
    share = np.bincount(cust, weights=no_receipt, minlength=n_c) / np.maximum(count, 1)
    t = window.loc[target]
    c = cust[target]
    bought = pd.to_datetime(t["original_order_date"]).to_numpy().astype("datetime64[D]")
    unknown = np.isnat(bought)
    since = np.where(unknown, 0.0, (day[target] - np.where(unknown, 0, bought.astype(np.int64))).astype(float))
    price = (t["unit_price"].to_numpy(float) * t["quantity"].to_numpy(float))
    ratio = t["refund_amount"].to_numpy(float) / np.maximum(price, 0.01)
    log_refund = np.log1p(t["refund_amount"].to_numpy(float))
    nr = no_receipt[target].astype(float)
    x = np.column_stack([
        np.log1p(count[c]), np.log1p(value[c]), np.minimum(stores[c], 10), count[c] >= params.serial_returns,
        earlier[c] == 0, share[c], np.clip(since, 0, 120) / 30.0, unknown, nr, np.clip(ratio - 1.0, 0.0, 2.0),
        log_refund, nr * log_refund, (t["condition_grade"] == "A").to_numpy(bool),
        (t["reason_code"] == "defective").to_numpy(bool)]).astype(float)
    readable = pd.DataFrame({
        "return_id": t["return_id"].to_numpy(), "customer_returns_window": count[c].astype(np.int64),
        "customer_value_window": np.round(value[c], 2), "customer_stores_window": stores[c].astype(np.int64),
        "serial_returner": count[c] >= params.serial_returns,
        "days_since_purchase": np.where(unknown, np.nan, since), "refund_ratio": np.round(ratio, 3)})
    return x, readable


def fraud_signals(returns: pd.DataFrame, history: pd.DataFrame, params: FraudParams = DEFAULT_FRAUD
                  ) -> tuple[np.ndarray, pd.DataFrame]:
    """Signals of every line of ``returns`` (one day) as of that day, from ``history`` before it.

    Args:
        returns: the day's returned lines (columns of the returns detail extract).
        history: earlier returned lines; only those of the ``window_days`` before the day count.
        params: window and serial-returner threshold.

    Returns:
        The signal matrix (one row per line of ``returns``, columns :data:`SIGNALS`) and the readable
        signal columns (``SCORED_COLUMNS`` without score and evidence).
    """
    _check(returns, "returns")
    if len(returns) == 0:
        return np.zeros((0, len(SIGNALS))), pd.DataFrame(columns=list(SCORED_COLUMNS[:1] + SCORED_COLUMNS[3:]))
    day = int(_days(returns).max())
    past = history.loc[(_days(history) < day) & (_days(history) > day - params.window_days), list(_NEEDED)] \
        if len(history) else history.reindex(columns=list(_NEEDED))
    window = pd.concat([past, returns[list(_NEEDED)]], ignore_index=True)
    target = np.zeros(len(window), bool)
    target[len(past):] = True
    return _signals(window, target, params)


def _check(frame: pd.DataFrame, name: str) -> None:
    missing = [c for c in _NEEDED if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the returns detail columns {missing}")


def fit_fraud_model(history: pd.DataFrame, labels: pd.DataFrame | None = None, today=None,
                    params: FraudParams = DEFAULT_FRAUD) -> FraudModel:
    """Fit the fraud model on the confirmed outcomes of the ``train_days`` days before ``today``.

    Args:
        history: past returned lines (returns detail columns); only days before ``today`` are used.
        labels: ``return_id, is_fraud`` as loss prevention confirmed them; ``None`` reads ``is_fraud`` from
            ``history``. A line without a label counts as legitimate (nothing was confirmed).
        today: the day that will be scored (a date or ``None`` for the day after the newest history line).
        params: window, training size and penalty.

    Returns:
        The fitted model.

    Raises:
        ValueError: when the history holds no confirmed fraud or no legitimate line to learn from.
    """
    _check(history, "history")
    days = _days(history)
    end = int(days.max()) + 1 if today is None else int(np.datetime64(pd.Timestamp(today).date(), "D").astype(np.int64))
    y_all = _labels(history, labels)
    anchors = np.unique(days[days < end])[-params.train_days:]
    xs, ys = [], []
    for anchor in anchors:
        rows = (days <= anchor) & (days > anchor - params.window_days)
        window = history.loc[rows, list(_NEEDED)].reset_index(drop=True)
        target = days[rows] == anchor
        xs.append(_signals(window, target, params)[0])
        ys.append(y_all[rows][target])
    x, y = (np.concatenate(xs), np.concatenate(ys)) if xs else (np.zeros((0, len(SIGNALS))), np.zeros(0, bool))
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(f"the fraud model needs confirmed fraud and legitimate lines before {today}: "
                         f"{int(y.sum())} fraud of {len(y)} lines in the {len(anchors)} training days")
    return _fit(x, y, params)


def _labels(history: pd.DataFrame, labels: pd.DataFrame | None) -> np.ndarray:
    if labels is None:
        if "is_fraud" not in history.columns:
            raise ValueError("history has no is_fraud column and no labels were given")
        return history["is_fraud"].fillna(False).to_numpy(bool)
    confirmed = labels.loc[labels["is_fraud"].fillna(False).to_numpy(bool), "return_id"]
    return history["return_id"].isin(confirmed).to_numpy(bool)


def _fit(x: np.ndarray, y: np.ndarray, params: FraudParams) -> FraudModel:
    """Ridge logistic regression by Newton's method; legitimate lines subsampled beyond ``max_train_rows``."""
    rate = 1.0
    if len(y) > params.max_train_rows:
        rng = np.random.default_rng(params.seed)
        rate = max((params.max_train_rows - y.sum()) / max((~y).sum(), 1), 1e-3)
        keep = y | (rng.random(len(y)) < rate)
        x, y = x[keep], y[keep]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    w[0] = np.log(y.mean() / (1.0 - y.mean()))
    penalty = np.full(z.shape[1], params.l2)
    penalty[0] = 0.0  # the intercept is not shrunk, so the mean score equals the fraud rate
    loss = _loss(z, y, w, penalty)
    for _ in range(params.max_iter):
        p = _sigmoid(z @ w)
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1.0 - p))[:, None]).T @ z + np.diag(penalty + 1e-9 * len(y))
        step = np.linalg.solve(hess, grad)
        for _ in range(30):  # halve a step that does not lower the penalised loss (near-separable data)
            trial = _loss(z, y, w - step, penalty)
            if trial <= loss:
                break
            step = step / 2.0
        w, change, loss = w - step, loss - trial, trial
        if change < 1e-9 * len(y):
            break
    return FraudModel(mean=mean, scale=scale, coef=w[1:], intercept=float(w[0] + np.log(rate)),
                      train_rows=len(y), train_fraud_rate=float(y.mean()), params=params)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(v, -35.0, 35.0)))


def _loss(z: np.ndarray, y: np.ndarray, w: np.ndarray, penalty: np.ndarray) -> float:
    """Penalised negative log-likelihood of the logistic model."""
    v = z @ w
    return float(np.sum(np.logaddexp(0.0, v) - y * v) + 0.5 * np.sum(penalty * w * w))


def score_returns(returns: pd.DataFrame, history: pd.DataFrame, labels: pd.DataFrame | None = None,
                  model: FraudModel | None = None, params: FraudParams = DEFAULT_FRAUD) -> pd.DataFrame:
    """Score every line of ``returns`` (one day) for fraud, with the evidence behind the score.

    Args:
        returns: the day's returned lines (returns detail columns).
        history: earlier lines: the customer window of every signal, and the training data with ``labels``.
        labels: ``return_id, is_fraud`` confirmed by loss prevention for ``history``; ``None`` reads
            ``history.is_fraud``. Ignored when ``model`` is given.
        model: a model fitted earlier (:func:`fit_fraud_model`); ``None`` fits one on ``history`` before the day.
        params: window, thresholds and training settings.

    Returns:
        One row per line of ``returns``, in its order, columns :data:`SCORED_COLUMNS`: ``fraud_score`` in
        [0, 1] (a calibrated probability that loss prevention would confirm fraud) and ``evidence`` (the two
        signals of :data:`SIGNALS` that raised it most, ``;``-separated, or ``none``).
    """
    if model is None:
        today = returns["returned_at"].min() if len(returns) else None
        model = fit_fraud_model(history, labels, today, params)
    x, readable = fraud_signals(returns, history, model.params)
    score, contrib = model.score(x)
    readable.insert(1, "fraud_score", np.round(score, 5))
    readable.insert(2, "evidence", _evidence(contrib))
    return readable


def _evidence(contrib: np.ndarray) -> pd.Categorical:
    """The two signals with the largest positive contribution per row, as a categorical."""
    k = contrib.shape[1]
    if len(contrib) == 0:
        return pd.Categorical([], categories=["none"])
    order = np.argsort(-contrib, axis=1)[:, :2]
    top = np.take_along_axis(contrib, order, axis=1) > 0
    first = np.where(top[:, 0], order[:, 0], k)
    second = np.where(top[:, 1], order[:, 1], k)
    names = [*SIGNALS, ""]
    labels = [";".join(n for n in (names[a], names[b]) if n) or "none" for a in range(k + 1) for b in range(k + 1)]
    codes = first * (k + 1) + second
    used, inverse = np.unique(codes, return_inverse=True)
    return pd.Categorical.from_codes(inverse, [labels[u] for u in used])


def review_queue(scored: pd.DataFrame, budget: int, returns: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``budget`` riskiest lines for loss prevention, riskiest first, each with a readable reason.

    Args:
        scored: output of :func:`score_returns` (or of :func:`rules_scores`).
        budget: lines the reviewers can look at today.
        returns: the scored lines' detail, for the refund in the reason and as a tie-break (higher first).

    Returns:
        At most ``budget`` rows of ``scored`` (lines with a score of 0 never queue), with ``review_rank``
        (1 first) and ``review_reason`` (one sentence with the numbers).
    """
    frame = scored.copy()
    refund = (returns.set_index("return_id")["refund_amount"].reindex(frame["return_id"]).to_numpy(float)
              if returns is not None else np.zeros(len(frame)))
    frame["refund_amount"] = refund
    order = np.lexsort((-refund, -frame["fraud_score"].to_numpy(float)))
    top = frame.iloc[order[:max(int(budget), 0)]]
    top = top[top["fraud_score"].to_numpy(float) > 0].copy()
    top.insert(0, "review_rank", np.arange(1, len(top) + 1))
    top["review_reason"] = _review_reasons(top)
    return top.reset_index(drop=True)


def _review_reasons(top: pd.DataFrame) -> list[str]:
    """One sentence per queued line; the customer figures when the frame has them (the model's output)."""
    head = [f"score {s:.2f} ({e}), refund {r:.2f}" for s, e, r in
            zip(top["fraud_score"], top["evidence"], top["refund_amount"], strict=True)]
    if "customer_returns_window" not in top.columns:
        return head
    return [f"{h}: {n} returns worth {v:.2f} at {k} location(s) in the window, refund {q:.2f}x the price paid, "
            + ("unknown purchase date" if d != d else f"{d:.0f} d since purchase")
            for h, n, v, k, q, d in zip(head, top["customer_returns_window"], top["customer_value_window"],
                                        top["customer_stores_window"], top["refund_ratio"],
                                        top["days_since_purchase"], strict=True)]


def rules_scores(returns: pd.DataFrame, params: FraudParams = DEFAULT_FRAUD) -> pd.DataFrame:
    """The rules baseline: a receipt-less return of at least ``high_value`` scores 1, every other 0.

    Args:
        returns: returned lines (returns detail columns).
        params: the ``high_value`` threshold.

    Returns:
        ``return_id, fraud_score, evidence`` (``no_receipt;high_value`` or ``none``).
    """
    hit = (~returns["receipt_matched"].to_numpy(bool)) & (returns["refund_amount"].to_numpy(float) >= params.high_value)
    return pd.DataFrame({"return_id": returns["return_id"].to_numpy(), "fraud_score": hit.astype(float),
                         "evidence": pd.Categorical.from_codes(hit.astype(np.int8), ["none", "no_receipt;high_value"])})
