"""Fraud signals on hand-built lines, the fitted model on known and generated data, the review queue."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.returns.fraud import (
    SIGNALS,
    _fit,
    fit_fraud_model,
    fraud_signals,
    review_queue,
    rules_scores,
    score_returns,
)
from include.returns.params import FraudParams
from include.sample_data import returns as sample_returns
from include.sample_data.generator import PRESETS, generate_world

TODAY = dt.date(2026, 5, 20)


def line(rid, days_ago, cust, loc="S1", refund=20.0, price=20.0, qty=1, receipt=True, bought=5, grade="A",
         reason="changed_mind"):
    day = pd.Timestamp(TODAY - dt.timedelta(days=days_ago))
    return {"return_id": rid, "returned_at": day + pd.Timedelta(hours=10), "customer_id": cust, "location_id": loc,
            "original_order_date": day - pd.Timedelta(days=bought) if receipt else pd.NaT, "quantity": qty,
            "unit_price": price, "refund_amount": refund, "reason_code": reason, "condition_grade": grade,
            "receipt_matched": receipt}


def frame(rows):
    return pd.DataFrame(rows)


def signal(x, name):
    return x[:, SIGNALS.index(name)]


def test_customer_frequency_value_and_stores_count_the_window_and_the_day():
    history = frame([line("h1", 3, "C1", "S1", 30), line("h2", 10, "C1", "S2", 40), line("h3", 60, "C1", "S2", 50),
                     line("h4", 120, "C1", "S4", 500), line("h5", 5, "C9", "S1")])
    today = frame([line("t1", 0, "C1", "S3", 20), line("t2", 0, "C2", "S1", 20)])
    x, readable = fraud_signals(today, history, FraudParams(window_days=90, serial_returns=4))
    assert readable["customer_returns_window"].tolist() == [4, 1]  # h4 is older than the window
    assert readable["customer_value_window"].tolist() == [140.0, 20.0]
    assert readable["customer_stores_window"].tolist() == [3, 1]
    assert readable["serial_returner"].tolist() == [True, False]
    assert signal(x, "new_customer").tolist() == [0.0, 1.0]
    assert signal(x, "customer_returns").tolist() == pytest.approx(np.log1p([4, 1]))


def test_line_signals_receipt_price_and_days_since_purchase():
    today = frame([line("t1", 0, "A", refund=30.0, price=20.0, bought=12),
                   line("t2", 0, "B", refund=80.0, price=80.0, receipt=False, grade="B"),
                   line("t3", 0, "C", refund=10.0, price=20.0, reason="defective", grade="C")])
    x, readable = fraud_signals(today, frame([]).reindex(columns=today.columns))
    assert readable["refund_ratio"].tolist() == [1.5, 1.0, 0.5]
    assert signal(x, "refund_above_price").tolist() == [0.5, 0.0, 0.0]
    assert readable["days_since_purchase"].iloc[0] == 12 and np.isnan(readable["days_since_purchase"].iloc[1])
    assert signal(x, "purchase_date_unknown").tolist() == [0, 1, 0]
    assert signal(x, "no_receipt").tolist() == [0, 1, 0]
    assert signal(x, "no_receipt_x_log_refund")[1] == pytest.approx(np.log1p(80.0))
    assert signal(x, "grade_a").tolist() == [1, 0, 0] and signal(x, "defect_reason").tolist() == [0, 0, 1]


def test_customer_no_receipt_share_and_future_lines_do_not_count():
    history = frame([line("h1", 2, "C1", receipt=False), line("h2", 4, "C1")])
    later = frame([line("f1", -3, "C1", "S7", 999)])  # after the scored day: never seen
    today = frame([line("t1", 0, "C1")])
    _, readable = fraud_signals(today, pd.concat([history, later]))
    x, _ = fraud_signals(today, pd.concat([history, later]))
    assert readable["customer_returns_window"].iloc[0] == 3 and readable["customer_stores_window"].iloc[0] == 1
    assert signal(x, "customer_no_receipt_share")[0] == pytest.approx(1 / 3)


def test_the_fit_recovers_a_known_logistic_model_and_stays_calibrated_when_subsampled():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60_000, 3))
    truth = np.array([1.5, -1.0, 0.0])
    p = 1 / (1 + np.exp(-(x @ truth - 4.0)))
    y = rng.random(len(p)) < p
    full = _fit(x, y, FraudParams(l2=0.0))
    assert full.coef / full.scale == pytest.approx(truth, abs=0.15)
    sub = _fit(x, y, FraudParams(l2=0.0, max_train_rows=8_000))
    assert sub.train_rows < 10_000
    assert sub.score(x)[0].mean() == pytest.approx(y.mean(), rel=0.15)
    assert full.score(x)[0].mean() == pytest.approx(y.mean(), rel=0.01)


@pytest.fixture(scope="module")
def generated():
    world = generate_world(PRESETS["tiny"])
    extract, truth = sample_returns.returns_detail(world, 75, seed=5,
                                                   config=sample_returns.ReturnsConfig(returns_per_day=250))
    day = world.config.end_date
    days = extract["returned_at"].to_numpy().astype("datetime64[D]")
    return extract[days < np.datetime64(day)], extract[days == np.datetime64(day)].reset_index(drop=True), truth


def test_the_model_finds_fraud_far_above_the_base_rate_and_beats_the_rules(generated):
    history, today, truth = generated
    scored = score_returns(today, history, labels=truth[truth["return_id"].isin(history["return_id"])])
    assert list(scored["return_id"]) == list(today["return_id"])
    assert scored["fraud_score"].between(0, 1).all()
    fraud = truth.set_index("return_id")["is_fraud"]
    budget = max(int(0.04 * len(today)), 5)
    model_hits = fraud.reindex(review_queue(scored, budget, today)["return_id"]).mean()
    rules_hits = fraud.reindex(review_queue(rules_scores(today), budget, today)["return_id"]).mean()
    base = fraud.reindex(today["return_id"]).mean()
    assert model_hits >= 3 * base and model_hits > rules_hits
    # Calibrated: the day's mean score is near its fraud rate (a few percent, not 0.5).
    assert abs(scored["fraud_score"].mean() - base) < 0.03


def test_the_day_scored_never_trains_the_model(generated):
    history, today, truth = generated
    everything = pd.concat([history, today])
    labels = truth.assign(is_fraud=truth["is_fraud"])
    flipped = labels.assign(is_fraud=np.where(labels["return_id"].isin(today["return_id"]), ~labels["is_fraud"],
                                              labels["is_fraud"]))
    day = today["returned_at"].min()
    a = fit_fraud_model(everything, labels, day)
    b = fit_fraud_model(everything, flipped, day)
    assert np.array_equal(a.coef, b.coef) and a.intercept == b.intercept


def test_no_confirmed_fraud_raises_saying_so(generated):
    history, _, truth = generated
    with pytest.raises(ValueError, match="needs confirmed fraud and legitimate lines"):
        fit_fraud_model(history, truth.assign(is_fraud=False))


def test_review_queue_takes_the_riskiest_within_budget_with_numbers():
    today = frame([line("a", 0, "A", refund=10), line("b", 0, "B", refund=90), line("c", 0, "C", refund=50),
                   line("d", 0, "D", refund=70)])
    scored = pd.DataFrame({"return_id": ["a", "b", "c", "d"], "fraud_score": [0.9, 0.2, 0.9, 0.0],
                           "evidence": ["no_receipt", "none", "customer_returns", "none"]})
    queue = review_queue(scored, 3, today)
    assert queue["return_id"].tolist() == ["c", "a", "b"]  # ties by refund, dearest first
    assert queue["review_rank"].tolist() == [1, 2, 3]
    assert "refund 50.00" in queue["review_reason"].iat[0] and "0.90" in queue["review_reason"].iat[0]
    assert review_queue(scored, 10, today)["return_id"].tolist() == ["c", "a", "b"]  # a zero never queues
    assert review_queue(scored, 0, today).empty


def test_rules_flag_receiptless_high_value_only():
    today = frame([line("a", 0, "A", refund=80, receipt=False), line("b", 0, "B", refund=20, receipt=False),
                   line("c", 0, "C", refund=500)])
    rules = rules_scores(today, FraudParams(high_value=50))
    assert rules["fraud_score"].tolist() == [1.0, 0.0, 0.0]
    assert rules["evidence"].astype(str).tolist() == ["no_receipt;high_value", "none", "none"]
