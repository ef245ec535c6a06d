"""Intraday demand sensing against the nightly alone, on a generated world with injected demand shocks.

Every figure is the production code (``include/intraday``): for each shocked day the night's forecast is
made as the nightly makes it (``include.demand.history.build_demand`` over the nightly's window, then
``include.demand.forecasting.forecast_shard``, the vectorised path without the prophet challenger), the
hour-of-day profile is learned from the 28 days before (``learn_profile``, fallback ``trading_shape``),
and after every hour ``retail_intraday`` reads (``include.config.hours_read``: the stores' trading hours and
the web shop's, 8 to 23 by default) ``sense_day`` reads the sales so far (stores'
POS units, every web order line as the intraday stage reads them; the stores' regions pooled when
``sense_day`` takes ``regions``) with the policy's intraday parameters; ``receivers_and_donors`` and
``propose_urgent_moves`` turn each short series (a surge, or a shelf running dry as the policy's rescue
says) into urgent moves, which are replayed hour by hour against the world's hourly demand to count the
sales lost. The baseline, the nightly alone, sees the shock in the next
night's history and proposes at 02:00 the day after; the second, the nightly with a web fallback, also
serves the web shop's orders from the stores' spare stock once the FC is out (:func:`replay_web_fallback`),
as an order management system routing web orders to stores does (``order_orchestration``'s batches),
without any sensing. Both workflows together, the intraday's moves and that fallback, are replayed too:
what a retailer running both loses. Each shock also gets ``detectable``, the chance the same test would flag
it were the night's forecast the truth (:func:`detectable`); their mean, ``recall_if_forecast_exact``, is
what reading the cells' sales at the policy's false-alarm rate can find. Last, ``sense_day``
and ``sense`` are timed on 100,000 synthetic series at 15:00.

    PYTHONPATH=. .venv/bin/python benchmarks/intraday.py            # 14 shocked days x 3 shocks, the DAG timed
    PYTHONPATH=. .venv/bin/python benchmarks/intraday.py --quick    # 3 shocked days, 30k series timed, no DAG

Last, with PostgreSQL on hand (as ``make demo`` finds it), one ``retail_intraday`` run of the small world is
timed end to end under ``airflow dags test`` (:func:`dag_seconds`): ``run_seconds_small``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import inspect
import json
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

try:
    from benchmarks._common import cpu_count, emit_json, ensure_project_on_path, format_table
    from benchmarks.world_nightly import night_forecast as world_night_forecast
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import cpu_count, emit_json, ensure_project_on_path, format_table
    from world_nightly import night_forecast as world_night_forecast

ensure_project_on_path()

from include.config import channels_closed  # noqa: E402
from include.decisions.params import PROPOSAL_COLUMNS  # noqa: E402
from include.demand.calendar import event_labels  # noqa: E402
from include.demand.history import series_id  # noqa: E402
from include.intraday import day as intraday_day  # noqa: E402
from include.intraday.moves import MOVE_ACTIONS, MoveCosts, is_rescue, propose_urgent_moves  # noqa: E402
from include.intraday.profile import HOURS, learn_profile, trading_shape  # noqa: E402
from include.intraday.sensing import SensingParams, day_statistic, dispersion, sense  # noqa: E402
from include.runs import NIGHTLY_DEFAULTS  # noqa: E402
from include.sample_data import intraday_landing  # noqa: E402

#: The world's store trading hours (the profile's fallback) and the days of hourly history it learns from.
STORE_OPEN, STORE_CLOSE, PROFILE_DAYS = 8, 22, 28
#: Buckets of a shock's expected extra units in its first three hours.
BUCKETS = (0, 5, 10, 20, 40, np.inf)
NIGHTLY_PROPOSAL_HOUR = 2


# --------------------------------------------------------------------------------------------- pure helpers


def replay_hours(demand: np.ndarray, stock: np.ndarray, inflow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Serve ``[n, 24]`` hourly demand from ``[n]`` opening stock, ``[n, 24]`` units arriving (or leaving,
    negative) at the start of each hour; ``([n, 24] sold, [n, 24] lost)``. Stock never goes below zero."""
    demand = np.asarray(demand, float)
    left = np.asarray(stock, float).copy()
    sold = np.zeros_like(demand)
    for h in range(demand.shape[1]):
        left = np.maximum(left + inflow[:, h], 0.0)
        sold[:, h] = np.minimum(demand[:, h], left)
        left -= sold[:, h]
    return sold, demand - sold


def replay_web_fallback(web: np.ndarray, web_stock: float, stores: np.ndarray, store_stock: np.ndarray,
                        keep: np.ndarray, web_inflow: np.ndarray | None = None,
                        store_inflow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The web shop's ``[24]`` hourly demand served by its FC from ``web_stock`` and, once the FC is out,
    by the stores (``[n, 24]`` demand, ``[n]`` opening stock) beyond what each keeps for its own customers
    at each hour (``keep``, ``[n, 24]``), the store with the most to spare first: the order management
    system's fallback to the stores. Each hour the stores serve their own customers first. Units arriving
    (or leaving, negative) at the start of each hour, as :func:`replay_hours` takes them: ``web_inflow``
    ``[24]`` at the FC, ``store_inflow`` ``[n, 24]`` at the stores (none: no sensing, the fallback alone).
    Returns ``([24] web units lost, [n, 24] store units lost)``."""
    stores = np.asarray(stores, float)
    web_in = np.zeros(stores.shape[1]) if web_inflow is None else np.asarray(web_inflow, float)
    store_in = np.zeros_like(stores) if store_inflow is None else np.asarray(store_inflow, float)
    left_web, left = float(web_stock), np.asarray(store_stock, float).copy()
    lost_web, lost = np.zeros(stores.shape[1]), np.zeros_like(stores)
    for h in range(stores.shape[1]):
        left_web, left = max(left_web + float(web_in[h]), 0.0), np.maximum(left + store_in[:, h], 0.0)
        sold = np.minimum(stores[:, h], left)
        lost[:, h], left = stores[:, h] - sold, left - sold
        need = float(web[h]) - min(float(web[h]), left_web)
        left_web -= float(web[h]) - need
        spare = np.maximum(np.floor(left - keep[:, h]), 0.0)
        for i in np.argsort(-spare, kind="stable"):
            take = min(need, spare[i])
            left[i], need = left[i] - take, need - take
        lost_web[h] = need
    return lost_web, lost


def hours_to_proposal(alarm_hour: int, onset_hour: int) -> int:
    """Hours from a shock's onset to the intraday proposal: hour ``h``'s data is in at the end of ``h``."""
    return alarm_hour + 1 - onset_hour


def nightly_hours(onset_hour: int) -> int:
    """Hours from a shock's onset to the next night's proposals (at 02:00 the day after)."""
    return HOURS + NIGHTLY_PROPOSAL_HOUR - onset_hour


def bucket(units: float) -> str:
    """The label of the :data:`BUCKETS` interval ``units`` falls in."""
    for low, high in zip(BUCKETS[:-1], BUCKETS[1:], strict=True):
        if low <= units < high:
            return f"{low}-{high}" if np.isfinite(high) else f">={low}"
    return f"<{BUCKETS[0]}"


# --------------------------------------------------------------------------------------------- the world


@dataclasses.dataclass
class Day:
    """One day's hourly data: what the intraday feeds carry and the world's hourly demand behind it."""

    index: int
    date: dt.date
    hourly: pd.DataFrame  # location_id, sku, hour, units (sold; online lines not cancelled)
    demand: np.ndarray  # [locations, skus, 24] units demanded (stores and the FC)
    opening: np.ndarray  # [locations, skus] stock when trading starts
    store_sales: pd.DataFrame
    orders: pd.DataFrame


def load_day(world, d: int, online_orders: bool = True) -> Day:
    """The hourly extracts of history day ``d`` (``hourly_store_sales``, the day's order lines) and the
    hourly demand the generator drew for them (recorded from its own ``split_by_hour`` call). Online
    units are every line ordered, cancelled or not, as the intraday stage reads them (``online_orders``
    False: the lines not cancelled, what sold)."""
    from include.sample_data.generator import _ecom_for_day

    sim = world._sim
    seen: list[tuple] = []
    split = intraday_landing.split_by_hour

    def record(*args, **kwargs):
        out = split(*args, **kwargs)
        seen.append(out)
        return out

    with mock.patch.object(intraday_landing, "split_by_hour", record):
        store_sales = intraday_landing.hourly_store_sales(world, sim.days[d].item())
    demand = np.zeros(sim.demand.shape[1:] + (HOURS,))
    rows, skus = np.nonzero(sim.demand[d][sim.store_rows])
    demand[sim.store_rows[rows], skus] = seen[0][0]
    if not np.array_equal(demand.sum(axis=2)[sim.store_rows], sim.demand[d][sim.store_rows]):
        raise RuntimeError(f"day {d}: the recorded hourly store demand does not add up to the world's")
    orders = _ecom_for_day(sim, d)
    sku_index = pd.Index(sim.skus)
    hour = orders["ordered_at"].dt.hour.to_numpy()
    np.add.at(demand[sim.fc_row], (sku_index.get_indexer(orders["sku"]), hour), orders["quantity"].to_numpy(float))
    served = orders if online_orders else orders[orders["status"] != "cancelled"]
    online = served.assign(location_id=sim.location_ids[sim.fc_row], hour=served["ordered_at"].dt.hour).groupby(
        ["location_id", "sku", "hour"], as_index=False).agg(units=("quantity", "sum"), orders=("quantity", "size"))
    stores = store_sales.rename(columns={"store_id": "location_id", "units_sold": "units"}).assign(orders=np.nan)
    hourly = pd.concat([stores[["location_id", "sku", "hour", "units", "orders"]], online], ignore_index=True)
    opening = sim.on_hand[d].astype(float) + sim.sales[d]
    return Day(d, sim.days[d].item(), hourly, demand, opening, store_sales, orders)


def profile_rows(world, day: Day) -> pd.DataFrame:
    """One day's hourly units per series, with its channel: what :func:`learn_profile` reads."""
    fc = world._sim.location_ids[world._sim.fc_row]
    channel = np.where(day.hourly["location_id"] == fc, "online", "store")
    return day.hourly.assign(channel=channel, ds=pd.Timestamp(day.date))


def night_forecast(world, frames: dict, origin: dt.date, cover_days: int, sigma_from: str) -> pd.DataFrame:
    """The night's forecast made at ``origin`` for the next days, in :data:`FORECAST_COLUMNS` shape.

    ``sigma`` is the one-day forecast error: ``sigma_cum`` at step 1 (the spread of the error summed over
    steps ``1..1``), or with ``sigma_from="q95"`` ``(q95 - q50) / 1.645``, the normal spread the quantiles
    imply. ``sense_day`` reads step 1's sigma only.
    """
    f = world_night_forecast(world, origin, frames)
    f = f[f["step"] <= cover_days + 1]
    sigma = (f["q95"] - f["q50"]) / 1.645 if sigma_from == "q95" else f["sigma_cum"]
    return f.assign(sigma=sigma)[intraday_day.FORECAST_COLUMNS]


# --------------------------------------------------------------------------------------------- the hourly run


@dataclasses.dataclass(frozen=True)
class Setup:
    """What every hourly run of the replay shares."""

    world: object
    params: intraday_day.DayParams
    regions: pd.DataFrame | None
    costs: MoveCosts  # its hours are the ones ``params`` senses with: one source for both
    donor_service: float
    dc_keep: float
    rescue: intraday_day.Rescue | None = None  # shelves running dry without a surge are sent stock too
    hours: tuple[int, ...] = tuple(range(HOURS))  # the hours read: retail_intraday runs after each (hours_read)


def sense_hours(setup: Setup, day: Day, forecast: pd.DataFrame, profile) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Run ``sense_day`` at the end of every hour of ``setup.hours`` (the hours read, after each of which
    ``retail_intraday`` runs) and propose urgent moves for the short series, every move decided at once (as
    auto-approved lines are): a later hour sees what earlier moves are still bringing each receiver
    (``committed``) and tops up only a surge that outgrew them.

    Returns:
        The last hour's reading, ``[locations, skus, 25]`` units arriving (negative: leaving) at the start
        of each hour (index 24: after closing), and the moves with the ``hour`` they were proposed.
    """
    world = setup.world
    sim = world._sim
    loc_index, sku_index = pd.Index(sim.location_ids), pd.Index(sim.skus)
    dcs = set(world.locations.loc[world.locations["location_type"] == "dc", "location_id"])
    inflow = np.zeros(sim.demand.shape[1:] + (HOURS + 1,))
    on_order = np.zeros(sim.demand.shape[1:])  # raised supplier orders: they arrive after the day
    moves = []
    kwargs = {} if setup.regions is None else {"regions": setup.regions}
    for h in setup.hours:
        stock = intraday_landing.on_hand_at(world, day.date, h, day.store_sales, day.orders)
        moved = inflow[:, :, : h + 2].sum(axis=2).ravel()
        stock = stock.assign(on_hand=np.maximum(stock["on_hand"].to_numpy(float) + moved, 0.0))
        sensed = intraday_day.sense_day(forecast, day.hourly, stock, profile, weekday=day.date.weekday(), hour=h,
                                        params=setup.params, **kwargs)
        dc_rows = stock[stock["location_id"].isin(dcs)].assign(channel="dc", alarm=False, need_in_window=0.0)
        coming = inflow[:, :, h + 2:].clip(min=0.0).sum(axis=2)
        rows, cols = np.nonzero(coming + on_order)
        committed = pd.DataFrame({"location_id": np.asarray(sim.location_ids)[rows], "sku": np.asarray(sim.skus)[cols],
                                  "moving_in": coming[rows, cols], "moving_out": 0.0, "on_order": on_order[rows, cols]})
        receivers, donors = intraday_day.receivers_and_donors(pd.concat([sensed, dc_rows], ignore_index=True),
                                                              service=setup.donor_service, dc_keep=setup.dc_keep,
                                                              committed=committed, rescue=setup.rescue,
                                                              closed=channels_closed(h))
        if receivers.empty:
            continue
        lines = propose_urgent_moves(receivers, donors, world.items, world.locations, day.date, setup.costs)
        for line in lines[lines["action"].isin(MOVE_ACTIONS)].itertuples():
            k, qty = sku_index.get_loc(line.sku), float(line.quantity)
            inflow[loc_index.get_loc(line.from_location), k, h + 1] -= qty
            lag = round(line.explanation["hours_to_arrive"])
            inflow[loc_index.get_loc(line.to_location), k, min(h + 1 + lag, HOURS)] += qty
        for line in lines[lines["action"] == "raise_order"].itertuples():
            on_order[loc_index.get_loc(line.to_location), sku_index.get_loc(line.sku)] += float(line.quantity)
        moves.append(lines.assign(hour=h))
    moves = pd.concat(moves, ignore_index=True) if moves else pd.DataFrame(columns=[*PROPOSAL_COLUMNS, "hour"])
    return sensed, inflow, moves


def store_keep(world, forecast: pd.DataFrame, profile, day: Day, sku: str) -> np.ndarray:
    """``[stores, 24]``: what each store keeps of ``sku`` for its own customers at the end of each hour in the
    fallback baseline: its forecast demand for the rest of the day and tomorrow, plus 1.645 of its Poisson
    spread (95%, the policy's donor service), from the night's forecast alone."""
    sim = world._sim
    stores = np.asarray(sim.location_ids)[sim.store_rows]
    f = forecast[(forecast["sku"] == sku) & (forecast["channel"] == "store")]
    wide = f.pivot_table(index="location_id", columns="step", values="mean", aggfunc="sum").reindex(stores)
    today = wide.get(1, pd.Series(0.0, index=wide.index)).fillna(0.0).to_numpy(float)
    tomorrow = wide.get(2, pd.Series(0.0, index=wide.index)).fillna(0.0).to_numpy(float)
    shares = profile.matrix(np.full(len(stores), "store", dtype=object), np.full(len(stores), day.date.weekday()))
    after = shares[:, ::-1].cumsum(axis=1)[:, ::-1] - shares  # the share of the day after each hour
    need = today[:, None] * after + tomorrow[:, None]
    return need + 1.645 * np.sqrt(need)


def score_day(world, day: Day, sensed: pd.DataFrame, inflow: np.ndarray, moves: pd.DataFrame,
              keep=None, detect=None) -> tuple[list, dict]:  # noqa: ANN001
    """Per shock of ``day``: detection, hours to proposal, moves and lost sales (with ``keep(sku)``, the
    stores' :func:`store_keep`, also under the web fallback baseline; with ``detect(shock)``,
    :func:`detectable`'s chance of detection); and the day's false alarms."""
    from include.sample_data.intraday import hour_shares

    sim = world._sim
    loc_index, sku_index = pd.Index(sim.location_ids), pd.Index(sim.skus)
    shocks = world.shocks[world.shocks["date"] == pd.Timestamp(day.date)]
    alarms = sensed[sensed["alarm"]].set_index(["location_id", "sku"])
    covered = {(loc, s.sku) for s in shocks.itertuples() for loc in s.location_ids.split(";")}
    ends = pd.concat([moves["from_location"], moves["to_location"]]), pd.concat([moves["sku"], moves["sku"]])
    selling = set(sim.location_ids[sim.store_rows]) | {sim.location_ids[sim.fc_row]}
    cells = sorted(c for c in covered | set(zip(*ends, strict=True)) if c[0] in selling)
    rows = loc_index.get_indexer([c[0] for c in cells]), sku_index.get_indexer([c[1] for c in cells])
    demand, opening = day.demand[rows], day.opening[rows]
    _, lost_n = replay_hours(demand, opening, np.zeros_like(demand))
    _, lost_i = replay_hours(demand, opening, inflow[rows][:, :HOURS])
    world_lost = (sim.demand[day.index] - sim.sales[day.index])[rows]
    if not np.allclose(lost_n.sum(axis=1), world_lost):
        raise RuntimeError(f"{day.date}: the hourly replay does not reproduce the world's lost sales")
    at = {cell: i for i, cell in enumerate(cells)}
    out = []
    for s in shocks.itertuples():
        mine = [(loc, s.sku) for loc in s.location_ids.split(";")]
        hit = alarms.reindex(mine).dropna(subset=["alarm_hour"])
        idx = [at[c] for c in mine]
        to_me = moves[moves["to_location"].isin(s.location_ids.split(";")) & (moves["sku"] == s.sku)]
        share = hour_shares(np.array([s.scope != "online"]), day.date.weekday())[0]
        first3 = s.extra_units * share[s.onset_hour: s.onset_hour + 3].sum() / max(share[s.onset_hour:].sum(), 1e-9)
        alarm_hour = int(hit["alarm_hour"].min()) if len(hit) else None
        out.append({
            "shock_id": s.shock_id, "date": str(day.date), "sku": s.sku, "scope": s.scope, "onset_hour": s.onset_hour,
            "ratio": s.ratio, "extra_units": int(s.extra_units), "expected_extra_first_3h": round(float(first3), 1),
            "detected": alarm_hour is not None, "alarm_hour": alarm_hour,
            "detectable": None if detect is None else round(detect(s), 3),
            "level": None if not len(hit) else str(hit.sort_values("alarm_hour")["level"].iloc[0]),
            "hours_to_proposal": None if alarm_hour is None else hours_to_proposal(alarm_hour, s.onset_hour),
            "nightly_hours": nightly_hours(s.onset_hour),
            "first_move_hour": None if to_me.empty else int(to_me["hour"].min()),
            "units_moved": float(to_me.loc[to_me["action"] != "raise_order", "quantity"].sum()),
            "lost_nightly": float(lost_n[idx, s.onset_hour:].sum()), "lost_intraday": float(lost_i[idx, s.onset_hour:].sum()),
            "lost_web_fallback": _fallback_lost(world, day, s, keep) if keep is not None and s.scope == "online"
            else float(lost_n[idx, s.onset_hour:].sum()),
            "lost_intraday_web_fallback": _fallback_lost(world, day, s, keep, inflow)
            if keep is not None and s.scope == "online" else float(lost_i[idx, s.onset_hour:].sum()),
        })
    others = [i for cell, i in at.items() if cell not in covered]
    change = (lost_i[others] - lost_n[others]).sum(axis=1)
    false = [key for key in alarms.index if key not in covered]
    spill = [key for key in false if key[1] in set(shocks["sku"])]
    levels = alarms.loc[false, "level"].value_counts().to_dict() if false else {}
    event = event_labels(pd.DatetimeIndex([pd.Timestamp(day.date)])).iloc[0]
    return out, {"series": int(len(sensed)), "event": None if pd.isna(event) else str(event),
                 "false_alarms": len(false), "false_alarms_same_sku_as_a_shock": len(spill),
                 "false_alarms_by_level": levels, "donors_extra_lost": float(change.clip(min=0).sum()),
                 "recovered_elsewhere": float(-change.clip(max=0).sum())}


def _fallback_lost(world, day: Day, shock, keep, inflow: np.ndarray | None = None) -> float:  # noqa: ANN001
    """Units an online shock loses from its onset when the stores serve what the FC cannot, counting the
    sales the stores lose for it; with the intraday's ``inflow`` (``[locations, skus, 25]``), with its moves
    too: both workflows running, the sensing's moves and the order management's fallback."""
    sim = world._sim
    k = pd.Index(sim.skus).get_loc(shock.sku)
    stores = day.demand[sim.store_rows, k]
    web_in = None if inflow is None else inflow[sim.fc_row, k, :HOURS]
    store_in = np.zeros_like(stores) if inflow is None else inflow[sim.store_rows, k, :HOURS]
    web_lost, store_lost = replay_web_fallback(day.demand[sim.fc_row, k], day.opening[sim.fc_row, k], stores,
                                               day.opening[sim.store_rows, k], keep(shock.sku), web_in, store_in)
    _, alone = replay_hours(stores, day.opening[sim.store_rows, k], store_in)
    return float(web_lost[shock.onset_hour:].sum() + (store_lost - alone)[:, shock.onset_hour:].sum())


def detectable(forecast: pd.DataFrame, profile, day: Day, shock, thresholds: dict, last_hour: int,
               params: SensingParams, draws: int = 4000, seed: int = 0) -> float:  # noqa: ANN001
    """The chance the test flags ``shock`` by ``last_hour`` were the night's forecast the truth.

    Draws ``draws`` days of each of the shock's cells from the test's own null (the forecast's mean spread
    by the profile, times a gamma day multiplier of the forecast's error, each cell its own, in the
    channel's counting units: the web shop's orders, the stores' units in lumps), adds the shock's
    ``ratio - 1`` times that mean from its onset (at the web shop as orders of one unit each, as the
    world's surges arrive), and reads
    them as ``sense_day`` does, without the day's level and spread: each cell at the series threshold and,
    for a region, the cells summed at the region threshold of the day's last run (``thresholds``). Any
    shortfall of the replay's recall from the mean of this over the shocks is what the forecast got wrong;
    what is left is the information limit of reading the cells' sales at the policy's false-alarm rate.
    """
    cells = forecast[(forecast["step"] == 1) & (forecast["sku"] == shock.sku)
                     & forecast["location_id"].isin(shock.location_ids.split(";"))]
    if cells.empty:
        return 0.0
    channels = cells["channel"].to_numpy(object)
    lump = profile.clumping_of(channels)
    count, by_orders = profile.counting(channels, series_id(cells["location_id"].astype(str),
                                                            cells["sku"].astype(str)).to_numpy())
    mean, sigma = cells["mean"].to_numpy(float) / lump, cells["sigma"].to_numpy(float) / lump
    lam = (cells["mean"].to_numpy(float) / count)[:, None] * profile.matrix(
        channels, np.full(len(cells), day.date.weekday()))[:, : last_hour + 1]
    rng = np.random.default_rng([seed, day.index, int(shock.shock_id.lstrip("SH"))])
    r = dispersion(mean, sigma)
    theta = rng.gamma(r, 1.0 / r, (draws, len(cells)))
    after = np.arange(last_hour + 1) >= shock.onset_hour
    surge = (shock.ratio - 1.0) * np.where(by_orders, count, 1.0)[None, :, None] * after[None, None, :]
    x = rng.poisson(lam[None] * (theta[:, :, None] + surge)).astype(float)
    peak = day_statistic(x.reshape(-1, last_hour + 1), np.tile(lam, (draws, 1)), np.tile(r, draws),
                         params.shock_ratio).max(axis=1).reshape(draws, len(cells))
    found = (peak >= thresholds["series"]).any(axis=1)
    if shock.scope == "region" and "region" in thresholds:
        total = dispersion(np.array([mean.sum()]), np.array([np.sqrt((sigma**2).sum())]))
        pooled = day_statistic(x.sum(axis=1), np.broadcast_to(lam.sum(axis=0), (draws, last_hour + 1)),
                               np.full(draws, total[0]), params.shock_ratio).max(axis=1)
        found |= pooled >= thresholds["region"]
    return float(found.mean())


# --------------------------------------------------------------------------------------------- speed


def sensing_speed(n_series: int, hour: int = 15, seed: int = 0) -> dict:
    """Seconds of ``sense_day`` (with and without the regions) and of the bare ``sense`` on ``n_series``
    synthetic store series (100 SKUs a store, 50 stores a region), Poisson sales around random means, read
    at the end of ``hour``; the best of three runs each; then the moves of that reading (:func:`moves_speed`)."""
    rng = np.random.default_rng(seed)
    kwargs, regions, (sold, mean, sigma, shape) = synthetic_stores(n_series, hour, rng)

    def best(call) -> tuple[float, object]:
        """The best of three runs of ``call``, in seconds, and what the last run returned."""
        times = []
        for _ in range(3):
            start = time.perf_counter()
            result = call()
            times.append(time.perf_counter() - start)
        return round(min(times), 3), result

    out = {"series": len(kwargs["on_hand"]), "hour": hour}
    out["sense_day_seconds"], reading = best(lambda: intraday_day.sense_day(**kwargs))
    if _has_regions():
        out["sense_day_regions_seconds"], reading = best(lambda: intraday_day.sense_day(**kwargs, regions=regions))
    expected = mean[:, None] * shape[None, : hour + 1]
    r = dispersion(mean, sigma)
    out["sense_seconds"], _ = best(lambda: sense(sold.astype(float), expected, r, SensingParams()))
    out.update(moves_speed(reading, regions, rng))
    return out


def synthetic_stores(n_series: int, hour: int, rng: np.random.Generator) -> tuple[dict, pd.DataFrame, tuple]:
    """``sense_day``'s keyword arguments for ``n_series`` synthetic store series (100 SKUs a store, 50 stores
    a region, Poisson sales around gamma means, shelves holding about two days), the stores' regions, and
    ``(sold, mean, sigma, shape)`` for the bare test."""
    from include.intraday.profile import IntradayProfile

    n_sku = 100
    n_loc = max(n_series // n_sku, 1)
    locs = np.repeat([f"S{i:05d}" for i in range(n_loc)], n_sku)
    skus = np.tile([f"K{k:03d}" for k in range(n_sku)], n_loc)
    mean = rng.gamma(0.8, 8.0, len(locs))
    sigma = np.sqrt(mean + (0.35 * mean) ** 2)
    shape = trading_shape(STORE_OPEN, STORE_CLOSE)
    profile = IntradayProfile(shares={"store": np.tile(shape, (7, 1))}, fallback=shape)
    sold = rng.poisson(mean[:, None] * shape[None, : hour + 1] * rng.gamma(20.0, 1 / 20.0, (len(locs), 1)))
    cell, hours = np.nonzero(sold)
    hourly = pd.DataFrame({"location_id": locs[cell], "sku": skus[cell], "hour": hours, "units": sold[cell, hours]})
    forecast = pd.concat([pd.DataFrame({"location_id": locs, "sku": skus, "channel": "store", "step": step,
                                        "mean": mean, "sigma": sigma}) for step in (1, 2)], ignore_index=True)
    on_hand = pd.DataFrame({"location_id": locs, "sku": skus, "on_hand": rng.poisson(mean * 2.0).astype(float)})
    regions = pd.DataFrame({"location_id": [f"S{i:05d}" for i in range(n_loc)], "region": [f"R{i // 50}" for i in range(n_loc)]})
    kwargs = {"forecast": forecast, "hourly": hourly, "on_hand": on_hand, "profile": profile, "weekday": 2, "hour": hour}
    return kwargs, regions, (sold, mean, sigma, shape)


def moves_speed(sensed: pd.DataFrame, regions: pd.DataFrame, rng: np.random.Generator) -> dict:
    """Seconds of ``receivers_and_donors`` and ``propose_urgent_moves`` on one reading of the synthetic
    series (a DC a region holding stock of every SKU, the shelves running dry rescued as the shipped policy
    says), and how many receivers and lines they came to; one run (it is seconds, not milliseconds)."""
    from include.governance.policy import load_policy

    policy = load_policy()
    dcs = regions.assign(dc="D" + regions["region"].str[1:])
    skus = sensed["sku"].unique()
    dc_rows = pd.DataFrame({"location_id": np.repeat(dcs["dc"].unique(), len(skus)),
                            "sku": np.tile(skus, dcs["dc"].nunique()), "channel": "dc", "alarm": False,
                            "need_in_window": 0.0})
    dc_rows["on_hand"] = rng.poisson(200.0, len(dc_rows)).astype(float)
    locations = pd.concat([
        pd.DataFrame({"location_id": dcs["location_id"], "location_type": "store", "region": dcs["region"],
                      "parent_dc": dcs["dc"], "transfer_cost_per_unit": 0.3}),
        pd.DataFrame({"location_id": dcs["dc"].unique(), "location_type": "dc", "region": dcs["region"].unique(),
                      "parent_dc": None, "transfer_cost_per_unit": 0.0})], ignore_index=True)
    items = pd.DataFrame({"sku": skus, "unit_price": rng.uniform(5.0, 40.0, len(skus)), "case_pack": 6,
                          "supplier_id": "SUP1"})
    items["unit_cost"] = items["unit_price"] * 0.55
    start = time.perf_counter()
    receivers, donors = intraday_day.receivers_and_donors(
        pd.concat([sensed, dc_rows], ignore_index=True), service=float(policy.intraday.donor_service),
        dc_keep=float(policy.intraday.dc_keep), rescue=policy.intraday.rescue())
    lines = propose_urgent_moves(receivers, donors, items, locations, dt.date(2026, 11, 25),
                                 MoveCosts.from_policy(policy.costs, policy.intraday))
    return {"moves_seconds": round(time.perf_counter() - start, 3), "moves_receivers": int(len(receivers)),
            "moves_lines": int(len(lines))}


#: The trading day and hour the timed ``retail_intraday`` run reads (a Friday afternoon).
DAG_DAY, DAG_HOUR = dt.date(2026, 10, 30), 14
#: The ERP database of the timed run (dropped and created again each time).
DAG_ERP_DB = "intraday_erp_scale"


def dag_seconds(preset: str, volume: float, work: Path) -> dict:
    """One ``retail_intraday`` run of the ``preset`` world, end to end with ``airflow dags test``.

    The world is prepared as the demo's (``scripts/intraday_demo.py``'s ``prepare_world``: history loaded,
    the night's forecast made by the nightly's own stages, earlier days' hours and the day's hours before
    the afternoon's ingested as earlier runs would have) on a fresh Airflow home and ERP database under
    ``work``; the timed run then ingests the hour's extracts, senses, proposes, stages its lines and waits at its gate (a 3-second deadline: lines
    that need a planner expire, which is what a run without a planner does). ``seconds`` is the wall time
    of the whole ``airflow dags test`` process, start-up and DAG parsing included.
    """
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from intraday_demo import prepare_world
    from nightly_scale import recreate_database
    from shelfwise import VENV_BIN, environment, prepare, resolve_server_url, service_env

    from include.stages.summaries import read_stage_summaries

    data = work / "data"
    recreate_database(resolve_server_url(data), DAG_ERP_DB)
    env = environment(airflow_home=work / "airflow", data_root=data, erp_db=DAG_ERP_DB)
    prepare(env)
    start = time.perf_counter()
    prepare_world(str(data), preset, DAG_DAY, DAG_HOUR, volume=volume, shocks_per_day=3, min_daily_units=30,
                  history_days=int(NIGHTLY_DEFAULTS["history_days"]), shard_size=int(NIGHTLY_DEFAULTS["shard_size"]),
                  ingest_earlier_hours=True)
    prepared = time.perf_counter() - start
    log_path = work / "retail_intraday.log"
    conf = {"gate_poke_seconds": 1, "gate_timeout_minutes": 0.05}
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run([str(VENV_BIN / "airflow"), "dags", "test", "retail_intraday",
                               f"{DAG_DAY}T{DAG_HOUR + 1:02d}:00:00+00:00", "-c", json.dumps(conf)],
                              env=service_env(env), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              cwd=Path(__file__).resolve().parents[1], timeout=900, check=False)
    seconds = time.perf_counter() - start
    text = log_path.read_text(errors="replace")
    if proc.returncode != 0 or "state=success" not in text.split("DagRun Finished", 1)[-1][:2000]:
        raise RuntimeError(f"retail_intraday did not succeed; see {log_path}")
    summaries = read_stage_summaries("retail_intraday", DAG_DAY, str(data))
    sensed, staged = summaries.get("sense_demand", {}), summaries.get("stage_moves", {})
    return {"seconds": round(seconds, 1), "prepare_seconds": round(prepared, 1), "preset": preset,
            "series": sensed.get("series"), "alarms": sensed.get("alarms"),
            "lines_staged": sum(v for k, v in staged.items() if k in ("auto_approved", "pending")), "log": str(log_path)}


def _has_regions() -> bool:
    return "regions" in inspect.signature(intraday_day.sense_day).parameters


# --------------------------------------------------------------------------------------------- the run


def summarise(shocks: pd.DataFrame, days: list[dict]) -> tuple[dict, list[dict], list[dict]]:
    """The headline figures, the table of the two approaches and the recall breakdown.

    Lost sales are the shocked cells' from the onset to closing; the intraday figure also carries the
    sales its donors lost for the stock they gave. Units that moves saved at other series (alarming off the
    injected shocks, or shelves running dry without one) are ``recovered_elsewhere``, not in the reduction.
    """
    found = shocks[shocks["detected"]]
    series_days = sum(d["series"] for d in days)
    false = sum(d["false_alarms"] for d in days)
    quiet = [d for d in days if d["event"] is None]
    donors = sum(d["donors_extra_lost"] for d in days)
    lost_n, lost_i = shocks["lost_nightly"].sum(), shocks["lost_intraday"].sum() + donors
    lost_f = shocks["lost_web_fallback"].sum()
    lost_b = shocks["lost_intraday_web_fallback"].sum() + donors
    fig = {
        "recall": round(float(shocks["detected"].mean()), 4) if len(shocks) else None,
        "recall_if_forecast_exact": round(float(shocks["detectable"].mean()), 4) if len(shocks) else None,
        "median_hours_to_proposal": float(found["hours_to_proposal"].median()) if len(found) else None,
        "nightly_median_hours_to_proposal": float(shocks["nightly_hours"].median()) if len(shocks) else None,
        "false_alarms_per_1000_series_day": round(1000.0 * false / max(series_days, 1), 3),
        "false_alarms_per_1000_series_day_without_event_days": round(
            1000.0 * sum(d["false_alarms"] for d in quiet) / max(sum(d["series"] for d in quiet), 1), 3),
        "donors_extra_lost": donors, "recovered_elsewhere": sum(d["recovered_elsewhere"] for d in days),
        "lost_sales_nightly": lost_n, "lost_sales_intraday": lost_i,
        "lost_sales_reduction_vs_nightly": round(1.0 - lost_i / lost_n, 4) if lost_n > 0 else None,
        "lost_sales_nightly_web_fallback": lost_f,
        "lost_sales_reduction_vs_nightly_web_fallback": round(1.0 - lost_i / lost_f, 4) if lost_f > 0 else None,
        "lost_sales_intraday_web_fallback": lost_b,
        "lost_sales_reduction_both_vs_nightly": round(1.0 - lost_b / lost_n, 4) if lost_n > 0 else None,
        "lost_sales_reduction_both_vs_nightly_web_fallback": round(1.0 - lost_b / lost_f, 4) if lost_f > 0 else None,
        "alarms_before_onset": int((found["alarm_hour"] < found["onset_hour"]).sum()),
        "rescue_moves": sum(d.get("rescue_moves", 0) for d in days),
        "rescue_units": sum(d.get("rescue_units", 0.0) for d in days),
    }
    table = [{"approach": "intraday (Shelfwise)", "recall": fig["recall"], "median_hours": fig["median_hours_to_proposal"],
              "false_alarms_per_1000_series_day": fig["false_alarms_per_1000_series_day"], "lost_sales": lost_i},
             {"approach": "nightly alone", "recall": 1.0, "median_hours": fig["nightly_median_hours_to_proposal"],
              "false_alarms_per_1000_series_day": 0.0, "lost_sales": lost_n},
             {"approach": "nightly + web orders from stores when the FC is out", "recall": 1.0,
              "median_hours": fig["nightly_median_hours_to_proposal"], "false_alarms_per_1000_series_day": 0.0,
              "lost_sales": lost_f},
             {"approach": "intraday + web orders from stores when the FC is out (both workflows)",
              "recall": fig["recall"], "median_hours": fig["median_hours_to_proposal"],
              "false_alarms_per_1000_series_day": fig["false_alarms_per_1000_series_day"], "lost_sales": lost_b}]
    groups = [("scope", s, shocks[shocks["scope"] == s]) for s in ("online", "region", "store")]
    labels = shocks["expected_extra_first_3h"].map(bucket)
    groups += [("extra units, first 3 h", b, shocks[labels == b]) for b in dict.fromkeys(map(bucket, BUCKETS[:-1]))]
    breakdown = [{"by": by, "group": g, "shocks": len(part), "detected": int(part["detected"].sum()),
                  "recall": round(float(part["detected"].mean()), 3) if len(part) else None,
                  "recall_if_forecast_exact": round(float(part["detectable"].mean()), 3) if len(part) else None,
                  "median_hours": float(part.loc[part["detected"], "hours_to_proposal"].median())
                  if part["detected"].any() else None,
                  "lost_nightly": part["lost_nightly"].sum(), "lost_web_fallback": part["lost_web_fallback"].sum(),
                  "lost_intraday": part["lost_intraday"].sum(),
                  "lost_intraday_web_fallback": part["lost_intraday_web_fallback"].sum()}
                 for by, g, part in groups]
    return fig, table, breakdown


def run(args: argparse.Namespace) -> dict:
    """Generate the world, replay every shocked day, and time the sensing stage."""
    from include.config import hours_read
    from include.governance.policy import load_policy
    from include.intraday.day import DayParams
    from include.sample_data.generator import PRESETS, generate_world
    from include.sample_data.intraday import ShockConfig

    started = time.perf_counter()
    preset = PRESETS[args.preset]
    config = dataclasses.replace(preset, volume=args.volume, seed=preset.seed if args.seed is None else args.seed,
                                 shocks=ShockConfig(days=args.days, per_day=args.per_day,
                                                    min_daily_units=args.min_daily_units))
    world = generate_world(config)
    sim = world._sim
    frames = {"pos": world.pos_sales, "orders": world.ecommerce_orders, "inventory": world.inventory_snapshot}
    stores = world.locations[world.locations["location_type"] == "store"]
    policy = load_policy()
    # The flags replace the policy's hours everywhere: what sensing counts as short before a move arrives,
    # the routes the moves take, and when the replay delivers them.
    hours = {k: v for k, v in (("transfer_hours", args.transfer_hours), ("expedite_hours", args.expedite_hours))
             if v is not None}
    if args.no_ship_from_store:
        hours["ship_from_store_hours"] = None
    intraday = policy.intraday.model_copy(update=hours)
    params = DayParams.from_policy(intraday)
    if args.false_alarm_budget:
        params = dataclasses.replace(params, sensing=dataclasses.replace(
            params.sensing, false_alarms_per_1000_series_day=args.false_alarm_budget))
    setup = Setup(world, params, stores[["location_id", "region"]] if _has_regions() else None,
                  MoveCosts.from_policy(policy.costs, intraday),
                  args.donor_service or float(policy.intraday.donor_service), float(policy.intraday.dc_keep),
                  None if args.no_rescue else intraday.rescue(), hours_read())
    first = (pd.Timestamp(sim.days[0]) - pd.Timestamp(0)).days
    shock_days = sorted({(d - pd.Timestamp(0)).days - first for d in world.shocks["date"]})
    cache: dict[int, Day] = {}
    seconds = {"world": round(time.perf_counter() - started, 1), "forecast": 0.0, "sensing_and_moves": 0.0}
    results, days = [], []
    for d in shock_days:
        for j in range(max(d - PROFILE_DAYS, 0), d + 1):
            cache.setdefault(j, load_day(world, j, not args.online_sold))
        for j in [j for j in cache if j < d - PROFILE_DAYS]:
            del cache[j]
        start = time.perf_counter()
        forecast = night_forecast(world, frames, cache[d].date - dt.timedelta(days=1), setup.params.cover_days,
                                  args.sigma_from)
        seconds["forecast"] += time.perf_counter() - start
        history = pd.concat([profile_rows(world, cache[j]) for j in range(max(d - PROFILE_DAYS, 0), d)])
        profile = learn_profile(history, fallback=trading_shape(STORE_OPEN, STORE_CLOSE))
        start = time.perf_counter()
        sensed, inflow, moves = sense_hours(setup, cache[d], forecast, profile)
        seconds["sensing_and_moves"] += time.perf_counter() - start
        shocks, day = score_day(world, cache[d], sensed, inflow, moves,
                                keep=functools.partial(store_keep, world, forecast, profile, cache[d]),
                                detect=functools.partial(detectable, forecast, profile, cache[d],
                                                         thresholds=sensed.attrs["thresholds"],
                                                         last_hour=max(setup.hours), params=setup.params.sensing))
        results += shocks
        rescues = moves.loc[is_rescue(moves)]
        days.append({"date": str(cache[d].date), **day, "moves": int((moves["action"] != "raise_order").sum()),
                     "raised_orders": int((moves["action"] == "raise_order").sum()),
                     "rescue_moves": int(len(rescues)), "rescue_units": float(rescues["quantity"].sum())})
        print(f"{cache[d].date}: {sum(s['detected'] for s in shocks)}/{len(shocks)} shocks sensed, "
              f"{day['false_alarms']} false alarms of {day['series']} series, {days[-1]['moves']} moves", flush=True)
    return {"world": world, "shocks": pd.DataFrame(results), "days": days, "seconds": seconds,
            "regions": setup.regions is not None, "setup": setup}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 shocked days and 30,000 series timed")
    ap.add_argument("--preset", default="small", help="generator preset of the world")
    ap.add_argument("--volume", type=float, default=5.0, help="the world's units per day multiplier")
    ap.add_argument("--seed", type=int, help="the world's seed (default: the preset's)")
    ap.add_argument("--days", type=int, default=14, help="shocked days (the last days of history)")
    ap.add_argument("--per-day", type=int, default=3, help="shocks per day")
    ap.add_argument("--min-daily-units", type=float, default=30.0, help="a shocked cell's usual units a day, at least")
    ap.add_argument("--donor-service", type=float,
                    help="chance a donor still covers its own need after giving (default: the policy's donor_service)")
    ap.add_argument("--transfer-hours", type=int, help="hours from proposal to a store transfer's arrival "
                    "(default: the policy's intraday.transfer_hours)")
    ap.add_argument("--expedite-hours", type=int, help="hours from proposal to an expedited DC delivery's arrival "
                    "(default: the policy's intraday.expedite_hours)")
    ap.add_argument("--no-ship-from-store", action="store_true",
                    help="stores give the web shop stock by a transfer to its centre, not by shipping its orders "
                         "(default: the policy's intraday.ship_from_store_hours)")
    ap.add_argument("--false-alarm-budget", type=float,
                    help="the test's false alarms per 1,000 series-day (default: the policy's)")
    ap.add_argument("--sigma-from", choices=("sigma_cum", "q95"), default="sigma_cum",
                    help="the one-day error: sigma_cum at step 1, or (q95 - q50) / 1.645")
    ap.add_argument("--online-sold", action="store_true",
                    help="sense the web shop on the lines not cancelled (default: every line ordered, as the stage)")
    ap.add_argument("--speed-series", type=int, default=100_000, help="series of the sensing speed test")
    ap.add_argument("--no-rescue", action="store_true",
                    help="send stock to surges only, not to shelves running dry without one "
                         "(default: the policy's intraday.rescue_min_units)")
    ap.add_argument("--no-dag", action="store_true",
                    help="skip timing one retail_intraday run with `airflow dags test` (needs PostgreSQL)")
    ap.add_argument("--work", type=Path, help="folder of the timed run's world and Airflow home (default: a temp one)")
    args = ap.parse_args(argv)
    if args.quick:
        args.days, args.speed_series, args.no_dag = min(args.days, 3), min(args.speed_series, 30_000), True
    started = time.perf_counter()
    out = run(args)
    shocks = out["shocks"]
    fig, table, breakdown = summarise(shocks, out["days"])
    speed = sensing_speed(args.speed_series)
    print("\n" + shocks.drop(columns=["date"]).to_string(index=False))
    print("\n" + format_table(table, ["approach", "recall", "median_hours", "false_alarms_per_1000_series_day",
                                      "lost_sales"]))
    print("\n" + format_table(breakdown, ["by", "group", "shocks", "detected", "recall", "recall_if_forecast_exact",
                                          "median_hours",
                                          "lost_nightly", "lost_web_fallback", "lost_intraday",
                                          "lost_intraday_web_fallback"]))
    print("\n" + format_table([speed], list(speed)))
    dag = None
    if not args.no_dag:
        import tempfile

        dag = dag_seconds("small", args.volume, args.work or Path(tempfile.mkdtemp(prefix="shelfwise-intraday-")))
        print("\n" + format_table([{k: v for k, v in dag.items() if k != "log"}], [k for k in dag if k != "log"]))
    run_small = dag["seconds"] if dag else None
    world = out["world"]
    emit_json({
        "benchmark": "intraday", "cores": cpu_count(), **fig,
        "sensing_seconds_100k": speed.get("sense_day_regions_seconds", speed["sense_day_seconds"])
        if speed["series"] >= 100_000 else None, "sensing_speed": speed, "run_seconds_small": run_small, "dag_run": dag,
        "series": out["days"][0]["series"] if out["days"] else 0, "series_days": sum(d["series"] for d in out["days"]),
        "shocks": len(shocks), "shocked_days": len(out["days"]), "regions_pooled": out["regions"],
        "world": {"preset": args.preset, "seed": world.config.seed, "volume": args.volume, "days": args.days,
                  "per_day": args.per_day, "min_daily_units": args.min_daily_units,
                  "locations": len(world.locations), "skus": len(world.items)},
        "settings": {"transfer_hours": out["setup"].costs.transfer_hours,
                     "expedite_hours": out["setup"].costs.expedite_hours,
                     "ship_from_store_hours": out["setup"].costs.ship_hours,
                     "ship_from_store_cost_per_unit": out["setup"].costs.ship_cost_per_unit,
                     "donor_service": out["setup"].donor_service, "dc_keep": out["setup"].dc_keep,
                     "rescue": None if out["setup"].rescue is None else dataclasses.asdict(out["setup"].rescue),
                     "hours_read": [min(out["setup"].hours), max(out["setup"].hours)],
                     "sensing": dataclasses.asdict(out["setup"].params), "sigma_from": args.sigma_from,
                     "online_units": "sold" if args.online_sold else "ordered",
                     "history_days": NIGHTLY_DEFAULTS["history_days"], "horizon": NIGHTLY_DEFAULTS["horizon"],
                     "challenger": None, "profile_days": PROFILE_DAYS, "lost_sales_window": "onset to closing, same day"},
        "by_group": breakdown, "days": out["days"], "per_shock": shocks.to_dict("records"),
        "seconds": {**{k: round(v, 1) for k, v in out["seconds"].items()}, "total": round(time.perf_counter() - started, 1)},
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
