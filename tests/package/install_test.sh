#!/bin/sh
# The library as C++ users take it: `cmake --install` into a staging prefix, then examples/embed
# built against that prefix alone, once through the CMake package (find_package) and once through
# pkg-config. Both programs must print exactly what the CLI prints for the same sidecar with
# --dry-run: the CLI is the independent reference, the example goes through the installed headers
# and archive only.
#
# Also: every installed public header compiles on its own against the staged include folder (a
# public header including one that is not installed fails here, not at a user's), no header of
# lib/system or cli/ is installed, and the package refuses a version it is not compatible with.
#
#   sh tests/package/install_test.sh BUILD_DIR SOURCE_DIR BUILD/cli/istio-iptables
set -eu
build=$1 src=$2 tool=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }
ok "cmake --install $build --prefix <staging>"

# What the layout must hold (GNUInstallDirs' defaults for a non-/usr prefix).
for f in bin/istio-iptables lib/libistio_iptables_core.a include/istio_iptables/core/planner.h \
         lib/cmake/istio_iptables/istio_iptablesConfig.cmake lib/cmake/istio_iptables/istio_iptablesConfigVersion.cmake \
         lib/pkgconfig/istio_iptables.pc share/man/man8/istio-iptables.8.gz \
         share/bash-completion/completions/istio-iptables share/zsh/vendor-completions/_istio-iptables; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
ok "binary, archive, headers, CMake package, pkg-config file, man page and completions are installed"
if find "$prefix/include" -path '*system*' -o -name 'app.h' -o -name 'explain.h' | grep -q .; then
  fail "a header of lib/system or cli/ is installed: $(find "$prefix/include" -path '*system*' -o -name app.h)"
fi
ok "no header of lib/system or cli/ is installed"

# Each public header on its own, with nothing but the staged include folder.
for h in "$prefix"/include/istio_iptables/core/*.h; do
  printf '#include <core/%s>\n' "$(basename "$h")" >"$work/one.cc"
  c++ -std=c++17 -fsyntax-only -I"$prefix/include/istio_iptables" "$work/one.cc" 2>"$work/one.log" ||
    { cat "$work/one.log"; fail "core/$(basename "$h") does not compile on its own from the install"; }
done
ok "every installed header compiles on its own ($(ls "$prefix"/include/istio_iptables/core | wc -l) headers)"

# The reference: the CLI's own dry-run of the same command.
"$tool" -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020 --ipv6 off --dry-run \
  >"$work/expected.txt"
grep -q COMMIT "$work/expected.txt" || fail "the CLI's dry-run printed no rules"

build_embed() {  # build_embed NAME CMAKE-ARGS...
  name=$1
  shift
  # The source tree's own folders must not be found: only the staging prefix is searched.
  env PKG_CONFIG_PATH="$prefix/lib/pkgconfig" PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" \
    cmake -S "$src/examples/embed" -B "$work/$name" -DCMAKE_BUILD_TYPE=Release "$@" >"$work/$name.log" 2>&1 &&
    cmake --build "$work/$name" >>"$work/$name.log" 2>&1 || { cat "$work/$name.log"; fail "examples/embed ($name) does not build"; }
  "$work/$name/embed" >"$work/$name.txt" || fail "examples/embed ($name) exits $?"
  cmp -s "$work/expected.txt" "$work/$name.txt" || {
    diff "$work/expected.txt" "$work/$name.txt" || true
    fail "examples/embed ($name) prints other rules than the CLI's dry-run"
  }
  ok "examples/embed built by $name prints exactly the CLI's dry-run ($(wc -l <"$work/$name.txt") lines)"
}
build_embed cmake-package -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
build_embed pkg-config -DEMBED_WITH_PKG_CONFIG=ON

# The version file: this minor version is accepted, another is refused (0.x: SameMinorVersion).
version=$(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/istio_iptables.pc")
mkdir -p "$work/want"
cat >"$work/want/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(want LANGUAGES CXX)
find_package(istio_iptables \${WANT} REQUIRED)
EOF
cmake -S "$work/want" -B "$work/want/ok" -DWANT="${version%.*}" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1 ||
  fail "find_package(istio_iptables $version) fails"
if cmake -S "$work/want" -B "$work/want/bad" -DWANT=99.0 -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
  fail "find_package(istio_iptables 99.0) succeeds"
fi
ok "find_package accepts version ${version%.*} and refuses 99.0"
echo "$passed passed, 0 failed"
