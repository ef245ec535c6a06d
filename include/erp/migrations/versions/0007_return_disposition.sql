-- Return dispositions of returns routing: a fifth interface table with the shape, status machine,
-- immutability and reversal path of fulfilment_assignment_lines (0005), in the views, the document-type
-- lookup and the application's grants. Re-runnable (IF NOT EXISTS, OR REPLACE, DROP ... IF EXISTS).

-- The columns, defaults and CHECK constraints come from the fulfilment table, so the two cannot drift; the
-- line id gets a sequence of its own (LIKE copies the other table's nextval) and the reversal its own
-- foreign key (LIKE copies no foreign key).
CREATE SEQUENCE IF NOT EXISTS erp_staging.return_disposition_lines_line_id_seq;
CREATE TABLE IF NOT EXISTS erp_staging.return_disposition_lines (
    LIKE erp_staging.fulfilment_assignment_lines
        INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS,
    PRIMARY KEY (line_id),
    UNIQUE (idempotency_key)
);
ALTER TABLE erp_staging.return_disposition_lines
    ALTER COLUMN line_id SET DEFAULT nextval('erp_staging.return_disposition_lines_line_id_seq');
ALTER SEQUENCE erp_staging.return_disposition_lines_line_id_seq OWNED BY erp_staging.return_disposition_lines.line_id;
ALTER TABLE erp_staging.return_disposition_lines DROP CONSTRAINT IF EXISTS return_disposition_lines_reverses_line_id_fkey;
ALTER TABLE erp_staging.return_disposition_lines ADD CONSTRAINT return_disposition_lines_reverses_line_id_fkey
    FOREIGN KEY (reverses_line_id) REFERENCES erp_staging.return_disposition_lines (line_id);
CREATE INDEX IF NOT EXISTS return_disposition_lines_run
    ON erp_staging.return_disposition_lines (dag_id, ds, status);
CREATE UNIQUE INDEX IF NOT EXISTS return_disposition_lines_one_reversal
    ON erp_staging.return_disposition_lines (reverses_line_id) WHERE reverses_line_id IS NOT NULL;
ALTER TABLE erp_staging.return_disposition_lines OWNER TO shelfwise_owner;

-- The triggers of 0003 (status machine and what each move may change, new lines undecided, decided lines
-- kept), on the new table.
DROP TRIGGER IF EXISTS status_transition ON erp_staging.return_disposition_lines;
CREATE TRIGGER status_transition BEFORE UPDATE ON erp_staging.return_disposition_lines
    FOR EACH ROW EXECUTE FUNCTION erp_staging.check_status_transition();
DROP TRIGGER IF EXISTS new_line ON erp_staging.return_disposition_lines;
CREATE TRIGGER new_line BEFORE INSERT ON erp_staging.return_disposition_lines
    FOR EACH ROW EXECUTE FUNCTION erp_staging.check_new_line();
DROP TRIGGER IF EXISTS keep_decided ON erp_staging.return_disposition_lines;
CREATE TRIGGER keep_decided BEFORE DELETE ON erp_staging.return_disposition_lines
    FOR EACH ROW EXECUTE FUNCTION erp_staging.refuse_decided_delete();
DROP TRIGGER IF EXISTS keep_decided_truncate ON erp_staging.return_disposition_lines;
CREATE TRIGGER keep_decided_truncate BEFORE TRUNCATE ON erp_staging.return_disposition_lines
    FOR EACH STATEMENT EXECUTE FUNCTION erp_staging.refuse_decided_delete();

-- withdraw_lines and reverse_line find a document type's table here.
CREATE OR REPLACE FUNCTION erp_staging.line_table(doc_type text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE doc_type WHEN 'replenishment' THEN 'replenishment_order_lines'
                         WHEN 'transfer' THEN 'stock_transfer_lines'
                         WHEN 'po_exception' THEN 'po_exception_lines'
                         WHEN 'fulfilment_assignment' THEN 'fulfilment_assignment_lines'
                         WHEN 'return_disposition' THEN 'return_disposition_lines' END
$$;

CREATE OR REPLACE VIEW erp_staging.all_lines AS
    SELECT 'replenishment' AS doc_type, * FROM erp_staging.replenishment_order_lines
    UNION ALL SELECT 'transfer', * FROM erp_staging.stock_transfer_lines
    UNION ALL SELECT 'po_exception', * FROM erp_staging.po_exception_lines
    UNION ALL SELECT 'fulfilment_assignment', * FROM erp_staging.fulfilment_assignment_lines
    UNION ALL SELECT 'return_disposition', * FROM erp_staging.return_disposition_lines;

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
    FROM erp_staging.fulfilment_assignment_lines WHERE status = 'released'
    UNION ALL
    SELECT 'return_disposition', line_id, idempotency_key, reverses_line_id, dag_id, ds, business_key, sku,
           from_location, to_location, supplier_id, po_id, po_line, action, quantity, unit_cost, value, need_by,
           decided_by, decided_at, released_at
    FROM erp_staging.return_disposition_lines WHERE status = 'released';
ALTER VIEW erp_staging.all_lines OWNER TO shelfwise_owner;
ALTER VIEW erp_staging.released_lines OWNER TO shelfwise_owner;
ALTER FUNCTION erp_staging.line_table(text) OWNER TO shelfwise_owner;

-- The application's grants of the other line tables (0003, 0005), on this one.
GRANT SELECT, INSERT ON erp_staging.return_disposition_lines TO shelfwise_app;
GRANT UPDATE (run_id, sku, from_location, to_location, supplier_id, po_id, po_line, action, quantity, unit_cost,
              value, need_by, explanation, risk_tier, tier_reasons, status, decided_by, decided_at, decision_note,
              released_at, updated_at)
    ON erp_staging.return_disposition_lines TO shelfwise_app;
GRANT USAGE ON SEQUENCE erp_staging.return_disposition_lines_line_id_seq TO shelfwise_app;
GRANT SELECT ON erp_staging.all_lines TO shelfwise_app;
GRANT SELECT ON erp_staging.released_lines TO shelfwise_erp_reader;
