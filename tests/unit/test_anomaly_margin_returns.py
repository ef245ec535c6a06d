"""Unit tests for models.anomaly margin leakage and return spikes, on small hand-built frames."""

from __future__ import annotations

import pandas as pd
import pytest

from models.anomaly import detect_margin_leakage, detect_return_spikes
from models.anomaly.margin import MARGIN_COLUMNS
from models.anomaly.returns import RETURN_SPIKE_COLUMNS

AS_OF = "2024-12-31"
# Margin windows: recent (2024-12-03, 2024-12-31], baseline (2024-09-04, 2024-12-03].
# Return windows: recent (2024-12-17, 2024-12-31], baseline (2024-09-18, 2024-12-17].
BASELINE_DAY = "2024-10-15"
RECENT_DAY = "2024-12-20"
LATER_DAY = "2025-01-05"

ITEMS = pd.DataFrame(
    {
        "sku": ["promo", "refund", "steady", "thin", "reprice"],
        "unit_price": [10.0, 20.0, 10.0, 10.0, 10.0],
        "unit_cost": [6.0, 10.0, 6.0, 6.0, 6.0],
    }
)


def _sales(rows: list[tuple[str, str, str, int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["channel", "sku", "date", "units", "gross_sales", "discount_amount"])


def _refunds(rows: list[tuple[str, str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sku", "channel", "date", "quantity", "refund_amount"])


def _margin_history() -> tuple[pd.DataFrame, pd.DataFrame]:
    sales = _sales(
        [
            # Discount share doubles from 5% to 10% of sales: margin 35% -> 30%.
            ("store", "promo", BASELINE_DAY, 3000, 30000.0, 1500.0),
            ("store", "promo", RECENT_DAY, 1000, 10000.0, 1000.0),
            # Refunds jump from 2% to 15% of sales: margin 48% -> 35%.
            ("ecommerce", "refund", BASELINE_DAY, 500, 10000.0, 0.0),
            ("ecommerce", "refund", RECENT_DAY, 500, 10000.0, 0.0),
            # Same shares in both windows, at a different volume.
            ("store", "steady", BASELINE_DAY, 900, 9000.0, 900.0),
            ("store", "steady", RECENT_DAY, 300, 3000.0, 300.0),
            # Same collapse as promo and worse, on 5 units.
            ("store", "thin", BASELINE_DAY, 300, 3000.0, 0.0),
            ("store", "thin", RECENT_DAY, 5, 50.0, 25.0),
        ]
    )
    # Mail returns are booked as "web" and must meet the ecommerce sales.
    returns = _refunds(
        [
            ("refund", "web", BASELINE_DAY, 10, 200.0),
            ("refund", "web", RECENT_DAY, 75, 1500.0),
            ("steady", "store", BASELINE_DAY, 9, 90.0),
            ("steady", "store", RECENT_DAY, 3, 30.0),
        ]
    )
    return sales, returns


def test_margin_leakage_flags_markdown_and_returns_drivers():
    sales, returns = _margin_history()

    out = detect_margin_leakage(sales, returns, ITEMS, as_of=AS_OF)

    assert list(out.columns) == MARGIN_COLUMNS
    assert out[["sku", "channel", "driver"]].values.tolist() == [
        ["promo", "store", "markdown"],
        ["refund", "ecommerce", "returns"],
    ]
    assert (out["anomaly_type"] == "margin_leakage").all()

    promo = out.iloc[0]
    assert promo["recent_margin_pct"] == pytest.approx(30.0)  # (10000 - 1000 - 6000) / 10000
    assert promo["baseline_margin_pct"] == pytest.approx(35.0)  # (30000 - 1500 - 18000) / 30000
    assert promo["list_margin_pct"] == pytest.approx(40.0)
    assert promo["margin_points_lost"] == pytest.approx(5.0)
    assert promo["money_at_stake"] == pytest.approx(500.0)  # 5 points of 10000 recent sales
    assert promo["units_recent"] == 1000
    assert promo["severity"] == "medium"  # 5 points and 500 at stake: both in the medium band
    assert promo["explanation"] == (
        "markdown margin leakage: margin 30.0% over the last 28 days vs 35.0% in the 90 days before "
        "(list 40.0%): -5.0 points, 500.00 at stake on 1000 units; discounts 10.0% of sales vs 5.0%, "
        "refunds 0.0% vs 0.0%"
    )

    refund = out.iloc[1]
    assert refund["recent_margin_pct"] == pytest.approx(35.0)  # (10000 - 1500 - 5000) / 10000
    assert refund["baseline_margin_pct"] == pytest.approx(48.0)  # (10000 - 200 - 5000) / 10000
    assert refund["list_margin_pct"] == pytest.approx(50.0)
    assert refund["margin_points_lost"] == pytest.approx(13.0)
    assert refund["money_at_stake"] == pytest.approx(1300.0)
    assert refund["severity"] == "high"
    assert "refunds 15.0% vs 2.0%" in refund["explanation"]


def test_margin_leakage_severity_is_capped_by_the_money_at_stake():
    sales = _sales(
        [
            ("store", "promo", BASELINE_DAY, 300, 3000.0, 0.0),
            # 20 points lost, but on 100 of sales: 20 at stake.
            ("store", "promo", RECENT_DAY, 10, 100.0, 20.0),
        ]
    )
    out = detect_margin_leakage(sales, _refunds([]), ITEMS, as_of=AS_OF)
    assert out["margin_points_lost"].tolist() == pytest.approx([20.0])
    assert out["severity"].tolist() == ["low"]


def test_margin_erosion_without_discounts_or_refunds_is_mixed():
    sales = _sales(
        [
            ("store", "reprice", BASELINE_DAY, 100, 1000.0, 0.0),
            # Sold below shelf price without booking a discount: margin 40% -> 33.3%.
            ("store", "reprice", RECENT_DAY, 100, 900.0, 0.0),
        ]
    )
    out = detect_margin_leakage(sales, _refunds([]), ITEMS, as_of=AS_OF)
    assert out["driver"].tolist() == ["mixed"]
    assert out["margin_points_lost"].iloc[0] == pytest.approx(40.0 - 100 * 300 / 900)


def test_margin_leakage_ignores_low_volume_and_rows_after_as_of():
    sales, returns = _margin_history()
    # thin lost 50 points on 5 units; min_units=3 lets it through, proving the default is what held it.
    assert "thin" not in detect_margin_leakage(sales, returns, ITEMS, as_of=AS_OF)["sku"].tolist()
    assert "thin" in detect_margin_leakage(sales, returns, ITEMS, as_of=AS_OF, min_units=3)["sku"].tolist()

    # A give-away booked after as_of is unknown on as_of.
    later = pd.concat([sales, _sales([("store", "steady", LATER_DAY, 100, 1000.0, 1000.0)])])
    assert "steady" not in detect_margin_leakage(later, returns, ITEMS, as_of=AS_OF)["sku"].tolist()
    assert "steady" in detect_margin_leakage(later, returns, ITEMS, as_of=LATER_DAY)["sku"].tolist()


def test_margin_leakage_empty_inputs_return_typed_empty_frame():
    out = detect_margin_leakage(_sales([]), _refunds([]), ITEMS.iloc[0:0], as_of=AS_OF)
    assert out.empty
    assert list(out.columns) == MARGIN_COLUMNS
    assert out["units_recent"].dtype == "int64"
    assert out["margin_points_lost"].dtype == "float64"


def test_margin_leakage_missing_column_raises():
    sales, returns = _margin_history()
    with pytest.raises(ValueError, match=r"sales is missing required column\(s\): discount_amount"):
        detect_margin_leakage(sales.drop(columns="discount_amount"), returns, ITEMS, as_of=AS_OF)


# ---------------------------------------------------------------------------------------------------
# Return spikes
# ---------------------------------------------------------------------------------------------------


def _units(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["channel", "sku", "date", "units"])


def _returns(rows: list[tuple[str, str, str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sku", "channel", "date", "quantity", "reason"])


def _return_history() -> tuple[pd.DataFrame, pd.DataFrame]:
    sales = _units(
        [
            ("store", "lamp", BASELINE_DAY, 900),
            ("store", "lamp", RECENT_DAY, 140),
            ("store", "steady", BASELINE_DAY, 900),
            ("store", "steady", RECENT_DAY, 140),
            ("ecommerce", "noisy", BASELINE_DAY, 100),
            ("ecommerce", "noisy", RECENT_DAY, 100),
        ]
    )
    returns = _returns(
        [
            # lamp: 1% returned before, 10 of 140 (7.1%) now, mostly defective.
            ("lamp", "store", BASELINE_DAY, 6, "changed_mind"),
            ("lamp", "store", BASELINE_DAY, 3, "defective"),
            ("lamp", "store", RECENT_DAY, 2, "changed_mind"),
            ("lamp", "store", RECENT_DAY, 8, "defective"),
            # steady: 1% before, 2 of 140 now.
            ("steady", "store", BASELINE_DAY, 9, "changed_mind"),
            ("steady", "store", RECENT_DAY, 2, "changed_mind"),
            # noisy: 1 of 100 before, 3 of 100 now: lift 3, but P(X >= 3 | mean 1) = 0.08.
            ("noisy", "web", BASELINE_DAY, 1, "late_delivery"),
            ("noisy", "web", RECENT_DAY, 3, "late_delivery"),
        ]
    )
    return sales, returns


def test_return_spike_is_flagged_with_its_top_reason():
    from scipy.stats import poisson

    sales, returns = _return_history()

    out = detect_return_spikes(sales, returns, as_of=AS_OF)

    assert list(out.columns) == RETURN_SPIKE_COLUMNS
    assert out["sku"].tolist() == ["lamp"]
    lamp = out.iloc[0]
    assert (lamp["channel"], lamp["anomaly_type"], lamp["top_reason"]) == ("store", "return_spike", "defective")
    assert lamp["recent_return_rate"] == pytest.approx(10 / 140)
    assert lamp["baseline_return_rate"] == pytest.approx(9 / 900)
    assert lamp["lift"] == pytest.approx((10 / 140) / (9 / 900))
    assert lamp["p_value"] == pytest.approx(poisson.sf(9, 140 * 9 / 900))
    assert lamp["returns_recent"] == 10
    assert lamp["severity"] == "high"  # lift 7.1
    assert lamp["explanation"].startswith(
        "return rate 7.1% over the last 14 days vs 1.0% in the 90 days before (7.1x, p="
    )
    assert lamp["explanation"].endswith("10 units returned vs 9, top reason defective: 8 vs 3")


def test_return_spike_needs_significance_and_min_returns():
    sales, returns = _return_history()
    # noisy's lift of 3 passes a lax alpha; the default 0.01 is what keeps it out above.
    lax = detect_return_spikes(sales, returns, as_of=AS_OF, alpha=0.1)
    assert lax["sku"].tolist() == ["lamp", "noisy"]
    noisy = lax.iloc[1]
    assert noisy["channel"] == "ecommerce"  # "web" returns met the ecommerce sales
    assert noisy["severity"] == "medium"
    assert noisy["p_value"] == pytest.approx(0.0803, abs=1e-4)

    assert detect_return_spikes(sales, returns, as_of=AS_OF, min_returns=11).empty


def test_return_spike_against_a_clean_baseline_has_a_finite_lift():
    sales = _units([("store", "new", BASELINE_DAY, 900), ("store", "new", RECENT_DAY, 140)])
    returns = _returns([("new", "store", RECENT_DAY, 3, "damaged")])

    out = detect_return_spikes(sales, returns, as_of=AS_OF)

    assert out["baseline_return_rate"].tolist() == [0.0]
    assert out["lift"].iloc[0] == pytest.approx((3 / 140) / (0.5 / 900))
    assert out["top_reason"].tolist() == ["damaged"]


def test_return_spikes_empty_inputs_return_typed_empty_frame():
    out = detect_return_spikes(_units([]), _returns([]), as_of=AS_OF)
    assert out.empty
    assert list(out.columns) == RETURN_SPIKE_COLUMNS
    assert out["returns_recent"].dtype == "int64"

    sales, _ = _return_history()
    assert list(detect_return_spikes(sales, _returns([]), as_of=AS_OF).columns) == RETURN_SPIKE_COLUMNS


def test_return_spikes_missing_reason_raises():
    sales, returns = _return_history()
    with pytest.raises(ValueError, match=r"returns is missing required column\(s\): reason"):
        detect_return_spikes(sales, returns.drop(columns="reason"), as_of=AS_OF)
