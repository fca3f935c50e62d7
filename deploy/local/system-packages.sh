#!/usr/bin/env bash
# Debian packages the tests need beside Python and Java: Prometheus (+ promtool), Alertmanager (+ amtool),
# headless Chromium, and podman with runc, debootstrap and catatonit (the pause process of `podman kube play`
# pods) for the image and manifest tests (shared/CONTAINERS.md; deploy/container/build.sh makes the base
# image from Debian's packages). Installs only what is missing; needs root (or sudo) the first time. Idempotent.
set -euo pipefail
wanted=(prometheus prometheus-alertmanager chromium podman runc debootstrap catatonit)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "system-packages.sh: install as root: apt-get install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "system-packages.sh: installing ${missing[*]}" >&2
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null
