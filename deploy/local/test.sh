#!/usr/bin/env bash
# The test command: set up (Python packages, Kafka jars, the Debian packages of
# Prometheus, Alertmanager and Chromium), start the local Kafka, run ruff (lint
# and format), mypy and pytest, stop what was started. Exits non-zero on any
# failure, including pytest collecting no tests (its exit code 5). Extra
# arguments go to pytest. The fault tests start and stop their own three-broker
# cluster (kafka.sh cluster, ports 19092-19097), stopping first one that an
# aborted run left behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/setup.sh
bash deploy/local/system-packages.sh

# A broker this script starts gets a fresh data folder, so no topic of an earlier run slows its start.
started_kafka=0
if ! bash deploy/local/kafka.sh status >/dev/null 2>&1; then
  export PULSE_KAFKA_DATA
  PULSE_KAFKA_DATA=$(mktemp -d "${TMPDIR:-/tmp}/pulse-kafka-data.XXXXXX")
  bash deploy/local/kafka.sh start
  started_kafka=1
fi
cleanup() {
  if [ "$started_kafka" = 1 ]; then
    bash deploy/local/kafka.sh stop || true
    rm -rf "$PULSE_KAFKA_DATA"
  fi
}
trap cleanup EXIT

echo "== ruff"
.venv/bin/ruff check pipeline consumers alerts dashboards tests
.venv/bin/ruff format --check pipeline consumers alerts dashboards tests
echo "== mypy"
.venv/bin/mypy pipeline alerts
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
