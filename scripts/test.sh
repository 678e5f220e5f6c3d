#!/usr/bin/env bash
# Installs the dependencies, builds with warnings as errors and runs every test; then builds again
# under AddressSanitizer + UndefinedBehaviorSanitizer and runs every test once more.
# Tests that touch netfilter create their own network namespaces (root needed; skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DISTIO_IPTABLES_WERROR=ON >/dev/null
cmake --build build/release -j"$jobs"
(cd build/release && ctest --output-on-failure)

cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=Debug -DISTIO_IPTABLES_WERROR=ON -DISTIO_IPTABLES_SANITIZE=ON >/dev/null
cmake --build build/sanitize -j"$jobs"
(cd build/sanitize && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure)
