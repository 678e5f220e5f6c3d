#!/usr/bin/env python3
"""The nf_tables variant side by side: our in-process store (one transaction, both families)
against the iptables-nft-restore + ip6tables-nft-restore pair fed with our own dry-run text, each
run in a fresh network namespace, the two interleaved run by run (A B A B ...), whole process
timed by bench/measure.cc through bench/inner.py.

Cases: apply of the reference sidecar (both families, DNS on) into a fresh namespace; re-apply of
the same configuration over itself (ours: nothing to change; the pair: iptables-nft-restore in
flush mode, as a re-run of Istio's restore would be); cleanup (ours against the pair restoring
our `cleanup --dry-run` text); and 10 000 excluded ports (IPv4). Prints a markdown table.
usage: bench/iptables_nft.py [--runs N] [--tool PATH] [--measure PATH]
Needs root (unshare -n), iptables-nft and nft. Never touches the host's rules.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INNER = os.path.join(ROOT, "bench", "inner.py")
SIDECAR = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*",
           "-d", "15090,15021,15020", "--redirect-dns", "--dns-servers", "10.96.0.10,fd00:10:96::a", "--ipv6", "on"]

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=11)
ap.add_argument("--tool", default=os.path.join(ROOT, "build", "release", "cli", "istio-iptables"))
ap.add_argument("--measure", default=os.path.join(ROOT, "build", "release", "bench_measure"))
opts = ap.parse_args()
TOOL, MEASURE = os.path.abspath(opts.tool), os.path.abspath(opts.measure)
WORK = tempfile.mkdtemp(prefix="iptables-nft-bench-")
NFT = ["--force-iptables-binary", "nft"]


def write(name, text):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def dry_run(args, command=()):
    p = subprocess.run([TOOL, *command, *args, "--dry-run"], capture_output=True, text=True, check=True)
    v4, _, v6 = p.stdout.partition("# ip6tables-restore\n")
    return v4, v6


def pair(v4, v6, flush=False):
    """The restore pair as one shell command line."""
    mode = "" if flush else " --noflush"
    line = f"iptables-nft-restore{mode} < {v4}"
    return line + (f" && ip6tables-nft-restore{mode} < {v6}" if v6 else "")


def run(spec):
    spec = {**spec, "measure": MEASURE}
    p = subprocess.run(["unshare", "-n", sys.executable, INNER, "-"], input=json.dumps(spec), capture_output=True,
                       text=True)
    if p.returncode != 0:
        sys.exit(f"benchmark run failed: {p.stderr}")
    r = json.loads(p.stdout)
    if r["rc"] != 0:
        sys.exit(f"measured command failed ({r['rc']}): {spec} {r['err']}")
    return r


def compare(title, a, b):
    """Runs a and b alternately; returns a table row."""
    ta, tb, ra, rb = [], [], [], []
    for _ in range(opts.runs):
        x, y = run(a), run(b)
        ta.append(x["ms"])
        tb.append(y["ms"])
        ra.append(x["rss_kib"])
        rb.append(y["rss_kib"])
    ma, mb = statistics.median(ta), statistics.median(tb)
    ratios = statistics.median(x / y for x, y in zip(ta, tb))
    row = (f"| {title} | {ma:.1f} ms ({min(ta):.1f}–{max(ta):.1f}) | {mb:.1f} ms ({min(tb):.1f}–{max(tb):.1f}) | "
           f"{ratios:.2f} | {statistics.median(ra) / 1024:.1f} / {statistics.median(rb) / 1024:.1f} MiB |")
    print(row, flush=True)
    return row


v4, v6 = dry_run(SIDECAR)
f4, f6 = write("v4", v4), write("v6", v6)
ours_apply = [TOOL, *SIDECAR, *NFT]
# What cleanup removes, as restore text: `cleanup --dry-run` where the rules are in place.
script = (f"ip link set lo up && {shlex.join(ours_apply)} 2>/dev/null && "
          f"{shlex.join([TOOL, 'cleanup', *SIDECAR, *NFT, '--dry-run'])} 2>/dev/null")
removal = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, check=True).stdout
r4, _, r6 = removal.partition("# ip6tables-restore\n")
keep = lambda text: "".join(l for l in text.splitlines(True) if not l.startswith("# ip"))
assert "-X ISTIO_OUTPUT" in r4, removal
g4, g6 = write("c4", keep(r4)), write("c6", keep(r6))

print(f"runs: {opts.runs} per side, interleaved; each in a fresh network namespace\n")
print("| case | ours, in-process nf_tables | iptables-nft-restore pair | ratio (median of pairs) | peak RSS ours / pair |")
print("|---|---|---|---|---|")
compare("apply, reference sidecar, both families", {"argv": ours_apply}, {"script": pair(f4, f6)})
compare("re-apply, nothing changed", {"setup": [ours_apply], "argv": ours_apply},
        {"setup": [pair(f4, f6)], "script": pair(f4, f6, flush=True)})
compare("cleanup", {"setup": [ours_apply], "argv": [TOOL, "cleanup", *SIDECAR, *NFT]},
        {"setup": [pair(f4, f6)], "script": pair(g4, g6)})
ports = ",".join(str(20000 + i) for i in range(10000))
scale = [*SIDECAR[:-2], "--ipv6", "off", "-o", ports]
s4, _ = dry_run(scale)
compare("apply, 10 000 excluded ports (IPv4, 20 000 rules)", {"argv": [TOOL, *scale, *NFT]},
        {"script": f"iptables-nft-restore --noflush < {write('s4', s4)}"})
