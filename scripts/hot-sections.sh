#!/bin/bash
# Writes cli/hot-sections.txt: the text sections of the functions the tool runs on its start path,
# run by run (each run's new functions in name order), for gold's --section-ordering-file
# (cli/CMakeLists.txt), which lays the listed sections out together, in that order.
#
# Why: the executable is 2.4 MB of text, and an apply runs a few hundred functions spread across
# it; every 64 KiB window it touches is a page fault (the kernel maps 16 pages per fault), and
# page faults are the largest cost of ours above any process's start-up (docs/performance.md).
# Laid out together, they fault in fewer windows: a native apply of the sidecar took about 155 page
# faults instead of 175 and mapped 2.6 MB instead of 3.6 (docs/performance.md).
#
# The list is data for the linker, never for correctness: a function missing from it is laid out
# where the linker puts it by default, a name that no longer exists is ignored. Regenerate it
# when the start path changes (new code on it, renamed functions); scripts/hot-sections.sh --check
# says how much of the list still names sections of the current build.
#
# usage: scripts/hot-sections.sh [--check] [BUILD_DIR]   (root: the applies run in namespaces it
#        makes; needs valgrind). BUILD_DIR defaults to build/release.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
build=${1:-build/release}
tool=$(realpath "$build/cli/istio-iptables")
list=cli/hot-sections.txt

if [ $check = 1 ]; then
  # Sections of the current build's objects (ours and libstdc++'s, both compiled with function
  # sections) against the list.
  for t in g++ objdump; do
    command -v $t >/dev/null || { echo "hot-sections: --check needs $t" >&2; exit 1; }
  done
  have=$(mktemp)
  trap 'rm -f "$have"' EXIT
  { find "$build/lib" "$build/cli" -name '*.o' -print0 | xargs -0 objdump -h
    objdump -h "$(g++ -print-file-name=libstdc++.a)"; } |
    awk '$2 ~ /^\.text\./ {print $2}' | sort -u > "$have"
  # A function counts as laid out when one of its lines (its name, the base variant of a
  # constructor, the startup section of main) names a section the objects have. libnftnl's
  # functions never do (Debian builds it without function sections).
  python3 - "$list" "$have" <<'EOF'
import sys
have = set(open(sys.argv[2]).read().split())
functions = {}
for line in open(sys.argv[1]):
    section = line.strip()
    name = section.split(".", 3)[-1] if section.startswith(".text.startup.") else section[len(".text."):]
    base = name.replace("C2E", "C1E").replace("D2E", "D1E")
    functions[base] = functions.get(base, False) or section in have
libnftnl = [f for f in functions if f.startswith("nftnl_")]
ours = [f for f in functions if not f.startswith("nftnl_")]
found = sum(functions[f] for f in ours)
print(f"{found} of {len(ours)} listed functions have a section in the build ({len(libnftnl)} of libnftnl's, "
      "which has none, not counted)")
EOF
  exit 0
fi

command -v valgrind >/dev/null || { echo "hot-sections: needs valgrind" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sidecar=(-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020
         --log_output_level=default:info --redirect-dns --dns-servers 10.96.0.10,fd00:10:96::a --ipv6 on)
# The init container's runs, most common first: native nftables, iptables-nft in-process, legacy
# libiptc, then a dry run. Each apply in a fresh namespace of its own.
runs=("${sidecar[*]@Q} --native-nftables"
      "${sidecar[*]@Q} --force-iptables-binary nft"
      "${sidecar[*]@Q} --backend libiptc"
      "${sidecar[*]@Q} --native-nftables --dry-run")
i=0
for args in "${runs[@]}"; do
  i=$((i + 1))
  unshare -n sh -c "ip link set lo up; XTABLES_LOCKFILE=${work@Q}/xtables.lock valgrind --tool=callgrind \
    --demangle=no --callgrind-out-file=${work@Q}/run$i.out ${tool@Q} $args" >"$work/run$i.log" 2>&1 \
    || { echo "hot-sections: run $i failed: $args" >&2; tail -5 "$work/run$i.log" >&2; exit 1; }
done

python3 - "$tool" "$work" "$i" > "$work/list" <<'EOF'
import re, sys
tool, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
order, seen = [], set()
for i in range(1, runs + 1):
    # callgrind's format names an object or a function once, at its first mention (as "(id) name",
    # in an ob=/cob= or fn=/cfn= line), and by "(id)" after that; an fn= line is a function that
    # ran, in the object of the last ob= line.
    objects, names, ran, current = {}, {}, [], None
    for line in open(f"{work}/run{i}.out"):
        m = re.match(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not m:
            continue
        kind, ident, name = m.groups()
        if kind.endswith("ob"):
            if name:
                objects[ident] = name
            if kind == "ob":
                current = objects.get(ident)
        else:
            if name:
                names[ident] = name
            if kind == "fn" and current == tool:
                ran.append(ident)
    # A function of the tool's own text (ours, libstdc++'s, libnftnl's), by its symbol; callgrind
    # names what it has no symbol for by address, and those are left out. Each run's new names in
    # name order: callgrind's own order changes from run to run, and the list should not.
    fresh = set()
    for ident in ran:
        name = names.get(ident, "")
        if re.match(r"^[A-Za-z_][A-Za-z0-9_.$]*$", name) and name not in seen:
            fresh.add(name)
    seen |= fresh
    order.extend(sorted(fresh))
print(f"hot-sections: {len(order)} functions from {runs} runs", file=sys.stderr)
for name in order:
    # A constructor or destructor's complete and base variants share one section, named by either.
    variants = [name] + [name.replace(a, b) for a, b in (("C1E", "C2E"), ("D1E", "D2E")) if a in name]
    for v in variants:
        print(f".text.{v}")
    if name == "main" or name.startswith("_GLOBAL__sub_I_"):
        print(f".text.startup.{name}")
EOF
mv "$work/list" "$list"  # whole or not at all: a failed run leaves the old list in place
echo "wrote $(grep -c . "$list") sections to $list"
