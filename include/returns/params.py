"""Parameters of the returns library and the columns its frames carry.

One source of truth for every default of pattern classification, fraud scoring and disposition; the
dataclasses validate in ``__post_init__`` so that a misconfigured value fails where it is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pandas as pd

#: Columns of the returns system's extract (``data_contracts/returns/returns_detail.yaml``), in file order.
DETAIL_COLUMNS = ("return_id", "returned_at", "original_order_id", "original_order_date", "customer_id",
                  "purchase_channel", "return_channel", "location_id", "sku", "quantity", "unit_price",
                  "refund_amount", "reason_code", "condition_grade", "receipt_matched", "supplier_batch_id")
#: Columns of the ground truth kept apart from the extract (what loss prevention confirmed, per return).
TRUTH_COLUMNS = ("return_id", "pattern", "is_fraud", "fraud_value")
#: Columns the disposition needs from the item master and from the demand forecast.
ITEM_COLUMNS = ("sku", "department", "unit_price", "unit_cost", "supplier_id")
FORECAST_COLUMNS = ("location_id", "sku", "mean_daily")

PURCHASE_CHANNELS = ("store", "web", "app")
RETURN_CHANNELS = ("store", "mail")
REASON_CODES = ("size_fit", "defective", "damaged_in_transit", "not_as_described", "wrong_item",
                "changed_mind", "late_delivery")
#: Condition after inspection: A new, B open box, C damaged, D unsellable.
GRADES = ("A", "B", "C", "D")
#: Truth patterns of the generator; the fraud ones are those loss prevention confirms.
PATTERNS = ("normal", "apparel_size", "defect_batch", "wardrobing", "serial_returner", "receiptless_high_value",
            "return_ring")
FRAUD_PATTERNS = ("serial_returner", "receiptless_high_value", "return_ring")

#: Disposition actions, in the order the explanation lists them.
ACTIONS = ("restock_as_new", "transfer_to", "open_box", "refurbish", "return_to_vendor", "liquidate")
#: Owners of explained anomalies.
OWNER_SUPPLIER_QUALITY = "procurement/supplier quality"
OWNER_FINANCE = "finance"
OWNER_MERCHANDISING = "merchandising"


def _check_non_negative(obj) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value != value or value < 0:
            raise ValueError(f"{type(obj).__name__}.{f.name} must be a non-negative number, got {value!r}")


@dataclass(frozen=True)
class FraudParams:
    """Fraud model settings.

    Attributes:
        window_days: days of a customer's past returns that count toward frequency, value and stores.
        serial_returns: returns in the window from which a customer is a serial returner.
        l2: ridge penalty of the logistic regression (on standardised features).
        train_days: days before the scored day whose confirmed outcomes train the model.
        max_train_rows: training rows kept at most; beyond it negatives are subsampled and the intercept
            corrected by the log of the sampling rate, so scores stay calibrated.
        max_iter: Newton iterations at most.
        high_value: refund from which a receipt-less return is suspicious to the rules baseline.
        seed: seed of the negative subsampling.
    """

    window_days: int = 90
    serial_returns: int = 8
    l2: float = 1.0
    train_days: int = 28
    max_train_rows: int = 400_000
    max_iter: int = 25
    high_value: float = 50.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_non_negative(self)
        if min(self.window_days, self.serial_returns, self.train_days, self.max_iter) < 1 \
                or self.max_train_rows < 100:
            raise ValueError("FraudParams.window_days, serial_returns, train_days and max_iter must be at least 1 "
                             f"and max_train_rows at least 100, got {self.window_days}, {self.serial_returns}, "
                             f"{self.train_days}, {self.max_iter}, {self.max_train_rows}")


@dataclass(frozen=True)
class DispositionParams:
    """Prices, costs and limits of the disposition; money in the currency of the item master.

    Attributes:
        restock_handling: inspection, repacking and shelving of a unit put back as new.
        transfer_cost: carrying one unit to another location (on top of restock handling).
        transfer_days: days a transferred unit travels before it can sell.
        open_box_price: share of the price an open-box unit sells for, by grade.
        open_box_demand: share of a location's demand that takes an open-box unit.
        open_box_handling: labelling and display of an open-box unit.
        refurbish_departments: departments whose units a refurbisher takes.
        refurbish_cost: refurbishment cost as a share of the unit cost, plus ``refurbish_fixed``.
        refurbish_fixed: fixed cost per refurbished unit (shipping to and from the refurbisher).
        refurbish_price: share of the price a refurbished unit sells for.
        refurbish_days: days at the refurbisher.
        rtv_credit: supplier id -> credit on a returned unit as a share of its cost; a supplier missing
            here takes nothing back. ``"*"`` sets the default of every supplier not named.
        rtv_grades: grades a supplier takes back (defective units of any grade are taken too).
        rtv_handling: packing and shipping one unit back to the supplier.
        liquidation_rate: share of the price a liquidator pays, by grade.
        liquidation_handling: handling of a liquidated unit.
        daily_decay: value lost per day unsold (markdown, obsolescence), by department; ``"*"`` is the default.
        max_days_to_sell: days to sell are capped here (a unit that would take longer is worth its value then).
        fraud_hold_score: a line whose fraud score reaches this is held for review.
        high_value_hold: a line whose refund reaches this is held for review.
    """

    restock_handling: float = 1.20
    transfer_cost: float = 2.50
    transfer_days: float = 3.0
    open_box_price: dict[str, float] = field(default_factory=lambda: {"A": 0.80, "B": 0.70, "C": 0.0, "D": 0.0})
    open_box_demand: float = 0.5
    open_box_handling: float = 1.50
    refurbish_departments: tuple[str, ...] = ("Electronics", "Home")
    refurbish_cost: float = 0.25
    refurbish_fixed: float = 6.0
    refurbish_price: float = 0.75
    refurbish_days: float = 14.0
    rtv_credit: dict[str, float] = field(default_factory=lambda: {"*": 0.0})
    rtv_grades: tuple[str, ...] = ("C", "D")
    rtv_handling: float = 2.0
    liquidation_rate: dict[str, float] = field(default_factory=lambda: {"A": 0.30, "B": 0.22, "C": 0.10, "D": 0.02})
    liquidation_handling: float = 0.40
    daily_decay: dict[str, float] = field(default_factory=lambda: {
        "*": 0.004, "Apparel": 0.010, "Electronics": 0.006, "Garden": 0.008, "Toys & Games": 0.006})
    max_days_to_sell: float = 120.0
    fraud_hold_score: float = 0.5
    high_value_hold: float = 400.0

    def __post_init__(self) -> None:
        _check_non_negative(self)
        for name in ("open_box_price", "liquidation_rate"):
            table = getattr(self, name)
            if set(table) != set(GRADES):
                raise ValueError(f"DispositionParams.{name} must give every grade {GRADES}, got {sorted(table)}")
        for name in ("open_box_price", "liquidation_rate", "rtv_credit", "daily_decay"):
            for key, value in getattr(self, name).items():
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"DispositionParams.{name}[{key!r}] must be in [0, 1], got {value}")
        if "*" not in self.daily_decay:
            raise ValueError("DispositionParams.daily_decay must set the default '*'")
        if not set(self.rtv_grades) <= set(GRADES):
            raise ValueError(f"DispositionParams.rtv_grades must be grades {GRADES}, got {self.rtv_grades}")
        if self.max_days_to_sell <= 0 or not 0.0 < self.fraud_hold_score <= 1.0:
            raise ValueError("DispositionParams.max_days_to_sell must be above 0 and fraud_hold_score in (0, 1], "
                             f"got {self.max_days_to_sell} and {self.fraud_hold_score}")


@dataclass(frozen=True)
class PatternParams:
    """Windows and thresholds of the pattern classifier.

    Attributes:
        recent_days: days up to and including ``today`` that are compared.
        baseline_days: days before the recent window that give each key's own history.
        min_count: returns a key needs in the recent window before it can be an anomaly.
        min_ratio: recent rate over expected rate from which a key is unusual.
        min_z: Poisson or binomial z-score from which a key is unusual.
    """

    recent_days: int = 7
    baseline_days: int = 49
    min_count: int = 5
    min_ratio: float = 2.0
    min_z: float = 4.0

    def __post_init__(self) -> None:
        _check_non_negative(self)
        if self.recent_days < 1 or self.baseline_days < 1 or self.min_count < 1:
            raise ValueError("PatternParams.recent_days, baseline_days and min_count must be at least 1, got "
                             f"{self.recent_days}, {self.baseline_days}, {self.min_count}")


def vendor_credit(suppliers: pd.DataFrame) -> dict[str, float]:
    """``DispositionParams.rtv_credit`` from the supplier master's ``return_credit_rate`` (share of the unit
    cost credited for a unit returned to the supplier): suppliers whose rate is empty or 0, and every
    supplier of a master without the column, take nothing back."""
    if "return_credit_rate" not in suppliers.columns:
        return {"*": 0.0}
    rate = pd.to_numeric(suppliers["return_credit_rate"], errors="coerce")
    takes = (rate > 0).to_numpy()
    return {"*": 0.0, **dict(zip(suppliers["supplier_id"].astype(str)[takes], rate[takes].astype(float), strict=True))}


#: The defaults, shared as argument defaults (frozen, so one instance serves every call).
DEFAULT_FRAUD = FraudParams()
DEFAULT_DISPOSITION = DispositionParams()
DEFAULT_PATTERNS = PatternParams()
