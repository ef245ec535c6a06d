"""Parameters of the finance review and the columns its frames carry.

One source of truth for every default of the margin bridge and of the review that turns its causes into
items; the dataclasses validate in ``__post_init__`` so that a misconfigured value fails where it is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# One validation of numeric fields for every library's parameters.
from include.returns.params import _check_non_negative

#: A cell of the bridge: what a margin is reported on.
CELL_KEYS = ("category", "channel", "location_id")
#: Sales channels of a cell: store tills, the web shop and the app.
CHANNELS = ("store", "web", "app")

#: Causes of a margin change, in the order the bridge lists them. Money of a cause is signed: negative
#: when the cause cost margin against the cell's own baseline.
PRICE_MARKDOWN = "price_markdown"
PROMOTION_DEPTH = "promotion_depth"
RETURNS_REFUNDS = "returns_refunds"
EXPEDITED_SHIPPING = "expedited_shipping"
FULFILMENT_SUBSTITUTION = "fulfilment_substitution"
SHRINK = "shrink"
MIX = "mix"
CAUSES = (PRICE_MARKDOWN, PROMOTION_DEPTH, RETURNS_REFUNDS, EXPEDITED_SHIPPING, FULFILMENT_SUBSTITUTION, SHRINK,
          MIX)
#: Causes that are a plain rate on shelf-price sales; the bridge also reports them over its short window.
RATE_CAUSES = (PRICE_MARKDOWN, RETURNS_REFUNDS, EXPEDITED_SHIPPING, FULFILMENT_SUBSTITUTION, SHRINK)

#: Owner functions of review items.
OWNER_MERCHANDISING = "merchandising"
OWNER_SUPPLY_CHAIN = "supply chain"
OWNER_CUSTOMER_SERVICE = "customer service"
OWNER_FINANCE = "finance"
OWNERS = (OWNER_MERCHANDISING, OWNER_SUPPLY_CHAIN, OWNER_CUSTOMER_SERVICE, OWNER_FINANCE)

#: Normalised sales lines the bridge reads (:func:`include.finance.bridge.sales_frame` builds them):
#: ``gross_sales`` at shelf price, ``markdown_amount`` given off it outside a promotion, ``promo_discount``
#: given under one and ``promo_gross`` the shelf-price sales of promoted lines.
SALES_COLUMNS = ("channel", "location_id", "sku", "date", "units", "gross_sales", "markdown_amount",
                 "promo_discount", "promo_gross")
#: Curated returns (the nightly's ``returns`` extract).
RETURN_COLUMNS = ("returned_at", "channel", "location_id", "sku", "refund_amount")
#: The new extracts (``data_contracts/finance/*.yaml``), in file order.
SHIPMENT_COLUMNS = ("shipment_id", "order_id", "line_no", "shipped_at", "channel", "location_id", "sku", "quantity",
                    "service_level", "shipping_cost")
SUBSTITUTION_COLUMNS = ("substitution_id", "order_id", "line_no", "recorded_at", "channel", "location_id", "sku",
                        "substitute_sku", "kind", "quantity", "extra_cost")
SHRINK_COLUMNS = ("adjustment_id", "adjusted_at", "location_id", "sku", "quantity", "reason", "unit_cost",
                  "value_at_cost")
ITEM_COLUMNS = ("sku", "category", "unit_cost")
SERVICE_LEVELS = ("standard", "expedited")
SUBSTITUTION_KINDS = ("substitute_item", "split_shipment", "ship_from_store")
SHRINK_REASONS = ("theft", "damage", "spoilage", "admin_error", "count_correction")


@dataclass(frozen=True)
class BridgeParams:
    """Windows of the margin bridge.

    Attributes:
        window_days: days of the evaluated window, ending on the night (a week: every weekday once).
        baseline_weeks: trailing weeks before the window that give a cell its expected rates.
        short_days: nights of the short window, ending on the night, on which the rate causes are also
            reported (against the same baseline days cut into blocks of as many days), so that an event
            shows on its first nights, before it weighs on a whole week.
    """

    window_days: int = 7
    baseline_weeks: int = 12
    short_days: int = 2

    def __post_init__(self) -> None:
        _check_non_negative(self)
        if self.window_days < 1 or self.baseline_weeks < 1:
            raise ValueError("BridgeParams.window_days and baseline_weeks must be at least 1, got "
                             f"{self.window_days} and {self.baseline_weeks}")
        if not 1 <= self.short_days <= self.window_days:
            raise ValueError(f"BridgeParams.short_days must be from 1 to window_days ({self.window_days}), got "
                             f"{self.short_days}")


@dataclass(frozen=True)
class ReviewParams:
    """Sensitivity of the robust test and what an item carries.

    A cause of a cell is beyond its normal range when its rate (money per shelf-price sales, or discount
    per promoted sales for promotion depth) is above the median of the cell's own baseline weeks by at
    least ``min_z`` robust standard deviations (``1.4826 * MAD``, or ``sd_weight`` times the weeks' standard
    deviation, floored) and the margin it cost over the window reaches ``min_excess``.

    Attributes:
        min_z: robust z from which a cause is unusual.
        min_excess: margin lost to the cause over the window (currency units) from which it is worth an item.
        min_excess_by_cause: ``min_excess`` of the causes named here. Refunds and shrink come in whole items
            (one returned coat, two lost speakers are a tenth of a small cell's week, in a cell that lost none
            for months), and both are booked as provisions: an item needs a loss worth one. Refunds are also
            watched daily by the returns workflow.
        min_baseline_weeks: baseline weeks with sales a cell needs before it is judged.
        rate_floor: smallest robust standard deviation of a rate (a share of sales), so that a cause that
            was exactly flat in the baseline (no markdowns at all) is not flagged for a cent.
        relative_floor: smallest robust standard deviation as a share of the baseline median rate.
        sd_weight: weight of the baseline weeks' standard deviation in the scale: lumpy causes (a few large
            refunds or write-offs a week) have a MAD far below their real spread; smooth ones are unchanged.
        short_min_z: robust z from which a cause is unusual over the bridge's short window (its last
            ``short_days`` nights) against the baseline's blocks of as many days. Stricter than ``min_z``: it
            judges fewer days, and more often.
        short_min_excess: margin lost to a cause over the short window from which it is worth an item. An
            event shows on its first nights, before it weighs ``min_excess`` on a week of a small cell.
        short_causes: causes also judged over the short window; they must be rate causes
            (:data:`RATE_CAUSES`). Refunds and shrink come in whole items, which two nights cannot tell from
            an event, and are judged on the week alone.
        horizon_weeks: weeks the excess is projected over when the cause continues.
        gap_nights: nights a cell x cause may go unflagged and still continue the same item.
        owners: cause -> owner function.
        accrual_causes: causes whose loss is booked as an accrual or provision (shrink write-down, refund
            provision), so their items need a manager.
        reviewed_causes: causes that can become items. ``mix`` and ``promotion_depth`` are reported by the
            bridge but not reviewed: which items sell and how deep the planned promotions go are merchandising
            plans, and a week of a 50% promotion is not a leak.
    """

    min_z: float = 4.0
    min_excess: float = 35.0
    min_excess_by_cause: dict[str, float] = field(default_factory=lambda: {RETURNS_REFUNDS: 300.0, SHRINK: 150.0})
    min_baseline_weeks: int = 4
    rate_floor: float = 0.004
    relative_floor: float = 0.15
    sd_weight: float = 0.5
    short_min_z: float = 10.0
    short_min_excess: float = 15.0
    short_causes: tuple[str, ...] = (PRICE_MARKDOWN, EXPEDITED_SHIPPING, FULFILMENT_SUBSTITUTION)
    horizon_weeks: float = 4.0
    gap_nights: int = 2
    owners: dict[str, str] = field(default_factory=lambda: {
        PRICE_MARKDOWN: OWNER_MERCHANDISING, PROMOTION_DEPTH: OWNER_MERCHANDISING,
        RETURNS_REFUNDS: OWNER_CUSTOMER_SERVICE, EXPEDITED_SHIPPING: OWNER_SUPPLY_CHAIN,
        FULFILMENT_SUBSTITUTION: OWNER_SUPPLY_CHAIN, SHRINK: OWNER_FINANCE, MIX: OWNER_MERCHANDISING})
    accrual_causes: tuple[str, ...] = (RETURNS_REFUNDS, SHRINK)
    reviewed_causes: tuple[str, ...] = (PRICE_MARKDOWN, RETURNS_REFUNDS, EXPEDITED_SHIPPING, FULFILMENT_SUBSTITUTION,
                                        SHRINK)

    def __post_init__(self) -> None:
        _check_non_negative(self)
        if self.min_z <= 0 or self.short_min_z <= 0 or self.min_baseline_weeks < 1 or self.horizon_weeks <= 0:
            raise ValueError("ReviewParams.min_z, short_min_z and horizon_weeks must be above 0 and "
                             f"min_baseline_weeks at least 1, got {self.min_z}, {self.short_min_z}, "
                             f"{self.horizon_weeks}, {self.min_baseline_weeks}")
        if set(self.owners) != set(CAUSES):
            raise ValueError(f"ReviewParams.owners must name the owner of every cause {CAUSES}, got {sorted(self.owners)}")
        unknown = sorted(set(self.owners.values()) - set(OWNERS))
        if unknown:
            raise ValueError(f"ReviewParams.owners must be among {OWNERS}, got {unknown}")
        for name in ("accrual_causes", "reviewed_causes", "min_excess_by_cause"):
            extra = sorted(set(getattr(self, name)) - set(CAUSES))
            if extra:
                raise ValueError(f"ReviewParams.{name} must be causes {CAUSES}, got {extra}")
        not_rates = sorted(set(self.short_causes) - set(RATE_CAUSES))
        if not_rates:
            raise ValueError(f"ReviewParams.short_causes must be rate causes {RATE_CAUSES}, got {not_rates}")
        negative = {c: v for c, v in self.min_excess_by_cause.items() if not v >= 0}
        if negative:
            raise ValueError(f"ReviewParams.min_excess_by_cause must be non-negative, got {negative}")


#: The defaults, shared as argument defaults (frozen, so one instance serves every call).
DEFAULT_BRIDGE = BridgeParams()
DEFAULT_REVIEW = ReviewParams()
