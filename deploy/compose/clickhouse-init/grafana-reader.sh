#!/bin/bash
# Run once by the ClickHouse image on an empty data folder: the read-only user Grafana connects with.
set -euo pipefail
clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE USER IF NOT EXISTS grafana IDENTIFIED WITH sha256_password BY '${GRAFANA_CLICKHOUSE_PASSWORD}'
    SETTINGS readonly = 1;
GRANT SELECT ON pulse.* TO grafana;
SQL
