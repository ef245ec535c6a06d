"""Unit tests for include.governance.policy: the real policy file, tiering, deciders and strict loading."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from include.config import POLICY_FILE
from include.governance.policy import PolicyError, assign_tier, load_policy, tier_proposals
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
        "anomaly_involved", "risky_supplier", "po_change", "po_expedite",
    ]
    assert POLICY.costs["ecommerce_cost_per_order_line"] == 4.5


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
    assert shipped.challenger["model"] == "prophet" and shipped.challenger["top_n"] > 0
    challenger = Challenger.from_policy(shipped.challenger)
    assert (challenger.model, challenger.top_n, challenger.timeout_s) == (
        "prophet", shipped.challenger["top_n"], shipped.challenger["timeout_seconds"])
    path = tmp_path / "policy.yaml"
    path.write_text(_policy_text(_set(["forecasting", "challenger"], {"enabled": False})))
    assert load_policy(path).challenger is None and Challenger.from_policy(None) is None
    path.write_text(_policy_text(_set(["forecasting", "challenger"], {"model": "statsmodels_ets", "top_n": 5})))
    assert load_policy(path).challenger == {**shipped.challenger, "model": "statsmodels_ets", "top_n": 5}


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
    ("mutate", "message"),
    [
        pytest.param(_set(["reviewers"], ["x"]), "unknown top-level keys ['reviewers']", id="unknown-key"),
        pytest.param(_set(["gate", "retries"], 3), "unknown gate keys ['retries']", id="unknown-gate-key"),
        pytest.param(_set(["rules", 0, "tier"], "critical"),
                     "rules[0] (large_value): tier 'critical' is not one of low, medium, high", id="bad-tier"),
        pytest.param(_set(["auto_approve_tiers"], ["none"]),
                     "auto_approve_tiers: 'none' is not one of low, medium, high", id="bad-auto-tier"),
        pytest.param(_set(["rules", 2, "when"], {"quantity_vs_usal_above": 3.0}),
                     "rules[2] (unusual_quantity): unknown condition 'quantity_vs_usal_above'",
                     id="unknown-condition"),
        pytest.param(_set(["rules", 0, "when"], {"value_above": "5k"}),
                     "rules[0] (large_value): value_above must be a float, got '5k'", id="wrong-condition-type"),
        pytest.param(_set(["rules", 3, "when"], {"fallback_used": "yes"}),
                     "rules[3] (forecast_fallback): fallback_used must be a bool, got 'yes'", id="not-a-bool"),
        pytest.param(_set(["rules", 0, "doc_types"], ["invoice"]),
                     "rules[0] (large_value): doc type 'invoice' is not one of replenishment, transfer, po_exception",
                     id="bad-doc-type"),
        pytest.param(_set(["rules", 1, "when"], {}),
                     "rules[1] (medium_value): when must name at least one condition", id="empty-when"),
        pytest.param(_set(["rules", 1, "priority"], 1),
                     "rules[1] needs exactly name, doc_types, when and tier", id="extra-rule-key"),
        pytest.param(_set(["deciders", "high"], []),
                     "deciders.high: a tier that is not auto-approved needs at least one role",
                     id="tier-without-deciders"),
        pytest.param(_set(["roles", "user"], "buyer"),
                     "roles.user: 'buyer' is not a role named in deciders (admin, manager, planner)",
                     id="role-maps-to-unknown-shelfwise-role"),
        pytest.param(_set(["roles"], ["planner"]), "roles must map Airflow roles to Shelfwise roles",
                     id="roles-not-a-mapping"),
        pytest.param(_set(["gate", "timeout_hours"], 0), "gate.timeout_hours must be a positive number, got 0",
                     id="zero-timeout"),
        pytest.param(_set(["gate", "timeout_hours"], -2.5),
                     "gate.timeout_hours must be a positive number, got -2.5", id="negative-timeout"),
        pytest.param(_set(["forecasting", "challenger", "model"], "arima"),
                     "forecasting.challenger.model must be prophet or statsmodels_ets, got 'arima'",
                     id="unknown-challenger"),
        pytest.param(_set(["forecasting", "challenger", "margin"], 1.5),
                     "forecasting.challenger.margin must be in [0, 1), got 1.5", id="challenger-margin"),
        pytest.param(_set(["forecasting", "challenger", "windows"], 0),
                     "forecasting.challenger.windows must be a whole number >= 1, got 0", id="challenger-windows"),
        pytest.param(_set(["forecasting", "challenger", "classes"], ["seasonal"]),
                     "forecasting.challenger.classes must be a list of smooth, erratic, intermittent, lumpy",
                     id="challenger-classes"),
        pytest.param(_set(["forecasting", "challenger", "top"], 5),
                     "unknown forecasting.challenger keys ['top']", id="challenger-unknown-key"),
        pytest.param(_set(["forecasting", "challenger", "enabled"], "no"),
                     "forecasting.challenger.enabled must be true or false, got 'no'", id="challenger-enabled"),
        pytest.param(_set(["forecasting", "champion"], {}), "forecasting takes one key, challenger",
                     id="forecasting-unknown-key"),
    ],
)
def test_invalid_policy_names_file_and_problem(tmp_path, mutate, message):
    path = tmp_path / "policy.yaml"
    path.write_text(_policy_text(mutate))

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_unreadable_policy_names_the_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("rules: [\n")

    with pytest.raises(PolicyError, match="cannot be read") as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: ")
    with pytest.raises(PolicyError, match="the policy must be a mapping"):
        path.write_text("- just a list\n")
        load_policy(path)


def test_medium_tier_may_be_auto_approved_without_deciders(tmp_path):
    def mutate(data):
        data["auto_approve_tiers"] = ["low", "medium"]
        data["deciders"].pop("medium")
    path = tmp_path / "policy.yaml"
    path.write_text(_policy_text(mutate))

    policy = load_policy(path)

    assert policy.deciders["medium"] == ()
    assert tier_proposals(pd.DataFrame([_line(value=2000.0)]), policy)["auto_approve"].tolist() == [True]
