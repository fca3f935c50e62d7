#!/usr/bin/env bash
# Build the ProductPulse image on this machine with podman; print the image reference as the LAST line.
#
# No image registry is reachable here (shared/CONTAINERS.md), so the base is made from Debian's packages with
# debootstrap, once per machine: the root file system is cached as a tarball under $PULSE_CONTAINER_CACHE
# (default ~/.cache/productpulse) and imported as localhost/pulse-base:bookworm when podman lacks it. The
# Dockerfile's default base (python:3.11-slim) is what users build from; here it is a build argument.
#
# The containers.conf this kernel needs (runc, cgroupfs, no default ulimits) is written under the cache and
# exported as CONTAINERS_CONF; callers that run the image should export the same file (the last-but-one line
# names it: `containers_conf=PATH`). The host's CA bundle is mounted at build time so pip reaches PyPI through
# the machine's intercepting proxy; it is never copied into the image.
#
# Environment: PULSE_IMAGE (default localhost/productpulse:dev), PULSE_BASE_IMAGE (default
# localhost/pulse-base:bookworm; set it to python:3.11-slim where a registry is reachable), PULSE_CONTAINER_CACHE.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${PULSE_CONTAINER_CACHE:-$HOME/.cache/productpulse}"
image="${PULSE_IMAGE:-localhost/productpulse:dev}"
base="${PULSE_BASE_IMAGE:-localhost/pulse-base:bookworm}"
ca=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$cache"

conf="$cache/containers.conf"
cat >"$conf.tmp" <<'CONF'
# Written by deploy/container/build.sh: crun cannot raise RLIMIT_NOFILE/NPROC or use this kernel's hybrid
# cgroups; runc with cgroupfs and no default ulimits can (shared/CONTAINERS.md).
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
mv "$conf.tmp" "$conf"
export CONTAINERS_CONF="$conf"

command -v podman >/dev/null || { echo "build.sh: podman is missing: run deploy/local/system-packages.sh" >&2; exit 1; }

debian_mirror() {
  # The mirror this machine's apt uses (deb822 sources first, then the one-line format).
  local uri
  uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [ -n "$uri" ] || uri="$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}

if [ "$base" = "localhost/pulse-base:bookworm" ] && ! podman image exists "$base"; then
  tarball="$cache/pulse-base-bookworm.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { echo "build.sh: debootstrap is missing: run deploy/local/system-packages.sh" >&2; exit 1; }
    started=$SECONDS
    rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "$(debian_mirror)" >"$cache/debootstrap.log" 2>&1 \
      || { echo "build.sh: debootstrap failed; see $cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . >"$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
    echo "build.sh: base root file system made in $((SECONDS - started)) s ($tarball)" >&2
  fi
  podman import "$tarball" "$base" >&2
fi

started=$SECONDS
# --format docker keeps the HEALTHCHECK (the OCI image format has no field for it).
podman build --format docker --build-arg "BASE=$base" -v "$ca:$ca:ro" -t "$image" -f "$root/Dockerfile" "$root" >&2
echo "build.sh: image built in $((SECONDS - started)) s" >&2
echo "containers_conf=$conf"
echo "$image"
