"""Generate a sample retailer and write its landing extracts.

Example::

    python -m include.sample_data --preset small --root /tmp/shelfwise --days 30
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from include.config import as_date, data_root
from include.sample_data.generator import PRESETS, generate_world, landing_days, write_landing


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate the world and write the requested days.

    Args:
        argv: command-line arguments; ``sys.argv[1:]`` when omitted.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m include.sample_data", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--root", default=None, help="data root (path or fsspec URL); default SHELFWISE_DATA_ROOT")
    parser.add_argument("--end-date", type=as_date, default=None, help="last business day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=None, help="write only the last N days (default: all)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.days is not None and args.days < 1:
        parser.error("--days must be at least 1")

    changes = {"end_date": args.end_date, "seed": args.seed}
    config = dataclasses.replace(PRESETS[args.preset], **{k: v for k, v in changes.items() if v is not None})
    root = args.root or data_root()
    started = time.perf_counter()
    world = generate_world(config)
    generated = time.perf_counter()
    days = landing_days(world)
    if args.days is not None:
        days = days[-args.days:]
    paths = write_landing(world, root, days)
    finished = time.perf_counter()
    print(
        f"preset={args.preset} seed={config.seed} locations={len(world.locations)} skus={len(world.items)} "
        f"days={days[0]}..{days[-1]} ({len(days)}) files={len(paths)} root={root} "
        f"generate={generated - started:.1f}s write={finished - generated:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
