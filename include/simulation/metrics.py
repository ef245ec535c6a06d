"""Service and inventory metrics shared by the replay simulator and the nightly KPI stage.

Every function takes plain numbers or numpy arrays (any shape; they are summed), so the KPI stage can
feed it columns of a frame and the simulator can feed it whole ``[series, periods]`` matrices.
"""

from __future__ import annotations

import numpy as np

PERIODS_PER_YEAR = {"D": 365.0, "W": 52.0}


def fill_rate(demand: np.ndarray | float, served: np.ndarray | float) -> float | None:
    """Units served over units demanded (the unit fill rate, or beta service level).

    Args:
        demand: Units demanded (uncensored demand, not sales).
        served: Units served from stock in the same periods.

    Returns:
        A ratio in ``[0, 1]``, or ``None`` when nothing was demanded.
    """
    total = float(np.nansum(demand))
    if total <= 0:
        return None
    return float(min(max(float(np.nansum(served)) / total, 0.0), 1.0))


def lost_sales(demand: np.ndarray | float, served: np.ndarray | float) -> float:
    """Units demanded and not served (lost sales: no backorders in retail)."""
    return float(np.nansum(np.maximum(np.asarray(demand, float) - np.asarray(served, float), 0.0)))


def stockout_periods(demand: np.ndarray, served: np.ndarray) -> int:
    """Series-periods (days or weeks) in which some demand went unserved."""
    return int(np.count_nonzero(np.asarray(demand, float) - np.asarray(served, float) > 1e-9))


def average_on_hand(on_hand: np.ndarray, unit_cost: np.ndarray | float | None = None) -> float:
    """Average stock held, summed over series.

    Args:
        on_hand: End-of-period stock, ``[series, periods]`` (or ``[periods]`` for one series).
        unit_cost: Optional per-series unit cost; the result is then a value, not units.

    Returns:
        Mean over periods of the total (units or value) over series.
    """
    on_hand = np.atleast_2d(np.asarray(on_hand, float))
    if on_hand.size == 0:
        return 0.0
    if unit_cost is not None:
        on_hand = on_hand * np.asarray(unit_cost, float).reshape(-1, 1)
    return float(on_hand.sum(axis=0).mean())


def inventory_turns(cogs: float, average_inventory: float, periods: int, freq: str = "D") -> float | None:
    """Annualised inventory turns: cost of goods sold per year over the average inventory.

    Args:
        cogs: Cost (or units) sold over ``periods``.
        average_inventory: Average inventory in the same unit as ``cogs``.
        periods: Length of the window in periods of ``freq``.
        freq: ``"D"`` (days) or ``"W"`` (weeks).

    Returns:
        Turns per year, or ``None`` when there was no inventory or no window.
    """
    if average_inventory <= 0 or periods <= 0:
        return None
    per_year = PERIODS_PER_YEAR[freq]
    return float(cogs / average_inventory * per_year / periods)


def days_of_cover(on_hand: float, mean_daily_demand: float) -> float | None:
    """Days the stock lasts at the mean daily demand (``None`` without demand)."""
    if mean_daily_demand <= 0:
        return None
    return float(on_hand / mean_daily_demand)


def overstock(demand: np.ndarray, on_hand: np.ndarray, cover_periods: float, *,
              unit_cost: np.ndarray | None = None) -> dict[str, float | None]:
    """Stock beyond ``cover_periods`` of each series' mean demand, averaged over the periods.

    What a clearance would have to mark down: a series selling 2 units a day may hold 112 units with 56 days
    of cover; with 162 on hand in a period, 50 units of it are overstock then.

    Args:
        demand, on_hand: ``[series, periods]`` over the scored window.
        cover_periods: Periods of mean demand a series may hold before its stock is overstock.
        unit_cost: Optional ``[series]`` cost per unit (else ``overstock_value`` is None).

    Returns:
        ``overstock_units`` and ``overstock_value``: the sum over series, averaged over periods.
    """
    demand = np.atleast_2d(np.asarray(demand, float))
    on_hand = np.atleast_2d(np.asarray(on_hand, float))
    if not demand.size:
        return {"overstock_units": None, "overstock_value": None}
    allowed = cover_periods * demand.mean(axis=1, keepdims=True)
    excess = np.maximum(on_hand - allowed, 0.0)
    value = None
    if unit_cost is not None:
        value = float((excess * np.nan_to_num(np.asarray(unit_cost, float)).reshape(-1, 1)).sum(axis=0).mean())
    return {"overstock_units": float(excess.sum(axis=0).mean()), "overstock_value": value}


def summarize(
    demand: np.ndarray,
    served: np.ndarray,
    on_hand: np.ndarray,
    orders: np.ndarray,
    *,
    freq: str = "D",
    unit_cost: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """All replay metrics of one policy over a window.

    Args:
        demand, served, on_hand, orders: ``[series, periods]`` matrices over the scored window
            (``orders`` counts orders placed, 0 or 1 per cell).
        freq: ``"D"`` or ``"W"``.
        unit_cost: Optional per-series unit cost for value-weighted inventory and turns.

    Returns:
        ``fill_rate, stockout_periods, stockout_rate, lost_units, avg_on_hand_units,
        avg_inventory_value, inventory_turns, orders``.
    """
    demand = np.atleast_2d(demand)
    served = np.atleast_2d(served)
    periods = demand.shape[1]
    avg_units = average_on_hand(on_hand)
    avg_value = average_on_hand(on_hand, unit_cost) if unit_cost is not None else None
    if unit_cost is not None:
        cogs = float((served * np.asarray(unit_cost, float).reshape(-1, 1)).sum())
        turns = inventory_turns(cogs, avg_value or 0.0, periods, freq)
    else:
        turns = inventory_turns(float(served.sum()), avg_units, periods, freq)
    stockouts = stockout_periods(demand, served)
    return {
        "fill_rate": fill_rate(demand, served),
        "stockout_periods": stockouts,
        "stockout_rate": stockouts / demand.size if demand.size else None,
        "lost_units": lost_sales(demand, served),
        "avg_on_hand_units": avg_units,
        "avg_inventory_value": avg_value,
        "inventory_turns": turns,
        "orders": int(np.count_nonzero(orders)),
    }
