"""The night's forecast as ``retail_nightly`` makes it, on a generated world's extracts (shared by benchmarks).

``include.demand.history.build_demand`` over the nightly's window (``history_days`` through ``origin``) from the
world's POS, order lines and stock, then ``include.demand.forecasting.forecast_shard`` (the nightly's horizon,
the published promotions and list prices): the vectorised path, without the prophet challenger.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

try:
    from benchmarks._common import ensure_project_on_path
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from _common import ensure_project_on_path

ensure_project_on_path()

from include.runs import NIGHTLY_DEFAULTS  # noqa: E402

#: The forecaster's channel -> the channel the intraday and returns stages read (``night_forecast``).
CHANNELS = {"store": "store", "ecommerce": "online"}


def night_forecast(world, origin: dt.date, frames: dict | None = None) -> pd.DataFrame:
    """The forecast made the night of ``origin``: the forecaster's columns (``unique_id, step, mean,
    sigma_cum, q50, q95, ...``) with ``location_id, sku`` and ``channel`` (``store`` or ``online``).

    Args:
        world: the generated world.
        origin: the night; its history runs through ``origin``, step 1 is the day after.
        frames: ``pos``, ``orders`` and ``inventory`` extracts (default: the world's own).
    """
    from include.demand.forecasting import forecast_shard
    from include.demand.history import build_demand

    frames = frames or {"pos": world.pos_sales, "orders": world.ecommerce_orders, "inventory": world.inventory_snapshot}
    start = origin - dt.timedelta(days=int(NIGHTLY_DEFAULTS["history_days"]) - 1)
    demand = build_demand(frames["pos"], frames["orders"], frames["inventory"], start, origin, world.promotions,
                          world.items)
    result = forecast_shard(demand, origin, int(NIGHTLY_DEFAULTS["horizon"]), promotions=world.promotions,
                            items=world.items, challenger=None)
    keys = demand[["unique_id", "location_id", "sku", "channel"]].drop_duplicates("unique_id")
    f = result.forecasts.merge(keys, on="unique_id")
    return f.assign(channel=f["channel"].map(CHANNELS))
