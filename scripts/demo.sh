#!/usr/bin/env bash
# The main job on its embedded default: the injected sidecar of the reference listing
# (Istio 1.24 layout, DNS capture to kube-dns at 10.96.0.10, IPv4 pod), programmed into a
# throwaway network namespace, listed as `iptables -t nat -nvL` shows it. The host's rules are
# never touched: everything happens inside `unshare -n`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j"$(nproc)" --target istio-iptables
tool=$PWD/build/release/cli/istio-iptables
args=(-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020
      --log_output_level=default:info --compat 1.24 --ipv6 off --dns-servers 10.96.0.10)
sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
# The tool applies the rules itself (libiptc, in-process), then iptables lists them.
$sudo env ISTIO_META_DNS_CAPTURE=true XTABLES_LOCKFILE=/tmp/istio-iptables-demo.lock unshare -n sh -c '
  ip link set lo up && "$@" && iptables-nft -t nat -nvL' sh "$tool" "${args[@]}"
