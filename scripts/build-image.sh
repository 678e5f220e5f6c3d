#!/usr/bin/env bash
# Builds the init-container image (Containerfile) with podman from a binary built on this
# machine, and prints the image reference as its last line.
#
#   scripts/build-image.sh [--binary FILE | --build-dir DIR] [--tag REF] [--oci-dir DIR]
#
# Without --binary it builds one first (in --build-dir, default build/image: Release, unused
# sections dropped, no tests). The binary is stripped and staged with exactly the shared objects
# `ldd` lists, the two it loads with dlopen (libip4tc, libip6tc) and the dynamic loader (Debian 12
# has no static libip4tc, libip6tc or libmnl; docs/packaging.md). --oci-dir also writes the image as an OCI layout (podman save --format
# oci-dir), ready for `umoci unpack`. With
# ISTIO_IPTABLES_PODMAN_ROOT=DIR, podman keeps its images under DIR instead of the user's store
# (the tests use a throwaway one).
set -euo pipefail
cd "$(dirname "$0")/.."

binary="" build_dir=build/image tag="" oci_dir=""
while (($#)); do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --oci-dir) oci_dir=$2; shift 2 ;;
    *) echo "usage: $0 [--binary FILE | --build-dir DIR] [--tag REF] [--oci-dir DIR]" >&2; exit 2 ;;
  esac
done
version=$(sed -n 's/^project(istio-iptables VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$tag" ] || tag="localhost/istio-iptables:${version:-latest}"
for tool in podman ldd strip; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
podman=(podman)
if [ -n "${ISTIO_IPTABLES_PODMAN_ROOT:-}" ]; then
  podman+=(--root "$ISTIO_IPTABLES_PODMAN_ROOT/storage" --runroot "$ISTIO_IPTABLES_PODMAN_ROOT/run"
           --storage-driver vfs)
fi

if [ -z "$binary" ]; then
  # Small: every function and datum in its own section so the linker drops the unused. -O2, not
  # -Os: at -Os gcc calls ceil() instead of inlining it, and libm (0.9 MB) joins the image.
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DISTIO_IPTABLES_TESTS=OFF \
    "-DCMAKE_CXX_FLAGS=-ffunction-sections -fdata-sections" "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--gc-sections" >/dev/null
  cmake --build "$build_dir" -j"$(nproc)" --target istio-iptables >&2
  binary=$build_dir/cli/istio-iptables
fi
[ -x "$binary" ] || { echo "error: $binary is not an executable" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
mkdir -p "$root/usr/local/bin" "$root/run" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
strip --strip-all -o "$root/usr/local/bin/istio-iptables" "$binary"
ln -s istio-iptables "$root/usr/local/bin/pilot-agent"
# Every object ldd resolves ("libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (...)") and the loader
# ("/lib64/ld-linux-x86-64.so.2 (...)"), at the path ldd names; a missing one is an error.
if ldd "$binary" | grep -q 'not found'; then
  echo "error: ldd cannot resolve every library of $binary" >&2
  exit 1
fi
while read -r path; do
  mkdir -p "$root$(dirname "$path")"
  cp -L "$path" "$root$path"
done < <(ldd "$binary" | sed -n -e 's/.*=> \(\/[^ ]*\) .*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) .*/\1/p' | sort -u)
# And the libraries it loads with dlopen when the legacy backend first opens a table
# (lib/system/libiptc_store.cc), at the path the loader's cache names.
# Those of the binary's architecture: in the folder of its libc.
libdir=$(dirname "$(ldd "$binary" | sed -n 's/.*libc\.so\.6 => \(\/[^ ]*\) .*/\1/p')")
for soname in libip4tc.so.2 libip6tc.so.2; do
  path=$(ldconfig -p | awk -v so="$soname" -v dir="$libdir/" '$1 == so && index($NF, dir) == 1 {print $NF; exit}')
  [ -n "$path" ] || { echo "error: the loader's cache has no $soname (package ${soname%%.so*}2)" >&2; exit 1; }
  mkdir -p "$root$(dirname "$path")"
  cp -L "$path" "$root$path"
done

"${podman[@]}" build --quiet --layers=false --timestamp 0 --build-arg "VERSION=$version" -f Containerfile -t "$tag" "$stage" >&2
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$tag")
echo "image $tag: $size bytes ($(du -sb "$root" | cut -f1) bytes unpacked)" >&2
if [ -n "$oci_dir" ]; then
  rm -rf "$oci_dir"
  "${podman[@]}" save --quiet --format oci-dir -o "$oci_dir" "$tag" >&2
fi
echo "$tag"
