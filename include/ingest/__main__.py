"""Command line for ingest: re-ingest a date after a fix, load history, or import an analyst's history file.

Examples::

    python -m include.ingest reingest --source pos --ds 2026-11-27
    python -m include.ingest history --start 2026-01-01 --end 2026-11-26
    python -m include.ingest import-file sales.csv --price-column price --root /tmp/shelfwise

``reingest`` runs the contracts of one source for one date again. Corrected rows placed under
``landing/<source>/ds=<date>/corrections/<file name>`` (same columns as the delivered file, only the
fixed rows) replace the delivered rows with the same primary key; the delivered file is never touched.
The curated and quarantine partitions of the date are replaced, and with ``--record`` the results are
appended to ``ops.contract_runs``. The exit code is 0 when nothing is blocked, 3 when something is.

``import-file`` writes a daily history file (``item, location, date, units``; see
:mod:`include.ingest.import_file`) as POS extracts and master rows into the landing zone, so that
``history`` then loads it through the usual contracts. A file it cannot use prints ``error: ...`` and
exits 2.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command.

    Args:
        argv: the arguments; defaults to the process's.

    Returns:
        The process exit code: 0 when nothing is blocked, 3 when something is.
    """
    parser = argparse.ArgumentParser(prog="python -m include.ingest", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    reingest = commands.add_parser("reingest", help="ingest one source for one date again (after a fix)")
    reingest.add_argument("--source", required=True, help="landing source folder: pos, ecommerce, wms, ...")
    reingest.add_argument("--ds", required=True, help="logical date, YYYY-MM-DD")
    reingest.add_argument("--root", default=None, help="data root (default SHELFWISE_DATA_ROOT)")
    reingest.add_argument("--record", action="store_true", help="append the results to ops.contract_runs")
    history = commands.add_parser("history", help="initial load of every landed day in a range")
    history.add_argument("--start", required=True)
    history.add_argument("--end", required=True)
    history.add_argument("--root", default=None)
    _add_import_file(commands)
    args = parser.parse_args(argv)
    if args.command == "import-file":
        return _import_file(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from include.contracts.validate import BLOCKED, ContractViolation
    from include.ingest.pipeline import ingest_source, load_history

    if args.command == "history":
        for contract_id, rows in sorted(load_history(args.start, args.end, root=args.root).items()):
            print(f"{contract_id}: {rows} rows curated")
        return 0
    try:
        results = ingest_source(args.source, args.ds, root=args.root)
    except ContractViolation as exc:
        results = exc.all_results
    if args.record:
        from include.erp import db
        from include.erp.staging import record_contract_runs

        with db.connect() as conn:
            record_contract_runs(conn, [r.as_record() for r in results], dag_id="reingest", run_id=None)
            conn.commit()
    for result in results:
        print(result.summary())
    return 3 if any(r.outcome == BLOCKED for r in results) else 0


def _add_import_file(commands) -> None:
    from include.demand.history_file import COLUMNS_HELP

    imp = commands.add_parser("import-file", help="write a daily history file as landing extracts",
                              description="Write a daily history file as POS extracts and master rows. "
                                          + COLUMNS_HELP, epilog="Weekly files are refused: POS extracts "
                                          "are daily and a week's units cannot be split into days truthfully.")
    imp.add_argument("file", help="history file, CSV or Parquet")
    imp.add_argument("--freq", choices=("D", "W"), default="D", help="the file's periods (W is refused)")
    imp.add_argument("--price-column", default=None, help="column with each row's unit price (gross sales)")
    imp.add_argument("--default-price", type=float, default=1.0, help="list price without --price-column")
    imp.add_argument("--replace", action="store_true", help="overwrite POS extracts already landed")
    imp.add_argument("--root", default=None, help="data root (default SHELFWISE_DATA_ROOT)")


def _import_file(args: argparse.Namespace) -> int:
    from include.config import data_root
    from include.ingest.import_file import import_history_file

    root = args.root or data_root()
    try:
        summary = import_history_file(args.file, root=root, freq=args.freq, price_column=args.price_column,
                                      default_price=args.default_price, replace=args.replace)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary.lines(root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
