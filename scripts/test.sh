#!/usr/bin/env bash
# Installs the dependencies and runs every check, in this order:
#
#   format    the sources are formatted (clang-format 14, .clang-format)
#   release   build with warnings as errors, run every test
#   tidy      clang-tidy 14 over lib/ and cli/ (.clang-tidy), with release's compile commands
#   sanitize  build under AddressSanitizer + UndefinedBehaviorSanitizer, run every test again
#   fuzz      each libFuzzer target for FUZZ_SECONDS (default 20) seconds, and its regressions
#
#   scripts/test.sh [STEP...]     only these steps (default: all, as CI runs them)
#
# Every step runs even when an earlier one failed; the run fails if any step did.
#
# Tests that touch netfilter create their own network namespaces; they need root and report
# "skipped" (ctest's code 77) without it. As root a skipped test fails the run: a suite that
# silently did not run is not a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${SKIP_INSTALL_DEPS:-}" ] || scripts/install-deps.sh
jobs=$(nproc)
steps=("$@")
((${#steps[@]})) || steps=(format release tidy sanitize fuzz)

# Several steps: each in its own process, all of them run, the run fails if any failed.
if ((${#steps[@]} > 1)); then
  failed=()
  for step in "${steps[@]}"; do
    SKIP_INSTALL_DEPS=1 "$0" "$step" || failed+=("$step")
  done
  if ((${#failed[@]})); then
    echo "FAILED steps: ${failed[*]}" >&2
    exit 1
  fi
  echo "all steps passed: ${steps[*]}"
  exit 0
fi

# ctest, and as root no skipped test.
run_ctest() {  # run_ctest BUILD_DIR [ENV=VALUE...]
  local dir=$1 log
  shift
  log=$(mktemp)
  if ! (cd "$dir" && env "$@" ctest --output-on-failure) 2>&1 | tee "$log"; then
    rm -f "$log"
    return 1
  fi
  if [ "$(id -u)" -eq 0 ] && grep -qE '\*\*\*Skipped|\(Skipped\)' "$log"; then
    echo "error: running as root, yet these tests were skipped (exit code 77):" >&2
    grep -E '\*\*\*Skipped' "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

check_format() {
  local files
  mapfile -t files < <(find lib cli tests -name '*.cc' -o -name '*.h' | sort; ls bench/*.cc)
  if ! clang-format-14 --dry-run --Werror "${files[@]}"; then
    echo "error: not formatted as .clang-format says; run: clang-format-14 -i FILE" >&2
    return 1
  fi
  echo "format: ${#files[@]} files formatted"
}

check_tidy() {
  [ -f build/release/compile_commands.json ] ||
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DISTIO_IPTABLES_WERROR=ON >/dev/null
  local files
  mapfile -t files < <(find lib cli -name '*.cc' | sort)
  # One process per file, all cores; a finding is an error (WarningsAsErrors in .clang-tidy).
  if ! printf '%s\n' "${files[@]}" | xargs -P"$jobs" -n1 clang-tidy-14 -p build/release --quiet; then
    echo "error: clang-tidy found problems (checks in .clang-tidy)" >&2
    return 1
  fi
  echo "tidy: ${#files[@]} files clean"
}

step=${steps[0]}
echo "== $step"
case $step in
  format) check_format ;;
  release)
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DISTIO_IPTABLES_WERROR=ON >/dev/null
    cmake --build build/release -j"$jobs"
    run_ctest build/release
    ;;
  tidy) check_tidy ;;
  sanitize)
    cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=Debug -DISTIO_IPTABLES_WERROR=ON -DISTIO_IPTABLES_SANITIZE=ON >/dev/null
    cmake --build build/sanitize -j"$jobs"
    run_ctest build/sanitize ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
    ;;
  fuzz) scripts/fuzz.sh "${FUZZ_SECONDS:-20}" ;;
  *)
    echo "unknown step $step (format, release, tidy, sanitize, fuzz)" >&2
    exit 2
    ;;
esac
