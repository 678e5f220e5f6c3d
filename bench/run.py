#!/usr/bin/env python3
"""The benchmark suite: apply latency and scale, ours against iptables-restore, nft and Istio's own
sequences (iptables and native nftables mode), each run in a fresh network namespace, every
comparison interleaved in one run, while a namespace of the benchmark's own keeps every netfilter
hook in use, as on a Kubernetes node (see FIRST_USER below; one scenario is measured without it).

Prints a markdown table and writes it, with the date and the machine, to docs/performance.md,
and draws the scale results with gnuplot (docs/perf-plan-size.png, docs/perf-table-size.png).
usage: bench/run.py [--runs N] [--quick] [--tool PATH] [--versus PATH] [--no-write] [--only TEXT ...]
Needs root (ip netns, nsenter), iptables (legacy and nft), nft and gnuplot. Never touches the host's rules.
"""
import argparse
import datetime
import itertools
import json
import os
import platform
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INNER = os.path.join(ROOT, "bench", "inner.py")
INJECTED = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*",
            "-d", "15090,15021,15020", "--log_output_level=default:info"]
DNS = ["--redirect-dns", "--dns-servers", "10.96.0.10,fd00:10:96::a"]

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=11)
ap.add_argument("--quick", action="store_true", help="fewer sizes, for a smoke test")
ap.add_argument("--tool", default=os.path.join(ROOT, "build", "release", "cli", "istio-iptables"))
ap.add_argument("--no-write", action="store_true")
ap.add_argument("--versus", metavar="PATH",
                help="another build of the tool, measured beside --tool in the nftables apply (A/B of a change)")
ap.add_argument("--measure", default=os.path.join(ROOT, "build", "release", "bench_measure"))
ap.add_argument("--only", nargs="+", metavar="TEXT",
                help="run only the scenarios whose title contains one of these texts (implies --no-write)")
opts = ap.parse_args()
if opts.only:
    opts.no_write = True  # a partial table must not replace the whole one in docs/performance.md
TOOL = os.path.abspath(opts.tool)
WORK = tempfile.mkdtemp(prefix="istio-iptables-bench-")
LOCK = os.path.join(WORK, "xtables.lock")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XTABLES_LOCKFILE": LOCK}


def write(name, text):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def dry_run(args):
    p = subprocess.run([TOOL] + args + ["--dry-run"], capture_output=True, text=True, env=ENV, check=True)
    text = p.stdout
    v4, v6 = (text.split("# ip6tables-restore\n", 1) + [""])[:2]
    return v4, v6


def per_rule_script(v4, v6, binary="iptables-legacy", wait=""):
    """One iptables process per chain and rule, as older tools did."""
    lines = ["set -e"]
    for text, b in ((v4, binary), (v6, binary.replace("iptables", "ip6tables"))):
        table = None
        for line in text.splitlines():
            if line.startswith("* "):
                table = line[2:]
            elif line.startswith("-N ") or line.startswith("-A ") or line.startswith("-I "):
                lines.append(f"{b} {wait} -t {table} {line}")
    return write(f"per_rule_{binary}.sh", "\n".join(lines) + "\n")


def istio_detection():
    """Istio's binary detection (docs/planner.md, "Around the plan: Istio's binary detection") for both families and both variants."""
    cmds = []
    for fam in ("iptables", "ip6tables"):
        for variant, wait in (("legacy", "--wait=30"), ("nft", "")):
            x = f"{fam}-{variant}"
            cmds += [f"{x}-save >/dev/null", f"{x}-save --version >/dev/null",
                     f"{x} -t nat -A INPUT -p 255 -j RETURN {wait}", f"{x} -t nat -D INPUT -p 255 -j RETURN {wait} || true"]
    return cmds


def istio_apply_script(v4, v6):
    """Istio's init container on a fresh pod: detection, state check, restores, final listing
    (sections 3.3 and 5). In a namespace without rules it picks iptables-nft."""
    f4, f6 = write("v4.rules", v4), write("v6.rules", v6)
    cmds = istio_detection() + ["iptables-nft-save >/dev/null", "ip6tables-nft-save >/dev/null",
                                f"iptables-nft-restore --noflush < {f4}", f"ip6tables-nft-restore --noflush < {f6}",
                                "iptables-nft-save >/dev/null", "ip6tables-nft-save >/dev/null"]
    return write("istio_apply.sh", "set -e\n" + "\n".join(cmds) + "\n")


def rule_ops(text):
    """(table, chain, options) of every -A/-I line of a restore text."""
    ops, table = [], None
    for line in text.splitlines():
        if line.startswith("* "):
            table = line[2:]
        elif line.startswith("-A ") or line.startswith("-I "):
            parts = line.split()
            ops.append((table, parts[1], parts[3:] if line.startswith("-I ") else parts[2:]))
    return ops


def check_commands(text, binary):
    return [f"{binary} -t {table} -C {chain} {' '.join(shlex.quote(p) for p in spec)}" for table, chain, spec in rule_ops(text)]


def istio_reapply_script(v4, v6):
    """Istio's rerun with the rules in place: detection, save, one -C per rule, final listing."""
    cmds = istio_detection() + ["iptables-nft-save >/dev/null", "ip6tables-nft-save >/dev/null"]
    cmds += check_commands(v4, "iptables-nft") + check_commands(v6, "ip6tables-nft")
    cmds += ["iptables-nft-save >/dev/null", "ip6tables-nft-save >/dev/null"]
    return write("istio_reapply.sh", "set -e\n" + "\n".join(cmds) + "\n")


def istio_cleanup_script(v4, v6):
    """Istio's --cleanup-only: detection, then -D of our jumps and rules in built-in chains, -F and
    -X of each chain (section 4.4), every error ignored."""
    cmds = istio_detection()
    for text, b in ((v4, "iptables-nft"), (v6, "ip6tables-nft")):
        ops = rule_ops(text)
        chains = []
        for table, chain, spec in reversed(ops):
            target = spec[spec.index("-j") + 1] if "-j" in spec else ""
            if not chain.startswith("ISTIO_") or target.startswith("ISTIO_"):
                cmds.append(f"{b} -t {table} -D {chain} {' '.join(shlex.quote(p) for p in spec)} 2>/dev/null || true")
            if chain.startswith("ISTIO_") and (table, chain) not in chains:
                chains.append((table, chain))
        for table, chain in chains:
            cmds += [f"{b} -t {table} -F {chain} 2>/dev/null || true", f"{b} -t {table} -X {chain} 2>/dev/null || true"]
    return write("istio_cleanup.sh", "\n".join(cmds) + "\n")


def foreign_rules(n):
    """n foreign nat rules, kube-proxy style: 100 service chains with n/100 rules each."""
    lines = ["*nat"]
    chains = 100
    for c in range(chains):
        lines.append(f":KUBE-SVC-{c:04d} - [0:0]")
    lines.append(":KUBE-SERVICES - [0:0]")
    lines.append("-A OUTPUT -j KUBE-SERVICES")
    for c in range(chains):
        lines.append(f"-A KUBE-SERVICES -d 198.18.{c // 250}.{c % 250 + 1}/32 -p tcp --dport 80 -j KUBE-SVC-{c:04d}")
    per = max(1, n // chains - 1)
    for c in range(chains):
        for k in range(per):
            i = c * per + k
            lines.append(f"-A KUBE-SVC-{c:04d} -s 198.19.{i // 250 % 250}.{i % 250 + 1}/32 -j RETURN")
    lines.append("COMMIT")
    return write(f"foreign_{n}.rules", "\n".join(lines) + "\n")


def measure(spec, netns):
    # The spec goes through standard input: with 10 000 CIDRs it is longer than one argument may be.
    p = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", sys.executable, INNER, "-"], input=json.dumps(spec),
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"benchmark step failed: {p.stderr}")
    r = json.loads(p.stdout)
    if r["rc"] != 0:
        raise SystemExit(f"measured command failed ({r['rc']}): {spec}\n{r['err']}")
    return r


# Every run gets a fresh namespace, made before its round starts and deleted after it ends. A
# network namespace is torn down by a kernel worker after its last user leaves, and that teardown
# (conntrack, nf_tables, the rtnl lock) would otherwise overlap the next measurement and tax
# whichever method comes next, the more so the more it touches rtnetlink; with whole rounds made
# and deleted together, and a pause after the deletion, no measurement shares the machine with a
# teardown.
NAMESPACES_MADE = itertools.count()


def make_namespaces(count):
    names = [f"istio-bench-{os.getpid()}-{next(NAMESPACES_MADE)}" for _ in range(count)]
    made = []
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
    except BaseException:
        delete_namespaces(made)
        raise
    return names


def delete_namespaces(names):
    for name in names:
        subprocess.run(["ip", "netns", "del", name], check=False)
    time.sleep(0.5)


# A Kubernetes node's netfilter hooks are in use before any pod starts: kube-proxy's rules in the
# host namespace, other pods' capture rules in theirs. The kernel counts a hook's users across all
# namespaces, and the first user of a hook on the whole machine (and the last to leave) flips a
# static key, which rewrites kernel text on every CPU: on this 2-vCPU VM that costs about 0.5 to
# 0.9 ms, the more so when the other vCPU is idle, and it falls on whichever command commits
# first, ours and nft's alike. So that no measurement pays it, a namespace of our own holds a base
# chain on every hook of both families, and conntrack, for the whole benchmark, as a node's other
# users would; the "first netfilter user" scenario is measured without it. Never the host's rules.
FIRST_USER = "first netfilter user on the machine (no namespace holds the hooks): "
HOOK_HOLDER = write("hook_holder.nft", "table inet istio-bench-hooks {\n" + "".join(
    f"  chain filter_{h} {{ type filter hook {h} priority 0; ct state established accept; }}\n"
    for h in ("prerouting", "input", "forward", "output", "postrouting")) + "".join(
    f"  chain nat_{h} {{ type nat hook {h} priority 0; }}\n"
    for h in ("prerouting", "input", "output", "postrouting")) + "}\n")


def make_hook_holder():
    name = f"istio-bench-{os.getpid()}-hooks"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", HOOK_HOLDER], check=True)
    except BaseException:
        delete_namespaces([name])
        raise
    return name


# ---- the measurements -------------------------------------------------------------------------

v4, v6 = dry_run(INJECTED + DNS + ["--ipv6", "on"])
f4, f6 = write("v4.rules", v4), write("v6.rules", v6)
ours = [TOOL] + INJECTED + DNS + ["--ipv6", "on"]
apply_setup_ours = [" ".join(shlex.quote(a) for a in ours + ["--backend", "libiptc"]) + " 2>/dev/null"]
apply_setup_nft = [f"iptables-nft-restore --noflush < {f4}", f"ip6tables-nft-restore --noflush < {f6}"]

groups = []  # (title, [(label, spec)], baseline label)
groups.append(("Apply: injected sidecar + DNS, IPv4 and IPv6, fresh namespace", [
    ("ours, libiptc", {"argv": ours + ["--backend", "libiptc"]}),
    ("ours, restore backend (legacy)", {"argv": ours + ["--backend", "restore", "--force-iptables-binary", "legacy"]}),
    ("iptables-legacy-restore + ip6tables-legacy-restore", {"script": f"iptables-legacy-restore --noflush < {f4} && ip6tables-legacy-restore --noflush < {f6}"}),
    ("Istio's sequence (detection, save, nft restores, save)", {"script": f"sh {istio_apply_script(v4, v6)}"}),
    ("one iptables-legacy call per rule", {"script": f"sh {per_rule_script(v4, v6)}"}),
], "iptables-legacy-restore + ip6tables-legacy-restore"))
groups.append(("Re-apply with the rules in place (no change needed)", [
    ("ours, libiptc", {"setup": apply_setup_ours, "argv": ours + ["--backend", "libiptc"]}),
    ("ours, restore backend (legacy)", {"setup": apply_setup_ours, "argv": ours + ["--backend", "restore", "--force-iptables-binary", "legacy"]}),
    ("Istio's sequence (detection, save, -C per rule, save)", {"setup": apply_setup_nft, "script": f"sh {istio_reapply_script(v4, v6)}"}),
], "Istio's sequence (detection, save, -C per rule, save)"))
groups.append(("Cleanup", [
    ("ours, libiptc", {"setup": apply_setup_ours, "argv": [TOOL, "cleanup", "--ipv6", "on", "--backend", "libiptc"]}),
    ("Istio's --cleanup-only sequence", {"setup": apply_setup_nft, "script": f"sh {istio_cleanup_script(v4, v6)}"}),
], "Istio's --cleanup-only sequence"))

sizes = [10, 100, 1000] if opts.quick else [10, 100, 1000, 10000]
scale_rows = []
for n in sizes:
    cidrs = ",".join(f"{1 + i // 100}.{i % 100}.0.0/16" for i in range(n))  # rule data only: never routed
    ports = ",".join(str(20000 + i) for i in range(n))
    for what, extra in (("CIDRs", ["-x", cidrs]), ("ports", ["-o", ports])):
        args = INJECTED + ["--ipv6", "off"] + extra
        t4, _ = dry_run(args)
        r4 = write(f"scale_{what}_{n}.rules", t4)
        groups.append((f"Scale: {n} excluded {what} (IPv4)", [
            ("ours, libiptc", {"argv": [TOOL] + args + ["--backend", "libiptc"]}),
            ("iptables-legacy-restore", {"argv": ["iptables-legacy-restore", "--noflush"], "stdin": r4}),
        ], "iptables-legacy-restore"))
        scale_rows.append((what, n, len(groups) - 1))
        if n >= 1000:
            # check reads the table and diffs it against the plan: it should cost what an apply costs.
            groups.append((f"Check with the rules in place: {n} excluded {what} (IPv4)", [
                ("ours, check", {"setup": [[TOOL] + args + ["--backend", "libiptc"]],
                                 "argv": [TOOL, "check"] + args + ["--backend", "libiptc"]}),
                ("ours, apply (fresh namespace)", {"argv": [TOOL] + args + ["--backend", "libiptc"]}),
                ("ours, re-apply (rules in place: reads them too)",
                 {"setup": [[TOOL] + args + ["--backend", "libiptc"]], "argv": [TOOL] + args + ["--backend", "libiptc"]}),
            ], "ours, apply (fresh namespace)"))

foreign_rows = []
for n in ([10000] if opts.quick else [10000, 50000]):
    fr = foreign_rules(n)
    args = INJECTED + DNS + ["--ipv6", "off"]
    t4, _ = dry_run(args)
    r4 = write(f"foreign_plan_{n}.rules", t4)
    setup = [f"iptables-legacy-restore < {fr}"]
    groups.append((f"Namespace holding {n} foreign nat rules (IPv4)", [
        ("ours, libiptc", {"setup": setup, "argv": [TOOL] + args + ["--backend", "libiptc"]}),
        ("iptables-legacy-restore --noflush", {"setup": setup, "argv": ["iptables-legacy-restore", "--noflush"], "stdin": r4}),
    ], "iptables-legacy-restore --noflush"))
    foreign_rows.append((n, len(groups) - 1))

# ---- native nftables mode (--native-nftables): ours in-process against nft -------------------

def nft_script(args):
    """Our --dry-run of the native nftables mode: the script nft -f accepts (docs/nftables.md)."""
    return subprocess.run([TOOL] + args + ["--native-nftables", "--dry-run"], capture_output=True, text=True,
                          env=ENV, check=True).stdout


# Istio's pre-flight before every nft transaction (docs/nftables.md, "Applying, re-running and cleaning up in Istio"): `nft --version`, then
# `nft --check` of a throw-away table, then one `nft -f` of the whole transaction. Istio starts them
# from its own Go process; here a shell does, which adds one shell start-up to Istio's side.
NFT_PROBE = write("nft_probe.nft", 'add table inet test { comment "test" ; }\n')
# Istio's --cleanup-only transaction (docs/nftables.md, "Applying, re-running and cleaning up in Istio").
NFT_CLEANUP = write("nft_cleanup.nft", "".join(f"add table inet {t}\ndelete table inet {t}\n"
                                               for t in ("istio-proxy-nat", "istio-proxy-mangle", "istio-proxy-raw")))


def istio_nft_sequence(script):
    return f"nft --version >/dev/null && nft --check -f {NFT_PROBE} && nft -f {script}"


nft_args = INJECTED + DNS + ["--ipv6", "on"]  # the flags of rules/sidecar-dns-dual-stack
nft_file = write("sidecar_dns_dual.nft", nft_script(nft_args))
nft_ours = [TOOL] + nft_args + ["--native-nftables"]
nft_setup_ours = [nft_ours]
nft_setup_nft = [["nft", "-f", nft_file]]
nft_apply_methods = [
    ("ours, --native-nftables (in-process, one transaction)", {"argv": nft_ours}),
] + ([(f"the same, build {opts.versus}", {"argv": [os.path.abspath(opts.versus)] + nft_args + ["--native-nftables"]})]
     if opts.versus else []) + [
    ("nft -f of the same script (one process)", {"argv": ["nft", "-f", nft_file]}),
    ("Istio's nft sequence (nft --version, nft --check probe, nft -f)", {"script": istio_nft_sequence(nft_file)}),
    # The floor both sides pay (fork, exec, exit in a fresh namespace): the goal's ratio above it.
    ("/bin/true (process start-up floor)", {"argv": ["/bin/true"]}),
]
groups.append(("nftables apply: injected sidecar + DNS, IPv4 and IPv6, fresh namespace", nft_apply_methods,
               "nft -f of the same script (one process)"))
# The same apply on a machine where no namespace uses these netfilter hooks yet: measured in a
# phase of its own, after the hook holder (below) is gone.
groups.append((FIRST_USER + "nftables apply: injected sidecar + DNS, IPv4 and IPv6, fresh namespace",
               nft_apply_methods, "nft -f of the same script (one process)"))
groups.append(("nftables re-apply with the tables in place (no change needed)", [
    ("ours, --native-nftables (commits nothing)", {"setup": nft_setup_ours, "argv": nft_ours}),
    ("nft -f of the same script again (Istio's flush and refill)", {"setup": nft_setup_nft, "argv": ["nft", "-f", nft_file]}),
    ("Istio's nft sequence again (nft --version, nft --check probe, nft -f)",
     {"setup": nft_setup_nft, "script": istio_nft_sequence(nft_file)}),
], "nft -f of the same script again (Istio's flush and refill)"))
groups.append(("nftables cleanup", [
    ("ours, cleanup --native-nftables", {"setup": nft_setup_ours, "argv": [TOOL, "cleanup", "--ipv6", "on", "--native-nftables"]}),
    ("nft -f of Istio's cleanup transaction (one process)", {"setup": nft_setup_nft, "argv": ["nft", "-f", NFT_CLEANUP]}),
    ("Istio's --cleanup-only nft sequence (nft --version, nft --check probe, nft -f)",
     {"setup": nft_setup_nft, "script": istio_nft_sequence(NFT_CLEANUP)}),
], "nft -f of Istio's cleanup transaction (one process)"))

for n in sizes:
    cidrs = ",".join(f"{1 + i // 100}.{i % 100}.0.0/16" for i in range(n))  # rule data only: never routed
    ports = ",".join(str(20000 + i) for i in range(n))
    for what, extra in (("CIDRs", ["-x", cidrs]), ("ports", ["-o", ports])):
        args = INJECTED + ["--ipv6", "off"] + extra
        script = write(f"nft_scale_{what}_{n}.nft", nft_script(args))
        groups.append((f"nftables scale: {n} excluded {what} (IPv4)", [
            ("ours, --native-nftables", {"argv": [TOOL] + args + ["--native-nftables"]}),
            ("nft -f of the same script", {"argv": ["nft", "-f", script]}),
        ], "nft -f of the same script"))

groups.append(("Dry-run of the injected sidecar's flags (whole process)", [
    ("ours, --dry-run", {"argv": [TOOL] + INJECTED + DNS + ["--ipv6", "off", "--dry-run"]}),
    ("/bin/true (process start-up floor)", {"argv": ["/bin/true"]}),
], "/bin/true (process start-up floor)"))

selected = [g for g, (title, _, _) in enumerate(groups) if not opts.only or any(t in title for t in opts.only)]
if not selected:
    raise SystemExit(f"no scenario title contains any of {opts.only}")
results = {(g, label): [] for g in selected for label, _ in groups[g][1]}
shuffler = random.Random(20261125)  # fixed seed: the same orders on every machine


def rounds(phase, alone=False):
    """Every method of the phase's scenarios once per round. alone: each measurement's namespace is
    deleted, with the pause, right after it, so that no namespace of an earlier measurement still
    holds the hooks when the next one starts (the first-user scenario)."""
    if not phase:
        return
    for run in range(opts.runs):  # interleaved: every method once per round
        # Every method once per round, in an order shuffled each round (no method always follows the
        # same one), after one unmeasured run that wakes the machine from the pause.
        order = [(g, label, spec) for g in phase for label, spec in groups[g][1]]
        shuffler.shuffle(order)
        namespaces = make_namespaces(1 if alone else len(order) + 1)
        try:
            measure({"argv": ["/bin/true"], "env": ENV, "measure": os.path.abspath(opts.measure)}, namespaces[0])
            for i, (g, label, spec) in enumerate(order):
                spec = dict(spec)
                spec["env"] = ENV
                spec["measure"] = os.path.abspath(opts.measure)
                if alone:
                    own = make_namespaces(1)
                    try:
                        results[(g, label)].append(measure(spec, own[0]))
                    finally:
                        delete_namespaces(own)
                else:
                    results[(g, label)].append(measure(spec, namespaces[i + 1]))
        finally:
            delete_namespaces(namespaces)
        print(f"round {run + 1}/{opts.runs} done", file=sys.stderr)


# Phase one: a node's normal state, the hooks in use by a namespace that outlives every round.
# Phase two: the same machine with that namespace gone, each measurement alone on the machine,
# for the scenarios that say so.
holder = make_hook_holder()
try:
    rounds([g for g in selected if not groups[g][0].startswith(FIRST_USER)])
finally:
    delete_namespaces([holder])
rounds([g for g in selected if groups[g][0].startswith(FIRST_USER)], alone=True)

# ---- the report ------------------------------------------------------------------------------

def stats(rs):
    ms = sorted(r["ms"] for r in rs)
    return statistics.median(ms), ms[0], ms[-1], max(r["rss_kib"] for r in rs)


def paired_ratio(rs, base):
    """The median of the round-by-round ratios: each run against the baseline's run of the same
    round, so that a round the machine was slow in weighs on both sides of its ratio."""
    return statistics.median(r["ms"] / b["ms"] for r, b in zip(rs, base))


cpu = "unknown CPU"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
machine = f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}"
lines = [f"Measured {datetime.date.today().isoformat()} on {machine}; {opts.runs} runs of each, interleaved, "
         "each run in a fresh network namespace; whole-process wall time.", "",
         "| scenario | method | median ms | min–max ms | ratio to baseline | paired ratio | peak RSS MiB |",
         "|---|---|---|---|---|---|---|"]
for g in selected:
    title, methods, baseline = groups[g]
    base = stats(results[(g, baseline)])[0]
    for label, _ in methods:
        med, lo, hi, rss = stats(results[(g, label)])
        ratio = "baseline" if label == baseline else f"{med / base:.3f}"
        paired = "" if label == baseline else f"{paired_ratio(results[(g, label)], results[(g, baseline)]):.3f}"
        lines.append(f"| {title} | {label} | {med:.2f} | {lo:.2f}–{hi:.2f} | {ratio} | {paired} | {rss / 1024:.1f} |")
table = "\n".join(lines)
print(table)

if opts.only:
    print(f"(work files in {WORK})", file=sys.stderr)
    sys.exit(0)
plan_dat = write("plan.dat", "\n".join(
    f"{n} {stats(results[(g, 'ours, libiptc')])[0]:.3f} {stats(results[(g, 'iptables-legacy-restore')])[0]:.3f}"
    for what, n, g in scale_rows if what == "CIDRs") + "\n")
port_dat = write("ports.dat", "\n".join(
    f"{n} {stats(results[(g, 'ours, libiptc')])[0]:.3f} {stats(results[(g, 'iptables-legacy-restore')])[0]:.3f}"
    for what, n, g in scale_rows if what == "ports") + "\n")
foreign_dat = write("foreign.dat", "\n".join(
    f"{n} {stats(results[(g, 'ours, libiptc')])[0]:.3f} {stats(results[(g, 'iptables-legacy-restore --noflush')])[0]:.3f}"
    for n, g in foreign_rows) + "\n")

if not opts.no_write:
    docs = os.path.join(ROOT, "docs")
    gp = f"""
set terminal pngcairo size 800,480 font ',10'
set logscale xy
set grid
set key top left
set xlabel 'excluded CIDRs or ports in the plan'
set ylabel 'apply, whole process (ms, median)'
set output '{docs}/perf-plan-size.png'
plot '{plan_dat}' using 1:2 with linespoints title 'ours (libiptc), CIDRs', \\
     '{plan_dat}' using 1:3 with linespoints title 'iptables-legacy-restore, CIDRs', \\
     '{port_dat}' using 1:2 with linespoints title 'ours (libiptc), ports', \\
     '{port_dat}' using 1:3 with linespoints title 'iptables-legacy-restore, ports'
set xlabel 'foreign rules already in the nat table'
set output '{docs}/perf-table-size.png'
plot '{foreign_dat}' using 1:2 with linespoints title 'ours (libiptc)', \\
     '{foreign_dat}' using 1:3 with linespoints title 'iptables-legacy-restore --noflush'
"""
    subprocess.run(["gnuplot"], input=gp, text=True, check=True)
    path = os.path.join(docs, "performance.md")
    text = open(path).read() if os.path.exists(path) else ""
    start, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    block = f"{start}\n{table}\n\n![time against plan size](perf-plan-size.png)\n![time against table size](perf-table-size.png)\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*" + re.escape(end), lambda m: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    open(path, "w").write(text)
print(f"(work files in {WORK})", file=sys.stderr)
