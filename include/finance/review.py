"""Finance review items: causes of the margin bridge beyond their cell's normal range, one item per event.

A cause of a cell is judged on its own rate (money per shelf-price sales; for promotion depth, discount per
promoted sales) against the weekly rates of the cell's baseline weeks: the robust z is
``(rate - median) / scale`` with ``scale = max(1.4826 * MAD, sd_weight * SD, rate_floor,
relative_floor * |median|)``. A cause becomes an item when the cell has ``min_baseline_weeks`` of history,
its z reaches ``min_z`` and the margin it cost over the window (the bridge's cause money, negated) reaches
``min_excess`` (or the cause's own floor in ``min_excess_by_cause``). The standard deviation of the baseline
weeks enters the scale because a lumpy cause's MAD is far below its real spread (a cell that lost two
speakers in three months has a MAD of zero); on a smooth cause it is about the MAD's and changes nothing.
Only margin lost is reviewed; a cause that gained margin is not an item.

A cause of ``short_causes`` is also an item when the bridge's short window (its last ``short_days`` nights,
against the baseline's blocks of as many days) reaches the stricter ``short_min_z`` and loses
``short_min_excess``: an event shows on its first nights, before it weighs a week's floor in a small cell,
while the week keeps judging what a day or two cannot tell.

An item carries its cell, cause, owner function, the robust z and excess of the window that flagged it (the
week when both did), the loss projected over ``horizon_weeks`` if it continues at that window's daily pace,
whether it needs a manager (causes booked as an accrual or provision) and its evidence: every number the
decision used (``window`` says which; ``week`` and ``short`` hold both windows' figures), and the bridge row.

The window slides nightly, so an ongoing event is flagged night after night; :func:`dedupe_items` gives
every night's flag of one cell x cause the business key of the episode it continues
(``finance_review:<category>:<channel>:<location>:<cause>:<start night>``), so one event is one item that
later nights update, and a cause that stays quiet for more than ``gap_nights`` nights starts a new one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.finance.params import CAUSES, CELL_KEYS, DEFAULT_REVIEW, ReviewParams

__all__ = ["ITEM_COLUMNS", "OPEN_COLUMNS", "business_key", "dedupe_items", "detect_items"]

ITEM_COLUMNS = [*CELL_KEYS, "night", "cause", "owner", "robust_z", "excess", "projected_loss", "needs_manager",
                "explanation", "evidence"]
#: The episodes still open after a night: what :func:`dedupe_items` needs of the nights before.
OPEN_COLUMNS = [*CELL_KEYS, "cause", "business_key", "start", "last_night"]
_MAD_TO_SD = 1.4826
#: Bridge columns copied into the evidence.
_ROW_FIELDS = ("gross_sales", "actual_margin", "expected_margin", "actual_margin_pct", "expected_margin_pct",
               "margin_change", *CAUSES, "residual")


def robust_z(rate: np.ndarray, median: np.ndarray, mad: np.ndarray, sd: np.ndarray,
             params: ReviewParams = DEFAULT_REVIEW) -> tuple[np.ndarray, np.ndarray]:
    """Robust z of ``rate`` against a baseline ``median``, ``mad`` and ``sd``, and the scale used (see the module)."""
    scale = np.maximum.reduce([_MAD_TO_SD * np.nan_to_num(mad), params.sd_weight * np.nan_to_num(sd),
                               np.full(len(rate), params.rate_floor),
                               params.relative_floor * np.abs(np.nan_to_num(median))])
    with np.errstate(invalid="ignore"):
        return (rate - median) / scale, scale


def detect_items(bridge: pd.DataFrame, params: ReviewParams = DEFAULT_REVIEW) -> pd.DataFrame:
    """The review items of a bridge (:func:`include.finance.bridge.margin_bridge`), one per cell x cause x night.

    Args:
        bridge: bridge rows of one night or several.
        params: sensitivity, horizon, owners and accrual causes.

    Returns:
        :data:`ITEM_COLUMNS`, by night, cell and cause order; ``evidence`` is a dict of plain numbers.
    """
    parts = []
    enough = bridge["baseline_weeks"].to_numpy() >= params.min_baseline_weeks
    for cause in params.reviewed_causes:
        week = _judge(bridge, cause, "", params.min_z, params.min_excess_by_cause.get(cause, params.min_excess),
                      params)
        short = (_judge(bridge, cause, "short_", params.short_min_z, params.short_min_excess, params)
                 if cause in params.short_causes else None)
        flagged = week["hit"] | (short["hit"] if short else False)
        hit = np.flatnonzero(enough & flagged)
        if len(hit):
            parts.append(_items(bridge.iloc[hit], cause, week, short, hit, params))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ITEM_COLUMNS})
    order = {c: i for i, c in enumerate(CAUSES)}
    out = pd.concat(parts, ignore_index=True)
    out["_order"] = out["cause"].map(order)
    return out.sort_values(["night", *CELL_KEYS, "_order"], ignore_index=True)[ITEM_COLUMNS]


def _judge(bridge: pd.DataFrame, cause: str, prefix: str, min_z: float, floor: float,
           params: ReviewParams) -> dict[str, np.ndarray]:
    """The robust z, scale, excess and verdict of ``cause`` over the week (``prefix`` ``""``) or the short
    window (``"short_"``)."""
    rate, med, mad, sd = (bridge[f"{prefix}{p}_{cause}"].to_numpy(float) for p in ("rate", "median", "mad", "sd"))
    z, scale = robust_z(rate, med, mad, sd, params)
    excess = -bridge[f"{prefix}{cause}"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        hit = (z >= min_z) & (excess >= floor)
    return {"rate": rate, "median": med, "mad": mad, "sd": sd, "z": z, "scale": scale, "excess": excess, "hit": hit}


def _items(rows: pd.DataFrame, cause: str, week: dict, short: dict | None, hit: np.ndarray,
           params: ReviewParams) -> pd.DataFrame:
    """Items of the flagged ``rows``: each judged on the week when the week flagged it, else on the short window."""
    on_week = week["hit"][hit]
    pick = {k: np.where(on_week, v[hit], short[k][hit]) if short else v[hit] for k, v in week.items()}
    days = np.where(on_week, rows["window_days"].to_numpy(float), rows["short_days"].to_numpy(float))
    # The loss goes on at the flagging window's pace: two nights of a storm are a week's worth times 7 / 2.
    projected = pick["excess"] * 7.0 / days * params.horizon_weeks
    evidence = []
    for i, r in enumerate(rows.to_dict("records")):
        e = {"cause": cause, "night": str(np.datetime64(r["night"], "D")), "window": "week" if on_week[i] else "short",
             "window_days": int(days[i]), "actual_rate": _num(pick["rate"][i]), "expected_rate": _num(r[f"median_{cause}"]),
             "baseline_median": _num(pick["median"][i]), "baseline_mad": _num(pick["mad"][i]),
             "baseline_sd": _num(pick["sd"][i]), "scale": _num(pick["scale"][i]), "robust_z": _num(pick["z"][i]),
             "weeks_of_history": int(r["baseline_weeks"]), "excess": _num(pick["excess"][i]),
             "horizon_weeks": params.horizon_weeks, "projected_loss": _num(projected[i]),
             "week": {k: _num(week[k][hit[i]]) for k in ("rate", "median", "z", "excess")},
             "bridge": {f: _num(r[f]) for f in _ROW_FIELDS}}
        if short:
            e["short"] = {"nights": int(r["short_days"]), "gross_sales": _num(r["short_gross_sales"]),
                          **{k: _num(short[k][hit[i]]) for k in ("rate", "median", "mad", "sd", "z", "excess")}}
        evidence.append(e)
    explanation = [_explain(e, params) for e in evidence]
    return pd.DataFrame({
        **{k: rows[k].to_numpy() for k in CELL_KEYS}, "night": rows["night"].to_numpy(), "cause": cause,
        "owner": params.owners[cause], "robust_z": pick["z"], "excess": pick["excess"], "projected_loss": projected,
        "needs_manager": cause in params.accrual_causes, "explanation": explanation, "evidence": evidence})


def _explain(e: dict, params: ReviewParams) -> str:
    span = "the week" if e["window"] == "week" else f"the last {e['window_days']} nights"
    return (f"{e['cause'].replace('_', ' ')} at {e['actual_rate']:.2%} vs a usual {e['baseline_median']:.2%} "
            f"(robust z {e['robust_z']:.1f} over {e['weeks_of_history']} weeks): {e['excess']:,.2f} of margin lost "
            f"in {span}, {e['projected_loss']:,.2f} over {params.horizon_weeks:g} weeks if it continues; margin "
            f"{e['bridge']['actual_margin_pct']:.1f}% vs {e['bridge']['expected_margin_pct']:.1f}% expected")


def _num(value) -> float | None:
    value = float(value)
    return None if value != value else round(value, 6)


def business_key(category: str, channel: str, location_id: str, cause: str, start) -> str:
    """The stable key of one episode of a cause on a cell: ``finance_review:...:<start night>``."""
    return f"finance_review:{category}:{channel}:{location_id}:{cause}:{np.datetime64(start, 'D')}"


def dedupe_items(items: pd.DataFrame, open_items: pd.DataFrame | None = None,
                 params: ReviewParams = DEFAULT_REVIEW) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give one night's items the business key of the episode they continue, or start one.

    Args:
        items: :func:`detect_items` of one night.
        open_items: :data:`OPEN_COLUMNS` as returned for the night before (or rebuilt from the staged items);
            none for the first night.
        params: ``gap_nights``, the nights a cell x cause may go unflagged and still continue its episode.

    Returns:
        ``(items with business_key, start and is_new, open episodes after this night)``.

    Raises:
        ValueError: when ``items`` hold more than one night.
    """
    nights = pd.to_datetime(items["night"]).unique() if len(items) else []
    if len(nights) > 1:
        raise ValueError(f"dedupe_items takes one night at a time, got {len(nights)}")
    keys = [*CELL_KEYS, "cause"]
    prior = open_items if open_items is not None and len(open_items) else pd.DataFrame(columns=OPEN_COLUMNS)
    prior = prior.assign(start=pd.to_datetime(prior["start"]), last_night=pd.to_datetime(prior["last_night"]))
    if not len(items):
        return items.assign(business_key=pd.Series(dtype=object), start=pd.Series(dtype="datetime64[s]"),
                            is_new=pd.Series(dtype=bool)), prior.reset_index(drop=True)[OPEN_COLUMNS]
    night = pd.Timestamp(nights[0])
    live = prior[(night - prior["last_night"]).dt.days.between(1, params.gap_nights + 1)]
    out = items.merge(live[[*keys, "business_key", "start"]], on=keys, how="left")
    out["is_new"] = out["business_key"].isna()
    out["start"] = out["start"].fillna(night)
    out.loc[out["is_new"], "business_key"] = [business_key(*r, night) for r in
                                              out.loc[out["is_new"], keys].itertuples(index=False)]
    flagged = out[[*keys, "business_key", "start"]].assign(last_night=night)
    # Episodes not flagged tonight stay open until their gap runs out.
    waiting = prior[(night - prior["last_night"]).dt.days.between(0, params.gap_nights)]
    waiting = waiting.merge(flagged[keys], on=keys, how="left", indicator=True)
    waiting = waiting[waiting["_merge"] == "left_only"].drop(columns="_merge")
    state = pd.concat([flagged, waiting], ignore_index=True)[OPEN_COLUMNS]
    return out, state
