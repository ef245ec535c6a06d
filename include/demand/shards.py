"""Stable shards of series: the same series lands in the same shard every night, on any worker."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd


def shard_of(unique_ids: pd.Series, n_shards: int) -> np.ndarray:
    """Shard number of each series: CRC-32 of its id modulo ``n_shards``.

    Args:
        unique_ids: series ids (``location|sku``).
        n_shards: how many shards there are.

    Returns:
        One int64 shard number per id.
    """
    return np.array([zlib.crc32(u.encode()) % n_shards for u in unique_ids], dtype=np.int64)


def plan_shards(n_series: int, shard_size: int) -> list[dict[str, int]]:
    """One entry per shard (``{"shard": i, "n_shards": n}``) for ``n_series`` series.

    Args:
        n_series: series to forecast.
        shard_size: series per shard (at least 1).
    """
    n_shards = max(1, -(-n_series // max(shard_size, 1)))
    return [{"shard": i, "n_shards": n_shards} for i in range(n_shards)]


def shard_rows(frame: pd.DataFrame, shard: int, n_shards: int) -> pd.DataFrame:
    """The rows of ``frame`` whose ``unique_id`` belongs to ``shard``."""
    ids = frame["unique_id"].drop_duplicates()
    mine = set(ids[shard_of(ids, n_shards) == shard])
    return frame[frame["unique_id"].isin(mine)]
