#!/bin/sh
# The Debian packages as an administrator takes them: `cpack -G DEB` in the build folder makes
# istio-iptables (binary, man page, completions) and libistio-iptables-dev (archive, headers,
# CMake package, pkg-config file). Checked against independent sources:
#
#   - each package's file list (dpkg-deb -c) holds what its part is for and nothing of the other;
#   - the binary package depends on the Debian package owning each shared object ldd lists for the
#     binary (dpkg -S), which is what apt must install for it to start;
#   - the packaged binary, extracted (dpkg-deb -x) and run, prints exactly what the built binary
#     prints for the reference sidecar's --dry-run, and it is stripped.
#
#   sh tests/package/deb_test.sh BUILD_DIR BUILD/cli/istio-iptables
set -eu
build=$1 tool=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }

(cd "$build" && cpack -G DEB -B "$work/out") >"$work/cpack.log" 2>&1 || { cat "$work/cpack.log"; fail "cpack -G DEB"; }
runtime=$(ls "$work"/out/istio-iptables_*.deb 2>/dev/null || true)
dev=$(ls "$work"/out/libistio-iptables-dev_*.deb 2>/dev/null || true)
[ -f "$runtime" ] && [ -f "$dev" ] || { ls "$work/out"; fail "cpack made no istio-iptables and libistio-iptables-dev packages"; }
ok "cpack -G DEB makes $(basename "$runtime") and $(basename "$dev")"

dpkg-deb -c "$runtime" | awk '{print $NF}' >"$work/runtime.list"
dpkg-deb -c "$dev" | awk '{print $NF}' >"$work/dev.list"
for f in ./usr/bin/istio-iptables ./usr/share/man/man8/istio-iptables.8.gz \
         ./usr/share/bash-completion/completions/istio-iptables ./usr/share/zsh/vendor-completions/_istio-iptables; do
  grep -qx "$f" "$work/runtime.list" || { cat "$work/runtime.list"; fail "istio-iptables lacks $f"; }
done
if grep -E '\.(h|a|pc|cmake)$' "$work/runtime.list"; then fail "istio-iptables holds development files"; fi
ok "istio-iptables holds the binary, the man page and both completions, and no development file"
for f in ./usr/include/istio_iptables/core/planner.h ./usr/include/istio_iptables/core/settings.h \
         ./usr/lib/libistio_iptables_core.a ./usr/lib/pkgconfig/istio_iptables.pc \
         ./usr/lib/cmake/istio_iptables/istio_iptablesConfig.cmake ./usr/lib/cmake/istio_iptables/istio_iptables-targets.cmake; do
  grep -qx "$f" "$work/dev.list" || { cat "$work/dev.list"; fail "libistio-iptables-dev lacks $f"; }
done
if grep -E 'bin/|/man/' "$work/dev.list"; then fail "libistio-iptables-dev holds the binary or the man page"; fi
ok "libistio-iptables-dev holds the archive, the headers, the CMake package and the pkg-config file"

# Depends: the owner of every shared object the binary needs.
depends=$(dpkg-deb -f "$runtime" Depends)
echo "Depends: $depends"
# ldd's list, and the two libraries the binary loads with dlopen (lib/system/libiptc_store.cc).
# (those of the tool's architecture: beside its libc)
libdir=$(dirname "$(ldd "$tool" | sed -n 's/.*libc\.so\.6 => \(\/[^ ]*\) .*/\1/p')")
dlopened=$(ldconfig -p | awk -v dir="$libdir/" '($1 == "libip4tc.so.2" || $1 == "libip6tc.so.2") && index($NF, dir) == 1 {print $NF}' | sort -u)
[ "$(echo "$dlopened" | wc -l)" -ge 2 ] || fail "the loader's cache lacks libip4tc.so.2 or libip6tc.so.2"
for lib in $(ldd "$tool" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p') $dlopened; do
  # dpkg knows a file by the path its package ships (merged /usr: /lib/... or /usr/lib/...).
  owner=""
  for path in "$lib" "$(readlink -f "$lib")" "/usr$lib"; do
    [ -n "$owner" ] || owner=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
  done
  [ -n "$owner" ] || fail "no package owns $lib"
  echo "$depends" | tr ',' '\n' | grep -q "^ *$owner\b" || fail "Depends lacks $owner (owner of $lib)"
done
ok "istio-iptables depends on the package of every library ldd lists and of the two it loads with dlopen"
[ "$(dpkg-deb -f "$runtime" Package)" = istio-iptables ] && [ -n "$(dpkg-deb -f "$runtime" Version)" ] &&
  [ "$(dpkg-deb -f "$runtime" Architecture)" = "$(dpkg --print-architecture)" ] ||
  fail "control fields: $(dpkg-deb -f "$runtime" Package Version Architecture)"
ok "control: $(dpkg-deb -f "$runtime" Package Version Architecture | tr '\n' ' ')"

# The packaged binary, run from the extracted tree.
dpkg-deb -x "$runtime" "$work/root"
set -- -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020 --ipv6 off --dry-run
"$work/root/usr/bin/istio-iptables" "$@" >"$work/packaged.txt" || fail "the packaged binary exits $?"
"$tool" "$@" >"$work/built.txt"
grep -q COMMIT "$work/built.txt" && cmp -s "$work/built.txt" "$work/packaged.txt" ||
  fail "the packaged binary prints other rules than the built one"
ok "the packaged binary prints the reference sidecar's rules, as the built one does"
if readelf -S "$work/root/usr/bin/istio-iptables" | grep -q '\.debug_info'; then fail "the packaged binary is not stripped"; fi
ok "the packaged binary is stripped ($(stat -c %s "$work/root/usr/bin/istio-iptables") bytes)"
zcat "$work/root/usr/share/man/man8/istio-iptables.8.gz" | grep -q '^\.TH ISTIO-IPTABLES 8' || fail "the man page is not istio-iptables(8)"
ok "the packaged man page is istio-iptables(8)"
echo "$passed passed, 0 failed"
