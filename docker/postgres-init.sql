-- Creates the ERP staging database next to the Airflow metadata database.
--
-- The postgres image runs this file once, when its data volume is first initialised, connected to
-- POSTGRES_DB as POSTGRES_USER, who therefore owns the new database. The erp_staging schema and its
-- tables are not created here: they come from the versioned migrations in include/erp.
--
-- On a volume created before this file existed, run it by hand:
--   docker compose exec postgres sh -c \
--     'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f /docker-entrypoint-initdb.d/10-erp-staging.sql'
CREATE DATABASE erp_staging;
