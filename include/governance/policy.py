"""The governance policy: risk tiers, auto-approval, deciders and the gate timeout, from a YAML file.

The file is meant to be read and edited by planners, so loading is strict and every problem is
reported with the file and the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from include.config import POLICY_FILE

TIERS = ("low", "medium", "high")
DOC_TYPES = ("replenishment", "transfer", "po_exception")
CONDITIONS = {
    "value_above": float,
    "quantity_vs_usual_above": float,
    "fallback_used": bool,
    "forecast_error_above": float,
    "anomaly": bool,
    "supplier_late_rate_above": float,
    "action_in": list,
}


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Rule:
    name: str
    doc_types: tuple[str, ...]
    when: dict[str, Any]
    tier: str


@dataclass(frozen=True)
class Policy:
    """A loaded, checked governance policy."""

    path: str
    rules: tuple[Rule, ...]
    auto_approve_tiers: tuple[str, ...]
    deciders: dict[str, tuple[str, ...]]
    gate_timeout_hours: float
    poke_interval_seconds: float
    costs: dict[str, float]
    roles: dict[str, str] = field(default_factory=dict)
    #: Forecast monitoring thresholds: ``metric``, ``max_ratio``, ``max_abs_bias``, ``horizon_days``.
    monitoring: dict[str, Any] = field(default_factory=lambda: dict(MONITORING_DEFAULTS))
    #: The per-series forecast challenger (keys of :data:`CHALLENGER_DEFAULTS`); ``None`` when off.
    challenger: dict[str, Any] | None = field(default_factory=lambda: dict(CHALLENGER_DEFAULTS))

    def shelfwise_roles(self, airflow_roles: set[str] | list[str] | str | None) -> set[str]:
        """The Shelfwise roles (``planner``, ``manager``, ``admin``) of a user with these Airflow roles."""
        if airflow_roles is None:
            return set()
        if isinstance(airflow_roles, str):
            airflow_roles = [airflow_roles]
        return {self.roles[r.lower()] for r in airflow_roles if r and r.lower() in self.roles}

    def decidable_tiers(self, roles: set[str] | list[str]) -> list[str]:
        """The tiers a user with these Shelfwise roles may decide, lowest first."""
        return [t for t in TIERS if self.may_decide(roles, t)]

    def may_decide(self, roles: set[str] | list[str], tier: str) -> bool:
        """Whether a user with these roles may approve or reject a line of ``tier``."""
        return bool(set(roles) & set(self.deciders.get(tier, ())))


MONITORING_DEFAULTS: dict[str, Any] = {"metric": "mase", "max_ratio": 1.25, "max_abs_bias": 0.3, "horizon_days": 7,
                                        "fallback_on_drift": True}


def _monitoring(raw: dict, fail) -> dict[str, Any]:
    unknown = set(raw) - set(MONITORING_DEFAULTS)
    if unknown:
        raise fail(f"unknown monitoring keys {sorted(unknown)} (known: {', '.join(sorted(MONITORING_DEFAULTS))})")
    out = {**MONITORING_DEFAULTS, **raw}
    if out["metric"] not in ("mase", "rmsse"):
        raise fail(f"monitoring.metric must be mase or rmsse, got {out['metric']!r}")
    if not isinstance(out["fallback_on_drift"], bool):
        raise fail(f"monitoring.fallback_on_drift must be true or false, got {out['fallback_on_drift']!r}")
    for key in ("max_ratio", "max_abs_bias", "horizon_days"):
        if not isinstance(out[key], int | float) or isinstance(out[key], bool) or out[key] <= 0:
            raise fail(f"monitoring.{key} must be a positive number, got {out[key]!r}")
    out["horizon_days"] = int(out["horizon_days"])
    return out


CHALLENGER_DEFAULTS: dict[str, Any] = {"model": "prophet", "top_n": 50, "margin": 0.02, "windows": 2, "min_series": 10,
                                        "min_lift": 0.15, "min_effect_days": 7,
                                        "classes": ["smooth", "erratic"], "timeout_seconds": 20,
                                        "budget_seconds": 300}


def _challenger(raw: dict, fail) -> dict[str, Any] | None:
    """The ``forecasting.challenger`` section, checked; ``None`` when ``enabled: false``."""
    if not isinstance(raw, dict):
        raise fail("forecasting.challenger must be a mapping")
    raw = dict(raw)
    enabled = raw.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise fail(f"forecasting.challenger.enabled must be true or false, got {enabled!r}")
    unknown = set(raw) - set(CHALLENGER_DEFAULTS)
    if unknown:
        raise fail(f"unknown forecasting.challenger keys {sorted(unknown)} "
                   f"(known: enabled, {', '.join(sorted(CHALLENGER_DEFAULTS))})")
    out = {**CHALLENGER_DEFAULTS, **raw}
    if out["model"] not in ("prophet", "statsmodels_ets"):
        raise fail(f"forecasting.challenger.model must be prophet or statsmodels_ets, got {out['model']!r}")
    for key, least in (("top_n", 0), ("windows", 1), ("min_series", 1), ("min_effect_days", 1)):
        if not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < least:
            raise fail(f"forecasting.challenger.{key} must be a whole number >= {least}, got {out[key]!r}")
    for key in ("margin", "min_lift"):
        if not isinstance(out[key], int | float) or isinstance(out[key], bool) or not 0 <= out[key] < 1:
            raise fail(f"forecasting.challenger.{key} must be in [0, 1), got {out[key]!r}")
    for key in ("timeout_seconds", "budget_seconds"):
        if not isinstance(out[key], int | float) or isinstance(out[key], bool) or out[key] <= 0:
            raise fail(f"forecasting.challenger.{key} must be a positive number, got {out[key]!r}")
    classes = out["classes"]
    valid = ("smooth", "erratic", "intermittent", "lumpy")
    if not isinstance(classes, list) or not classes or any(c not in valid for c in classes):
        raise fail(f"forecasting.challenger.classes must be a list of {', '.join(valid)}, got {classes!r}")
    return out if enabled else None


def load_policy(path: str | Path = POLICY_FILE) -> Policy:
    """Load and check the policy.

    Raises:
        PolicyError: naming the file and the first problem.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"{path}: cannot be read: {exc}") from exc

    def fail(message: str) -> PolicyError:
        return PolicyError(f"{path}: {message}")

    if not isinstance(data, dict):
        raise fail("the policy must be a mapping")
    unknown = set(data) - {"version", "gate", "auto_approve_tiers", "deciders", "rules", "costs", "roles",
                           "monitoring", "forecasting"}
    if unknown:
        raise fail(f"unknown top-level keys {sorted(unknown)}")
    gate = data.get("gate") or {}
    if set(gate) - {"timeout_hours", "poke_interval_seconds"}:
        raise fail(f"unknown gate keys {sorted(set(gate) - {'timeout_hours', 'poke_interval_seconds'})}")
    timeout = gate.get("timeout_hours")
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise fail(f"gate.timeout_hours must be a positive number, got {timeout!r}")
    auto = tuple(data.get("auto_approve_tiers") or ())
    for tier in auto:
        if tier not in TIERS:
            raise fail(f"auto_approve_tiers: {tier!r} is not one of {', '.join(TIERS)}")
    deciders = data.get("deciders") or {}
    for tier in TIERS:
        if tier not in auto and not deciders.get(tier):
            raise fail(f"deciders.{tier}: a tier that is not auto-approved needs at least one role")
    for tier in deciders:
        if tier not in TIERS:
            raise fail(f"deciders: {tier!r} is not one of {', '.join(TIERS)}")
    decider_roles = {role for names in deciders.values() for role in (names or ())}
    roles = data.get("roles") or {}
    if not isinstance(roles, dict):
        raise fail("roles must map Airflow roles to Shelfwise roles")
    for airflow_role, shelfwise_role in roles.items():
        if shelfwise_role not in decider_roles:
            raise fail(f"roles.{airflow_role}: {shelfwise_role!r} is not a role named in deciders "
                       f"({', '.join(sorted(decider_roles))})")
    rules = []
    for i, raw in enumerate(data.get("rules") or []):
        where = f"rules[{i}]"
        if not isinstance(raw, dict) or set(raw) != {"name", "doc_types", "when", "tier"}:
            raise fail(f"{where} needs exactly name, doc_types, when and tier")
        if raw["tier"] not in TIERS:
            raise fail(f"{where} ({raw['name']}): tier {raw['tier']!r} is not one of {', '.join(TIERS)}")
        for doc in raw["doc_types"]:
            if doc not in DOC_TYPES:
                raise fail(f"{where} ({raw['name']}): doc type {doc!r} is not one of {', '.join(DOC_TYPES)}")
        if not isinstance(raw["when"], dict) or not raw["when"]:
            raise fail(f"{where} ({raw['name']}): when must name at least one condition")
        for cond, value in raw["when"].items():
            if cond not in CONDITIONS:
                raise fail(f"{where} ({raw['name']}): unknown condition {cond!r} "
                           f"(known: {', '.join(sorted(CONDITIONS))})")
            expected = CONDITIONS[cond]
            ok = isinstance(value, expected) or (expected is float and isinstance(value, int)
                                                  and not isinstance(value, bool))
            if not ok:
                raise fail(f"{where} ({raw['name']}): {cond} must be a {expected.__name__}, got {value!r}")
        rules.append(Rule(str(raw["name"]), tuple(raw["doc_types"]), dict(raw["when"]), raw["tier"]))
    return Policy(
        path=str(path),
        rules=tuple(rules),
        auto_approve_tiers=auto,
        deciders={t: tuple(deciders.get(t) or ()) for t in TIERS},
        gate_timeout_hours=float(timeout),
        poke_interval_seconds=float(gate.get("poke_interval_seconds", 30)),
        costs={k: float(v) for k, v in (data.get("costs") or {}).items()},
        roles={str(k).lower(): str(v) for k, v in roles.items()},
        monitoring=_monitoring(data.get("monitoring") or {}, fail),
        challenger=_forecasting(data.get("forecasting") or {}, fail),
    )


def _forecasting(raw: dict, fail) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or set(raw) - {"challenger"}:
        raise fail(f"forecasting takes one key, challenger; got {sorted(raw) if isinstance(raw, dict) else raw!r}")
    return _challenger(raw.get("challenger") or {}, fail)


def _matches(rule: Rule, line: dict[str, Any]) -> bool:
    explain = line.get("explanation") or {}
    for cond, value in rule.when.items():
        if cond == "value_above" and not float(line.get("value") or 0) > value:
            return False
        if cond == "quantity_vs_usual_above":
            usual = float(explain.get("usual_quantity") or 0)
            if usual <= 0 or not float(line.get("quantity") or 0) / usual > value:
                return False
        if cond == "fallback_used" and bool(explain.get("fallback_reason")) != value:
            return False
        if cond == "forecast_error_above":
            err = explain.get("backtest_mase")
            if err is None or pd.isna(err) or not float(err) > value:
                return False
        if cond == "anomaly" and bool(explain.get("anomalies")) != value:
            return False
        if cond == "supplier_late_rate_above":
            rate = explain.get("supplier_late_rate")
            if rate is None or pd.isna(rate) or not float(rate) > value:
                return False
        if cond == "action_in" and line.get("action") not in value:
            return False
    return True


def assign_tier(line: dict[str, Any], policy: Policy) -> tuple[str, list[str]]:
    """Tier one proposal line.

    Args:
        line: the line's fields (``doc_type``, ``value``, ``quantity``, ``action``, ``explanation``).
        policy: the loaded policy.

    Returns:
        ``(tier, reasons)``: the highest tier of the matching rules and their names.
    """
    tier, reasons = "low", []
    for rule in policy.rules:
        if line.get("doc_type") in rule.doc_types and _matches(rule, line):
            reasons.append(rule.name)
            if TIERS.index(rule.tier) > TIERS.index(tier):
                tier = rule.tier
    return tier, reasons


def tier_proposals(proposals: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Add ``risk_tier``, ``tier_reasons`` and ``auto_approve`` to a frame of proposals."""
    out = proposals.copy()
    tiers = [assign_tier(row, policy) for row in out.to_dict("records")]
    out["risk_tier"] = [t for t, _ in tiers]
    out["tier_reasons"] = [r for _, r in tiers]
    out["auto_approve"] = out["risk_tier"].isin(policy.auto_approve_tiers)
    return out
