"""ERP staging from the command line.

    python -m include.erp migrate      # as the owner: migrate to head, set the login roles' passwords
    python -m include.erp reverse --doc-type replenishment --line-id 42 --actor jane --reason "wrong store"

``migrate`` connects with ``ERP_STAGING_OWNER_URL``, else the Airflow connection ``erp_staging_owner``
(``AIRFLOW_CONN_ERP_STAGING_OWNER``), and sets the passwords of ``SHELFWISE_APP_DB_PASSWORD`` and
``SHELFWISE_READER_DB_PASSWORD`` when they are set. ``reverse`` runs as the application role (connection
``erp_staging``, else ``ERP_STAGING_URL``). Exit codes: 0 done, 1 refused or failed, 2 not configured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from include.erp import db, roles


def _migrate(args: argparse.Namespace) -> int:
    url = os.environ.get(roles.OWNER_URL_ENV) or None
    url = db._checked(url, roles.OWNER_URL_ENV) if url else roles.resolve_owner_url()
    if url is None:
        print(f"no owner connection: set {roles.OWNER_URL_ENV} (or AIRFLOW_CONN_"
              f"{roles.OWNER_CONN_ID.upper()}) to a URL of a superuser or a member of {roles.OWNER_ROLE}",
              file=sys.stderr)
        return 2
    with db.connect(url) as conn:
        applied = db.migrate(conn)
        provisioned = roles.provision_from_environment(conn)
    print(json.dumps({"database": db.redact(url), "migrations_applied": applied,
                      "passwords_set": provisioned}))
    return 0


def _reverse(args: argparse.Namespace) -> int:
    from include.erp.staging import ReversalRefused, reverse_line

    with db.connect() as conn:
        try:
            line = reverse_line(conn, args.doc_type, args.line_id, actor=args.actor, reason=args.reason)
        except (ValueError, ReversalRefused) as exc:
            print(f"reversal refused: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(line))
    return 0


def main(argv: list[str] | None = None) -> int:
    from include.erp.staging import TABLES

    parser = argparse.ArgumentParser(prog="python -m include.erp", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="migrate the schema to head and set the login roles' passwords (as owner)")
    reverse = sub.add_parser("reverse", help="reverse a released line that was wrong (audited)")
    reverse.add_argument("--doc-type", required=True, choices=list(TABLES))
    reverse.add_argument("--line-id", required=True, type=int)
    reverse.add_argument("--actor", required=True, help="who reverses the line (recorded in the audit log)")
    reverse.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    args = parser.parse_args(argv)
    try:
        return {"migrate": _migrate, "reverse": _reverse}[args.command](args)
    except (db.ErpConnectionError, roles.SchemaNotAtHead) as exc:
        print(str(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
