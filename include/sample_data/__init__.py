"""Shelfwise sample data: a seeded, believable omnichannel retailer and the extracts it lands.

Use :func:`generate_world` with a :class:`WorldConfig` (or one of :data:`PRESETS`) and
:func:`write_landing` to lay its extracts out under a data root, or run ``python -m include.sample_data``.
"""

from include.sample_data.generator import (
    PRESETS,
    World,
    WorldConfig,
    generate_world,
    landing_days,
    write_landing,
)

__all__ = ["PRESETS", "World", "WorldConfig", "generate_world", "landing_days", "write_landing"]
