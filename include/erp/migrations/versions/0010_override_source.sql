-- Source overrides. A planner may approve a pending order from another supplier, or a transfer from another
-- distribution centre, than the one proposed (one of the line's explanation.source_options, checked by the
-- application): the line keeps the proposed source in proposed_source, and supplier_id or from_location and
-- unit_cost become the approved ones, which is what is released. proposed_source is set with an override
-- (0009's columns) or not at all, only by the approval, and never changes afterwards.
--
-- check_status_transition is 0009's with the source columns added to what an override may set. A later
-- revision that runs 0003's or 0009's re-runnable SQL again must run this file after it.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['replenishment_order_lines', 'stock_transfer_lines', 'po_exception_lines', 'fulfilment_assignment_lines', 'return_disposition_lines', 'finance_review_lines'] LOOP
        EXECUTE format('ALTER TABLE erp_staging.%I ADD COLUMN IF NOT EXISTS proposed_source text', t);
        EXECUTE format('ALTER TABLE erp_staging.%I DROP CONSTRAINT IF EXISTS %I', t, t || '_override_source');
        EXECUTE format('ALTER TABLE erp_staging.%I ADD CONSTRAINT %I CHECK (proposed_source IS NULL OR '
                       'overridden_by IS NOT NULL)', t, t || '_override_source');
        EXECUTE format('GRANT UPDATE (proposed_quantity, override_reason, overridden_by, proposed_source) '
                       'ON erp_staging.%I TO shelfwise_app', t);
    END LOOP;
END $$;

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
        -- An override: the approval may set another quantity, source and unit cost (and the value) once,
        -- keeping the proposal.
        IF OLD.status = 'pending_approval' AND NEW.status = 'approved' AND OLD.overridden_by IS NULL
                AND NEW.overridden_by IS NOT NULL THEN
            free := free || ARRAY['quantity', 'value', 'proposed_quantity', 'override_reason', 'overridden_by',
                                  'supplier_id', 'from_location', 'unit_cost', 'proposed_source'];
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
