"""Return spikes: SKU x channel returning a larger share of what it sells than it used to.

The return rate is returned units over sold units in the same window. Returns lag sales, so the rate
of one window is not the share of that window's own sales that came back; it is stable for a steady
product, though, which is what makes a window-over-window comparison meaningful. The recent returns are
tested against a Poisson count with the baseline rate applied to recent sales (a binomial would need
returned units to be a subset of the units sold in the window, which lagging returns are not).

Each spike names the reason that contributes the most extra returns over what the baseline mix of
reasons predicts, so the ticket says "defective" rather than only "more returns".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.anomaly._windows import AsOf, cutoff_date, empty_frame, label_windows, require, window_sums

__all__ = ["RETURN_SPIKE_COLUMNS", "detect_return_spikes"]

RETURN_SPIKE_COLUMNS = [
    "sku",
    "channel",
    "anomaly_type",
    "top_reason",
    "severity",
    "recent_return_rate",
    "baseline_return_rate",
    "lift",
    "p_value",
    "returns_recent",
    "explanation",
]
SALES_COLUMNS = ["channel", "sku", "date", "units"]
RETURNS_COLUMNS = ["sku", "channel", "date", "quantity", "reason"]

#: Lift (recent rate over baseline rate) at which a spike becomes medium, then high.
MEDIUM_LIFT = 3.0
HIGH_LIFT = 5.0
#: Returns assumed for a baseline without any, so a clean history still gives a finite lift and a
#: test that a few returns cannot pass by themselves.
BASELINE_PSEUDO_RETURNS = 0.5

_TEXT = {"sku", "channel", "anomaly_type", "top_reason", "severity", "explanation"}
_COUNTS = {"returns_recent"}


def detect_return_spikes(
    sales: pd.DataFrame,
    returns: pd.DataFrame,
    *,
    as_of: AsOf,
    recent_days: int = 14,
    baseline_days: int = 90,
    min_returns: int = 3,
    min_lift: float = 2.0,
    alpha: float = 0.01,
) -> pd.DataFrame:
    """Flag SKU x channel whose recent return rate is well above its own baseline rate.

    A spike needs at least ``min_returns`` returned units in the recent window, units sold in both
    windows, ``lift = recent_rate / baseline_rate >= min_lift`` and a one-sided Poisson test
    ``P(X >= returns_recent | mean = recent sold units * baseline_rate) < alpha``. A baseline without
    returns counts as ``0.5`` returned units for the lift and the test (``baseline_return_rate`` still
    reports 0). Severity by lift: ``low`` below 3, ``medium`` below 5, ``high`` from 5.

    ``top_reason`` is the reason with the most excess recent returns, ``recent returns for the reason -
    recent sold units * the reason's baseline rate``; ties go to the alphabetically first reason.

    Args:
        sales: One row per channel x SKU x day: ``channel`` (``store`` or ``ecommerce``; ``web`` and
            ``app`` count as ``ecommerce``), ``sku``, ``date``, ``units``. Other columns are ignored.
        returns: One row per return: ``sku``, ``channel`` (``store``, ``web``/``app`` as above),
            ``date`` (when booked), ``quantity``, ``reason``. Other columns are ignored.
        as_of: The run's date; later rows are ignored.
        recent_days: Length of the recent window, ending on ``as_of``.
        baseline_days: Length of the baseline window just before the recent one.
        min_returns: Fewest returned units in the recent window worth flagging.
        min_lift: Smallest recent-over-baseline rate ratio worth flagging, however significant.
        alpha: Significance level of the test.

    Returns:
        One row per spiking SKU x channel with ``RETURN_SPIKE_COLUMNS``, sorted by ``sku, channel``.

    Raises:
        ValueError: on a missing column, unparsable dates or non-positive window lengths.
    """
    # scipy.stats costs seconds to import; keep it off the import path of everything else here.
    from scipy.stats import poisson

    require(sales, "sales", SALES_COLUMNS)
    require(returns, "returns", RETURNS_COLUMNS)
    cutoff = cutoff_date(as_of)
    windows = {"cutoff": cutoff, "recent_days": recent_days, "baseline_days": baseline_days}
    sold = label_windows(sales, "sales", SALES_COLUMNS, **windows)
    returned = label_windows(returns, "returns", RETURNS_COLUMNS, **windows)
    if sold.empty or returned.empty:
        return empty_frame(RETURN_SPIKE_COLUMNS, _TEXT, _COUNTS)
    returned["reason"] = returned["reason"].astype(str)

    keys = ["sku", "channel"]
    df = window_sums(sold, keys, ["units"]).merge(
        window_sums(returned, keys, ["quantity"]), on=keys, how="inner"
    )
    sold_r, sold_b = df["units_recent"].to_numpy(), df["units_baseline"].to_numpy()
    ret_r, ret_b = df["quantity_recent"].to_numpy(), df["quantity_baseline"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        recent_rate = np.where(sold_r > 0, ret_r / sold_r, np.nan)
        baseline_rate = np.where(sold_b > 0, ret_b / sold_b, np.nan)
        tested_rate = np.where(sold_b > 0, np.maximum(ret_b, BASELINE_PSEUDO_RETURNS) / sold_b, np.nan)
        # Rounded so that a lift of exactly a threshold lands on it, not a hair below.
        lift = np.round(recent_rate / tested_rate, 9)
        candidate = (sold_r > 0) & (sold_b > 0) & (ret_r >= min_returns) & (lift >= min_lift)
    p_value = np.ones(len(df))
    # sf(k - 1) is P(X >= k); only candidates are tested, so NaN rates never reach scipy.
    p_value[candidate] = poisson.sf(ret_r[candidate] - 1, sold_r[candidate] * tested_rate[candidate])
    flagged = candidate & (p_value < alpha)
    if not flagged.any():
        return empty_frame(RETURN_SPIKE_COLUMNS, _TEXT, _COUNTS)

    out = pd.DataFrame(
        {
            "sku": df["sku"].to_numpy()[flagged],
            "channel": df["channel"].to_numpy()[flagged],
            "anomaly_type": "return_spike",
            "severity": np.select(
                [lift >= HIGH_LIFT, lift >= MEDIUM_LIFT], ["high", "medium"], default="low"
            )[flagged].astype(object),
            "recent_return_rate": recent_rate[flagged],
            "baseline_return_rate": baseline_rate[flagged],
            "lift": lift[flagged],
            "p_value": p_value[flagged],
            "returns_recent": ret_r[flagged].astype(np.int64),
            "baseline_returns": ret_b[flagged].astype(np.int64),
        }
    )

    reasons = window_sums(returned, [*keys, "reason"], ["quantity"]).merge(
        out[[*keys]].assign(units_recent=sold_r[flagged], units_baseline=sold_b[flagged]), on=keys
    )
    reasons["excess"] = reasons["quantity_recent"] - reasons["units_recent"] * (
        reasons["quantity_baseline"] / reasons["units_baseline"]
    )
    top = (
        reasons.sort_values([*keys, "excess", "reason"], ascending=[True, True, False, True])
        .drop_duplicates(keys)
        .rename(columns={"reason": "top_reason", "quantity_recent": "top_recent", "quantity_baseline": "top_baseline"})
    )
    out = out.merge(top[[*keys, "top_reason", "top_recent", "top_baseline"]], on=keys, how="left")
    out["explanation"] = [
        (
            f"return rate {r:.1%} over the last {recent_days} days vs {b:.1%} in the {baseline_days} days "
            f"before ({lf:.1f}x, p={p:.3g}); {n:d} units returned vs {nb:d}, top reason {reason}: "
            f"{tr:g} vs {tb:g}"
        )
        for r, b, lf, p, n, nb, reason, tr, tb in zip(
            out["recent_return_rate"],
            out["baseline_return_rate"],
            out["lift"],
            out["p_value"],
            out["returns_recent"],
            out["baseline_returns"],
            out["top_reason"],
            out["top_recent"],
            out["top_baseline"],
            strict=True,
        )
    ]
    return out.sort_values(keys, ignore_index=True)[RETURN_SPIKE_COLUMNS]
