"""The stage adapters of ``retail_intraday``: one per task, each reads, calls one owner, writes, records.

A run reads one trading hour (``hour``, the hour whose data just closed) of the run's date. Sensing reads
the whole day through that hour, so each run sees every surge of the day so far and re-proposes its
moves with the latest numbers: the lines keep their business keys (route and SKU), so a later hour
updates a line rather than adding one, and a run that finishes after a newer hour's changes nothing
(:func:`include.erp.staging.stage_batch` ``as_of``). The night's forecast is the latest ``forecasts/demand``
partition before the date (the nightly's forecast Asset); the intraday profile is learned once a day from
the hourly history of the previous weeks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from include.config import as_date
from include.intraday.moves import FC_TYPE
from include.runs import Run
from include.stages.summaries import record
from include.storage import newest_partition, partition_exists, read_partition, write_partition

#: Intraday sources, each ingested hour by hour.
SOURCES = ("pos_intraday", "ecommerce_intraday", "wms_intraday")
#: How many days back the night's forecast may be (a missed night still leaves yesterday's).
FORECAST_MAX_AGE_DAYS = 3
#: Days of hourly history the intraday profile learns from.
PROFILE_DAYS = 28
#: Store trading hours when there is no hourly history to learn from.
STORE_OPEN, STORE_CLOSE = 8, 22


def ingest(run: Run, source: str, hour: int, *, conn_factory=None, root: str | None = None) -> dict[str, Any]:
    """Ingest and validate one intraday source's extract of ``hour``, and of every earlier hour of the day
    that landed but was never ingested (the night hours of the web shop before the first run, a missed
    run); raise once all are recorded if one blocked."""
    from include.contracts.validate import ContractViolation
    from include.ingest.intraday import ingest_hour
    from include.ingest.outcome import source_summary

    results, blocked = [], None
    hours = hours_to_ingest(source, run.ds, hour, root)
    for h in hours:
        try:
            results += ingest_hour(source, run.ds, h, root=root)
        except ContractViolation as exc:
            results += exc.all_results
            blocked = blocked or exc
    if conn_factory is not None:
        from include.erp.staging import record_contract_runs

        with conn_factory() as conn:
            record_contract_runs(conn, [r.as_record() for r in results], dag_id=run.dag_id, run_id=run.run_id)
    summary = record(run, {**source_summary(source, results), "hour": hour,
                           "hours_ingested": hours}, root)
    if blocked is not None:
        raise blocked
    return summary


def hours_to_ingest(source: str, ds: str, hour: int, root: str | None = None) -> list[int]:
    """``hour``, and the earlier hours of ``ds`` whose file landed but has no curated partition yet."""
    from include.config import data_root
    from include.contracts.contract import load_contracts
    from include.ingest.intraday import hour_landing_file
    from include.ingest.parse import file_exists
    from include.storage import partition_hours

    done = set(partition_hours("curated", source, ds, root))
    contract = next(c for c in load_contracts().values() if c.source == source)
    late = [h for h in range(hour) if h not in done
            and file_exists(hour_landing_file(root or data_root(), contract, str(ds)[:10], h))]
    return [*late, hour]


def sense(run: Run, hour: int, *, conn_factory=None, root: str | None = None) -> dict[str, Any]:
    """Read every series' sales through ``hour`` against the night's forecast; write what was sensed.

    With ``conn_factory`` (a live run), the web orders stores shipped under the day's decided
    ``ship_from_store`` lines are read as the web shop's demand
    (:func:`include.intraday.moves.shipped_for_the_web_shop`).
    """
    from include.governance.policy import load_policy
    from include.intraday.day import DayParams, sense_day

    day = as_date(run.ds)
    locations = _master("locations", day, root)
    origin, forecast = night_forecast(day, locations, root)
    params = DayParams.from_policy(load_policy().intraday)
    sales, on_hand, missing, stock_hour = _day_so_far(run.ds, hour, locations, root,
                                                      staged=_staged(run, conn_factory))
    stores = locations[locations["location_type"] == "store"][["location_id", "region"]]
    profile = _profile(day, locations, root, shipped=lambda first, last: _ship_lines(run, conn_factory, first, last))
    sensed = sense_day(forecast, sales, on_hand, profile, weekday=day.weekday(), hour=hour, params=params,
                       regions=stores, seed=day.toordinal())
    thresholds = {level: round(float(t), 3) for level, t in sensed.attrs["thresholds"].items()}
    sensed = pd.concat([sensed, _dc_rows(on_hand, locations)], ignore_index=True).assign(as_of_hour=hour,
                                                                                         stock_hour=stock_hour)
    write_partition(sensed, "reports", "intraday_sensing", run.ds, root)
    alarms = sensed[sensed["alarm"].fillna(False).astype(bool)]
    return record(run, {
        "hour": hour, "forecast_origin": origin.isoformat(), "series": int((sensed["channel"] != "dc").sum()),
        "alarms": int(len(alarms)), "alarms_by_level": alarms["level"].value_counts().to_dict(),
        "skus_surging": int(alarms["sku"].nunique()), "hours_missing": missing,
        "thresholds": thresholds, "channels": _channel_reading(sensed),
    }, root)


def _channel_reading(sensed: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per channel, what the day itself showed: its level against the forecast, its extra spread, its clumping."""
    rows = sensed[sensed["channel"] != "dc"]
    first = rows.groupby("channel")[["day_level", "day_spread", "clumping"]].first()
    return {str(c): {k: round(float(v), 3) for k, v in r.items()} for c, r in first.iterrows()}


def propose(run: Run, hour: int, *, conn_factory=None, root: str | None = None) -> dict[str, Any]:
    """Urgent transfers, expedites and raised orders for the surges that will run short, and moves to the
    shelves running dry today where the policy's ``intraday.rescue_min_units`` says so; tiered. Only the
    channels trading at ``hour`` take part (:func:`include.config.channels_closed`): after the stores close,
    the web shop is supplied from the DCs.

    With ``conn_factory`` (a live run), the day's lines already decided count: what they move and have not
    delivered by the stock's snapshot is no longer short or spare, and a route decided earlier is topped up
    under its next key (:func:`include.intraday.moves.topup_keys`), never changed.
    """
    from include.config import channels_closed
    from include.governance.policy import load_policy, tier_proposals
    from include.intraday.day import receivers_and_donors
    from include.intraday.moves import MoveCosts, committed_moves, propose_urgent_moves, topup_keys

    day = as_date(run.ds)
    policy = load_policy()
    sensed = read_partition("reports", "intraday_sensing", run.ds, root)
    sensed = sensed.assign(alarm=sensed["alarm"].fillna(False).astype(bool))
    staged = _staged(run, conn_factory)
    stock_hour = sensed["stock_hour"].dropna() if "stock_hour" in sensed.columns else pd.Series(dtype=float)
    committed = committed_moves(staged, float(stock_hour.max()) if len(stock_hour) else float(hour))
    closed = channels_closed(hour)
    receivers, donors = receivers_and_donors(sensed, service=policy.intraday.donor_service,
                                             dc_keep=policy.intraday.dc_keep, committed=committed,
                                             rescue=policy.intraday.rescue(), closed=closed)
    costs = MoveCosts.from_policy(policy.costs, policy.intraday)
    lines = topup_keys(propose_urgent_moves(receivers, donors, _master("items", day, root),
                                            _shipping_locations(day, root), day, costs), staged)
    as_of = stamp(run.ds, hour)
    lines["explanation"] = [{**e, "as_of": as_of, "workflow": "intraday"} for e in lines["explanation"]]
    tiered = tier_proposals(lines, policy)
    write_partition(tiered, "curated", "intraday_proposals", run.ds, root)
    return record(run, {
        "hour": hour, "as_of": as_of, "channels_closed": sorted(closed), "receivers": int(len(receivers)),
        "receivers_by_reason": receivers["reason"].value_counts().to_dict() if len(receivers) else {},
        "lines": int(len(tiered)),
        "top_ups": int(tiered["business_key"].str.contains(r"\+\d+$").sum()) if len(tiered) else 0,
        "units_already_moving": float(committed["moving_in"].sum()) if len(committed) else 0.0,
        "by_action": tiered["action"].value_counts().to_dict() if len(tiered) else {},
        "units": float(tiered["quantity"].sum()) if len(tiered) else 0.0,
        "margin_at_stake": round(float(sum(e["margin_at_stake"] for e in tiered["explanation"])), 2),
    }, root)


#: Days order orchestration's node capabilities stay good for saying which stores ship parcels.
CAPABILITIES_MAX_AGE_DAYS = 7


def _shipping_locations(day: dt.date, root: str | None) -> pd.DataFrame:
    """The location master with ``ships_parcels`` from the newest node capabilities ``order_orchestration``
    ingested (a week at most): a store that ships no parcels gives the web shop stock by a transfer, not by
    shipping its orders. Without them every store may ship (the policy's ``ship_from_store_hours`` decides)."""
    locations = _master("locations", day, root)
    nodes = newest_partition("curated", "node_capabilities", day, CAPABILITIES_MAX_AGE_DAYS, root, missing_ok=True)
    if nodes is None or nodes.empty:
        return locations
    ships = nodes.set_index("location_id")["ships_parcels"].astype("boolean")
    return locations.assign(ships_parcels=locations["location_id"].map(ships).fillna(True).astype(bool))


def _staged(run: Run, conn_factory) -> pd.DataFrame:
    """The day's staged lines of this workflow (none without a connection, or in a replay)."""
    if conn_factory is None or run.replay:
        return pd.DataFrame(columns=["business_key", "status", "action", "from_location", "to_location", "sku",
                                     "quantity", "explanation"])
    from include.erp.staging import run_lines

    with conn_factory() as conn:
        return run_lines(conn, run.dag_id, run.ds)


def _ship_lines(run: Run, conn_factory, first: dt.date, last: dt.date) -> pd.DataFrame | None:
    """This workflow's ``ship_from_store`` lines of the days ``first`` to ``last`` (``None`` without a
    connection, or in a replay)."""
    if conn_factory is None or run.replay:
        return None
    from include.erp.staging import lines_between

    with conn_factory() as conn:
        return lines_between(conn, run.dag_id, first, last, ("ship_from_store",))


def stage(run: Run, hour: int, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Stage the hour's urgent lines (a replay records them instead); an older hour never undoes a newer one."""
    tiered = read_partition("curated", "intraday_proposals", run.ds, root)
    if run.replay:
        write_partition(tiered, "reports", "replay_intraday_proposals", run.ds, root)
        return record(run, {"mode": "replay", "ds": run.ds, "hour": hour, "staged_at": None,
                            "recorded": int(len(tiered))}, root)
    from include.erp.staging import stage_batch

    with conn_factory() as conn:
        result = stage_batch(conn, tiered, dag_id=run.dag_id, run_id=run.run_id, ds=run.ds, as_of=stamp(run.ds, hour),
                             fast_lane=True)
    return record(run, {"mode": "live", "ds": run.ds, "hour": hour, "staged_at": dt.datetime.now(dt.UTC).isoformat(),
                        **result.as_summary()}, root)


def release(run: Run, *, conn_factory, root: str | None = None) -> dict[str, Any]:
    """Release every approved urgent line of the date (never in replay)."""
    if run.replay:
        return record(run, {"mode": "replay", "released": {}}, root)
    from include.erp.staging import release_approved

    with conn_factory() as conn:
        return record(run, {"mode": "live", "released": release_approved(conn, run.dag_id, run.ds,
                                                                         run_id=run.run_id)}, root)


def stamp(ds: str, hour: int) -> str:
    """``YYYY-MM-DDTHH``: the hour a batch's data ends at, ordered as text."""
    return f"{str(ds)[:10]}T{hour:02d}"


def night_forecast(day: dt.date, locations: pd.DataFrame, root: str | None = None) -> tuple[dt.date, pd.DataFrame]:
    """The latest night's forecast made before ``day``, as :func:`include.intraday.day.sense_day` reads it.

    A series' channel is ``online`` at the ecommerce fulfilment centre, else ``store`` (location master).

    Raises:
        FileNotFoundError: no nightly forecast in the last :data:`FORECAST_MAX_AGE_DAYS` days.
    """
    from include.demand.history import split_series_id

    for back in range(1, FORECAST_MAX_AGE_DAYS + 1):
        origin = day - dt.timedelta(days=back)
        if not partition_exists("forecasts", "demand", origin, root):
            continue
        f = read_partition("forecasts", "demand", origin, root, columns=["unique_id", "step", "mean", "sigma_cum"])
        # Steps count from the night's date: today is step ``back``. The error of one day is what its step
        # adds to the cumulative error.
        f = f.sort_values(["unique_id", "step"])
        before = f.groupby("unique_id")["sigma_cum"].shift(fill_value=0.0)
        f = f.assign(sigma_cum=np.sqrt(np.maximum(f["sigma_cum"] ** 2 - before**2, 0.0)))
        f = f[f["step"] >= back]
        location, sku = split_series_id(f["unique_id"].astype(str))
        fc = set(locations.loc[locations["location_type"] == FC_TYPE, "location_id"])
        channel = np.where(location.isin(fc), "online", "store")
        return origin, pd.DataFrame({"location_id": location, "sku": sku, "channel": channel,
                                     "step": f["step"] - back + 1, "mean": f["mean"], "sigma": f["sigma_cum"]})
    raise FileNotFoundError(f"no nightly forecast (forecasts/demand) in the {FORECAST_MAX_AGE_DAYS} days before "
                            f"{day}: run retail_nightly first")


def _master(name: str, day: dt.date, root: str | None) -> pd.DataFrame:
    """The latest curated master (``items``, ``locations``) up to the night before ``day``."""
    return newest_partition("curated", name, day, FORECAST_MAX_AGE_DAYS, root)


def hourly_sales(ds: str, hour: int, root: str | None = None) -> pd.DataFrame:
    """Units sold per location, SKU and hour of ``ds`` through ``hour``: store item movement and web orders.

    Online demand is every line ordered, served or not (a cancelled line is demand the FC could not fill);
    ``served`` is what took stock, at ``node`` (the store or the line's fulfilment location); ``source`` is
    ``pos`` or ``web``; ``orders`` is 1 for a web order line (the sensing counts the web shop's orders) and
    missing for item movement, which does not say how many baskets it came in.
    """
    from include.ingest.intraday import read_intraday

    pos = read_intraday("pos_intraday", ds, hour, root)
    web = read_intraday("ecommerce_intraday", ds, hour, root)
    frames = [_empty_sales()]
    if len(pos):
        frames.append(pd.DataFrame({"location_id": pos["store_id"], "sku": pos["sku"], "hour": pos["hour"],
                                    "units": pos["units_sold"], "served": pos["units_sold"], "source": "pos",
                                    "orders": np.nan}))
    if len(web):
        frames.append(pd.DataFrame({"location_id": web["fulfilment_location_id"], "sku": web["sku"],
                                    "hour": pd.to_datetime(web["ordered_at"]).dt.hour, "units": web["quantity"],
                                    "served": np.where(web["status"] == "cancelled", 0, web["quantity"]),
                                    "source": "web", "orders": 1.0}))
    return pd.concat(frames, ignore_index=True).assign(served=lambda f: f["served"].fillna(f["units"]),
                                                       node=lambda f: f["location_id"])


def _day_so_far(ds: str, hour: int, locations: pd.DataFrame, root: str | None, staged: pd.DataFrame
                ) -> tuple[pd.DataFrame, pd.DataFrame, list, int]:
    """Units sold per location, SKU and hour through ``hour``; stock now; trading hours with no store sales;
    the hour of the stock snapshot it starts from (moves after it are not in it). Web orders stores shipped
    under the ``staged`` day's ``ship_from_store`` lines are the web shop's sales, their stock the store's."""
    from include.ingest.intraday import read_intraday
    from include.intraday.moves import shipped_for_the_web_shop

    sales = shipped_for_the_web_shop(hourly_sales(ds, hour, root), staged)
    store_ids = set(locations.loc[locations["location_type"] == "store", "location_id"])
    seen = set(sales.loc[sales["location_id"].isin(store_ids), "hour"].astype(int))
    missing = sorted(set(range(STORE_OPEN, min(hour, STORE_CLOSE - 1) + 1)) - seen)
    snapshot = read_intraday("wms_intraday", ds, hour, root)
    taken = hour
    if len(snapshot):
        taken = int(pd.to_datetime(snapshot["snapshot_at"]).dt.hour.max())
        since = sales[sales["hour"] > taken].groupby(["node", "sku"], as_index=False)["served"].sum().rename(
            columns={"node": "location_id"})
        stock = snapshot[["location_id", "sku", "on_hand"]].merge(since, on=["location_id", "sku"], how="left")
        on_hand = stock.assign(on_hand=(stock["on_hand"] - stock["served"].fillna(0)).clip(lower=0))
    else:
        on_hand = pd.DataFrame(columns=["location_id", "sku", "on_hand"])
    return sales, on_hand[["location_id", "sku", "on_hand"]], missing, taken


def _empty_sales() -> pd.DataFrame:
    return pd.DataFrame({"location_id": pd.Series(dtype=object), "sku": pd.Series(dtype=object),
                         "hour": pd.Series(dtype=int), "units": pd.Series(dtype=float),
                         "served": pd.Series(dtype=float), "source": pd.Series(dtype=object),
                         "orders": pd.Series(dtype=float)})


def _dc_rows(on_hand: pd.DataFrame, locations: pd.DataFrame) -> pd.DataFrame:
    """The DCs' stock as donor rows: no demand of their own here, they keep a buffer of it."""
    dcs = set(locations.loc[locations["location_type"] == "dc", "location_id"])
    rows = on_hand[on_hand["location_id"].isin(dcs)]
    return rows.assign(channel="dc", alarm=False, need_in_window=0.0)


def _profile_rows(sales: pd.DataFrame, ds: str, stores: pd.Series, lines: pd.DataFrame | None) -> pd.DataFrame:
    """One day's hourly sales as the profile learns them: per series (so it also learns how each channel's units
    clump by the hour), with its channel, and the web orders stores shipped under that day's
    ``ship_from_store`` ``lines`` at the web shop."""
    from include.intraday.moves import shipped_for_the_web_shop

    if lines is not None and len(lines):
        sales = shipped_for_the_web_shop(sales, lines[pd.to_datetime(lines["ds"]) == pd.Timestamp(ds)])
    return sales.assign(channel=np.where(sales["location_id"].isin(stores), "store", "online"), ds=ds)


def _profile(day: dt.date, locations: pd.DataFrame, root: str | None, shipped=None):  # noqa: ANN001
    """The intraday profile learned from the hourly history of the :data:`PROFILE_DAYS` days before ``day``.

    Learned by the day's first run and kept in ``reports/intraday_profile``, so later hours read it back.
    ``shipped(first, last)`` gives the ``ship_from_store`` lines of those days: the web orders a store shipped
    under one are the web shop's hours, as the sensing reads them
    (:func:`include.intraday.moves.shipped_for_the_web_shop`).
    """
    from include.intraday.profile import IntradayProfile, learn_profile, trading_shape
    from include.storage import read_json_files, write_json

    kept = read_json_files("reports", "intraday_profile", day, root).get("profile")
    if kept is not None:
        return IntradayProfile.from_dict(kept["profile"])
    lines = None if shipped is None else shipped(day - dt.timedelta(days=PROFILE_DAYS), day - dt.timedelta(days=1))
    stores = locations.loc[locations["location_type"] == "store", "location_id"]
    columns = ["channel", "ds", "location_id", "sku", "hour", "units", "orders"]
    frames = [pd.DataFrame({c: pd.Series(dtype=float if c in ("units", "orders") else int if c == "hour" else object)
                            for c in columns})]
    for back in range(1, PROFILE_DAYS + 1):
        ds = (day - dt.timedelta(days=back)).isoformat()
        frames.append(_profile_rows(hourly_sales(ds, 23, root), ds, stores, lines)[columns])
    profile = learn_profile(pd.concat(frames, ignore_index=True), fallback=trading_shape(STORE_OPEN, STORE_CLOSE))
    write_json({"profile": profile.as_dict(), "days": PROFILE_DAYS}, "reports", "intraday_profile", day, "profile", root)
    return profile
