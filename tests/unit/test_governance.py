"""Unit tests for include.governance.policy: the real policy file, tiering, deciders and strict loading."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from include.config import POLICY_FILE
from include.governance.policy import (
    ChallengerPolicy,
    Gate,
    Monitoring,
    PolicyError,
    assign_tier,
    load_policy,
    tier_proposals,
)
from models.forecasting import Challenger

POLICY = load_policy()


def _line(doc_type: str = "replenishment", value: float = 100.0, quantity: float = 10.0, action: str = "order",
          **explanation) -> dict:
    explain = {"usual_quantity": 10.0, "fallback_reason": None, "backtest_mase": 0.8, "anomalies": [],
               "supplier_late_rate": 0.05}
    explain.update(explanation)
    return {"doc_type": doc_type, "value": value, "quantity": quantity, "action": action, "explanation": explain}


def test_real_policy_loads():
    assert POLICY.path == str(POLICY_FILE)
    assert POLICY.gate_timeout_hours == 12.0 and POLICY.poke_interval_seconds == 30.0
    assert POLICY.auto_approve_tiers == ("low",)
    assert POLICY.deciders == {"low": ("planner", "manager", "admin"), "medium": ("planner", "manager", "admin"),
                               "high": ("manager", "admin")}
    assert [r.name for r in POLICY.rules] == [
        "large_value", "medium_value", "unusual_quantity", "forecast_fallback", "low_confidence",
        "anomaly_involved", "risky_supplier", "po_change", "po_expedite", "fulfilment_exception",
        "return_fraud_risk", "return_high_value", "margin_anomaly", "finance_accrual",
    ]
    assert POLICY.costs["ecommerce_cost_per_order_line"] == 4.5
    assert (POLICY.orchestration.max_parcels, POLICY.orchestration.deadline_minutes) == (2, 30.0)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(_line(), ("low", []), id="nothing-low"),
        pytest.param(_line(value=5000.0), ("medium", ["medium_value"]), id="value-at-5000-is-not-above"),
        pytest.param(_line(value=5000.01), ("high", ["large_value", "medium_value"]), id="large-value-high"),
        pytest.param(_line(value=1000.0), ("low", []), id="value-at-1000-is-not-above"),
        pytest.param(_line(value=1500.0), ("medium", ["medium_value"]), id="medium-value"),
        pytest.param(_line(quantity=31.0), ("medium", ["unusual_quantity"]), id="quantity-above-3x-usual"),
        pytest.param(_line(quantity=30.0), ("low", []), id="quantity-at-3x-usual"),
        pytest.param(_line(quantity=1000.0, usual_quantity=0.0), ("low", []), id="no-usual-quantity"),
        pytest.param(_line(fallback_reason="short_history"), ("medium", ["forecast_fallback"]), id="fallback"),
        pytest.param(_line(backtest_mase=1.6), ("medium", ["low_confidence"]), id="forecast-error"),
        pytest.param(_line(backtest_mase=None), ("low", []), id="no-forecast-error"),
        pytest.param(_line(backtest_mase=float("nan")), ("low", []), id="nan-forecast-error"),
        pytest.param(_line(anomalies=["spike"]), ("medium", ["anomaly_involved"]), id="anomaly"),
        pytest.param(_line(supplier_late_rate=0.31), ("medium", ["risky_supplier"]), id="risky-supplier"),
        pytest.param(_line(doc_type="transfer", supplier_late_rate=0.9), ("low", []),
                     id="supplier-risk-not-for-transfers"),
        pytest.param(_line(doc_type="po_exception", action="cancel", value=9999.0), ("high", ["po_change"]),
                     id="po-cancel-high-value-rules-ignored"),
        pytest.param(_line(doc_type="po_exception", action="expedite"), ("medium", ["po_expedite"]),
                     id="po-expedite"),
        pytest.param(_line(doc_type="po_exception", action="accept_delay"), ("low", []), id="po-accept-delay"),
        pytest.param(_line(doc_type="fulfilment_assignment", action="ship_from_store", value=9.0,
                           exceptions=["split_above_n"]), ("medium", ["fulfilment_exception"]),
                     id="fulfilment-exception"),
        pytest.param(_line(doc_type="fulfilment_assignment", action="ship_from_fc", value=9000.0, exceptions=[]),
                     ("low", []), id="fulfilment-within-policy"),
        pytest.param(_line(doc_type="po_exception", action="cancel", supplier_late_rate=0.5, anomalies=["x"]),
                     ("high", ["anomaly_involved", "risky_supplier", "po_change"]), id="highest-tier-wins"),
        pytest.param(_line(value=6000.0, quantity=50.0, fallback_reason="x"),
                     ("high", ["large_value", "medium_value", "unusual_quantity", "forecast_fallback"]),
                     id="all-reasons-kept"),
        pytest.param(_line(doc_type="unknown", value=1e9), ("low", []), id="unknown-doc-type"),
    ],
)
def test_assign_tier_for_each_rule(line, expected):
    assert assign_tier(line, POLICY) == expected


@pytest.mark.parametrize(
    ("roles", "tier", "allowed"),
    [
        (["planner"], "low", True),
        (["planner"], "medium", True),
        (["planner"], "high", False),
        (["manager"], "high", True),
        ({"viewer", "admin"}, "high", True),
        (["viewer"], "medium", False),
        ([], "low", False),
        (["planner"], "critical", False),
    ],
)
def test_may_decide_per_role(roles, tier, allowed):
    assert POLICY.may_decide(roles, tier) is allowed


@pytest.mark.parametrize(
    ("airflow_roles", "shelfwise", "tiers"),
    [
        pytest.param("user", {"planner"}, ["low", "medium"], id="user-is-planner"),
        pytest.param("op", {"manager"}, ["low", "medium", "high"], id="op-is-manager"),
        pytest.param("ADMIN", {"admin"}, ["low", "medium", "high"], id="admin-any-case"),
        pytest.param("viewer", set(), [], id="viewer-decides-nothing"),
        pytest.param(None, set(), [], id="no-role"),
        pytest.param(["viewer", "user"], {"planner"}, ["low", "medium"], id="several-roles"),
    ],
)
def test_airflow_roles_map_to_shelfwise_roles(airflow_roles, shelfwise, tiers):
    roles = POLICY.shelfwise_roles(airflow_roles)
    assert roles == shelfwise
    assert POLICY.decidable_tiers(roles) == tiers


def test_role_mapping_is_read_from_the_policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(_policy_text(_set(["roles"], {"viewer": "planner", "user": "manager"})))
    policy = load_policy(path)
    assert policy.shelfwise_roles("viewer") == {"planner"}
    assert policy.shelfwise_roles("user") == {"manager"}
    assert policy.shelfwise_roles("op") == set()


def test_tier_proposals_adds_tier_reasons_and_auto_approve():
    proposals = pd.DataFrame([_line(value=50.0), _line(value=2000.0), _line(doc_type="po_exception", action="cancel")])

    out = tier_proposals(proposals, POLICY)

    assert out["risk_tier"].tolist() == ["low", "medium", "high"]
    assert out["tier_reasons"].tolist() == [[], ["medium_value"], ["po_change"]]
    assert out["auto_approve"].tolist() == [True, False, False]
    assert "risk_tier" not in proposals.columns  # the input frame is left alone


def test_the_forecast_challenger_is_read_from_the_policy_and_can_be_switched_off(tmp_path):
    shipped = load_policy()
    assert shipped.challenger.model == "prophet" and shipped.challenger.top_n > 0
    challenger = Challenger.from_policy(shipped.challenger)
    assert (challenger.model, challenger.top_n, challenger.timeout_s) == (
        "prophet", shipped.challenger.top_n, shipped.challenger.timeout_seconds)
    path = tmp_path / "policy.yaml"
    path.write_text(_policy_text(_set(["forecasting", "challenger"], {"enabled": False})))
    assert load_policy(path).challenger is None and Challenger.from_policy(None) is None
    path.write_text(_policy_text(_set(["forecasting", "challenger"], {"model": "statsmodels_ets", "top_n": 5})))
    assert load_policy(path).challenger == shipped.challenger.model_copy(update={"model": "statsmodels_ets", "top_n": 5})


def test_monitoring_and_challenger_are_typed_and_frozen():
    monitoring, challenger = POLICY.monitoring, POLICY.challenger
    assert (monitoring.metric, monitoring.max_ratio, monitoring.max_abs_bias, monitoring.horizon_days,
            monitoring.fallback_on_drift) == ("mase", 1.25, 0.3, 7, True)
    assert (challenger.model, challenger.top_n, challenger.margin, challenger.windows, challenger.min_series,
            challenger.min_lift, challenger.min_effect_days, challenger.classes, challenger.timeout_seconds,
            challenger.budget_seconds) == ("prophet", 50, 0.02, 2, 10, 0.15, 7, ("smooth", "erratic"), 20.0, 300.0)
    assert not hasattr(challenger, "enabled")  # switched off is None, not a flag to check
    with pytest.raises(ValidationError, match="frozen"):
        monitoring.horizon_days = 14


def test_left_out_keys_take_the_model_defaults(tmp_path):
    def mutate(data):
        del data["monitoring"], data["forecasting"], data["gate"]["poke_interval_seconds"]
    path = tmp_path / "policy.yaml"
    path.write_text(_policy_text(mutate))

    policy = load_policy(path)

    assert policy.monitoring == Monitoring() and policy.challenger == ChallengerPolicy()
    assert policy.poke_interval_seconds == Gate.model_fields["poke_interval_seconds"].default == 30.0


def _policy_text(mutate) -> str:
    data = yaml.safe_load(POLICY_FILE.read_text())
    mutate(data)
    return yaml.safe_dump(data, sort_keys=False)


def _set(path: list, value):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


@pytest.mark.parametrize(
    ("mutate", "anchor", "message"),
    [
        pytest.param(_set(["reviewers"], ["x"]), "reviewers:",
                     "unknown key 'reviewers' (allowed: auto_approve_tiers, baseline_replay, costs, currency, deciders, "
                     "deciders_by_doc_type, "
                     "fast_lane, finance, forecasting, gate, intraday, kpi_targets, monitoring, orchestration, overrides, "
                     "procurement, "
                     "replenishment, "
                     "returns, roles, rules, stale_inputs, user_roles, version)",
                     id="unknown-key"),
        pytest.param(_set(["baseline_replay", "window_days"], 170), "window_days: 170",
                     "baseline_replay.window_days: must leave at least 28 days of warm-up in history_days (182), "
                     "got 170", id="replay-window-beyond-history"),
        pytest.param(_set(["gate", "retries"], 3), "retries:",
                     "gate: unknown key 'retries' (allowed: poke_interval_seconds, timeout_hours)",
                     id="unknown-gate-key"),
        pytest.param(_set(["rules", 0, "tier"], "critical"), "tier: critical",
                     "rules[0].tier: must be one of low, medium, high, got 'critical'", id="bad-tier"),
        pytest.param(_set(["auto_approve_tiers"], ["none"]), "- none",
                     "auto_approve_tiers[0]: must be one of low, medium, high, got 'none'", id="bad-auto-tier"),
        pytest.param(_set(["rules", 2, "when"], {"quantity_vs_usal_above": 3.0}), "quantity_vs_usal_above:",
                     "rules[2].when: unknown key 'quantity_vs_usal_above' (allowed: action_in, anomaly, "
                     "exception_in, fallback_used, forecast_error_above, quantity_vs_usual_above, supplier_late_rate_above, "
                     "value_above)",
                     id="unknown-condition"),
        pytest.param(_set(["rules", 0, "when"], {"value_above": "5k"}), "value_above: 5k",
                     "rules[0].when.value_above: must be a number, got '5k'", id="wrong-condition-type"),
        pytest.param(_set(["rules", 3, "when"], {"fallback_used": "yes"}), "fallback_used: 'yes'",
                     "rules[3].when.fallback_used: must be true or false, got 'yes'", id="not-a-bool"),
        pytest.param(_set(["rules", 0, "doc_types"], ["invoice"]), "- invoice",
                     "rules[0].doc_types[0]: must be one of replenishment, transfer, po_exception, fulfilment_assignment,"
                     " return_disposition, finance_review, got 'invoice'",
                     id="bad-doc-type"),
        pytest.param(_set(["rules", 1, "when"], {}), "when: {}",
                     "rules[1].when: must name at least one condition", id="empty-when"),
        pytest.param(_set(["rules", 1, "priority"], 1), "priority:",
                     "rules[1]: unknown key 'priority' (allowed: doc_types, name, tier, when)", id="extra-rule-key"),
        pytest.param(_set(["deciders", "high"], []), "high: []",
                     "deciders.high: a tier that is not auto-approved needs at least one role",
                     id="tier-without-deciders"),
        pytest.param(_set(["roles", "user"], "buyer"), "user: buyer",
                     "roles.user: 'buyer' is not a role named in deciders (admin, finance, loss_prevention, manager, "
                     "ops_manager, planner)",
                     id="role-maps-to-unknown-shelfwise-role"),
        pytest.param(_set(["roles"], ["planner"]), "roles:\n- planner", "roles: must be a mapping, got a list",
                     id="roles-not-a-mapping"),
        pytest.param(_set(["gate", "timeout_hours"], 0), "timeout_hours: 0",
                     "gate.timeout_hours: must be a positive number, got 0", id="zero-timeout"),
        pytest.param(_set(["gate", "timeout_hours"], -2.5), "timeout_hours: -2.5",
                     "gate.timeout_hours: must be a positive number, got -2.5", id="negative-timeout"),
        pytest.param(_set(["forecasting", "challenger", "model"], "arima"), "model: arima",
                     "forecasting.challenger.model: must be one of prophet, statsmodels_ets, got 'arima'",
                     id="unknown-challenger"),
        pytest.param(_set(["forecasting", "challenger", "margin"], 1.5), "margin: 1.5",
                     "forecasting.challenger.margin: must be in [0, 1), got 1.5", id="challenger-margin"),
        pytest.param(_set(["forecasting", "challenger", "windows"], 0), "windows: 0",
                     "forecasting.challenger.windows: must be at least 1, got 0", id="challenger-windows"),
        pytest.param(_set(["forecasting", "challenger", "classes"], ["seasonal"]), "- seasonal",
                     "forecasting.challenger.classes[0]: must be one of smooth, erratic, intermittent, lumpy, "
                     "got 'seasonal'", id="challenger-classes"),
        pytest.param(_set(["forecasting", "challenger", "classes"], []), "classes: []",
                     "forecasting.challenger.classes: must not be empty", id="challenger-no-classes"),
        pytest.param(_set(["forecasting", "challenger", "top"], 5), "top: 5",
                     "forecasting.challenger: unknown key 'top' (allowed: budget_seconds, classes, enabled, margin, "
                     "min_effect_days, min_lift, min_series, model, night_budget_seconds, timeout_seconds, top_n, windows)",
                     id="challenger-unknown-key"),
        pytest.param(_set(["forecasting", "challenger", "enabled"], "no"), "enabled: 'no'",
                     "forecasting.challenger.enabled: must be true or false, got 'no'", id="challenger-enabled"),
        pytest.param(_set(["forecasting", "champion"], {}), "champion:",
                     "forecasting: unknown key 'champion' (allowed: challenger)", id="forecasting-unknown-key"),
        pytest.param(_set(["monitoring", "threshold"], 2.0), "threshold:",
                     "monitoring: unknown key 'threshold' (allowed: fallback_on_drift, horizon_days, max_abs_bias, "
                     "max_ratio, metric)", id="monitoring-unknown-key"),
        pytest.param(_set(["monitoring", "metric"], "mae"), "metric: mae",
                     "monitoring.metric: must be one of mase, rmsse, got 'mae'", id="monitoring-metric"),
        pytest.param(_set(["deciders", "critical"], ["admin"]), "critical:",
                     "deciders.critical: must be one of low, medium, high, got 'critical'", id="decider-tier"),
        pytest.param(_set(["gate"], None), "gate:", "gate: must be a mapping, got None", id="empty-gate"),
        pytest.param(_set(["version"], 2), "version:", "version: must be 1, got 2", id="version"),
        pytest.param(_set(["replenishment", "fill_rate"], 1.0), "fill_rate: 1.0",
                     "replenishment.fill_rate: must lie strictly between 0 and 1, got 1.0", id="fill-rate-one"),
        pytest.param(_set(["replenishment", "fill_rate_by_demand_class"], {"seasonal": 0.9}), "seasonal: 0.9",
                     "replenishment.fill_rate_by_demand_class.seasonal: must be one of smooth, erratic, intermittent, "
                     "lumpy, got 'seasonal'", id="fill-rate-class"),
    ],
)
def test_invalid_policy_names_file_line_field_and_problem(tmp_path, mutate, anchor, message):
    text = _policy_text(mutate)
    assert text.count(anchor) == 1, f"the anchor {anchor!r} must find one line"
    line = text[:text.index(anchor)].count("\n") + 1
    path = tmp_path / "policy.yaml"
    path.write_text(text)

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert str(caught.value) == f"{path}:{line}: {message}"


def _shipped_with(old: str, new: str) -> tuple[str, int]:
    """The shipped file, comments included, with ``old`` replaced once; and the line of the change."""
    text = POLICY_FILE.read_text()
    assert text.count(old) == 1
    return text.replace(old, new), text[:text.index(old)].count("\n") + 1


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param("margin: 0.02 ", "margin: 1.5  ", "forecasting.challenger.margin: must be in [0, 1), got 1.5",
                     id="challenger-margin"),
        pytest.param("when: {value_above: 5000}", "when: {value_above: 5000, tier: high}",
                     "rules[0].when: unknown key 'tier' (allowed: action_in, anomaly, exception_in, "
                     "fallback_used, forecast_error_above, quantity_vs_usual_above, supplier_late_rate_above, value_above)",
                     id="unknown-nested-key"),
        pytest.param("  fallback_on_drift: true", "  fallback_on_drift: true\n  drift_days: 3",
                     "monitoring: unknown key 'drift_days' (allowed: fallback_on_drift, horizon_days, "
                     "max_abs_bias, max_ratio, metric)", id="unknown-monitoring-key"),
    ],
)
def test_errors_in_the_shipped_file_name_its_line_and_field(tmp_path, old, new, message):
    text, line = _shipped_with(old, new)
    if "\n" in new:
        line += 1  # the new key is on the line after the one it follows
    path = tmp_path / "policy.yaml"
    path.write_text(text)

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert str(caught.value) == f"{path}:{line}: {message}"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param("timeout_hours: 12", "timeout_hours: true", "gate.timeout_hours: must be a number, got True",
                     id="bool-timeout"),
        pytest.param("timeout_hours: 12", 'timeout_hours: "12"', "gate.timeout_hours: must be a number, got '12'",
                     id="string-timeout"),
        pytest.param("max_ratio: 1.25", "max_ratio: true", "monitoring.max_ratio: must be a number, got True",
                     id="bool-ratio"),
        pytest.param("horizon_days: 7", "horizon_days: 7.0", "monitoring.horizon_days: must be a whole number, got 7.0",
                     id="float-days"),
        pytest.param("top_n: 50 ", "top_n: true", "forecasting.challenger.top_n: must be a whole number, got True",
                     id="true-is-not-1"),
        pytest.param("top_n: 50 ", 'top_n: "5"', "forecasting.challenger.top_n: must be a whole number, got '5'",
                     id="string-top-n"),
        pytest.param("when: {value_above: 5000}", "when: {value_above: true}",
                     "rules[0].when.value_above: must be a number, got True", id="bool-condition"),
        pytest.param("when: {fallback_used: true}", "when: {fallback_used: 1}",
                     "rules[3].when.fallback_used: must be true or false, got 1", id="1-is-not-true"),
        pytest.param("when: {action_in: [expedite]}", "when: {action_in: expedite}",
                     "rules[8].when.action_in: must be a list, got 'expedite'", id="action-in-not-a-list"),
        pytest.param("ecommerce_cost_per_order_line: 4.5", "ecommerce_cost_per_order_line: '4.5'",
                     "costs.ecommerce_cost_per_order_line: must be a number, got '4.5'", id="string-cost"),
        pytest.param(" budget_seconds: 300", " budget_seconds: .nan",
                     "forecasting.challenger.budget_seconds: must be a finite number, got nan", id="nan-budget"),
    ],
)
def test_no_value_is_coerced(tmp_path, old, new, message):
    text, line = _shipped_with(old, new)
    path = tmp_path / "policy.yaml"
    path.write_text(text)

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert str(caught.value) == f"{path}:{line}: {message}"


def test_every_problem_is_reported_in_file_order(tmp_path):
    text, margin_line = _shipped_with("margin: 0.02 ", "margin: -0.1 ")
    timeout_line = text[:text.index("timeout_hours: 12")].count("\n") + 1
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace("timeout_hours: 12", "timeout_hours: 0"))

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert str(caught.value).splitlines() == [
        f"{path}:{timeout_line}: gate.timeout_hours: must be a positive number, got 0",
        f"{path}:{margin_line}: forecasting.challenger.margin: must be in [0, 1), got -0.1",
    ]


def test_a_key_given_twice_is_refused(tmp_path):
    text, line = _shipped_with("  poke_interval_seconds: 30", "  poke_interval_seconds: 30\n  timeout_hours: 1")
    path = tmp_path / "policy.yaml"
    path.write_text(text)

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert str(caught.value) == f"{path}:{line + 1}: gate: duplicate key 'timeout_hours'"


def test_a_missing_section_is_named(tmp_path):
    def mutate(data):
        del data["gate"]
    path = tmp_path / "policy.yaml"
    path.write_text(_policy_text(mutate))

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert str(caught.value) == f"{path}:1: missing required key 'gate'"


def test_unreadable_policy_names_the_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("rules: [\n")

    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == f"{path}:2: not valid YAML: expected the node content, but found '<stream end>'"
    path.write_text("- just a list\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == f"{path}:1: the policy must be a mapping, got a list"
    path.write_text("")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == f"{path}:1: the policy must be a mapping, got None"
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "missing.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'missing.yaml'}: cannot be read: ")


def test_medium_tier_may_be_auto_approved_without_deciders(tmp_path):
    def mutate(data):
        data["auto_approve_tiers"] = ["low", "medium"]
        data["deciders"].pop("medium")
    path = tmp_path / "policy.yaml"
    path.write_text(_policy_text(mutate))

    policy = load_policy(path)

    assert policy.deciders["medium"] == ()
    assert tier_proposals(pd.DataFrame([_line(value=2000.0)]), policy)["auto_approve"].tolist() == [True]


def test_a_retailer_points_shelfwise_at_its_own_policy_file(tmp_path, monkeypatch):
    own = tmp_path / "policy.yaml"
    own.write_text(POLICY_FILE.read_text().replace("timeout_hours: 12", "timeout_hours: 4"))
    monkeypatch.setenv("SHELFWISE_POLICY_FILE", str(own))
    assert load_policy().gate_timeout_hours == 4.0 and load_policy().path == str(own)
    monkeypatch.setenv("SHELFWISE_POLICY_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(PolicyError, match=r"missing\.yaml: cannot be read"):
        load_policy()


# The fast lane: which lines are critical, and why.
def _replenishment(value: float, on_hand: float, rate: float, lead: float, **extra) -> dict:
    return {"doc_type": "replenishment", "action": "order", "value": value,
            "explanation": {"on_hand": on_hand, "in_transit": 0.0, "allocated": 0.0, "backorders": 0.0,
                            "mean_daily_forecast": rate, "lead_time_days": lead, **extra}}


@pytest.mark.parametrize(("line", "critical"), [
    # 20 units at 5 a day last 4 days; the supplier takes 7: it runs out before the order arrives.
    pytest.param(_replenishment(800, 20, 5, 7), "4.0 days of cover, 7 days of lead time", id="runs-out-in-lead-time"),
    pytest.param(_replenishment(800, 50, 5, 7), None, id="cover-beyond-lead-time"),
    pytest.param(_replenishment(400, 0, 5, 7), None, id="below-min-value"),
    pytest.param(_replenishment(800, 20, 0, 7), None, id="no-forecast"),
    pytest.param({**_replenishment(800, 20, 5, 7), "doc_type": "fulfilment_assignment"}, None, id="not-listed"),
    pytest.param({"doc_type": "transfer", "action": "urgent_store", "value": 900,
                  "explanation": {"hours_to_stockout": 3.0, "hours_to_arrive": 4.0}},
                 "runs out in 3 h, before the 4 h the move takes", id="intraday-arrives-too-late"),
    pytest.param({"doc_type": "transfer", "action": "urgent_store", "value": 900,
                  "explanation": {"hours_to_stockout": None, "hours_to_arrive": 4.0}}, None, id="intraday-no-stockout"),
    pytest.param({"doc_type": "po_exception", "action": "expedite", "value": 2000,
                  "explanation": {"projected_stockout_days": 3.5}}, "the delay leaves 3.5 days without stock",
                 id="po-delay-causes-stockout"),
    pytest.param({"doc_type": "po_exception", "action": "accept_delay", "value": 2000,
                  "explanation": {"projected_stockout_days": 3.5}}, None, id="po-nothing-to-do"),
])
def test_critical_lines_are_those_that_would_run_out_while_waiting(line, critical):
    from include.governance.policy import critical_reason

    assert critical_reason(line, load_policy().fast_lane) == critical


def test_tiering_marks_critical_lines_in_their_explanation_and_a_disabled_fast_lane_marks_none():
    import dataclasses

    from include.governance.policy import FastLane

    policy = load_policy()
    lines = pd.DataFrame([_replenishment(800, 20, 5, 7), _replenishment(800, 50, 5, 7)])
    tiered = tier_proposals(lines, policy)
    assert tiered["critical"].tolist() == [True, False]
    assert tiered.at[0, "explanation"]["critical"] is True
    assert "critical" not in tiered.at[1, "explanation"]
    assert "critical" not in lines.at[0, "explanation"]  # the input is not changed
    off = dataclasses.replace(policy, fast_lane=FastLane(enabled=False))
    assert not tier_proposals(lines, off)["critical"].any()


def test_return_dispositions_are_decided_by_loss_prevention_not_planners():
    assert POLICY.deciders_by_doc_type["return_disposition"] == {
        "low": ("loss_prevention", "manager", "admin"), "medium": ("loss_prevention", "manager", "admin"),
        "high": ("loss_prevention", "admin")}
    assert POLICY.decidable_tiers({"planner"}, "return_disposition") == []
    assert POLICY.decidable_tiers({"planner"}, "transfer") == ["low", "medium"]
    assert POLICY.decidable_tiers({"loss_prevention"}, "return_disposition") == ["low", "medium", "high"]
    assert POLICY.decidable_tiers({"loss_prevention"}) == []
    assert POLICY.may_decide({"manager"}, "medium", "return_disposition")
    assert not POLICY.may_decide({"manager"}, "high", "return_disposition")
    assert POLICY.may_decide({"manager"}, "high", "replenishment") and POLICY.may_decide({"manager"}, "high")


def test_user_roles_add_shelfwise_roles_by_user_name():
    assert POLICY.user_roles == {"lp": ("loss_prevention",), "finance": ("finance",), "ops": ("ops_manager",)}
    assert POLICY.shelfwise_roles("viewer", "lp") == {"loss_prevention"}
    assert POLICY.shelfwise_roles("user", "lp") == {"planner", "loss_prevention"}
    assert POLICY.shelfwise_roles("viewer", "LP") == set()  # a user name is matched exactly
    assert POLICY.shelfwise_roles("viewer") == set() and POLICY.shelfwise_roles(None, "lp") == {"loss_prevention"}


def test_finance_review_items_wait_for_finance_and_an_accrual_for_a_manager():
    assert POLICY.decidable_tiers({"finance"}, "finance_review") == ["low", "medium"]
    assert POLICY.decidable_tiers({"planner"}, "finance_review") == []
    assert POLICY.decidable_tiers({"finance"}, "replenishment") == []
    assert POLICY.may_decide({"manager"}, "high", "finance_review")
    assert POLICY.shelfwise_roles("viewer", "finance") == {"finance"}
    line = {"doc_type": "finance_review", "value": 0.0, "quantity": 1, "action": "review"}
    # Never auto-approved: every item is at least medium; an accrual is high.
    assert assign_tier({**line, "explanation": {"exceptions": ["margin_anomaly"]}}, POLICY) == \
        ("medium", ["margin_anomaly"])
    assert assign_tier({**line, "explanation": {"exceptions": ["margin_anomaly", "accrual"]}}, POLICY)[0] == "high"
    # The operations manager decides fulfilment assignments, with the planners.
    assert POLICY.decidable_tiers({"ops_manager"}, "fulfilment_assignment") == ["low", "medium", "high"]
    assert POLICY.decidable_tiers({"planner"}, "fulfilment_assignment") == ["low", "medium"]


def test_finance_section_sets_the_review_s_sensitivity(tmp_path):
    f = POLICY.finance
    assert (f.window_days, f.baseline_weeks, f.min_z, f.min_baseline_weeks, f.deadline_hours) == (7, 12, 4.0, 4, 20.0)
    assert f.min_excess_by_cause == {"returns_refunds": 300.0, "shrink": 150.0}
    test_invalid_policy_names_file_line_field_and_problem(
        tmp_path, _set(["finance", "min_z"], 0), "min_z: 0", "finance.min_z: must be a positive number, got 0")
    assert (f.short_days, f.short_min_z, f.short_min_excess) == (2, 10.0, 15.0)
    assert f.short_causes == ("price_markdown", "expedited_shipping", "fulfilment_substitution")
    test_invalid_policy_names_file_line_field_and_problem(
        tmp_path, _set(["finance", "short_days"], 9), "short_days: 9",
        "finance.short_days: must be at most window_days (7), got 9")


def test_kpi_targets_name_only_kpis_of_the_dashboard(tmp_path):
    assert POLICY.kpi_targets["procurement.otif"] == 0.9
    test_invalid_policy_names_file_line_field_and_problem(
        tmp_path, _set(["kpi_targets", "happiness"], 1.0), "happiness:",
        "kpi_targets.happiness: 'happiness' is not a KPI of the dashboard's catalogue (include/reporting/dashboard.py)")


def test_returns_section_and_rules_tier_held_dispositions():
    r = POLICY.returns
    assert (r.fraud_hold_score, r.high_value_hold, r.review_budget_per_day, r.min_confirmed_cases,
            r.history_days, r.deadline_hours) == (0.5, 400.0, 50, 20, 90, 24.0)
    line = {"doc_type": "return_disposition", "value": 30.0, "quantity": 1, "action": "restock_as_new"}
    assert assign_tier({**line, "explanation": {"exceptions": []}}, POLICY) == ("low", [])
    assert assign_tier({**line, "explanation": {"exceptions": ["high_value"]}}, POLICY) == \
        ("medium", ["return_high_value"])
    assert assign_tier({**line, "explanation": {"exceptions": ["fraud_risk", "high_value"]}}, POLICY) == \
        ("high", ["return_fraud_risk", "return_high_value"])
    assert POLICY.stale_inputs["return_disposition"] == ("inventory_snapshot", "promotions")


@pytest.mark.parametrize(
    ("mutate", "anchor", "message"),
    [
        pytest.param(_set(["deciders_by_doc_type", "return_disposition", "high"], []), "high: []",
                     "deciders_by_doc_type.return_disposition.high: a tier that is not auto-approved needs at least "
                     "one role", id="doc-type-tier-without-deciders"),
        pytest.param(_set(["deciders_by_doc_type", "invoice"], {"low": ["admin"]}), "invoice:",
                     "deciders_by_doc_type.invoice: must be one of replenishment, transfer, po_exception, "
                     "fulfilment_assignment, return_disposition, finance_review, got 'invoice'", id="doc-type-unknown"),
        pytest.param(_set(["user_roles", "lp"], ["loss_prevention", "auditor"]), "- auditor",
                     "user_roles.lp[1]: 'auditor' is not a role named in deciders (admin, finance, loss_prevention, "
                     "manager, ops_manager, planner)", id="user-role-unknown"),
        pytest.param(_set(["user_roles", "lp"], "loss_prevention"), "lp: loss_prevention",
                     "user_roles.lp: must be a list, got 'loss_prevention'", id="user-roles-not-a-list"),
        pytest.param(_set(["returns", "fraud_hold_score"], 1.5), "fraud_hold_score: 1.5",
                     "returns.fraud_hold_score: must be at most 1, got 1.5", id="returns-hold-score"),
    ],
)
def test_invalid_deciders_user_roles_and_returns_are_named(tmp_path, mutate, anchor, message):
    test_invalid_policy_names_file_line_field_and_problem(tmp_path, mutate, anchor, message)
