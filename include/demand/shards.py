"""Stable shards of series: the same series lands in the same shard every night, on any worker.

A shard holds whole SKUs (every location and channel of a SKU), by CRC-32 of the SKU, so a shard can be
forecast, scored and decided on its own, transfers between a SKU's locations included.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd


def shard_of(skus: pd.Series, n_shards: int) -> np.ndarray:
    """Shard number of each SKU: CRC-32 of the SKU modulo ``n_shards``.

    Args:
        skus: SKU codes as text.
        n_shards: how many shards there are.

    Returns:
        One int64 shard number per SKU.
    """
    return np.fromiter((zlib.crc32(str(s).encode()) % n_shards for s in skus), dtype=np.int64, count=len(skus))


def n_shards_for(n_series: int, shard_size: int) -> int:
    """Shards for ``n_series`` series of about ``shard_size`` each (at least one)."""
    return max(1, -(-n_series // max(shard_size, 1)))
