#!/usr/bin/env bash
# Installs what building, testing and running the tool need, from Debian 12's packages: clang 14
# and its sanitizer runtimes for the fuzzers, clang-format 14 and clang-tidy 14 for the checks;
# for packaging (docs/packaging.md): podman and umoci (the image and its test), file (CPack's
# dpkg-shlibdeps step; dpkg-dev comes with build-essential), python3-yaml (the manifest test).
set -euo pipefail
packages=(build-essential cmake pkg-config python3
          libip4tc-dev libip6tc-dev libfmt-dev catch2 libmnl-dev libnftnl-dev
          iptables nftables iproute2 util-linux gnuplot-nox
          clang-14 libclang-rt-14-dev clang-format-14 clang-tidy-14
          podman umoci file python3-yaml)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
