-- MODE=ha: the app's user and database on the server Inngest uses, each user confined to its own database.
-- Run by the `app-db-init` one-shot on every `make up`: every statement is safe to repeat.
SELECT format('CREATE ROLE app LOGIN PASSWORD %L', :'pw') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app')\gexec
-- A changed APP_DB_PASSWORD in .env takes effect on the next start.
SELECT format('ALTER ROLE app PASSWORD %L', :'pw')\gexec
SELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app')\gexec
REVOKE CONNECT ON DATABASE app FROM PUBLIC;
REVOKE CONNECT ON DATABASE inngest FROM PUBLIC;
