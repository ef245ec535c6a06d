"""The governance policy: risk tiers, auto-approval, deciders and the gate timeout, from a YAML file.

The file is meant to be read and edited by planners, so loading is strict: the file is validated by
the pydantic models below (unknown keys refused at every level, no coercion of ``"5"`` or ``true``
into numbers) and every problem is reported as ``<file>:<line>: <field path>: <problem>``, in the
words of the data contracts (:mod:`include.yaml_errors`). Each default lives once, as the default of its
model field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_type_hints

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from include.config import policy_file
from include.yaml_errors import problem, read_yaml, validate

Tier = Literal["low", "medium", "high"]
DocType = Literal["replenishment", "transfer", "po_exception", "fulfilment_assignment", "return_disposition",
                  "finance_review"]
DemandClass = Literal["smooth", "erratic", "intermittent", "lumpy"]
TIERS: tuple[str, ...] = get_args(Tier)
DOC_TYPES: tuple[str, ...] = get_args(DocType)


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file, the line and the field."""


def _fraction(value: float) -> float:
    if not 0 <= value < 1:
        raise problem("fraction", f"must be in [0, 1), got {value!r}")
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
    exception_in: Items[StrictStr]


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
            raise problem("when", "must name at least one condition")
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
        night_budget_seconds: Total time for all fits of a night, shared equally by its shards (a shard
            gets the smaller of this share and ``budget_seconds``), so the challenger never dominates a
            night however many shards it has.
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
    night_budget_seconds: PositiveNumber = 300.0


class _ChallengerSection(ChallengerPolicy):
    enabled: StrictBool = True


def _target(value: float) -> float:
    if not 0 < value < 1:
        raise problem("fill rate", f"must lie strictly between 0 and 1, got {value!r}")
    return value


FillRate = Annotated[float, AfterValidator(_target)]


class ServiceFeedbackSection(_Strict):
    """How the fill achieved corrects the target planned (:mod:`include.decisions.service`).

    Attributes:
        enabled: Plan with the effective target the fill achieved asks for (False: the target as it is).
        half_life_days: Half-life of the weight of past days in the fill measured.
        prior_days: Days of planned losses the measured ratio is shrunk toward 1 by.
        max_age_days: A ledger older than this is not continued: the night starts a fresh one.
    """

    enabled: StrictBool = True
    half_life_days: Annotated[float, Field(gt=0)] = 112.0
    prior_days: Annotated[float, Field(ge=0)] = 14.0
    max_age_days: Annotated[StrictInt, Field(ge=1)] = 14


class Replenishment(_Strict):
    """How much stock replenishment plans for: the service it must give, and the order cycle.

    Attributes:
        fill_rate: Target share of demand served from stock (the unit fill rate), for series no rule
            below names. Safety stock is sized from the forecast's measured error over the lead time
            and the lead-time spread so that the expected fill rate meets it.
        fill_rate_by_category: Target per item category (the item master's ``category``).
        fill_rate_by_demand_class: Target per demand class of the series (used when its category has
            none).
        review_days: Days of demand an order adds above the reorder point (the order cycle).
        service_feedback: How the fill achieved corrects the target planned.
    """

    fill_rate: FillRate = 0.98
    fill_rate_by_category: dict[StrictStr, FillRate] = Field(default_factory=dict)
    fill_rate_by_demand_class: dict[DemandClass, FillRate] = Field(default_factory=dict)
    review_days: Annotated[StrictInt, Field(gt=0)] = 7
    service_feedback: ServiceFeedbackSection = Field(default_factory=ServiceFeedbackSection)


class Intraday(_Strict):
    """How ``retail_intraday`` senses surges and how long its proposals wait.

    Attributes:
        false_alarms_per_1000_series_day: The sequential test's false-alarm budget.
        shock_ratio: The surge (multiple of the forecast) the test is tuned to find.
        deadline_hours: How long an urgent line waits for a decision before it expires.
        persistence: Share of a surge's surplus expected to carry over to the next day.
        cover_days: Days after today a receiver must cover until its next regular delivery.
        transfer_hours: Hours a same-day store transfer takes to arrive.
        expedite_hours: Hours an expedited DC delivery takes to arrive.
        ship_from_store_hours: Hours until web orders are served from a store's shelf once a store gives
            units to the web shop (the next order-routing batch); ``None``: stores give the web shop stock
            by a same-day transfer to the fulfilment centre instead.
        donor_service: Chance a store giving stock to a surge still covers its own demand until its next
            delivery: it keeps its need plus that quantile of its own uncertainty.
        dc_keep: Share of its stock a DC keeps when it expedites to a surge (it forecasts nothing here).
        rescue_min_units: A series that is not surging but runs dry today is sent stock too, by the same
            routes, when it is at least this many units short before its next delivery
            (:class:`include.intraday.day.Rescue`); ``None``: only surges are.
        rescue_within_hours: ... and when its stock is expected to run out within this many hours.
    """

    false_alarms_per_1000_series_day: Annotated[Number, Field(gt=0, lt=1000)] = 1.0
    shock_ratio: Annotated[Number, Field(gt=1)] = 2.0
    deadline_hours: Annotated[Number, Field(gt=0, le=24)] = 2.0
    persistence: Annotated[Number, Field(ge=0, le=1)] = 0.5
    cover_days: Annotated[StrictInt, Field(ge=0, le=14)] = 1
    transfer_hours: Annotated[Number, Field(gt=0)] = 4.0
    expedite_hours: Annotated[Number, Field(gt=0)] = 6.0
    ship_from_store_hours: Annotated[Number, Field(ge=0, le=24)] | None = None
    donor_service: Annotated[Number, Field(gt=0.5, lt=1)] = 0.95
    dc_keep: Annotated[Number, Field(ge=0, lt=1)] = 0.25
    rescue_min_units: Annotated[Number, Field(ge=1)] | None = None
    rescue_within_hours: Annotated[Number, Field(gt=0, le=48)] = 12.0

    def rescue(self):  # noqa: ANN201
        """The :class:`include.intraday.day.Rescue` these settings give, or ``None`` when rescues are off."""
        from include.intraday.day import Rescue

        if self.rescue_min_units is None:
            return None
        return Rescue(min_units=float(self.rescue_min_units), within_hours=float(self.rescue_within_hours))


class Orchestration(_Strict):
    """How ``order_orchestration`` routes order lines and when an assignment is an exception.

    An assignment within these limits is released at once; one beyond them waits for a decision.

    Attributes:
        max_parcels: An order shipping in more parcels than this is an exception (split shipments).
        max_cost_per_order: An order whose fulfilment costs more than this is an exception.
        deadline_minutes: How long an exception waits for a decision before it expires; short, so that a
            decided line still leaves before the node's dispatch cut-off and meets its promise.
        batch_minutes: Minutes between routing batches (the workflow's schedule).
    """

    max_parcels: Annotated[StrictInt, Field(ge=1)] = 2
    max_cost_per_order: PositiveNumber = 25.0
    deadline_minutes: Annotated[Number, Field(gt=0, le=240)] = 30.0
    batch_minutes: Annotated[StrictInt, Field(ge=1, le=60)] = 15


class Escalation(_Strict):
    """The ``fast_lane.escalation`` section: who hears of a critical line nobody decided.

    Attributes:
        after_minutes: A critical line still pending this long after staging is escalated, once.
        channel: How: ``log`` (the task log and the audit trail only), ``webhook`` (a JSON POST to the
            host of the Airflow connection ``connection_id``) or ``smtp`` (an email through the Airflow
            SMTP connection ``connection_id`` to ``recipients``). Every escalation is in the audit trail.
        connection_id: The Airflow connection of the webhook or of the SMTP server.
        recipients: Email addresses (``smtp``), or names put in the message (other channels).
    """

    after_minutes: PositiveNumber = 15.0
    channel: Literal["log", "webhook", "smtp"] = "log"
    connection_id: StrictStr | None = None
    recipients: Items[StrictStr] = ()

    @model_validator(mode="after")
    def _channel_has_a_connection(self) -> Escalation:
        if self.channel != "log" and not self.connection_id:
            raise problem("connection_id", f"the {self.channel} channel needs an Airflow connection id")
        return self


class FastLane(_Strict):
    """The ``fast_lane`` section: critical lines skip the batch.

    A line is critical when its document type is listed, its value is at least ``min_value`` and, left
    to wait, it would run out before the goods could arrive: a replenishment or transfer whose days of
    cover (usable stock over the daily forecast) are below its lead time, an intraday move that arrives
    after the projected stock-out, a PO exception whose delay causes a stock-out. An auto-approved
    critical line is released as soon as it is staged, an approved one as soon as it is decided; a
    pending one is listed first and escalated after ``escalation.after_minutes``.

    Attributes:
        enabled: ``false`` treats every line like the rest of its batch.
        doc_types: Document types that may be critical.
        min_value: Smallest line value that is critical.
        escalation: Who hears of a pending critical line, and when.
    """

    enabled: StrictBool = True
    doc_types: Items[DocType] = ("replenishment", "transfer", "po_exception")
    min_value: Annotated[Number, Field(ge=0)] = 500.0
    escalation: Escalation = Field(default_factory=Escalation)


class Procurement(_Strict):
    """The ``procurement`` section: how supplier scorecards score reliability, and what counts as recent.

    Attributes:
        reliability_weights: Weight of each sub-score in the reliability score (0-100), by name (see
            :class:`include.procurement.scorecards.ScorecardWeights`, which checks the names); a sub-score
            a supplier has no data for is left out and the others re-weighted.
        scorecard_weeks: Trailing weeks each weekly scorecard is computed over.
        catalogue_max_age_days: How old the newest supplier catalogue may be for PO exceptions to use its
            alternates.
    """

    reliability_weights: dict[StrictStr, Annotated[Number, Field(ge=0)]] = Field(default_factory=dict)
    scorecard_weeks: Annotated[StrictInt, Field(ge=1, le=104)] = 13
    catalogue_max_age_days: Annotated[StrictInt, Field(ge=0)] = 35


class Returns(_Strict):
    """How ``returns_routing`` holds returned units for loss prevention and how long a held line waits.

    A disposition that is not held is released at once; a held one (rules ``return_fraud_risk``,
    ``return_high_value``) waits for loss prevention.

    Attributes:
        fraud_hold_score: A line whose fraud score reaches this is held (exception ``fraud_risk``).
        high_value_hold: A line whose refund reaches this is held (exception ``high_value``).
        review_budget_per_day: Lines loss prevention can look at in a day; the riskiest this many of a day's
            lines carry their review rank and reason.
        min_confirmed_cases: Fewest fraud cases loss prevention confirmed in the history window for the fraud
            model to be trained; with fewer (a cold start) lines are scored by the rules baseline.
        history_days: Days of returns before the run's date that give each customer's window and the
            training lines.
        deadline_hours: How long a held line waits for a decision before it expires.
        shelve_days: Days from a unit's return until the inventory snapshot shows it back on the shelf once
            released to ``restock_as_new`` (a ``transfer_to`` unit travels the disposition's transfer days
            more); until then the nightly's replenishment counts it in the inventory position.
    """

    fraud_hold_score: Annotated[Number, Field(gt=0, le=1)] = 0.5
    high_value_hold: PositiveNumber = 400.0
    review_budget_per_day: Annotated[StrictInt, Field(ge=0)] = 50
    min_confirmed_cases: Annotated[StrictInt, Field(ge=1)] = 20
    history_days: Annotated[StrictInt, Field(ge=1, le=730)] = 90
    deadline_hours: Annotated[Number, Field(gt=0, le=168)] = 24.0
    shelve_days: Annotated[StrictInt, Field(ge=0, le=30)] = 1


class Finance(_Strict):
    """How ``finance_review`` judges the margin bridge and how long an item waits for finance.

    Attributes:
        window_days: Days of the bridge's window, ending on the night (a week: every weekday once).
        baseline_weeks: Trailing weeks before the window that give a cell its expected rates.
        min_z: Robust z (against the median and MAD of the cell's baseline weeks) from which a cause is
            beyond its normal range: the review's sensitivity.
        min_excess: Margin lost to a cause over the window from which it is worth an item.
        min_excess_by_cause: ``min_excess`` of the causes named here (refunds and shrink come in whole items).
        min_baseline_weeks: Baseline weeks with sales a cell needs before it is judged.
        horizon_weeks: Weeks the excess is projected over (the loss if it continues).
        gap_nights: Nights a cell and cause may go unflagged and still continue the same item.
        short_days: The short window (the last nights) that sees an event on its first nights, judged against
            the baseline weeks cut into spans as short as itself.
        short_min_z: Robust z from which the short window alone makes an item (stricter than ``min_z``).
        short_min_excess: Margin lost in the short window from which it alone makes an item.
        short_causes: Causes the short window may flag; refunds and shrink come in whole items, which two
            nights cannot tell from an event, so they are judged on the week only.
        deadline_hours: How long an item waits for a decision before it expires (nobody reviewed it).
    """

    window_days: Annotated[StrictInt, Field(ge=1, le=31)] = 7
    baseline_weeks: Annotated[StrictInt, Field(ge=1, le=52)] = 12
    min_z: PositiveNumber = 4.0
    min_excess: Annotated[Number, Field(ge=0)] = 35.0
    min_excess_by_cause: dict[Literal["price_markdown", "promotion_depth", "returns_refunds", "expedited_shipping",
                                      "fulfilment_substitution", "shrink", "mix"],
                              Annotated[Number, Field(ge=0)]] = Field(
        default_factory=lambda: {"returns_refunds": 300.0, "shrink": 150.0})
    min_baseline_weeks: Annotated[StrictInt, Field(ge=1, le=52)] = 4
    horizon_weeks: PositiveNumber = 4.0
    gap_nights: Annotated[StrictInt, Field(ge=0, le=14)] = 2
    short_days: Annotated[StrictInt, Field(ge=1, le=31)] = 2
    short_min_z: PositiveNumber = 10.0
    short_min_excess: Annotated[Number, Field(ge=0)] = 15.0
    short_causes: Items[Literal["price_markdown", "returns_refunds", "expedited_shipping", "fulfilment_substitution",
                                "shrink"]] = ("price_markdown", "expedited_shipping", "fulfilment_substitution")
    deadline_hours: Annotated[Number, Field(gt=0, le=168)] = 20.0

    @model_validator(mode="after")
    def _short_within_window(self) -> Finance:
        if self.short_days > self.window_days:
            raise problem("short_days", f"must be at most window_days ({self.window_days}), got {self.short_days}",
                          ("short_days",))
        return self


class Overrides(_Strict):
    """What a planner may change when approving a line with another quantity than the proposed one.

    Attributes:
        doc_types: Document types whose quantity may be overridden.
        max_ratio: The approved quantity lies from 0 to this multiple of the proposed one (a proposal of 0
            may go up to ``min_ceiling`` units).
        min_ceiling: The upper bound, in units, of an override of a very small proposal.
        reason_codes: The reasons a planner picks one from (the note says more).
    """

    doc_types: Items[DocType] = ("replenishment", "transfer")
    max_ratio: Annotated[Number, Field(ge=1, le=100)] = 3.0
    min_ceiling: Annotated[Number, Field(ge=0)] = 10.0
    reason_codes: Annotated[Items[Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]],
                            Field(min_length=1)] = (
        "promotion_plan", "local_event", "supplier_constraint", "shelf_space", "known_data_error", "other")

    def ceiling(self, proposed: float) -> float:
        """The largest quantity a line proposed at ``proposed`` may be approved with."""
        return round(max(proposed * self.max_ratio, self.min_ceiling), 2)


class BaselineReplay(_Strict):
    """How the nightly measures its stock-out reduction and the markdowns it avoided against the ERP's rule.

    Every ``every_days`` the nightly replays the recent demand of a fixed sample of series twice, with the
    same lead times: under its own replenishment (the production forecaster and ``replenishment.fill_rate``)
    and under the ERP's reorder rule (``baseline``, with ``baseline_safety_days`` of safety stock).

    Attributes:
        every_days: Days between two replays; the nights in between report the latest one.
        history_days: Days of demand replayed, warm-up included.
        window_days: The scored days at the end of them (the rest is the warm-up).
        max_series: Series replayed (a sample, the same every week: the first by a hash of their id).
        baseline: The ERP's rule: ERPNext's reorder level or Odoo's min/max.
        baseline_safety_days: Days of average demand the ERP's rule keeps as safety stock.
        markdown_cover_days: Days of a series' mean demand beyond which its stock is overstock.
        markdown_depth: Share of its cost a clearance marks overstock down by.
    """

    every_days: Annotated[StrictInt, Field(ge=1, le=91)] = 7
    history_days: Annotated[StrictInt, Field(ge=42, le=730)] = 182
    window_days: Annotated[StrictInt, Field(ge=14, le=365)] = 56
    max_series: Annotated[StrictInt, Field(ge=1, le=100_000)] = 300
    baseline: Literal["erpnext_reorder_level", "odoo_min_max"] = "erpnext_reorder_level"
    baseline_safety_days: Annotated[Number, Field(ge=0, le=90)] = 7.0
    markdown_cover_days: PositiveNumber = 56.0
    markdown_depth: Annotated[Number, Field(gt=0, le=1)] = 0.3

    @model_validator(mode="after")
    def _window_within_history(self) -> BaselineReplay:
        if self.window_days > self.history_days - 28:
            raise problem("window_days", f"must leave at least 28 days of warm-up in history_days "
                          f"({self.history_days}), got {self.window_days}", ("window_days",))
        return self


class _Forecasting(_Strict):
    challenger: _ChallengerSection = Field(default_factory=_ChallengerSection)


#: The curated contracts whose data each document type's lines are explained with. When one of them was a
#: stand-in (its last good partition, on a degraded night), the line goes up one tier, reason
#: ``stale_input:<contract>``. Supplier master, PO snapshots and receipts give lead times, on-order stock and
#: PO lateness; promotions are forecast regressors; the nightly's returns feed only the return-spike report. A
#: return disposition is priced with the stock already on the shelf (``inventory_snapshot``) and the forecast.
STALE_INPUTS: dict[str, tuple[str, ...]] = {
    "replenishment": ("suppliers", "purchase_orders", "receipts", "promotions"),
    "transfer": ("promotions",),
    "po_exception": ("suppliers", "purchase_orders", "receipts", "promotions"),
    "fulfilment_assignment": (),
    "return_disposition": ("inventory_snapshot", "promotions"),
    "finance_review": ("promotions",),
}


class PolicyFile(_Strict):
    """The whole policy file as written, before it becomes a :class:`Policy`."""

    version: Literal[1] = 1
    gate: Gate
    auto_approve_tiers: Items[Tier] = ()
    deciders: dict[Tier, Items[StrictStr]] = Field(default_factory=dict)
    deciders_by_doc_type: dict[DocType, dict[Tier, Items[StrictStr]]] = Field(default_factory=dict)
    roles: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    user_roles: dict[StrictStr, Items[StrictStr]] = Field(default_factory=dict)
    rules: Items[RuleSpec] = ()
    monitoring: Monitoring = Field(default_factory=Monitoring)
    forecasting: _Forecasting = Field(default_factory=_Forecasting)
    replenishment: Replenishment = Field(default_factory=Replenishment)
    intraday: Intraday = Field(default_factory=Intraday)
    orchestration: Orchestration = Field(default_factory=Orchestration)
    fast_lane: FastLane = Field(default_factory=FastLane)
    procurement: Procurement = Field(default_factory=Procurement)
    returns: Returns = Field(default_factory=Returns)
    finance: Finance = Field(default_factory=Finance)
    baseline_replay: BaselineReplay = Field(default_factory=BaselineReplay)
    overrides: Overrides = Field(default_factory=Overrides)
    #: The ISO 4217 code values are shown in (unit costs, line values, margins) on the pages.
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    costs: dict[StrictStr, Number] = Field(default_factory=dict)
    stale_inputs: dict[DocType, Items[StrictStr]] = Field(default_factory=lambda: dict(STALE_INPUTS))
    #: The executive dashboard's target per KPI (its catalogue's keys); ``null`` shows no target.
    kpi_targets: dict[StrictStr, Number | None] = Field(default_factory=dict)

    @field_validator("kpi_targets")
    @classmethod
    def _known_kpis(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        from include.reporting.dashboard import KEYS

        for key in value:
            if key not in KEYS:
                raise problem("kpi_targets", f"{key!r} is not a KPI of the dashboard's catalogue"
                              " (include/reporting/dashboard.py)", (key,))
        return value

    @model_validator(mode="after")
    def _deciders_and_roles_agree(self) -> PolicyFile:
        tables = [(("deciders",), self.deciders)]
        tables += [(("deciders_by_doc_type", doc_type), by_tier) for doc_type, by_tier in self.deciders_by_doc_type.items()]
        for where, by_tier in tables:
            for tier in TIERS:
                if tier not in self.auto_approve_tiers and not by_tier.get(tier):
                    raise problem(where[-1], "a tier that is not auto-approved needs at least one role",
                                  (*where, tier))
        named = sorted({role for _, by_tier in tables for names in by_tier.values() for role in names})
        for airflow_role, role in self.roles.items():
            if role not in named:
                raise problem("roles", f"{role!r} is not a role named in deciders ({', '.join(named)})",
                              ("roles", airflow_role))
        for username, roles in self.user_roles.items():
            for n, role in enumerate(roles):
                if role not in named:
                    raise problem("user_roles", f"{role!r} is not a role named in deciders ({', '.join(named)})",
                                  ("user_roles", username, n))
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
    #: Deciders that replace ``deciders`` for a document type (every tier filled in).
    deciders_by_doc_type: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    #: Shelfwise roles of named users, on top of those of their Airflow roles.
    user_roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    monitoring: Monitoring = field(default_factory=Monitoring)
    #: The per-series forecast challenger; ``None`` when ``enabled: false``.
    challenger: ChallengerPolicy | None = field(default_factory=ChallengerPolicy)
    replenishment: Replenishment = field(default_factory=Replenishment)
    intraday: Intraday = field(default_factory=Intraday)
    orchestration: Orchestration = field(default_factory=Orchestration)
    fast_lane: FastLane = field(default_factory=FastLane)
    procurement: Procurement = field(default_factory=Procurement)
    returns: Returns = field(default_factory=Returns)
    finance: Finance = field(default_factory=Finance)
    baseline_replay: BaselineReplay = field(default_factory=BaselineReplay)
    overrides: Overrides = field(default_factory=Overrides)
    #: The ISO 4217 code of the values shown on the pages.
    currency: str = "USD"
    #: Contracts each document type's lines depend on (see :data:`STALE_INPUTS`).
    stale_inputs: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(STALE_INPUTS))
    #: The policy's own KPI targets (``kpi_targets``); the dashboard fills in its defaults for the rest.
    kpi_targets: dict[str, float | None] = field(default_factory=dict)

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
            deciders_by_doc_type={d: {tier: by_tier.get(tier, ()) for tier in TIERS}
                                  for d, by_tier in doc.deciders_by_doc_type.items()},
            user_roles=dict(doc.user_roles),
            monitoring=doc.monitoring,
            challenger=ChallengerPolicy(**section.model_dump(exclude={"enabled"})) if section.enabled else None,
            replenishment=doc.replenishment,
            intraday=doc.intraday,
            orchestration=doc.orchestration,
            fast_lane=doc.fast_lane,
            procurement=doc.procurement,
            returns=doc.returns,
            finance=doc.finance,
            baseline_replay=doc.baseline_replay,
            overrides=doc.overrides,
            currency=doc.currency,
            stale_inputs=dict(doc.stale_inputs),
            kpi_targets=dict(doc.kpi_targets),
        )

    def shelfwise_roles(self, airflow_roles: set[str] | list[str] | str | None,
                        username: str | None = None) -> set[str]:
        """The Shelfwise roles (``planner``, ``manager``, ``loss_prevention``...) of a user.

        Args:
            airflow_roles: the user's Airflow roles, mapped by ``roles:``.
            username: the user's name; the roles ``user_roles:`` gives that name are added (the demo's simple
                auth manager knows only Airflow's own roles; with FAB or Keycloak map an Airflow role instead).
        """
        if isinstance(airflow_roles, str):
            airflow_roles = [airflow_roles]
        roles = {self.roles[r.lower()] for r in airflow_roles or () if r and r.lower() in self.roles}
        return roles | set(self.user_roles.get(username, ())) if username is not None else roles

    def deciders_of(self, tier: str, doc_type: str | None = None) -> tuple[str, ...]:
        """The roles that decide lines of ``tier`` (of ``doc_type``, when its deciders are set apart)."""
        by_tier = self.deciders_by_doc_type.get(doc_type) if doc_type is not None else None
        return (by_tier if by_tier is not None else self.deciders).get(tier, ())

    def decidable_tiers(self, roles: set[str] | list[str], doc_type: str | None = None) -> list[str]:
        """The tiers a user with these Shelfwise roles may decide (of ``doc_type`` when given), lowest first."""
        return [t for t in TIERS if self.may_decide(roles, t, doc_type)]

    def may_decide(self, roles: set[str] | list[str], tier: str, doc_type: str | None = None) -> bool:
        """Whether a user with these roles may approve or reject a line of ``tier`` (and of ``doc_type``:
        ``deciders_by_doc_type`` replaces ``deciders`` for the document types it names)."""
        return bool(set(roles) & set(self.deciders_of(tier, doc_type)))


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
    doc = validate(PolicyFile, read_yaml(path, PolicyError, "the policy"), PolicyError)
    return Policy.from_file(doc, path)


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
        if cond == "exception_in" and not set(explain.get("exceptions") or ()) & set(value):
            return False
    return True


def assign_tier(line: dict[str, Any], policy: Policy, stale: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """Tier one proposal line.

    Args:
        line: the line's fields (``doc_type``, ``value``, ``quantity``, ``action``, ``explanation``).
        policy: the loaded policy.
        stale: contracts a stand-in partition replaced on this night.

    Returns:
        ``(tier, reasons)``: the highest tier of the matching rules and their names; one tier higher (at
        most the highest), with a ``stale_input:<contract>`` reason each, when the line depends on a
        stale contract (``stale_inputs``).
    """
    tier, reasons = "low", []
    for rule in policy.rules:
        if line.get("doc_type") in rule.doc_types and _matches(rule, line):
            reasons.append(rule.name)
            if TIERS.index(rule.tier) > TIERS.index(tier):
                tier = rule.tier
    depends = sorted(stale & set(policy.stale_inputs.get(line.get("doc_type"), ())))
    if depends:
        reasons += [f"stale_input:{contract}" for contract in depends]
        tier = TIERS[min(TIERS.index(tier) + 1, len(TIERS) - 1)]
    return tier, reasons


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def critical_reason(line: dict[str, Any], fast_lane: FastLane) -> str | None:
    """Why a proposal line is critical (it takes the fast lane), or ``None`` when it is not.

    A line of a listed document type worth at least ``min_value`` is critical when waiting would leave its
    destination without stock before the goods arrive (:class:`FastLane`). The explanation fields read:
    ``on_hand, in_transit, allocated, backorders, mean_daily_forecast, lead_time_days`` (nightly
    replenishment and transfers), ``hours_to_stockout, hours_to_arrive`` (intraday moves),
    ``projected_stockout_days`` (PO exceptions that change or speed up the order).
    """
    if not fast_lane.enabled or line.get("doc_type") not in fast_lane.doc_types:
        return None
    value = _number(line.get("value")) or 0.0
    if value < fast_lane.min_value:
        return None
    e = line.get("explanation") or {}
    hours, arrive = _number(e.get("hours_to_stockout")), _number(e.get("hours_to_arrive"))
    if hours is not None and arrive is not None:
        return f"runs out in {hours:.0f} h, before the {arrive:.0f} h the move takes" if hours <= arrive else None
    stockout = _number(e.get("projected_stockout_days"))
    if stockout is not None:
        acting = line.get("action") in ("expedite", "move_supplier", "split")
        return f"the delay leaves {stockout:.1f} days without stock" if stockout > 0 and acting else None
    rate, lead = _number(e.get("mean_daily_forecast")), _number(e.get("lead_time_days"))
    if not rate or lead is None:
        return None
    usable = sum(_number(e.get(k)) or 0.0 for k in ("on_hand", "in_transit")) - sum(
        _number(e.get(k)) or 0.0 for k in ("allocated", "backorders"))
    cover = max(usable, 0.0) / rate
    return f"{cover:.1f} days of cover, {lead:.0f} days of lead time" if cover < lead else None


def tier_proposals(proposals: pd.DataFrame, policy: Policy, stale: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Add ``risk_tier``, ``tier_reasons``, ``auto_approve`` and ``critical`` to a frame of proposals.

    A critical line (:func:`critical_reason`) also carries ``critical: true`` and ``critical_reason`` in its
    explanation, which is what staging, release and the approval page read.

    Args:
        stale: contracts a stand-in partition replaced on this night (see :func:`assign_tier`).
    """
    out = proposals.copy()
    rows = out.to_dict("records")
    tiers = [assign_tier(row, policy, stale) for row in rows]
    out["risk_tier"] = [t for t, _ in tiers]
    out["tier_reasons"] = [r for _, r in tiers]
    out["auto_approve"] = out["risk_tier"].isin(policy.auto_approve_tiers)
    reasons = [critical_reason(row, policy.fast_lane) for row in rows]
    out["critical"] = [r is not None for r in reasons]
    if "explanation" in out and any(out["critical"]):
        out["explanation"] = [e if r is None else {**(e or {}), "critical": True, "critical_reason": r}
                              for e, r in zip(out["explanation"], reasons, strict=True)]
    return out
