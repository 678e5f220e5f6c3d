#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) and runs each for a fixed
# time, seeded from the scenario catalogue (rules/*/); then runs each once over its regression
# inputs (tests/fuzz/regressions/TARGET/). Any crash, leak, sanitizer report or broken property
# fails the script and leaves the input under the printed path.
#
#   scripts/fuzz.sh [SECONDS]     seconds per target (default 30)
#
# FUZZ_BUILD_DIR overrides the build directory (default build/fuzz); FUZZ_TARGETS runs only some
# targets (space-separated, e.g. "address entry"); FUZZ_ARGS adds libFuzzer flags (for example
# "-fork=1 -ignore_crashes=1" to go on past a crash and collect them all); FUZZ_KEEP is where
# failing inputs are kept (default build/fuzz-crashes).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
build=${FUZZ_BUILD_DIR:-build/fuzz}
targets=(${FUZZ_TARGETS:-rule_text rule_spec settings address entry})
cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "fuzz: clang++ not found (scripts/install-deps.sh installs clang-14)" >&2; exit 1; }

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DISTIO_IPTABLES_FUZZ=ON -DISTIO_IPTABLES_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Seeds, per target, from the catalogue.
seed() {  # seed TARGET NAME < content
  mkdir -p "$work/corpus/$1"
  cat >"$work/corpus/$1/$2"
}
n=0
for dir in rules/*/; do
  name=$(basename "$dir")
  rules="$dir/expected.rules"
  seed rule_text "$name" <"$rules"
  # One rule's options each: what follows "-A CHAIN" or "-I CHAIN N".
  sed -nE 's/^-A [^ ]+ //p; s/^-I [^ ]+ [0-9]+ //p' "$rules" | sort -u | while IFS= read -r spec; do
    n=$((n + 1))
    printf '%s' "$spec" | seed rule_spec "$name-$n"
    { printf '\002'; printf '%s' "$spec"; } | seed entry "$name-v4-$n"
    { printf '\003'; printf '%s' "$spec"; } | seed entry "$name-v6-$n"
  done
  # Addresses and prefixes: the operands of -s and -d, and the CIDR lists of the flags.
  { grep -oE -- '-[sd] [^ ]+' "$rules" | cut -d' ' -f2
    tr ' ,' '\n\n' <"$dir/args" | tr -d "'" | grep -E '^[0-9a-fA-F:.]+(/[0-9]+)?$' || true
  } | sort -u | while IFS= read -r a; do
    printf '%s' "$a" | seed address "$name-$(printf '%s' "$a" | md5sum | cut -c1-8)"
  done
  # Settings: the arguments one a line, the environment, and a resolv.conf.
  { python3 -c 'import shlex, sys; print("\n".join(shlex.split(open(sys.argv[1]).read())))' "$dir/args"
    echo '%env'
    [ -f "$dir/env" ] && cat "$dir/env"
    echo '%resolv'
    printf 'search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00:10:96::a\noptions ndots:5\n'
  } | seed settings "$name"
done
printf '\000' | seed entry shaped-v4
printf '\001' | seed entry shaped-v6
{ printf '\004'; head -c 160 /dev/zero; } | seed entry raw-v4
{ printf '\005'; head -c 216 /dev/zero; } | seed entry raw-v6

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
summary=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  log="$work/$t.log"
  echo "fuzz: $t for ${seconds}s ($(find "$work/corpus/$t" -type f | wc -l) seeds)"
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 ${FUZZ_ARGS:-} \
       -artifact_prefix="$work/artifacts/$t/" "$work/corpus/$t" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    summary+=("$t: ${execs:-?} executions, no crash")
  else
    tail -n 60 "$log" >&2
    mkdir -p "${FUZZ_KEEP:-build/fuzz-crashes}/$t"
    cp -r "$work/artifacts/$t/." "${FUZZ_KEEP:-build/fuzz-crashes}/$t/"
    echo "fuzz: $t FAILED; inputs kept in ${FUZZ_KEEP:-build/fuzz-crashes}/$t/" >&2
    failed+=("$t")
    summary+=("$t: CRASH")
  fi
  regressions="tests/fuzz/regressions/$t"
  if compgen -G "$regressions/*" >/dev/null; then
    if "$bin" -runs=1 "$regressions"/* >"$work/$t.regressions.log" 2>&1; then
      summary+=("$t: $(find "$regressions" -type f | wc -l) regression inputs pass")
    else
      tail -n 60 "$work/$t.regressions.log" >&2
      failed+=("$t (regressions)")
      summary+=("$t: a regression input FAILS")
    fi
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
