#!/usr/bin/env bash
# docker-compose 1.29 from PyPI, in a venv of its own cached under ~/.cache/productpulse (made once per
# machine, ~1 min), then run with the given arguments. The tests use `docker-compose config` to validate
# deploy/compose/compose.yaml against the Compose schema without a Docker engine (none runs here).
# A venv of its own: docker-compose 1.29 pins PyYAML<6, which the project's extras exclude; PyYAML 5.4 builds
# from source on Python 3.11 only with Cython<3 (hence the build constraint).
set -euo pipefail
cache="${PULSE_CONTAINER_CACHE:-$HOME/.cache/productpulse}"
venv="$cache/docker-compose-1.29.2"
if [ ! -x "$venv/bin/docker-compose" ]; then
  mkdir -p "$cache"
  rm -rf "$venv.tmp"
  python3 -m venv "$venv.tmp"
  echo 'cython<3' >"$cache/docker-compose-build-constraints.txt"
  PIP_CONSTRAINT="$cache/docker-compose-build-constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$venv.tmp/bin/pip" install -q docker-compose==1.29.2 >&2
  rm -rf "$venv"
  mv "$venv.tmp" "$venv"
  # The venv's scripts name the folder they were made in: make them again where they now live.
  sed -i "1s|.*|#!$venv/bin/python3|" "$venv/bin/docker-compose"
fi
exec "$venv/bin/docker-compose" "$@"
