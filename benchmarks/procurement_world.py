"""Supplier disruptions in the generated world: are they flagged before the stock-outs, and does planning
with the detector's lead time lose fewer sales?

Each world (preset ``small`` by default, one per seed) gets ``DisruptionConfig`` episodes: a supplier's
lines ordered from the onset arrive later and later (the ground truth is ``World.disruptions``, which no
extract carries). Then, day by day over the history, as the nightly would see it:

- the extracts known that day: the PO lines as the supplier portal lists them (every line ordered so far,
  with its status that day) and the receipts dated up to that day;
- ``include.procurement.disruption.flag_disruptions`` (open lines past their promise + the lead-time
  model's change test on receipts), and as baselines the receipts-only change tests: that change test alone
  (``receipts_change_test``) and ``models.anomaly.supplier.detect_lead_time_drift`` (recent vs earlier lead
  times, Mann-Whitney);
- the ceiling of any detector reading these extracts, ``earliest_evidence``: flagged from the end of the
  first day one of the supplier's delayed lines is past its promise (nothing in them differs before);
- a stock-out is caused by a disruption when a DC or the FC ends a day with none of one of the supplier's
  SKUs while a delayed line for that location and SKU would have arrived without the disruption but has not
  yet. ``disruptions_flagged_early_rate``: share of disruptions whose first caused stock-out came at least
  14 days after the supplier's first flag on or after the onset; ``stockouts_flagged_early_rate``: the same
  over every caused stock-out (each location and SKU's first). Supplier-days before their supplier's onset
  (or drift) are clean: a flag on one is a false flag.

``lost_sales_reduction``: the disrupted suppliers' SKUs at the DCs (demand: their region's stores' customer
demand) and the FC (its customers' demand) are replayed weekly under the production policy: the production
forecaster at every review (``include.simulation.forecasts.rolling_forecasts``) and the replenishment core's
order-up-to level for a 98% fill rate (``policy_levels`` -> ``order_levels``), with (a) the current lead-time
input, each supplier's mean and spread over the last 365 days of receipts
(``models.anomaly.supplier.supplier_lead_time_stats``), or (b) ``planning_lead_times`` of the detector. Both
arms see the same demand, and every order arrives after the lead time the world's own line of that location
and SKU (else the supplier's lines of that day) actually took, disruption included. The stock loop is the
replay's own, ``include.simulation.replay.simulate`` with its per-period lead times; levels and forecasts are
the production functions'. Calibration is off in both arms (the
levels are sized one review at a time, as the lead times change per review).

    PYTHONPATH=. .venv/bin/python benchmarks/procurement_world.py                 # 3 worlds (~4 min, 2 cores)
    PYTHONPATH=. .venv/bin/python benchmarks/procurement_world.py --seeds 7 --no-replay
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
import pandas as pd

try:
    from benchmarks._common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import cpu_count, emit_json, ensure_project_on_path, format_table, peak_rss_mb

ensure_project_on_path()

from include.procurement.disruption import (  # noqa: E402
    DisruptionParams,
    flag_disruptions,
    known_lines,
    planning_lead_times,
)
from include.sample_data.generator import (  # noqa: E402
    _NEVER,
    DRIFT_DAYS,
    PRESETS,
    DisruptionConfig,
    World,
    _purchase_orders_as_of,
    generate_world,
)
from include.simulation import metrics  # noqa: E402
from include.simulation.baselines import Levels  # noqa: E402
from include.simulation.forecasts import policy_levels, rolling_forecasts  # noqa: E402
from include.simulation.panel import DemandPanel  # noqa: E402
from include.simulation.replay import simulate  # noqa: E402
from models.anomaly.supplier import detect_lead_time_drift, supplier_lead_time_stats  # noqa: E402

DEFAULT_SEEDS = (7, 8, 9)
#: Three disrupted suppliers per world of eight: nine episodes over the default seeds.
DEFAULT_DISRUPTIONS = DisruptionConfig(n_suppliers=3)
#: The issue's targets: flagged at least this many days before the stock-out, in this share of cases.
EARLY_DAYS, EARLY_TARGET = 14, 0.8
#: Days of history before the first flag is read (the detectors need a baseline).
FIRST_DAY = 60
DETECTORS = ("overdue_and_receipts", "receipts_change_test", "lead_time_drift_mannwhitney", "earliest_evidence")
#: The replay: weekly reviews, the nightly's default fill rate, from 8 weeks before the first onset.
REVIEW, FILL_RATE, REPLAY_LEAD_IN, FORECAST_HORIZON = 7, 0.98, 56, 42


# --------------------------------------------------------------------------------------------- flags


def _first_receipts(lines: pd.DataFrame) -> pd.DataFrame:
    """Received lines as ``models.anomaly.supplier`` reads them."""
    got = lines[lines["first_received"].notna()]
    return pd.DataFrame({"supplier_id": got["supplier_id"].to_numpy(object), "order_date": got["order_date"],
                         "received_date": got["first_received"],
                         "promised_lead_time_days": (got["promised_date"] - got["order_date"]).dt.days})


def walk_flags(world: World, params: DisruptionParams | None = None, first_day: int = FIRST_DAY) -> pd.DataFrame:
    """Every detector's flags for every supplier on every history day from ``first_day``.

    Returns:
        ``day`` (history day index), ``supplier_id`` and one boolean column per :data:`DETECTORS`.
    """
    params = params or DisruptionParams()
    sim, suppliers = world._sim, list(world.suppliers["supplier_id"])
    rows = []
    for d in range(first_day, len(sim.days)):
        as_of = pd.Timestamp(sim.days[d])
        po = _purchase_orders_as_of(sim, d, keep_closed_since=0)
        receipts = world.receipts[world.receipts["received_date"] <= as_of]
        ours = flag_disruptions(po, receipts, as_of, params, suppliers=suppliers)
        mw = detect_lead_time_drift(_first_receipts(known_lines(po, receipts, as_of)), as_of=as_of)
        rows.append(pd.DataFrame({"day": d, "supplier_id": suppliers,
                                  "overdue_and_receipts": ours["flagged"].to_numpy(bool),
                                  "receipts_change_test": ours["receipt_drift"].to_numpy(bool),
                                  "lead_time_drift_mannwhitney": np.isin(suppliers, mw["supplier_id"])}))
    flags = pd.concat(rows, ignore_index=True)
    flags["earliest_evidence"] = earliest_evidence(world, flags)
    return flags


# --------------------------------------------------------------------------------------------- cases


def _buy_rows(world: World) -> np.ndarray:
    kinds = world.locations.set_index("location_id")["location_type"]
    return np.nonzero(kinds.reindex(world._sim.location_ids).to_numpy() != "store")[0]


def caused_stockouts(world: World) -> pd.DataFrame:
    """The first stock-out each disruption causes at each location and SKU (history day indices).

    A DC or the FC running out of one of the disrupted supplier's SKUs is caused by the disruption when it
    happens while one of the supplier's delayed lines for that location and SKU is overdue by the
    disruption: on or after the day the line would have arrived without it, before it actually arrived.

    Returns:
        ``supplier_id, onset_day, location_id, sku, stockout_day``, one row per location and SKU that ran
        out (none for a disruption that caused no stock-out).
    """
    sim, lines, first = world._sim, world._sim.po_lines, world._sim.hist_first
    buy = _buy_rows(world)
    rows = []
    for _, truth in world.disruptions.iterrows():
        s = list(sim.supplier_ids).index(truth["supplier_id"])
        onset = int((np.datetime64(truth["onset_date"], "D") - sim.calendar[0]).astype(np.int64))
        sel = np.nonzero((lines["supplier"] == s) & (lines["disruption_days"] > 0) & (lines["first_day"] < _NEVER)
                         & np.isin(lines["dest"], buy))[0]
        for i in sel:
            # arrival = order day + max(promised + delay, 1): without the disruption, its days come off.
            ordered, actual = int(lines["order_day"][i]), int(lines["first_day"][i])
            would = ordered + max(actual - ordered - int(lines["disruption_days"][i]), 1)
            lo, hi = max(would - first, 0), min(actual, len(sim.calendar)) - first
            out = np.nonzero(sim.on_hand[lo:max(hi, lo), lines["dest"][i], lines["sku"][i]] == 0)[0]
            if len(out):
                rows.append({"supplier_id": truth["supplier_id"], "onset_day": onset - first,
                             "location_id": sim.location_ids[lines["dest"][i]], "sku": sim.skus[lines["sku"][i]],
                             "stockout_day": lo + int(out[0])})
    frame = pd.DataFrame(rows, columns=["supplier_id", "onset_day", "location_id", "sku", "stockout_day"])
    return frame.groupby(["supplier_id", "onset_day", "location_id", "sku"], as_index=False)["stockout_day"].min()


def score_flags(flags: pd.DataFrame, stockouts: pd.DataFrame, early_days: int = EARLY_DAYS) -> pd.DataFrame:
    """Per caused stock-out and detector: the supplier's first flag on or after the onset and the days it
    came before the stock-out (``early``: at least ``early_days``; never flagged before it: not early)."""
    first = {}
    for det in DETECTORS:
        on = flags[flags[det]]
        for supplier, onset in stockouts[["supplier_id", "onset_day"]].drop_duplicates().itertuples(index=False):
            days = on.loc[(on["supplier_id"] == supplier) & (on["day"] >= onset), "day"]
            first[det, supplier] = int(days.min()) if len(days) else -1
    out = []
    for det in DETECTORS:
        flag_day = stockouts["supplier_id"].map(lambda s, d=det: first[d, s]).to_numpy()
        ahead = np.where(flag_day >= 0, stockouts["stockout_day"].to_numpy() - flag_day, np.nan)
        out.append(stockouts.assign(detector=det, flag_day=flag_day, days_ahead=ahead,
                                    early=np.nan_to_num(ahead, nan=-np.inf) >= early_days))
    return pd.concat(out, ignore_index=True)


def earliest_evidence(world: World, flags: pd.DataFrame) -> np.ndarray:
    """The ceiling of any detector reading POs and receipts: a disrupted supplier "flagged" from the end of
    the first day one of its delayed lines is past its promise (nothing in the extracts differs before)."""
    sim, lines = world._sim, world._sim.po_lines
    hit = lines["disruption_days"] > 0
    first = {sim.supplier_ids[s]: int(lines["promised_day"][hit & (lines["supplier"] == s)].min()) - sim.hist_first
             for s in np.unique(lines["supplier"][hit])}
    return (flags["day"].to_numpy() >= flags["supplier_id"].map(first).fillna(_NEVER).to_numpy())


def clean_days(world: World, flags: pd.DataFrame) -> pd.Series:
    """True for supplier-days before any onset or drift of their supplier (where a flag is a false flag)."""
    onset = world.disruptions.set_index("supplier_id")["onset_date"]
    days = pd.Series(world._sim.days.astype("datetime64[ns]"))
    onset_day = onset.map(lambda d: int(np.searchsorted(days.to_numpy(), np.datetime64(d, "ns"))))
    limit = flags["supplier_id"].map(onset_day).fillna(_NEVER).to_numpy()
    drift_day = len(world._sim.days) - min(DRIFT_DAYS, world.config.history_days // 2)
    limit = np.where(flags["supplier_id"] == world.suppliers["supplier_id"].iloc[0], drift_day, limit)
    return pd.Series(flags["day"].to_numpy() < limit, index=flags.index)


# --------------------------------------------------------------------------------------------- replay


def _replay_series(world: World, suppliers: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The disrupted suppliers' SKUs at every buying location, and their ``[n, T]`` customer demand (a DC's
    is its region's stores')."""
    sim, locs = world._sim, world.locations
    buy = _buy_rows(world)
    items = world.items[world.items["supplier_id"].isin(suppliers)]
    k = pd.Index(sim.skus).get_indexer(items["sku"])
    parent = locs.set_index("location_id")["parent_dc"].reindex(sim.location_ids).to_numpy(object)
    served_by = np.zeros((len(buy), len(sim.location_ids)))
    for i, row in enumerate(buy):
        stores = parent == sim.location_ids[row]
        served_by[i] = stores if stores.any() else np.arange(len(sim.location_ids)) == row
    demand = np.einsum("bl,tlk->btk", served_by, sim.demand[:, :, k].astype(float))  # [buy, T, skus]
    b, j = np.meshgrid(np.arange(len(buy)), np.arange(len(k)), indexing="ij")
    series = pd.DataFrame({"row": buy[b.ravel()], "sku": k[j.ravel()],
                           "supplier": pd.Index(sim.supplier_ids).get_indexer(items["supplier_id"].to_numpy()[j.ravel()])})
    series["unique_id"] = sim.location_ids[series["row"]] + "|" + sim.skus[series["sku"]]
    return series, demand[b.ravel(), :, j.ravel()]


def _realized_leads(world: World, series: pd.DataFrame, reviews: np.ndarray) -> np.ndarray:
    """``[n, reviews]`` lead time of an order placed at each review: what the world's line of the same
    location and SKU ordered on the supplier's latest ordering day took, else the median of that day's
    lines of the supplier (so the disruption's delays are the world's own)."""
    sim, lines = world._sim, world._sim.po_lines
    ok = lines["first_day"] < _NEVER
    frame = pd.DataFrame({"supplier": lines["supplier"][ok], "row": lines["dest"][ok], "sku": lines["sku"][ok],
                          "day": lines["order_day"][ok], "lead": lines["first_day"][ok] - lines["order_day"][ok]})
    exact = frame.groupby(["row", "sku", "day"])["lead"].median().to_dict()
    daily = frame.groupby(["supplier", "day"])["lead"].median()
    out = np.zeros((len(series), len(reviews)))
    for s, per_day in daily.groupby(level="supplier"):
        days = per_day.index.get_level_values("day").to_numpy()
        rows = np.nonzero(series["supplier"].to_numpy() == s)[0]
        for r, t in enumerate(reviews + sim.hist_first):
            j = days[max(int(np.searchsorted(days, t, side="right")) - 1, 0)]
            for i in rows:
                out[i, r] = exact.get((series["row"].iat[i], series["sku"].iat[i], j), per_day.loc[(s, j)])
    return np.maximum(out, 1.0)


def _lead_inputs(world: World, reviews: np.ndarray, params: DisruptionParams) -> dict[str, list[pd.DataFrame]]:
    """Per review, per supplier ``lead, sd`` of (a) the 365-day receipts mean and (b) the detector."""
    sim = world._sim
    suppliers = list(world.suppliers["supplier_id"])
    promised = world.suppliers.set_index("supplier_id")["promised_lead_time_days"].astype(float)
    received = _first_receipts(known_lines(_purchase_orders_as_of(sim, len(sim.days) - 1, keep_closed_since=0),
                                           world.receipts, pd.Timestamp(sim.days[-1])))
    current, detector = [], []
    for d in reviews:
        as_of = pd.Timestamp(sim.days[d])
        stats = supplier_lead_time_stats(received, as_of).set_index("supplier_id").reindex(suppliers)
        current.append(pd.DataFrame({"lead": stats["mean_lead_time"].fillna(promised),
                                     "sd": stats["std_lead_time"].fillna(0.0)}))
        po = _purchase_orders_as_of(sim, d, keep_closed_since=0)
        plan = planning_lead_times(po, world.receipts[world.receipts["received_date"] <= as_of], as_of, params,
                                   suppliers=suppliers).set_index("supplier_id")
        detector.append(pd.DataFrame({"lead": plan["lead_time_mean"].fillna(promised),
                                      "sd": plan["lead_time_sd"].fillna(0.0)}))
    return {"current_365d_mean": current, "detector": detector}


def _per_period(lead: np.ndarray, reviews: np.ndarray, periods: int) -> np.ndarray:
    """``[n, R]`` lead time of the order placed at each review as ``simulate``'s ``[n, T]`` per-period form
    (each period takes the lead time of the latest review; only the reviews' periods place orders)."""
    latest = np.clip(np.searchsorted(reviews, np.arange(periods), side="right") - 1, 0, len(reviews) - 1)
    return lead[:, latest]


def lead_time_replay(world: World, params: DisruptionParams | None = None, fill_rate: float = FILL_RATE) -> dict:
    """Lost sales of the disrupted suppliers' SKUs under the production policy with each lead-time input.

    Returns:
        ``series, periods, first_review`` and per arm (``current_365d_mean``, ``detector``) the
        :func:`include.simulation.metrics.summarize` metrics over the replay window.
    """
    params = params or DisruptionParams()
    sim = world._sim
    suppliers = list(world.disruptions["supplier_id"])
    series, demand = _replay_series(world, suppliers)
    onsets = np.searchsorted(sim.days, world.disruptions["onset_date"].to_numpy().astype("datetime64[D]"))
    first = max(int(onsets.min()) - REPLAY_LEAD_IN, FIRST_DAY)
    reviews = np.arange(first, demand.shape[1], REVIEW)
    panel = DemandPanel(ids=series["unique_id"].to_numpy(object), dates=pd.DatetimeIndex(sim.days), demand=demand,
                        freq="D")
    started = time.perf_counter()
    fc = rolling_forecasts(panel, reviews, FORECAST_HORIZON)
    inputs = _lead_inputs(world, reviews, params)
    up = np.zeros((len(inputs), *demand.shape))
    for a, per_review in enumerate(inputs.values()):
        for r, lt in enumerate(per_review):
            lead = lt["lead"].to_numpy(float)[series["supplier"].to_numpy()]
            sd = lt["sd"].to_numpy(float)[series["supplier"].to_numpy()]
            up[a] += policy_levels(fc, reviews[r:r + 1], demand.shape, lead=lead, lead_sd=sd, review=REVIEW,
                                   fill_rates=[fill_rate])[0]
    for levels in up:  # the replay starts with the first review's level on hand
        levels[:, first - 1] = levels[:, first]
    out = simulate(demand, [Levels(levels, levels) for levels in up],
                   _per_period(_realized_leads(world, series, reviews), reviews, demand.shape[1]),
                   review=REVIEW, warmup=first, pack=1.0)
    scored = demand[:, first:]
    result = {"series": len(series), "periods": int(scored.shape[1]), "first_review": str(sim.days[first]),
              "seconds": time.perf_counter() - started}
    for a, arm in enumerate(inputs):
        result[arm] = metrics.summarize(scored, out["served"][a], out["on_hand"][a], out["orders"][a], freq="D")
    return result


# --------------------------------------------------------------------------------------------- entry points


def _rate(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def _early_rates(scored: pd.DataFrame) -> tuple[dict, dict]:
    """Per detector: the early share of the disruptions' first stock-outs, and of every caused stock-out."""
    first = scored.sort_values("stockout_day").drop_duplicates(["seed", "supplier_id", "detector"])
    return ({d: _rate(first.loc[first["detector"] == d, "early"]) for d in DETECTORS},
            {d: _rate(scored.loc[scored["detector"] == d, "early"]) for d in DETECTORS})


def disruption_benchmark(preset: str = "small", seeds: tuple[int, ...] = DEFAULT_SEEDS,
                         disruptions: DisruptionConfig = DEFAULT_DISRUPTIONS, params: DisruptionParams | None = None,
                         replay: bool = True) -> dict:
    """Early flagging of injected supplier disruptions and the lost sales of planning with the detector.

    Args:
        preset: World preset (:data:`include.sample_data.generator.PRESETS`).
        seeds: One world per seed, each with ``disruptions``.
        disruptions: The episodes injected into every world.
        params: The detector's thresholds (defaults when None).
        replay: Also run the lost-sales replay.

    Returns:
        ``disruptions_flagged_early_rate``: share of the disruptions whose first caused stock-out came at
        least 14 days after the supplier was first flagged; ``stockouts_flagged_early_rate``: the same share
        over every caused stock-out (each location and SKU's first); ``lost_sales_reduction``: 1 - lost units
        with the detector's lead time / with the 365-day mean (``None`` without the replay), and
        ``inventory_change`` (average units on hand, detector / 365-day mean - 1);
        ``false_flag_rate``: flagged share of clean supplier-days; ``baselines``: those figures for the
        receipts-only detectors and the replay's current arm; ``stockout_table`` (one row per caused
        stock-out and detector), ``replays`` (per world), the data size and the time taken.
    """
    params = params or DisruptionParams()
    started = time.perf_counter()
    scored, false, replays, size, episodes = [], [], [], {"worlds": 0, "po_lines": 0, "receipts": 0, "supplier_days": 0}, 0
    for seed in seeds:
        world = generate_world(dataclasses.replace(PRESETS[preset], seed=seed, disruptions=disruptions))
        flags = walk_flags(world, params)
        scored.append(score_flags(flags, caused_stockouts(world)).assign(seed=seed))
        false.append(flags.loc[clean_days(world, flags), list(DETECTORS)])
        episodes += len(world.disruptions)
        if replay:
            replays.append({"seed": seed, **lead_time_replay(world, params)})
        size = {"worlds": size["worlds"] + 1, "po_lines": size["po_lines"] + len(world.purchase_orders),
                "receipts": size["receipts"] + len(world.receipts), "supplier_days": size["supplier_days"] + len(flags)}
    table = pd.concat(scored, ignore_index=True)
    false = pd.concat(false, ignore_index=True)
    first, every = _early_rates(table)
    false_rate = {d: float(false[d].mean()) for d in DETECTORS}
    lost = {arm: sum(r[arm]["lost_units"] for r in replays) for arm in ("current_365d_mean", "detector")}
    reduction = 1.0 - lost["detector"] / lost["current_365d_mean"] if replays and lost["current_365d_mean"] else None
    stock = {arm: sum(r[arm]["avg_on_hand_units"] for r in replays) for arm in ("current_365d_mean", "detector")}
    inventory = stock["detector"] / stock["current_365d_mean"] - 1.0 if replays and stock["current_365d_mean"] else None
    ours = table[table["detector"] == DETECTORS[0]]
    return {
        "disruptions_flagged_early_rate": first[DETECTORS[0]], "stockouts_flagged_early_rate": every[DETECTORS[0]],
        "lost_sales_reduction": reduction, "false_flag_rate": false_rate[DETECTORS[0]],
        "episodes": episodes, "episodes_with_stockouts": int(ours[["seed", "supplier_id"]].drop_duplicates().shape[0]),
        "stockouts": len(ours), "early_days": EARLY_DAYS,
        "days_ahead_median": {"first_stockout": _median_first(ours), "every_stockout": float(ours["days_ahead"].median())},
        "baselines": {"disruptions_flagged_early_rate": {d: first[d] for d in DETECTORS[1:]},
                      "stockouts_flagged_early_rate": {d: every[d] for d in DETECTORS[1:]},
                      "false_flag_rate": {d: false_rate[d] for d in DETECTORS[1:]},
                      "lost_units_current_365d_mean": lost["current_365d_mean"] if replays else None},
        "lost_units_detector": lost["detector"] if replays else None, "inventory_change": inventory,
        "stockout_table": table, "replays": replays, "size": size, "preset": preset, "seeds": list(seeds),
        "seconds": time.perf_counter() - started,
    }


def _median_first(ours: pd.DataFrame) -> float | None:
    first = ours.sort_values("stockout_day").drop_duplicates(["seed", "supplier_id"])
    return float(first["days_ahead"].median()) if len(first) else None


def episode_rows(table: pd.DataFrame) -> list[dict]:
    """One row per disruption with caused stock-outs: its first, each detector's first flag, and the
    detector's lead on the first stock-out and early share over all of them."""
    rows = []
    for (seed, supplier, onset), g in table.groupby(["seed", "supplier_id", "onset_day"], sort=True):
        ours = g[g["detector"] == DETECTORS[0]]
        first = ours.sort_values("stockout_day").iloc[0]
        rows.append({"seed": seed, "supplier_id": supplier, "onset_day": onset, "stockouts": len(ours),
                     "first_stockout_day": int(first["stockout_day"]),
                     **{f"{d}_flag_day": int(g.loc[g["detector"] == d, "flag_day"].iloc[0]) for d in DETECTORS},
                     "ahead_of_first": first["days_ahead"], "early_share": float(ours["early"].mean())})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    ap.add_argument("--disrupted", type=int, default=DEFAULT_DISRUPTIONS.n_suppliers,
                    help="disrupted suppliers per world")
    ap.add_argument("--extra-days", type=int, default=DEFAULT_DISRUPTIONS.extra_days, help="full delay, days")
    ap.add_argument("--ramp-days", type=int, default=DEFAULT_DISRUPTIONS.ramp_days,
                    help="days over which the delay builds up (1: sudden)")
    ap.add_argument("--no-replay", action="store_true", help="skip the lost-sales replay")
    args = ap.parse_args(argv)
    shape = dataclasses.replace(DEFAULT_DISRUPTIONS, n_suppliers=args.disrupted, extra_days=args.extra_days,
                                ramp_days=args.ramp_days)
    res = disruption_benchmark(args.preset, tuple(args.seeds), shape, replay=not args.no_replay)
    print(format_table(episode_rows(res["stockout_table"]),
                       ["seed", "supplier_id", "onset_day", "stockouts", "first_stockout_day",
                        *(f"{d}_flag_day" for d in DETECTORS), "ahead_of_first", "early_share"]))
    print()
    base = res["baselines"]
    print(format_table([{"detector": d,
                         "first_stockout_early": res["disruptions_flagged_early_rate"] if i == 0
                         else base["disruptions_flagged_early_rate"][d],
                         "every_stockout_early": res["stockouts_flagged_early_rate"] if i == 0
                         else base["stockouts_flagged_early_rate"][d],
                         "false_flag_rate": res["false_flag_rate"] if i == 0 else base["false_flag_rate"][d]}
                        for i, d in enumerate(DETECTORS)],
                       ["detector", "first_stockout_early", "every_stockout_early", "false_flag_rate"]))
    if res["replays"]:
        print()
        rows = [{"seed": r["seed"], "arm": arm, "series": r["series"], "periods": r["periods"], **r[arm]}
                for r in res["replays"] for arm in ("current_365d_mean", "detector")]
        print(format_table(rows, ["seed", "arm", "series", "periods", "fill_rate", "lost_units", "stockout_rate",
                                  "avg_on_hand_units", "orders"]))
    emit_json({
        "benchmark": "procurement_world_disruptions", "cores": cpu_count(), "preset": res["preset"],
        "disruption": {"extra_days": shape.extra_days, "ramp_days": shape.ramp_days,
                       "duration_days": shape.duration_days, "per_world": shape.n_suppliers},
        "seeds": res["seeds"], "data": res["size"], "episodes": res["episodes"],
        "episodes_with_stockouts": res["episodes_with_stockouts"], "stockouts": res["stockouts"],
        "disruptions_flagged_early_rate": res["disruptions_flagged_early_rate"],
        "stockouts_flagged_early_rate": res["stockouts_flagged_early_rate"],
        "days_ahead_median": res["days_ahead_median"],
        "lost_sales_reduction": res["lost_sales_reduction"], "false_flag_rate": res["false_flag_rate"],
        "lost_units_detector": res["lost_units_detector"], "inventory_change": res["inventory_change"],
        "baselines": res["baselines"],
        "targets": {"flagged_early_rate": EARLY_TARGET, "early_days": EARLY_DAYS, "lost_sales_reduction": "> 0"},
        "seconds": round(res["seconds"], 1), "peak_rss_mb": round(peak_rss_mb(), 1),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
