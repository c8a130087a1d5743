#!/bin/sh
# Temporal's databases and schemas, by Temporal's own tooling (temporal-sql-tool, in the
# admin-tools image): create each database if it is not there, set up the base schema once, then
# apply every versioned update this release ships. Safe to run on every `docker compose up`.
set -eu
SCHEMA=/etc/temporal/schema/postgresql/v12
tool() {
    temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" --pw "$SQL_PASSWORD" "$@"
}
for db in temporal temporal_visibility; do
    tool --db "$db" create-database 2>/dev/null || echo "database $db exists"
done
# setup-schema -v 0.0 only makes the version table when it is missing; update-schema brings it up.
tool --db temporal setup-schema -v 0.0 2>/dev/null || true
tool --db temporal update-schema -d "$SCHEMA/temporal/versioned"
tool --db temporal_visibility setup-schema -v 0.0 2>/dev/null || true
tool --db temporal_visibility update-schema -d "$SCHEMA/visibility/versioned"
echo "temporal schemas are current"
