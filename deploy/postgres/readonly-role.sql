-- The read-only role `roi_readonly`, for Grafana's PostgreSQL data source and ad-hoc queries.
-- Not a migration: roles belong to the whole server and are managed by whoever runs it.
--
-- Run it with psql (it uses psql variables) as the role that runs `roi-worker migrate`, in the
-- roi-worker database, before or after the migrations:
--   PG_READONLY_PASSWORD=... psql "$ROI_DATABASE_URL" -f deploy/postgres/readonly-role.sql
--   psql "$ROI_DATABASE_URL" -v readonly_password=... -f deploy/postgres/readonly-role.sql
-- docker-compose.yml runs it once, when the postgres service initialises its data directory
-- (/docker-entrypoint-initdb.d), before `migrate` creates any table. Running it again is safe:
-- it creates the role when missing and sets its password and grants.
--
-- The role may read every table and view of the schema `public` (where the migrations put
-- them), today's and, through default privileges, those later migrations create; it may not
-- write, create or lock anything, and its sessions are read-only with a 30 s statement timeout.
-- Creating a role needs CREATEROLE (or a superuser).

\set ON_ERROR_STOP on

\if :{?readonly_password}
\else
  \getenv readonly_password PG_READONLY_PASSWORD
\endif
\if :{?readonly_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'set PG_READONLY_PASSWORD or pass -v readonly_password=...'; END $$;
\endif

SELECT 'CREATE ROLE roi_readonly'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'roi_readonly') \gexec

ALTER ROLE roi_readonly WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    PASSWORD :'readonly_password';
ALTER ROLE roi_readonly SET default_transaction_read_only = on;
ALTER ROLE roi_readonly SET statement_timeout = '30s';

GRANT CONNECT ON DATABASE :"DBNAME" TO roi_readonly;
GRANT USAGE ON SCHEMA public TO roi_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO roi_readonly;
-- Tables and views the current role (the migration owner) creates from now on.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO roi_readonly;
