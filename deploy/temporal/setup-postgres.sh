#!/bin/sh
# docker-compose.yml's temporal-schema job (temporalio/admin-tools): creates Temporal's two PostgreSQL
# databases and brings their schema to this image's server version, then exits. Every step is idempotent, so
# it runs on each `docker compose up`. temporal-sql-tool reads SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and
# SQL_PASSWORD from the environment.
set -eu
: "${SQL_HOST:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
schema=/etc/temporal/schema/postgresql/v12
for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  temporal-sql-tool --db "$db" create
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema -d "$schema/${pair#*:}/versioned"
done
echo "temporal-schema: databases and schema are current"
