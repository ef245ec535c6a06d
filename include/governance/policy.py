"""The governance policy: risk tiers, auto-approval, deciders and the gate timeout, from a YAML file.

The file is meant to be read and edited by planners, so loading is strict: the file is validated by
the pydantic models below (unknown keys refused at every level, no coercion of ``"5"`` or ``true``
into numbers) and every problem is reported as ``<file>:<line>: <field path>: <problem>``. Each
default lives once, as the default of its model field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import pandas as pd
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict, is_typeddict

from include.config import policy_file

Tier = Literal["low", "medium", "high"]
DocType = Literal["replenishment", "transfer", "po_exception"]
DemandClass = Literal["smooth", "erratic", "intermittent", "lumpy"]
TIERS: tuple[str, ...] = get_args(Tier)
DOC_TYPES: tuple[str, ...] = get_args(DocType)


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file, the line and the field."""


class _Invalid(ValueError):
    """A cross-field problem found by a model's own check, at ``loc`` below that model."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _fraction(value: float) -> float:
    if not 0 <= value < 1:
        raise ValueError(f"must be in [0, 1), got {value!r}")
    return value


def _list_as_tuple(value: Any) -> Any:
    # YAML gives lists; strict mode takes only tuples, so a list (and nothing else) becomes one.
    return tuple(value) if isinstance(value, list) else value


_T = TypeVar("_T")
#: A YAML list, kept as a tuple so that the loaded policy cannot be changed in place.
Items = Annotated[tuple[_T, ...], BeforeValidator(_list_as_tuple)]
#: An int or a float; strict mode refuses bools and strings such as ``"5"``.
Number = float
PositiveNumber = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, AfterValidator(_fraction)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Gate(_Strict):
    """The ``gate`` section.

    Attributes:
        timeout_hours: How long the approval gate waits; lines still pending then expire.
        poke_interval_seconds: How often the gate's trigger checks the decisions.
    """

    timeout_hours: PositiveNumber
    poke_interval_seconds: PositiveNumber = 30.0


@with_config(ConfigDict(strict=True, extra="forbid", allow_inf_nan=False))
class Conditions(TypedDict, total=False):
    """A rule's ``when``: the conditions a line must all meet; absent conditions are not checked."""

    value_above: Number
    quantity_vs_usual_above: Number
    fallback_used: StrictBool
    forecast_error_above: Number
    anomaly: StrictBool
    supplier_late_rate_above: Number
    action_in: Items[StrictStr]


CONDITIONS: tuple[str, ...] = tuple(get_type_hints(Conditions))


class RuleSpec(_Strict):
    """One entry of ``rules``: the tier a line of ``doc_types`` gets when it meets ``when``."""

    name: StrictStr
    doc_types: Annotated[Items[DocType], Field(min_length=1)]
    when: Conditions
    tier: Tier

    @field_validator("when")
    @classmethod
    def _names_a_condition(cls, when: Conditions) -> Conditions:
        if not when:
            raise ValueError("must name at least one condition")
        return when


class Monitoring(_Strict):
    """The ``monitoring`` section: when the nightly forecast score is a drift alert.

    Attributes:
        metric: The error scored, ``mase`` or ``rmsse``.
        max_ratio: Drift when the recent error exceeds this times the segment's earlier error.
        max_abs_bias: Drift when the bias leaves ``+/- max_abs_bias``.
        horizon_days: Age in days of the forecast scored each night.
        fallback_on_drift: Whether a drifting demand class is forecast by the deterministic rule.
    """

    metric: Literal["mase", "rmsse"] = "mase"
    max_ratio: PositiveNumber = 1.25
    max_abs_bias: PositiveNumber = 0.3
    horizon_days: Annotated[StrictInt, Field(gt=0)] = 7
    fallback_on_drift: StrictBool = True


class ChallengerPolicy(_Strict):
    """The ``forecasting.challenger`` section (without ``enabled``): the per-series challenger.

    Attributes:
        model: ``prophet`` or ``statsmodels_ets``.
        top_n: Most series challenged per forecast shard.
        margin: Fraction by which the pooled backtest error must improve, in ``[0, 1)``.
        windows: Backtest windows of one horizon each.
        min_series: Fewest series tried for the pooled decision to take any.
        min_lift: Smallest relative demand change on promotion or event days, in ``[0, 1)``.
        min_effect_days: Fewest days of history over which that lift is measured.
        classes: Demand classes the challenger may take.
        timeout_seconds: Longest one fit may take.
        budget_seconds: Total time for all fits of one shard.
    """

    model: Literal["prophet", "statsmodels_ets"] = "prophet"
    top_n: Annotated[StrictInt, Field(ge=0)] = 50
    margin: Fraction = 0.02
    windows: Annotated[StrictInt, Field(ge=1)] = 2
    min_series: Annotated[StrictInt, Field(ge=1)] = 10
    min_lift: Fraction = 0.15
    min_effect_days: Annotated[StrictInt, Field(ge=1)] = 7
    classes: Annotated[Items[DemandClass], Field(min_length=1)] = ("smooth", "erratic")
    timeout_seconds: PositiveNumber = 20.0
    budget_seconds: PositiveNumber = 300.0


class _ChallengerSection(ChallengerPolicy):
    enabled: StrictBool = True


class _Forecasting(_Strict):
    challenger: _ChallengerSection = Field(default_factory=_ChallengerSection)


class PolicyFile(_Strict):
    """The whole policy file as written, before it becomes a :class:`Policy`."""

    version: Literal[1] = 1
    gate: Gate
    auto_approve_tiers: Items[Tier] = ()
    deciders: dict[Tier, Items[StrictStr]] = Field(default_factory=dict)
    roles: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    rules: Items[RuleSpec] = ()
    monitoring: Monitoring = Field(default_factory=Monitoring)
    forecasting: _Forecasting = Field(default_factory=_Forecasting)
    costs: dict[StrictStr, Number] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _deciders_and_roles_agree(self) -> PolicyFile:
        for tier in TIERS:
            if tier not in self.auto_approve_tiers and not self.deciders.get(tier):
                raise _Invalid(("deciders", tier), "a tier that is not auto-approved needs at least one role")
        named = sorted({role for names in self.deciders.values() for role in names})
        for airflow_role, role in self.roles.items():
            if role not in named:
                raise _Invalid(("roles", airflow_role),
                               f"{role!r} is not a role named in deciders ({', '.join(named)})")
        return self


@dataclass(frozen=True)
class Rule:
    """A checked rule.

    Attributes:
        name: Shown as the reason of the tier.
        doc_types: Document types the rule applies to.
        when: The conditions, by name (see :class:`Conditions`).
        tier: The tier of a matching line.
    """

    name: str
    doc_types: tuple[str, ...]
    when: dict[str, Any]
    tier: str


@dataclass(frozen=True)
class Policy:
    """A loaded, checked governance policy.

    A plain dataclass built from the validated :class:`PolicyFile`: its shape is what the code uses
    (the gate flattened, every tier in ``deciders``, Airflow roles lower-cased, the file's ``path``),
    while the models keep the file's shape so that validation errors point into the file.
    """

    path: str
    rules: tuple[Rule, ...]
    auto_approve_tiers: tuple[str, ...]
    deciders: dict[str, tuple[str, ...]]
    gate_timeout_hours: float
    poke_interval_seconds: float
    costs: dict[str, float]
    roles: dict[str, str] = field(default_factory=dict)
    monitoring: Monitoring = field(default_factory=Monitoring)
    #: The per-series forecast challenger; ``None`` when ``enabled: false``.
    challenger: ChallengerPolicy | None = field(default_factory=ChallengerPolicy)

    @classmethod
    def from_file(cls, doc: PolicyFile, path: str | Path) -> Policy:
        """The policy of a validated file.

        Args:
            doc: The validated file.
            path: Where it was read from.

        Returns:
            The policy.
        """
        section = doc.forecasting.challenger
        return cls(
            path=str(path),
            rules=tuple(Rule(r.name, r.doc_types, dict(r.when), r.tier) for r in doc.rules),
            auto_approve_tiers=doc.auto_approve_tiers,
            deciders={tier: doc.deciders.get(tier, ()) for tier in TIERS},
            gate_timeout_hours=doc.gate.timeout_hours,
            poke_interval_seconds=doc.gate.poke_interval_seconds,
            costs=dict(doc.costs),
            roles={k.lower(): v for k, v in doc.roles.items()},
            monitoring=doc.monitoring,
            challenger=ChallengerPolicy(**section.model_dump(exclude={"enabled"})) if section.enabled else None,
        )

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


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and check the policy.

    Args:
        path: The policy file; ``SHELFWISE_POLICY_FILE``, else the project's, when omitted.

    Returns:
        The policy.

    Raises:
        PolicyError: naming the file, and the line and field path of every problem found.
    """
    path = Path(path) if path is not None else policy_file()
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise PolicyError(f"{where}: cannot be read: {exc}") from exc
    duplicate = _duplicate_key(root, ())
    if duplicate is not None:
        raise PolicyError(f"{path}:{duplicate[0]}: {_field(duplicate[1])}: duplicate key")
    try:
        doc = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_report(path, root, exc, PolicyFile)) from exc
    return Policy.from_file(doc, path)


def _report(path: Path, root: yaml.Node | None, exc: ValidationError, model: type[BaseModel]) -> str:
    """One ``<file>:<line>: <field>: <problem>`` line per error, in file order."""
    problems = sorted((_line(root, loc), _field(loc), message)
                      for loc, message in (_problem(e, model) for e in exc.errors(include_url=False)))
    return "\n".join(f"{path}:{line}: {name}: {message}" if name else f"{path}:{line}: the policy {message}"
                     for line, name, message in problems)


_EXPECTED = {
    "float_type": "a number", "int_type": "a whole number", "bool_type": "true or false", "string_type": "a string",
    "tuple_type": "a list", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "finite_number": "a finite number",
}


def _problem(error: dict[str, Any], model: type[BaseModel]) -> tuple[tuple[str | int, ...], str]:
    """The location and the planner-readable text of one pydantic error of ``model``."""
    loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
    got = _shown(error.get("input"))
    if kind == "value_error":
        cause = ctx["error"]
        return loc + getattr(cause, "loc", ()), str(cause)
    if kind == "extra_forbidden":
        return loc, f"unknown key (known: {', '.join(_known_keys(model, loc[:-1]))})"
    if kind == "missing":
        return loc, "is required"
    if kind == "literal_error":
        return loc, f"must be one of {', '.join(map(str, get_args(_type_at(model, loc))))}, got {got}"
    if kind in _EXPECTED:
        return loc, f"must be {_EXPECTED[kind]}, got {got}"
    if kind == "greater_than":
        bound = "a positive number" if ctx["gt"] == 0 else f"greater than {ctx['gt']}"
        return loc, f"must be {bound}, got {got}"
    if kind == "greater_than_equal":
        return loc, f"must be at least {ctx['ge']}, got {got}"
    if kind == "too_short":
        return loc, "must not be empty"
    return loc, f"{error['msg']}, got {got}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _type_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> Any:
    """The type ``model`` expects at ``loc``, a pydantic error location."""
    if loc[-1:] == ("[key]",):  # a mapping's key: pydantic puts the key's value before the marker
        return _unwrap(get_args(_type_at(model, loc[:-2]))[0])
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            tp = tp.model_fields[part].annotation
        elif is_typeddict(tp):
            tp = get_type_hints(tp)[part]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is tuple:
            tp = get_args(tp)[0]
    return _unwrap(tp)


def _known_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    tp = _type_at(model, loc)
    return sorted(tp.model_fields if isinstance(tp, type) and issubclass(tp, BaseModel) else get_type_hints(tp))


def _field(loc: tuple[str | int, ...]) -> str:
    """``rules[0].when.value_above`` for ``("rules", 0, "when", "value_above")``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out


def _line(root: yaml.Node | None, loc: tuple[str | int, ...]) -> int:
    """The 1-based line of ``loc`` in the file: its key's, or the nearest enclosing one's if it is absent."""
    if root is None:
        return 1
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode) and part != "[key]":
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        elif part != "[key]":
            break
    return line


def _duplicate_key(node: yaml.Node | None, loc: tuple[str | int, ...]) -> tuple[int, tuple[str | int, ...]] | None:
    """The line and location of the first key given twice (YAML would silently keep the last)."""
    if isinstance(node, yaml.SequenceNode):
        children = [((*loc, i), item) for i, item in enumerate(node.value)]
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        children = []
        for key, value in node.value:
            if key.value in seen:
                return key.start_mark.line + 1, (*loc, key.value)
            seen.add(key.value)
            children.append(((*loc, key.value), value))
    else:
        return None
    for child_loc, child in children:
        found = _duplicate_key(child, child_loc)
        if found is not None:
            return found
    return None


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
