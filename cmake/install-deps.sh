#!/usr/bin/env bash
# Installs the Debian 12 packages concur needs, only those missing.
# Used by both README commands and by CI; safe to run again.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libtbb-dev
  libboost1.81-dev libboost-fiber1.81-dev libboost-context1.81-dev libboost-json1.81-dev
  libcurl4-openssl-dev
  libgtest-dev libfmt-dev libcli11-dev libtomlplusplus-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "concur: installing missing packages: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
