"""The ERP staging interface tables, one per document type, and the SQL that adds one.

Every document type has a table of the same shape, status machine, immutability and reversal path, and
appears in the ``erp_staging.line_table()`` lookup, the ``all_lines`` view (what the application reads)
and the ``released_lines`` view (what the ERP reads). :data:`TABLES` is the one list of them;
:func:`add_line_table_sql` is what a migration runs to add a document type, so the triggers, grants and
views of a new table cannot drift from those of the tables before it (migrations 0003 and 0005).
"""

from __future__ import annotations

__all__ = ["COMMITTED", "OVERRIDE_COLUMNS", "TABLES", "UNDECIDED", "add_line_table_sql", "views_sql"]

#: Statuses of a line nobody has decided yet: a later run of the same date may still change or withdraw it.
UNDECIDED = ("proposed", "pending_approval", "auto_approved")
#: Statuses of a line decided for and not undone: its stock is committed.
COMMITTED = ("approved", "released")

#: Document type -> its interface table, in the order the views list them.
TABLES: dict[str, str] = {
    "replenishment": "replenishment_order_lines",
    "transfer": "stock_transfer_lines",
    "po_exception": "po_exception_lines",
    "fulfilment_assignment": "fulfilment_assignment_lines",
    "return_disposition": "return_disposition_lines",
    "finance_review": "finance_review_lines",
}
#: The table a new one copies its columns, defaults and CHECK constraints from.
TEMPLATE = "fulfilment_assignment_lines"
#: Columns the application may update (staging, deciding, release); keys, ds and created_at never change.
APP_UPDATABLE = ("run_id, sku, from_location, to_location, supplier_id, po_id, po_line, action, quantity, unit_cost,"
                 " value, need_by, explanation, risk_tier, tier_reasons, status, decided_by, decided_at,"
                 " decision_note, released_at, updated_at")
#: The override columns migrations 0009 and 0010 added to every line table: the quantity and source the
#: workflow proposed, and who approved the line with others and why. The application sets them once, with the
#: approval.
OVERRIDE_COLUMNS = "proposed_quantity, override_reason, overridden_by, proposed_source"
#: Columns of ``released_lines`` after ``doc_type``.
RELEASED_COLUMNS = ("line_id, idempotency_key, reverses_line_id, dag_id, ds, business_key, sku, from_location,"
                    " to_location, supplier_id, po_id, po_line, action, quantity, unit_cost, value, need_by,"
                    " decided_by, decided_at, released_at")
#: The 0003 triggers every line table carries: (name, timing and event, function, per row or statement).
TRIGGERS = (("status_transition", "BEFORE UPDATE", "check_status_transition", "ROW"),
            ("new_line", "BEFORE INSERT", "check_new_line", "ROW"),
            ("keep_decided", "BEFORE DELETE", "refuse_decided_delete", "ROW"),
            ("keep_decided_truncate", "BEFORE TRUNCATE", "refuse_decided_delete", "STATEMENT"))


def _table_sql(table: str) -> str:
    t = f"erp_staging.{table}"
    seq = f"erp_staging.{table}_line_id_seq"
    fk = f"{table}_reverses_line_id_fkey"
    triggers = "\n".join(f"DROP TRIGGER IF EXISTS {name} ON {t};\n"
                         f"CREATE TRIGGER {name} {when} ON {t}\n    FOR EACH {each} EXECUTE FUNCTION erp_staging.{fn}();"
                         for name, when, fn, each in TRIGGERS)
    return f"""-- {table}: the columns, defaults and CHECK constraints of {TEMPLATE}, a line id sequence and a
-- reversal foreign key of its own (LIKE copies neither), the triggers of 0003 and the application's grants.
CREATE SEQUENCE IF NOT EXISTS {seq};
CREATE TABLE IF NOT EXISTS {t} (
    LIKE erp_staging.{TEMPLATE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS,
    PRIMARY KEY (line_id),
    UNIQUE (idempotency_key)
);
ALTER TABLE {t} ALTER COLUMN line_id SET DEFAULT nextval('{seq}');
ALTER SEQUENCE {seq} OWNED BY {t}.line_id;
ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {fk};
ALTER TABLE {t} ADD CONSTRAINT {fk} FOREIGN KEY (reverses_line_id) REFERENCES {t} (line_id);
CREATE INDEX IF NOT EXISTS {table}_run ON {t} (dag_id, ds, status);
CREATE UNIQUE INDEX IF NOT EXISTS {table}_one_reversal ON {t} (reverses_line_id) WHERE reverses_line_id IS NOT NULL;
ALTER TABLE {t} OWNER TO shelfwise_owner;
{triggers}
GRANT SELECT, INSERT ON {t} TO shelfwise_app;
GRANT UPDATE ({APP_UPDATABLE}) ON {t} TO shelfwise_app;
GRANT USAGE ON SEQUENCE {seq} TO shelfwise_app;
-- The override columns exist from 0010 on (a table added before it gets them, and the grant, from 0009 and 0010).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'erp_staging'
               AND table_name = '{table}' AND column_name = 'proposed_source') THEN
        GRANT UPDATE ({OVERRIDE_COLUMNS}) ON {t} TO shelfwise_app;
    END IF;
END $$;
"""


def _views_sql(tables: dict[str, str]) -> str:
    cases = "\n".join(f"        WHEN '{doc}' THEN '{table}'" for doc, table in tables.items())
    every = "\n    UNION ALL ".join(f"SELECT '{doc}'{' AS doc_type' if i == 0 else ''}, * FROM erp_staging.{table}"
                                    for i, (doc, table) in enumerate(tables.items()))
    released = "\n    UNION ALL\n".join(
        f"    SELECT '{doc}'{'::text AS doc_type' if i == 0 else ''}, {RELEASED_COLUMNS}\n"
        f"    FROM erp_staging.{table} WHERE status = 'released'" for i, (doc, table) in enumerate(tables.items()))
    return f"""-- withdraw_lines and reverse_line find a document type's table here; the application reads all_lines,
-- the ERP released_lines.
CREATE OR REPLACE FUNCTION erp_staging.line_table(doc_type text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE doc_type
{cases}
    END
$$;
CREATE OR REPLACE VIEW erp_staging.all_lines AS
    {every};
CREATE OR REPLACE VIEW erp_staging.released_lines WITH (security_barrier) AS
{released};
ALTER VIEW erp_staging.all_lines OWNER TO shelfwise_owner;
ALTER VIEW erp_staging.released_lines OWNER TO shelfwise_owner;
ALTER FUNCTION erp_staging.line_table(text) OWNER TO shelfwise_owner;
GRANT SELECT ON erp_staging.all_lines TO shelfwise_app;
GRANT SELECT ON erp_staging.released_lines TO shelfwise_erp_reader;
"""


def views_sql(through: str) -> str:
    """The re-runnable SQL that redefines the lookup and views over the tables of :data:`TABLES` up to and
    including ``through``'s: what a migration that adds columns to all of them runs (``all_lines`` selects
    ``*``), naming the last document type that existed at its revision."""
    if through not in TABLES:
        raise ValueError(f"{through!r} is not a document type of ERP staging")
    names = list(TABLES)
    return _views_sql({doc: TABLES[doc] for doc in names[:names.index(through) + 1]})


def add_line_table_sql(doc_type: str) -> str:
    """The re-runnable SQL that adds ``doc_type``'s table (its entry in :data:`TABLES`) and redefines the lookup
    and views over every table up to and including it, in one batch for a migration to execute.

    A later migration that adds another document type redefines the views again, over one more table.
    """
    if doc_type not in TABLES:
        raise ValueError(f"{doc_type!r} is not a document type of ERP staging: add it to TABLES first")
    return _table_sql(TABLES[doc_type]) + "\n" + views_sql(doc_type)
