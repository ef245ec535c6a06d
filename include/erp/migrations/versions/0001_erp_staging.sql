-- ERP staging interface tables, the append-only audit log, and the contract run record.
CREATE SCHEMA IF NOT EXISTS erp_staging;
CREATE SCHEMA IF NOT EXISTS ops;

CREATE TABLE IF NOT EXISTS ops.contract_runs (
    id               bigserial PRIMARY KEY,
    dag_id           text,
    run_id           text,
    contract_id      text        NOT NULL,
    contract_version text        NOT NULL,
    ds               date        NOT NULL,
    file             text        NOT NULL,
    rows_in          integer     NOT NULL,
    rows_passed      integer     NOT NULL,
    rows_quarantined integer     NOT NULL,
    breaches         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    outcome          text        NOT NULL CHECK (outcome IN ('passed', 'warned', 'blocked')),
    reasons          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    sample_keys      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS contract_runs_ds ON ops.contract_runs (ds, contract_id);

-- The three interface tables share one shape; the ERP reads rows whose status is 'released'.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['replenishment_order_lines', 'stock_transfer_lines', 'po_exception_lines'] LOOP
        EXECUTE format($f$
            CREATE TABLE IF NOT EXISTS erp_staging.%I (
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
                updated_at       timestamptz NOT NULL DEFAULT now()
            )$f$, t);
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON erp_staging.%I (dag_id, ds, status)', t || '_run', t);
    END LOOP;
END $$;

-- Legal status moves; anything else is refused by the database, whatever the client.
CREATE OR REPLACE FUNCTION erp_staging.check_status_transition() RETURNS trigger AS $$
BEGIN
    IF NEW.status = OLD.status THEN
        IF OLD.status NOT IN ('proposed', 'pending_approval', 'auto_approved') THEN
            RAISE EXCEPTION 'line % (%) is % and can no longer be changed', OLD.line_id,
                OLD.idempotency_key, OLD.status USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF (OLD.status, NEW.status) IN (
        ('proposed', 'auto_approved'), ('proposed', 'pending_approval'),
        ('pending_approval', 'approved'), ('pending_approval', 'rejected'),
        ('pending_approval', 'expired'), ('approved', 'released'), ('auto_approved', 'released'),
        -- A re-run of the same date may re-tier a line nobody has decided yet.
        ('auto_approved', 'pending_approval'), ('pending_approval', 'auto_approved')
    ) THEN
        NEW.updated_at := now();
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'illegal status transition for line % (%): % -> %', OLD.line_id,
        OLD.idempotency_key, OLD.status, NEW.status USING ERRCODE = 'check_violation';
END $$ LANGUAGE plpgsql;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['replenishment_order_lines', 'stock_transfer_lines', 'po_exception_lines'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS status_transition ON erp_staging.%I', t);
        EXECUTE format('CREATE TRIGGER status_transition BEFORE UPDATE OF status ON erp_staging.%I '
                       'FOR EACH ROW EXECUTE FUNCTION erp_staging.check_status_transition()', t);
    END LOOP;
END $$;

CREATE OR REPLACE VIEW erp_staging.all_lines AS
    SELECT 'replenishment' AS doc_type, * FROM erp_staging.replenishment_order_lines
    UNION ALL SELECT 'transfer', * FROM erp_staging.stock_transfer_lines
    UNION ALL SELECT 'po_exception', * FROM erp_staging.po_exception_lines;

CREATE TABLE IF NOT EXISTS erp_staging.audit_log (
    audit_id        bigserial   PRIMARY KEY,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    actor           text        NOT NULL,
    action          text        NOT NULL,
    doc_type        text,
    idempotency_key text,
    from_status     text,
    to_status       text,
    dag_id          text,
    run_id          text,
    ds              date,
    note            text,
    details         jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_key ON erp_staging.audit_log (idempotency_key);

CREATE OR REPLACE FUNCTION erp_staging.refuse_audit_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'erp_staging.audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_log_append_only ON erp_staging.audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON erp_staging.audit_log
    FOR EACH ROW EXECUTE FUNCTION erp_staging.refuse_audit_change();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON erp_staging.audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON erp_staging.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION erp_staging.refuse_audit_change();
