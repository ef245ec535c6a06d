"""Replay a demand history under Shelfwise's and classic reorder policies and print the comparison.

    python -m include.simulation --input sales.csv --freq D [--lead-time 7] [--service 0.98]

The input is an analyst history file (:mod:`include.demand.history_file`): ``item, location, date,
units``, the regressor columns named in ``--regressors``, and optionally ``unit_cost`` and
``lead_time`` (lead time in periods of ``--freq``; ``--lead-time`` for series without one). Each
policy's service parameter is swept; the table shows fill rate against average inventory per policy,
then the inventory each needs at ``--service``. The history holds sales, not stock: a run of zero periods
that only an empty shelf explains is a stock-out to Shelfwise's forecaster (``--zeros-are-demand``: none
is). A bad file prints ``error: <what and where>`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from include.decisions.service import ServiceFeedback
from include.demand.history_file import add_history_arguments, history_from_args
from include.governance.policy import load_policy
from include.simulation.replay import ReplayConfig, compare, panel_from_history, replay


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m include.simulation", description=__doc__.splitlines()[0])
    add_history_arguments(ap)
    ap.add_argument("--lead-time", type=int, default=None, help="lead time in periods (default 7 D, 2 W)")
    ap.add_argument("--lead-time-sd", type=float, default=0.0, help="spread of sampled lead times (periods)")
    ap.add_argument("--review", type=int, default=None, help="periods between reviews (default 7 D, 1 W)")
    ap.add_argument("--warmup", type=int, default=None, help="periods before scoring (default 182 D, 52 W)")
    ap.add_argument("--service", type=float, default=0.98, help="fill rate to compare inventory at")
    ap.add_argument("--continuous", action="store_true", help="do not round orders to whole units")
    ap.add_argument("--reforecast-every", type=int, default=1,
                    help="reviews between two runs of the forecaster (default 1: every review; N cuts the "
                         "forecasting time about N-fold, reviews in between read the latest forecast)")
    ap.add_argument("--no-feedback", action="store_true",
                    help="plan every review at the target as it is (default: the policy file's service "
                         "feedback corrects it by the fill achieved so far, as the nightly does)")
    ap.add_argument("--burn-in", type=int, default=0,
                    help="periods after the warm-up simulated under every policy but not scored (default 0)")
    ap.add_argument("--zeros-are-demand", action="store_true",
                    help="take every zero sale as no demand (default: a run of zeros far longer than the "
                         "series' usual share of zero periods allows is a stock-out, and Shelfwise's "
                         "forecaster leaves it out, as the nightly leaves out the days its stock records "
                         "show empty; include.demand.stockouts)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON only")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: the arguments; defaults to the process's.

    Returns:
        The exit code: 0, or 2 when the file or an option cannot be used.
    """
    args = _parser().parse_args(argv)
    daily = args.freq == "D"
    cfg = ReplayConfig(
        lead_time=args.lead_time if args.lead_time is not None else (7 if daily else 2),
        lead_time_sd=args.lead_time_sd,
        review=args.review if args.review is not None else (7 if daily else 1),
        warmup=args.warmup if args.warmup is not None else (182 if daily else 52),
        pack=0.0 if args.continuous else 1.0,
        erpnext_refresh=91 if daily else 13,
        reforecast_every=args.reforecast_every,
        service_feedback=None if args.no_feedback else ServiceFeedback.from_policy(
            load_policy().replenishment.service_feedback),
        burn_in=args.burn_in,
        infer_stockouts=not args.zeros_are_demand,
    )
    try:
        history = history_from_args(args)
        panel = panel_from_history(history, lead_time_default=cfg.lead_time)
        curves = replay(panel, cfg).curves
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = compare(curves, args.service)
    if args.json:
        print(json.dumps({"series": len(panel.ids), "periods": len(panel.dates), "summary": summary,
                          "curves": curves.to_dict("records")}, default=float))
        return 0
    cols = ["policy", "parameter", "fill_rate", "avg_on_hand_units", "inventory_turns", "stockout_periods",
            "lost_units", "orders"]
    print(f"{len(panel.ids)} series x {len(panel.dates)} periods ({args.freq}), lead time {cfg.lead_time}, "
          f"review {cfg.review}, warm-up {cfg.warmup}")
    print(curves[[c for c in cols if c in curves.columns]].round(4).to_string(index=False))
    print(f"\naverage on hand at {args.service:.1%} fill rate:")
    for policy, value in summary["inventory_at_target"].items():
        print(f"  {policy:<22} {'not reached' if value is None else f'{value:,.1f}'}")
    if summary["saving_vs_best_baseline"] is not None:
        print(f"Shelfwise holds {summary['saving_vs_best_baseline']:.1%} less than {summary['best_baseline']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
