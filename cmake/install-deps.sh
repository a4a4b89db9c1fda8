#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Installs the Debian 12 packages concur needs, only those missing.
# Used by both README commands and by CI; safe to run again.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libtbb-dev
  libboost1.81-dev libboost-fiber1.81-dev libboost-context1.81-dev libboost-json1.81-dev
  libcurl4-openssl-dev
  libgtest-dev libfmt-dev libcli11-dev libtomlplusplus-dev
  openmpi-bin libopenmpi-dev libboost-mpi1.81-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# Node.js and npm run the OpenAI SDK compatibility test; a machine that ships
# its own Node.js (with npm inside) keeps it.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "concur: installing missing packages: ${missing[*]}" >&2
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The compat test (ctest label compat) runs the official npm package `openai`
# at the version locked in tests/compat; install it once per lock file. A
# failure here is only a warning: that test then fails saying what is missing.
compat="$(cd "$(dirname "$0")/.." && pwd)/tests/compat"
if ! cmp -s "$compat/package-lock.json" "$compat/node_modules/.concur-installed-lock"; then
  if npm ci --prefix "$compat" --no-audit --no-fund --loglevel=error; then
    cp "$compat/package-lock.json" "$compat/node_modules/.concur-installed-lock"
  else
    echo "concur: warning: npm ci in tests/compat failed; the OpenAI SDK compat test will fail" >&2
  fi
fi
