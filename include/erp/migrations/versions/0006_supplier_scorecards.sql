-- Supplier scorecards, kept as weekly history: one row per supplier and week, and one per supplier, SKU and
-- week, with the reliability score the policy's formula gives. A week recomputed (a re-run, a late receipt)
-- replaces its row. Re-runnable (IF NOT EXISTS); a later revision that runs 0003's SQL again (which revokes
-- what it does not grant) runs this file again after it.

CREATE TABLE IF NOT EXISTS ops.supplier_scorecards (
    id                             bigserial   PRIMARY KEY,
    week_end                       date        NOT NULL,
    supplier_id                    text        NOT NULL,
    lines_due                      integer     NOT NULL DEFAULT 0,
    lines_received                 integer     NOT NULL DEFAULT 0,
    n_receipts                     integer     NOT NULL DEFAULT 0,
    otif                           double precision,
    fill_rate                      double precision,
    lead_time_mean                 double precision,
    lead_time_p90                  double precision,
    lead_time_trend_days_per_week  double precision,
    lead_time_cv                   double precision,
    price_variance                 double precision,
    defect_rate                    double precision,
    reliability                    double precision,
    details                        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    dag_id                         text        NOT NULL,
    run_id                         text        NOT NULL,
    recorded_at                    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (supplier_id, week_end),
    CHECK (reliability IS NULL OR reliability BETWEEN 0 AND 100)
);

-- The same card per supplier and SKU (its ids from the supplier table's sequence).
CREATE TABLE IF NOT EXISTS ops.supplier_item_scorecards (
    LIKE ops.supplier_scorecards INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    sku text NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (supplier_id, sku, week_end)
);
CREATE INDEX IF NOT EXISTS supplier_item_scorecards_week ON ops.supplier_item_scorecards (week_end);

ALTER TABLE ops.supplier_scorecards OWNER TO shelfwise_owner;
ALTER TABLE ops.supplier_item_scorecards OWNER TO shelfwise_owner;
GRANT SELECT, INSERT, DELETE ON ops.supplier_scorecards, ops.supplier_item_scorecards TO shelfwise_app;
GRANT USAGE ON SEQUENCE ops.supplier_scorecards_id_seq TO shelfwise_app;
