"""Alternate suppliers of each SKU from the supplier catalogue, compared with the primary and ranked.

The primary supplier of a SKU is the item master's ``supplier_id``; every other catalogue row of the SKU
is an alternate. Each alternate is compared with the primary on contract cost, lead time and (when
scorecards are given) reliability, and ranked within its SKU by expected landed cost per unit::

    expected_unit_cost = unit_cost * (1 + lateness_penalty * (1 - reliability / 100))

so an unreliable supplier pays a premium for the stock-outs and expediting its lateness tends to cause.
A supplier without a scorecard is taken at ``unknown_reliability``. Ties go to the shorter lead time,
then to the larger weekly capacity, then to the supplier id (so the ranking is deterministic).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ALTERNATE_COLUMNS", "rank_alternates"]

#: Columns of :func:`rank_alternates`.
ALTERNATE_COLUMNS = [
    "sku", "supplier_id", "primary_supplier_id", "unit_cost", "primary_unit_cost", "cost_delta_per_unit",
    "lead_time_days", "primary_lead_time_days", "lead_time_delta_days", "capacity_units_per_week", "moq_units",
    "case_pack", "reliability", "primary_reliability", "reliability_delta", "expected_unit_cost", "rank",
]


def rank_alternates(catalogue: pd.DataFrame, items: pd.DataFrame, supplier_cards: pd.DataFrame | None = None, *,
                    lateness_penalty: float = 0.25, unknown_reliability: float = 50.0) -> pd.DataFrame:
    """One row per SKU x alternate supplier (the primary excluded), ranked within the SKU (1 = best).

    Args:
        catalogue: supplier catalogue (``supplier_id, sku, unit_cost, moq_units, case_pack, lead_time_days,
            capacity_units_per_week``, optional ``valid_from``: the latest row per supplier x SKU is used).
        items: item master (``sku, supplier_id``: the primary, ``unit_cost``: its cost when the catalogue has
            no primary row).
        supplier_cards: supplier scorecards (``supplier_id, reliability``, optional ``week_end``: the
            latest week per supplier is used), or None.
        lateness_penalty: share of the unit cost an entirely unreliable supplier (reliability 0) adds.
        unknown_reliability: reliability (0..100) assumed for ranking a supplier without a scorecard.

    Returns:
        :data:`ALTERNATE_COLUMNS`; ``reliability`` and ``reliability_delta`` (alternate minus primary) are
        ``NaN`` without scorecards, ``primary_lead_time_days`` when the catalogue has no primary row.
    """
    cat = catalogue
    if "valid_from" in cat:
        cat = cat.sort_values("valid_from", kind="stable")
    cat = cat.drop_duplicates(["supplier_id", "sku"], keep="last")
    master = items[["sku", "supplier_id", "unit_cost"]].drop_duplicates("sku").rename(
        columns={"supplier_id": "primary_supplier_id", "unit_cost": "item_unit_cost"})
    merged = cat.merge(master, on="sku", how="inner")
    is_primary = (merged["supplier_id"] == merged["primary_supplier_id"]).to_numpy()
    primary = merged.loc[is_primary, ["sku", "unit_cost", "lead_time_days"]].rename(
        columns={"unit_cost": "primary_unit_cost", "lead_time_days": "primary_lead_time_days"})
    alt = merged.loc[~is_primary].merge(primary, on="sku", how="left")
    alt["primary_unit_cost"] = alt["primary_unit_cost"].fillna(alt["item_unit_cost"]).astype(float)
    alt["cost_delta_per_unit"] = (alt["unit_cost"] - alt["primary_unit_cost"]).round(4)
    alt["lead_time_delta_days"] = alt["lead_time_days"] - alt["primary_lead_time_days"]
    score = _latest_reliability(supplier_cards)
    alt["reliability"] = alt["supplier_id"].map(score).astype(float)
    alt["primary_reliability"] = alt["primary_supplier_id"].map(score).astype(float)
    alt["reliability_delta"] = alt["reliability"] - alt["primary_reliability"]
    trust = alt["reliability"].fillna(unknown_reliability).clip(0.0, 100.0)
    alt["expected_unit_cost"] = (alt["unit_cost"] * (1 + lateness_penalty * (1 - trust / 100))).round(4)
    alt = alt.sort_values(["sku", "expected_unit_cost", "lead_time_days", "capacity_units_per_week", "supplier_id"],
                          ascending=[True, True, True, False, True], kind="stable")
    alt["rank"] = alt.groupby("sku").cumcount().astype(np.int64) + 1
    return alt[ALTERNATE_COLUMNS].reset_index(drop=True)


def _latest_reliability(cards: pd.DataFrame | None) -> pd.Series:
    """Reliability by supplier from its latest scorecard week."""
    if cards is None or not len(cards):
        return pd.Series(dtype=float)
    if "week_end" in cards:
        cards = cards.sort_values("week_end", kind="stable")
    latest = cards.drop_duplicates("supplier_id", keep="last")
    return pd.Series(latest["reliability"].to_numpy(float), index=latest["supplier_id"].astype(str))
