#!/usr/bin/env bash
# Installs what building, testing and running the tool need, from Debian 12's packages.
set -euo pipefail
packages=(build-essential cmake pkg-config python3
          libip4tc-dev libip6tc-dev libcli11-dev libfmt-dev catch2 libmnl-dev
          iptables iproute2 util-linux gnuplot-nox)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
