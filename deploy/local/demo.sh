#!/usr/bin/env bash
# The main job on a fresh machine: set up, then `pulse demo` end to end
# (local Kafka, embedded ClickHouse, worker, synthetic traffic, report).
# Extra arguments go to `pulse demo`, e.g. --duration 10.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/setup.sh
exec .venv/bin/pulse demo "$@"
