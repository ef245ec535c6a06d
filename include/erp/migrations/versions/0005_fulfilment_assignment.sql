-- Fulfilment assignments of order orchestration: a fourth interface table with the shape, status machine,
-- immutability and reversal path of the other three, in the views, the document-type lookup and the
-- application's grants. Re-runnable (IF NOT EXISTS, OR REPLACE, DROP ... IF EXISTS).

CREATE TABLE IF NOT EXISTS erp_staging.fulfilment_assignment_lines (
    line_id          bigserial   PRIMARY KEY,
    idempotency_key  text        NOT NULL UNIQUE,
    dag_id           text        NOT NULL,
    run_id           text        NOT NULL,
    ds               date        NOT NULL,
    business_key     text        NOT NULL,
    sku              text        NOT NULL,
    from_location    text,
    to_location      text,
    supplier_id      text,
    po_id            text,
    po_line          integer,
    action           text        NOT NULL,
    quantity         numeric(14, 2) NOT NULL CHECK (quantity >= 0),
    unit_cost        numeric(14, 4) NOT NULL CHECK (unit_cost >= 0),
    value            numeric(16, 2) NOT NULL CHECK (value >= 0),
    need_by          date,
    explanation      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    risk_tier        text        NOT NULL CHECK (risk_tier IN ('low', 'medium', 'high')),
    tier_reasons     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    status           text        NOT NULL CHECK (status IN ('proposed', 'auto_approved',
                         'pending_approval', 'approved', 'rejected', 'expired', 'released')),
    decided_by       text,
    decided_at       timestamptz,
    decision_note    text,
    released_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    reverses_line_id bigint      REFERENCES erp_staging.fulfilment_assignment_lines (line_id)
);
CREATE INDEX IF NOT EXISTS fulfilment_assignment_lines_run
    ON erp_staging.fulfilment_assignment_lines (dag_id, ds, status);
CREATE UNIQUE INDEX IF NOT EXISTS fulfilment_assignment_lines_one_reversal
    ON erp_staging.fulfilment_assignment_lines (reverses_line_id) WHERE reverses_line_id IS NOT NULL;

-- The triggers of 0003 (status machine and what each move may change, new lines undecided, decided lines
-- kept), on the new table.
DROP TRIGGER IF EXISTS status_transition ON erp_staging.fulfilment_assignment_lines;
CREATE TRIGGER status_transition BEFORE UPDATE ON erp_staging.fulfilment_assignment_lines
    FOR EACH ROW EXECUTE FUNCTION erp_staging.check_status_transition();
DROP TRIGGER IF EXISTS new_line ON erp_staging.fulfilment_assignment_lines;
CREATE TRIGGER new_line BEFORE INSERT ON erp_staging.fulfilment_assignment_lines
    FOR EACH ROW EXECUTE FUNCTION erp_staging.check_new_line();
DROP TRIGGER IF EXISTS keep_decided ON erp_staging.fulfilment_assignment_lines;
CREATE TRIGGER keep_decided BEFORE DELETE ON erp_staging.fulfilment_assignment_lines
    FOR EACH ROW EXECUTE FUNCTION erp_staging.refuse_decided_delete();
DROP TRIGGER IF EXISTS keep_decided_truncate ON erp_staging.fulfilment_assignment_lines;
CREATE TRIGGER keep_decided_truncate BEFORE TRUNCATE ON erp_staging.fulfilment_assignment_lines
    FOR EACH STATEMENT EXECUTE FUNCTION erp_staging.refuse_decided_delete();

-- withdraw_lines and reverse_line find a document type's table here.
CREATE OR REPLACE FUNCTION erp_staging.line_table(doc_type text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE doc_type WHEN 'replenishment' THEN 'replenishment_order_lines'
                         WHEN 'transfer' THEN 'stock_transfer_lines'
                         WHEN 'po_exception' THEN 'po_exception_lines'
                         WHEN 'fulfilment_assignment' THEN 'fulfilment_assignment_lines' END
$$;

CREATE OR REPLACE VIEW erp_staging.all_lines AS
    SELECT 'replenishment' AS doc_type, * FROM erp_staging.replenishment_order_lines
    UNION ALL SELECT 'transfer', * FROM erp_staging.stock_transfer_lines
    UNION ALL SELECT 'po_exception', * FROM erp_staging.po_exception_lines
    UNION ALL SELECT 'fulfilment_assignment', * FROM erp_staging.fulfilment_assignment_lines;

CREATE OR REPLACE VIEW erp_staging.released_lines WITH (security_barrier) AS
    SELECT 'replenishment'::text AS doc_type, line_id, idempotency_key, reverses_line_id, dag_id, ds,
           business_key, sku, from_location, to_location, supplier_id, po_id, po_line, action, quantity,
           unit_cost, value, need_by, decided_by, decided_at, released_at
    FROM erp_staging.replenishment_order_lines WHERE status = 'released'
    UNION ALL
    SELECT 'transfer', line_id, idempotency_key, reverses_line_id, dag_id, ds, business_key, sku, from_location,
           to_location, supplier_id, po_id, po_line, action, quantity, unit_cost, value, need_by, decided_by,
           decided_at, released_at
    FROM erp_staging.stock_transfer_lines WHERE status = 'released'
    UNION ALL
    SELECT 'po_exception', line_id, idempotency_key, reverses_line_id, dag_id, ds, business_key, sku,
           from_location, to_location, supplier_id, po_id, po_line, action, quantity, unit_cost, value, need_by,
           decided_by, decided_at, released_at
    FROM erp_staging.po_exception_lines WHERE status = 'released'
    UNION ALL
    SELECT 'fulfilment_assignment', line_id, idempotency_key, reverses_line_id, dag_id, ds, business_key, sku,
           from_location, to_location, supplier_id, po_id, po_line, action, quantity, unit_cost, value, need_by,
           decided_by, decided_at, released_at
    FROM erp_staging.fulfilment_assignment_lines WHERE status = 'released';

-- The application's write grants of the other line tables (0003), on this one.
GRANT INSERT ON erp_staging.fulfilment_assignment_lines TO shelfwise_app;
GRANT UPDATE (run_id, sku, from_location, to_location, supplier_id, po_id, po_line, action, quantity, unit_cost,
              value, need_by, explanation, risk_tier, tier_reasons, status, decided_by, decided_at, decision_note,
              released_at, updated_at)
    ON erp_staging.fulfilment_assignment_lines TO shelfwise_app;
GRANT SELECT ON erp_staging.released_lines TO shelfwise_erp_reader;
