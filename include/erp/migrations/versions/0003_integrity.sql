-- Least-privilege roles, line immutability enforced by the database, the audited reversal path, and the
-- view the ERP reads. Re-runnable: a later revision that creates objects runs this file again, so they
-- get the same owner and grants.
--
--   shelfwise_owner      NOLOGIN; owns schemas erp_staging and ops and everything in them. The migrator
--                        is a member (or a superuser) and so may change the schema; nobody logs in as it.
--   shelfwise_app        LOGIN; what the DAGs, the plugin and the command line connect as: reads the
--                        schemas, inserts lines, audit entries and ops records, updates only the columns
--                        staging and deciding change; no DELETE, no TRUNCATE, no DDL, cannot disable
--                        triggers (not an owner) and cannot touch audit rows.
--   shelfwise_erp_reader LOGIN; SELECT on erp_staging.released_lines and nothing else.

-- Roles are cluster-wide: two databases of one server may migrate at the same moment, and the loser of
-- the race sees duplicate_object (or, inside the catalog, unique_violation).
DO $$
DECLARE spec text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY ARRAY[['shelfwise_owner', 'NOLOGIN'], ['shelfwise_app', 'LOGIN'],
                                        ['shelfwise_erp_reader', 'LOGIN']] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = spec[1]) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                               'NOBYPASSRLS NOINHERIT', spec[1], spec[2]);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END $$;
-- A non-superuser migrator acts on the owner's objects through membership.
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'shelfwise_owner', 'USAGE') THEN
        EXECUTE format('GRANT shelfwise_owner TO %I', current_user);
    END IF;
END $$;

-- Reversals: a released line that was wrong is never edited; a new line reverses it.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['replenishment_order_lines', 'stock_transfer_lines', 'po_exception_lines'] LOOP
        EXECUTE format('ALTER TABLE erp_staging.%I ADD COLUMN IF NOT EXISTS reverses_line_id bigint '
                       'REFERENCES erp_staging.%I (line_id)', t, t);
        EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON erp_staging.%I (reverses_line_id) '
                       'WHERE reverses_line_id IS NOT NULL', t || '_one_reversal', t);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION erp_staging.line_table(doc_type text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE doc_type WHEN 'replenishment' THEN 'replenishment_order_lines'
                         WHEN 'transfer' THEN 'stock_transfer_lines'
                         WHEN 'po_exception' THEN 'po_exception_lines' END
$$;

-- Every UPDATE of a line (any column): the legal status moves of 0001, and what each move may change.
-- Undecided lines (proposed, pending_approval, auto_approved) may be re-staged: content changes, keys
-- do not. A move to a decision or to released may set the decision or release columns once and change
-- nothing else. A decided, rejected, expired or released line that keeps its status cannot change at all.
CREATE OR REPLACE FUNCTION erp_staging.check_status_transition() RETURNS trigger AS $$
DECLARE
    undecided CONSTANT text[] := ARRAY['proposed', 'pending_approval', 'auto_approved'];
    free text[] := ARRAY['status', 'updated_at'];
    changed text[];
BEGIN
    IF NEW.status = OLD.status THEN
        IF NOT (OLD.status = ANY(undecided)) THEN
            RAISE EXCEPTION 'line % (%) is % and can no longer be changed', OLD.line_id,
                OLD.idempotency_key, OLD.status USING ERRCODE = 'check_violation';
        END IF;
    ELSIF (OLD.status, NEW.status) NOT IN (
        ('proposed', 'auto_approved'), ('proposed', 'pending_approval'),
        ('pending_approval', 'approved'), ('pending_approval', 'rejected'),
        ('pending_approval', 'expired'), ('approved', 'released'), ('auto_approved', 'released'),
        -- A re-run of the same date may re-tier a line nobody has decided yet.
        ('auto_approved', 'pending_approval'), ('pending_approval', 'auto_approved')
    ) THEN
        RAISE EXCEPTION 'illegal status transition for line % (%): % -> %', OLD.line_id,
            OLD.idempotency_key, OLD.status, NEW.status USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status = ANY(undecided) AND NEW.status = ANY(undecided) THEN
        free := free || ARRAY['run_id', 'sku', 'from_location', 'to_location', 'supplier_id', 'po_id',
                              'po_line', 'action', 'quantity', 'unit_cost', 'value', 'need_by', 'explanation',
                              'risk_tier', 'tier_reasons'];
    ELSE
        IF OLD.decided_by IS NULL THEN
            free := free || ARRAY['decided_by'];
        END IF;
        IF OLD.decided_at IS NULL THEN
            free := free || ARRAY['decided_at'];
        END IF;
        IF OLD.decision_note IS NULL THEN
            free := free || ARRAY['decision_note'];
        END IF;
        IF OLD.released_at IS NULL AND NEW.status = 'released' THEN
            free := free || ARRAY['released_at'];
        END IF;
    END IF;
    -- Inline, not a helper function: the trigger runs as the updating role, which executes no functions.
    SELECT array_agg(o.key ORDER BY o.key) INTO changed
    FROM jsonb_each(to_jsonb(OLD)) o JOIN jsonb_each(to_jsonb(NEW)) n USING (key)
    WHERE o.value IS DISTINCT FROM n.value AND NOT (o.key = ANY(free));
    IF changed IS NOT NULL THEN
        RAISE EXCEPTION 'line % (%) %: % may not change', OLD.line_id, OLD.idempotency_key,
            CASE WHEN NEW.status = OLD.status THEN 'is ' || OLD.status
                 ELSE 'moving ' || OLD.status || ' -> ' || NEW.status END,
            array_to_string(changed, ', ') USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> OLD.status THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

-- New lines start undecided. A line born decided (a reversal) is written only by the owner, that is
-- by erp_staging.reverse_line.
CREATE OR REPLACE FUNCTION erp_staging.check_new_line() RETURNS trigger AS $$
BEGIN
    IF pg_has_role(current_user, 'shelfwise_owner', 'USAGE') THEN
        RETURN NEW;
    END IF;
    IF NEW.status NOT IN ('proposed', 'pending_approval', 'auto_approved') OR NEW.decided_by IS NOT NULL
            OR NEW.decided_at IS NOT NULL OR NEW.decision_note IS NOT NULL OR NEW.released_at IS NOT NULL
            OR NEW.reverses_line_id IS NOT NULL OR NEW.action = 'reverse' THEN
        RAISE EXCEPTION 'line % is refused: a new line starts proposed, pending_approval or auto_approved, '
            'undecided and unreleased; reversals are made by erp_staging.reverse_line', NEW.idempotency_key
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

-- Only undecided lines may be deleted (a re-run withdrawing what it no longer proposes, through
-- erp_staging.withdraw_lines); decided and released lines stay for good, whoever asks.
CREATE OR REPLACE FUNCTION erp_staging.refuse_decided_delete() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'erp_staging.% cannot be truncated: decided and released lines are kept', TG_TABLE_NAME
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status IN ('proposed', 'pending_approval', 'auto_approved') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'line % (%) is % and cannot be deleted: a released line that was wrong is reversed '
        '(erp_staging.reverse_line), never deleted', OLD.line_id, OLD.idempotency_key, OLD.status
        USING ERRCODE = 'check_violation';
END $$ LANGUAGE plpgsql;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['replenishment_order_lines', 'stock_transfer_lines', 'po_exception_lines'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS status_transition ON erp_staging.%I', t);
        EXECUTE format('CREATE TRIGGER status_transition BEFORE UPDATE ON erp_staging.%I '
                       'FOR EACH ROW EXECUTE FUNCTION erp_staging.check_status_transition()', t);
        EXECUTE format('DROP TRIGGER IF EXISTS new_line ON erp_staging.%I', t);
        EXECUTE format('CREATE TRIGGER new_line BEFORE INSERT ON erp_staging.%I '
                       'FOR EACH ROW EXECUTE FUNCTION erp_staging.check_new_line()', t);
        EXECUTE format('DROP TRIGGER IF EXISTS keep_decided ON erp_staging.%I', t);
        EXECUTE format('CREATE TRIGGER keep_decided BEFORE DELETE ON erp_staging.%I '
                       'FOR EACH ROW EXECUTE FUNCTION erp_staging.refuse_decided_delete()', t);
        EXECUTE format('DROP TRIGGER IF EXISTS keep_decided_truncate ON erp_staging.%I', t);
        EXECUTE format('CREATE TRIGGER keep_decided_truncate BEFORE TRUNCATE ON erp_staging.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION erp_staging.refuse_decided_delete()', t);
    END LOOP;
END $$;

-- Withdraw a run's undecided lines of one document type that a re-run no longer proposes (``keep``
-- holds the keys it still proposes), with one audit entry each. The application has no DELETE privilege:
-- this is its only way to remove a line, and it removes undecided lines only.
CREATE OR REPLACE FUNCTION erp_staging.withdraw_lines(doc_type text, dag_id text, ds date, keep text[],
                                                      run_id text, actor text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl text := erp_staging.line_table(doc_type);
    n integer;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'unknown document type %', doc_type USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format($q$
        WITH gone AS (
            DELETE FROM erp_staging.%I WHERE dag_id = $1 AND ds = $2
                AND status IN ('proposed', 'pending_approval', 'auto_approved')
                AND idempotency_key NOT IN (SELECT unnest($3))
            RETURNING idempotency_key, status)
        INSERT INTO erp_staging.audit_log (actor, action, doc_type, idempotency_key, from_status, dag_id, run_id,
                                           ds, note)
        SELECT $5, 'withdrawn', $6, idempotency_key, status, $1, $4, $2,
               'no longer proposed by a re-run of this date' FROM gone$q$, tbl)
        USING dag_id, ds, coalesce(keep, '{}'::text[]), run_id, actor, doc_type;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- The correction path for a released line that was wrong: a new released line with action 'reverse',
-- the same quantity, unit cost and value, and reverses_line_id pointing at the original, so the ERP nets
-- the two (original minus reversal = nothing). The original is not modified. Three audit entries:
-- 'reversal' (the new line, with the reason), 'released' (the new line), 'reversed' (the original).
CREATE OR REPLACE FUNCTION erp_staging.reverse_line(doc_type text, line_id bigint, actor text, reason text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl text := erp_staging.line_table(doc_type);
    orig record;
    prior bigint;
    new_id bigint;
    new_key text;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'unknown document type %', doc_type USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(btrim(actor), '') = '' OR coalesce(btrim(reason), '') = '' THEN
        RAISE EXCEPTION 'a reversal names who makes it and why (actor and reason)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('SELECT * FROM erp_staging.%I WHERE line_id = $1 FOR UPDATE', tbl) INTO orig USING line_id;
    IF orig IS NULL THEN
        RAISE EXCEPTION 'no % line %', doc_type, line_id USING ERRCODE = 'no_data_found';
    END IF;
    IF orig.status <> 'released' THEN
        RAISE EXCEPTION '% line % (%) is %: only released lines are reversed; an undecided line is re-staged '
            'or rejected instead', doc_type, line_id, orig.idempotency_key, orig.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF orig.reverses_line_id IS NOT NULL THEN
        RAISE EXCEPTION '% line % is itself the reversal of line %', doc_type, line_id, orig.reverses_line_id
            USING ERRCODE = 'check_violation';
    END IF;
    EXECUTE format('SELECT line_id FROM erp_staging.%I WHERE reverses_line_id = $1', tbl) INTO prior USING line_id;
    IF prior IS NOT NULL THEN
        RAISE EXCEPTION '% line % was already reversed by line %', doc_type, line_id, prior
            USING ERRCODE = 'check_violation';
    END IF;
    new_key := orig.idempotency_key || '|reversal';
    EXECUTE format($q$
        INSERT INTO erp_staging.%I (idempotency_key, dag_id, run_id, ds, business_key, sku, from_location,
            to_location, supplier_id, po_id, po_line, action, quantity, unit_cost, value, need_by, explanation,
            risk_tier, tier_reasons, status, decided_by, decided_at, decision_note, reverses_line_id)
        SELECT $2, dag_id, run_id, ds, business_key, sku, from_location, to_location, supplier_id, po_id, po_line,
            'reverse', quantity, unit_cost, value, need_by,
            jsonb_build_object('reverses_line_id', line_id, 'reverses', idempotency_key, 'reason', $4),
            risk_tier, tier_reasons, 'approved', $3, now(), $4, line_id
        FROM erp_staging.%I WHERE line_id = $1 RETURNING line_id$q$, tbl, tbl)
        INTO new_id USING line_id, new_key, actor, reason;
    EXECUTE format('UPDATE erp_staging.%I SET status = ''released'', released_at = now() WHERE line_id = $1', tbl)
        USING new_id;
    INSERT INTO erp_staging.audit_log (actor, action, doc_type, idempotency_key, from_status, to_status, dag_id,
                                       run_id, ds, note, details)
    VALUES (actor, 'reversal', doc_type, new_key, NULL, 'approved', orig.dag_id, orig.run_id, orig.ds, reason,
            jsonb_build_object('reverses_line_id', orig.line_id, 'reverses', orig.idempotency_key,
                               'quantity', orig.quantity, 'value', orig.value)),
           (actor, 'released', doc_type, new_key, 'approved', 'released', orig.dag_id, orig.run_id, orig.ds,
            reason, jsonb_build_object('reverses_line_id', orig.line_id)),
           (actor, 'reversed', doc_type, orig.idempotency_key, 'released', 'released', orig.dag_id, orig.run_id,
            orig.ds, reason, jsonb_build_object('reversal_line_id', new_id, 'reversal', new_key));
    RETURN new_id;
END $$;

-- What the ERP reads: released lines of every document type. A line with action 'reverse' cancels the
-- line named by reverses_line_id (same doc_type): book its quantity and value with the opposite sign.
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
    FROM erp_staging.po_exception_lines WHERE status = 'released';

COMMENT ON VIEW erp_staging.released_lines IS
    'Lines released to the ERP, every document type. Import each idempotency_key once. A line with action '
    '''reverse'' and reverses_line_id set cancels the released line of the same doc_type with that line_id: '
    'book its quantity and value with the opposite sign (the pair nets to nothing).';
COMMENT ON FUNCTION erp_staging.reverse_line(text, bigint, text, text) IS
    'Reverse a released line that was wrong: a new released line (action reverse, same quantity and value, '
    'reverses_line_id = the original, key <original key>|reversal) and three audit entries; the original is '
    'not modified.';

-- Ownership: the schemas and everything in them. Sequences owned by a column follow their table.
ALTER SCHEMA erp_staging OWNER TO shelfwise_owner;
ALTER SCHEMA ops OWNER TO shelfwise_owner;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS obj, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('erp_staging', 'ops') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
               AND pg_get_userbyid(c.relowner) <> 'shelfwise_owner'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.deptype IN ('a', 'i') AND c.relkind = 'S') LOOP
        EXECUTE format('ALTER %s %s OWNER TO shelfwise_owner',
                       CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                      WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                       r.obj);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS obj FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname IN ('erp_staging', 'ops') AND pg_get_userbyid(p.proowner) <> 'shelfwise_owner' LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO shelfwise_owner', r.obj);
    END LOOP;
END $$;

-- Privileges: nothing for PUBLIC, then exactly what each role needs.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO shelfwise_app', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO shelfwise_erp_reader', current_database());
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    END IF;
END $$;
REVOKE ALL ON SCHEMA erp_staging, ops FROM PUBLIC, shelfwise_app, shelfwise_erp_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA erp_staging, ops FROM PUBLIC, shelfwise_app, shelfwise_erp_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA erp_staging, ops FROM PUBLIC, shelfwise_app, shelfwise_erp_reader;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA erp_staging, ops FROM PUBLIC, shelfwise_app, shelfwise_erp_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE shelfwise_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE shelfwise_owner IN SCHEMA erp_staging, ops GRANT SELECT ON TABLES TO shelfwise_app;
ALTER DEFAULT PRIVILEGES FOR ROLE shelfwise_owner IN SCHEMA erp_staging, ops
    GRANT USAGE ON SEQUENCES TO shelfwise_app;

GRANT USAGE ON SCHEMA erp_staging, ops TO shelfwise_app;
GRANT SELECT ON ALL TABLES IN SCHEMA erp_staging, ops TO shelfwise_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA erp_staging, ops TO shelfwise_app;
GRANT INSERT ON erp_staging.replenishment_order_lines, erp_staging.stock_transfer_lines,
    erp_staging.po_exception_lines, erp_staging.audit_log, ops.contract_runs, ops.forecast_scores
    TO shelfwise_app;
-- Staging (run_id ... tier_reasons, status, updated_at), deciding (decided_by, decided_at, decision_note)
-- and release (released_at); keys, ds, created_at and reverses_line_id are never updated.
GRANT UPDATE (run_id, sku, from_location, to_location, supplier_id, po_id, po_line, action, quantity, unit_cost,
              value, need_by, explanation, risk_tier, tier_reasons, status, decided_by, decided_at, decision_note,
              released_at, updated_at)
    ON erp_staging.replenishment_order_lines, erp_staging.stock_transfer_lines, erp_staging.po_exception_lines
    TO shelfwise_app;
GRANT UPDATE (origin, n_series, n_points, mase, rmsse, bias, baseline, ratio, drift, reason, recorded_at)
    ON ops.forecast_scores TO shelfwise_app;
GRANT EXECUTE ON FUNCTION erp_staging.withdraw_lines(text, text, date, text[], text, text),
    erp_staging.reverse_line(text, bigint, text, text) TO shelfwise_app;

GRANT USAGE ON SCHEMA erp_staging TO shelfwise_erp_reader;
GRANT SELECT ON erp_staging.released_lines TO shelfwise_erp_reader;
