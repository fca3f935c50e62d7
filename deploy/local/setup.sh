#!/usr/bin/env bash
# Fresh-machine setup: a virtualenv in .venv with ProductPulse, its worker and
# dev extras, and the Kafka jars from Maven Central. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[worker,dev]'
bash deploy/local/kafka.sh fetch
