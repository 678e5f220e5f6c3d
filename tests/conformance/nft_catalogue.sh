#!/bin/sh
# Every catalogue scenario's native nftables script (rules/*/expected.nft) loads as it is:
# `nft --check` in a fresh network and mount namespace, with the group names some scenarios use
# (java, ftp-test, ftp) added to a private /etc/group, since nft resolves group names on load.
# Needs root and nft; exits 77 (skipped) otherwise.  usage: nft_catalogue.sh REPO_ROOT
[ "$(id -u)" = 0 ] && command -v nft >/dev/null && command -v unshare >/dev/null || exit 77
repo=$1
groups=$(mktemp)
trap 'rm -f "$groups"' EXIT
{ cat /etc/group; echo "java:x:50001:"; echo "ftp-test:x:50002:"; grep -q '^ftp:' /etc/group || echo "ftp:x:50003:"; } >"$groups"
n=0
for f in "$repo"/rules/*/expected.nft; do
  unshare -n -m sh -c 'mount --bind "$1" /etc/group && nft -c -f "$2"' sh "$groups" "$f" || { echo "refused: $f"; exit 1; }
  n=$((n + 1))
done
echo "$n scripts load"
