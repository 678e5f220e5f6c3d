#!/usr/bin/env python3
"""The nf_tables variant in-process (IptablesNftStore) against the kernel and iptables-nft 1.8.9.

For every catalogue scenario, our apply in a fresh namespace must leave what iptables-nft-restore
and ip6tables-nft-restore of our own dry-run text leave in another one: the same
iptables-nft-save listings (counters zeroed) and the same `nft -s list ruleset` (tables and
chains in name order: one batch creates them in another order than four). Then: one transaction
across families (a batch the kernel refuses for an IPv6 rule leaves IPv4 as it was), foreign rules
(iptables-nft and native nft) kept byte for byte with their handles, a no-change re-apply that
keeps every handle, a real concurrent writer whose rules all survive, and the variant auto picks.
Expected values come from the kernel's listings of what iptables-nft or nft did, never from our
output. Needs root, unshare, iptables-nft and nft; exits 77 otherwise.
usage: iptables_nft_test.py TOOL REPO_ROOT [TEST-NAME-SUBSTRING]
"""
import os
import re
import subprocess
import sys

import harness
from harness import env_prefix, ns, q, scenario, test


def tool(args, *more):
    """harness.tool with the automatic choice of variant and mechanism (the harness defaults to
    libiptc, for the suites that compare with iptables-legacy-restore)."""
    chooses = any(str(w).startswith("--backend") for w in more)
    return harness.tool(args, *more, *([] if chooses else ["--backend", "auto"]))

TOOL, REPO = sys.argv[1], sys.argv[2]
WORK, LOCK, BASE_ENV = harness.start(TOOL, REPO, sys.argv[3] if len(sys.argv) > 3 else "",
                                     prefix="istio-iptables-nft-test-",
                                     needs=["iptables-nft", "ip6tables-nft-restore", "nft", "iptables-legacy"],
                                     skipped="needs root, unshare, iptables-nft and nft")

NFT = ["--force-iptables-binary", "nft"]
SAVE = ("{ iptables-nft-save -c | grep -v '^#' || true; echo =====; ip6tables-nft-save -c | grep -v '^#' || true; }"
        " | sed -E 's/\\[[0-9]+:[0-9]+\\]/[0:0]/'")
LIST = "{ echo =====; nft -s list ruleset 2>/dev/null; }"
STATE = f"{{ {SAVE}; {LIST}; }}"


def sorted_ruleset(listing):
    """`nft list ruleset` with tables, and chains in each table, in name order."""
    tables, current, chain = [], None, None
    for line in listing.splitlines():
        if line.startswith("table "):
            current = {"head": line, "chains": [], "other": []}
            tables.append(current)
        elif current is not None and line.startswith("\tchain "):
            chain = [line]
            current["chains"].append(chain)
        elif current is not None and line == "}":
            current = None
        elif chain is not None and line.startswith("\t\t"):
            chain.append(line)
        elif current is not None and line.strip() and line.strip() != "}":
            current["other"].append(line)
    out = []
    for t in sorted(tables, key=lambda t: t["head"]):
        out.append(t["head"])
        out.extend(t["other"])
        for c in sorted(t["chains"], key=lambda c: c[0]):
            out.extend(c)
    return "\n".join(out)


def normalised(state):
    """Both save listings as they are, the ruleset in name order."""
    parts = state.split("=====\n")
    return "=====\n".join(parts[:2]) + "=====\n" + sorted_ruleset(parts[2] if len(parts) > 2 else "")


def dry_run(args, env):
    p = subprocess.run([TOOL] + args + ["--dry-run"], capture_output=True, text=True, env={**BASE_ENV, **env})
    assert p.returncode == 0, p.stderr
    text = p.stdout
    if "# ip6tables-restore\n" in text:
        return tuple(text.split("# ip6tables-restore\n", 1))
    return text, ""


def restored_state(args, env, before=""):
    """What iptables-nft-restore of our dry-run text leaves in a fresh namespace."""
    v4, v6 = dry_run(args, env)
    f4, f6 = os.path.join(WORK, "v4"), os.path.join(WORK, "v6")
    open(f4, "w").write(v4)
    open(f6, "w").write(v6)
    load = f"iptables-nft-restore --noflush < {f4}" + (f" && ip6tables-nft-restore --noflush < {f6}" if v6 else "")
    pre = f"{before} && " if before else ""
    return ns(f"{pre}{load} && {STATE}").stdout


def ours_state(args, env, before=""):
    """Our apply in a fresh namespace: auto chooses the nf_tables variant there, in-process (no
    --force-iptables-binary: scenarios of older releases do not have the flag)."""
    pre = f"{before} && " if before else ""
    p = ns(f"{pre}{tool(args)} >{WORK}/log 2>&1 && {STATE}", env, check=False)
    log = open(WORK + '/log').read()
    assert p.returncode == 0, f"{p.stderr}\n{log}"
    assert "iptables-nft in-process" in log, log
    return p.stdout


def all_scenarios():
    return sorted(os.listdir(os.path.join(REPO, "rules")))


@test
def apply_equals_iptables_nft_restore_for_every_scenario():
    bad = []
    for name in all_scenarios():
        args, env = scenario(name)
        ours, ref = normalised(ours_state(args, env)), normalised(restored_state(args, env))
        if ours != ref:
            bad.append(name)
            if len(bad) == 1:
                open(os.path.join(WORK, "ours"), "w").write(ours)
                open(os.path.join(WORK, "ref"), "w").write(ref)
                diff = subprocess.run(["diff", os.path.join(WORK, "ref"), os.path.join(WORK, "ours")],
                                      capture_output=True, text=True).stdout
                print(f"first difference ({name}):\n{diff[:3000]}")
    assert not bad, f"iptables-nft-save or nft list ruleset differ from iptables-nft-restore's for: {bad}"


@test
def the_log_says_which_variant_and_why():
    args, env = scenario("sidecar-dns")
    p = ns(f"{tool(args)} 2>&1", env)
    assert "iptables-nft in-process" in p.stdout and "kernel has nf_tables" in p.stdout, p.stdout
    p = ns(f"iptables-legacy -t nat -A OUTPUT -d 192.0.2.1/32 -j RETURN && {tool(args)} > {WORK}/log 2>&1 && "
           "{ iptables-nft-save | grep -c ISTIO || true; }", env)
    log = open(f"{WORK}/log").read()
    assert "libiptc" in log and "legacy iptables tables (ip nat)" in log, log
    assert p.stdout.strip() == "0", "rules went to nf_tables although legacy rules were there"


@test
def one_transaction_across_families():
    # A first configuration, IPv4 only, then a second one for both families whose IPv6 part the
    # kernel refuses: a foreign ip6 nat OUTPUT base chain of type filter cannot reach REDIRECT.
    first, env1 = scenario("sidecar-no-dns")
    second, env2 = scenario("sidecar-dns-dual-stack")
    foreign = ("nft add table ip6 nat && "
               "nft 'add chain ip6 nat OUTPUT { type filter hook output priority -100; policy accept; }'")
    script = (f"{env_prefix(env1)} {tool(first, *NFT)} >/dev/null 2>&1 && {foreign} && {STATE} > {WORK}/before && "
              f"{{ {env_prefix(env2)} {tool(second, *NFT)} >{WORK}/log 2>&1; echo rc=$? > {WORK}/rc; }}; "
              f"{STATE} > {WORK}/after")
    ns(script, {})
    rc = open(f"{WORK}/rc").read().strip()
    log = open(f"{WORK}/log").read()
    assert rc != "rc=0", f"the kernel accepted the batch:\n{log}"
    assert "nothing was changed" in log, log
    before, after = open(f"{WORK}/before").read(), open(f"{WORK}/after").read()
    assert "ISTIO_OUTPUT" in before, before
    assert before == after, f"a refused batch changed something:\n--- before\n{before}\n--- after\n{after}"


FOREIGN = " && ".join([
    "iptables-nft -t nat -A PREROUTING -s 198.51.100.0/24 -j ACCEPT",
    "iptables-nft -t nat -N KUBE-SERVICES",
    "iptables-nft -t nat -A KUBE-SERVICES -d 192.0.2.10/32 -p tcp --dport 80 -j DNAT --to-destination 192.0.2.20:8080",
    "iptables-nft -t nat -A OUTPUT -j KUBE-SERVICES",
    "iptables-nft -t nat -A OUTPUT -m comment --comment 'two  spaces' -j RETURN",
    "iptables-nft -t mangle -A PREROUTING -p udp --dport 4789 -j ACCEPT",
    "iptables-nft -t filter -A INPUT -s 203.0.113.0/24 -j DROP",
    "ip6tables-nft -t nat -A PREROUTING -s 2001:db8:1::/48 -j ACCEPT",
    "nft add table inet foreign",
    "nft 'add chain inet foreign input { type filter hook input priority 10; }'",
    "nft add rule inet foreign input tcp dport 22 counter accept",
])


def without_ours(listing):
    """`nft -a list ruleset` without our chains and our rules (lines naming an ISTIO_ chain)."""
    out, skip = [], False
    for line in listing.splitlines():
        if re.match(r"^\tchain ISTIO_", line):
            skip = True
            continue
        if skip:
            if line == "\t}":
                skip = False
            continue
        if "ISTIO_" in line:
            continue
        out.append(line)
    return "\n".join(out)


def chain_blocks(listing):
    """{(table line, chain line): [its lines]} of `nft -a list ruleset`, without our rules."""
    out, table, chain = {}, None, None
    for line in without_ours(listing).splitlines():
        if line.startswith("table "):
            table, chain = line, None
            out[(table, None)] = []
        elif line.startswith("\tchain "):
            chain = line
            out[(table, chain)] = []
        elif line.startswith("\t\t") and chain:
            out[(table, chain)].append(line)
    return out


def foreign_kept(before, now):
    """Every table and chain of `before` is in `now` with the same handles and the same rules."""
    b, n = chain_blocks(before), chain_blocks(now)
    return all(key in n and n[key] == lines for key, lines in b.items())


@test
def foreign_rules_survive_apply_reapply_and_cleanup_with_their_handles():
    args, env = scenario("sidecar-dns-dual-stack")
    script = (f"{FOREIGN} && nft -a list ruleset > {WORK}/before 2>/dev/null && "
              f"{tool(args, *NFT)} >/dev/null 2>&1 && nft -a list ruleset > {WORK}/applied 2>/dev/null && "
              f"{tool(args, *NFT)} >{WORK}/log2 2>&1 && nft -a list ruleset > {WORK}/again 2>/dev/null && "
              f"{tool(args, 'cleanup', *NFT)} >/dev/null 2>&1 && nft -a list ruleset > {WORK}/after 2>/dev/null")
    ns(script, env)
    read = lambda n: open(os.path.join(WORK, n)).read()
    before, applied, again, after = read("before"), read("applied"), read("again"), read("after")
    assert "ISTIO_OUTPUT" in applied, applied
    assert foreign_kept(before, applied), \
        f"foreign objects changed by apply:\n--- before\n{before}\n--- applied\n{applied}"
    assert again == applied, "a re-apply changed handles or rules"
    assert "nothing to change" in read("log2"), read("log2")
    assert foreign_kept(before, after), f"cleanup touched foreign objects:\n{after}"
    assert "ISTIO" not in after, after


@test
def reapply_changes_nothing_and_keeps_handles_and_counters():
    args, env = scenario("sidecar-dns-dual-stack")
    script = (f"{tool(args, *NFT)} >/dev/null 2>&1 && "
              "(timeout 1 bash -c 'echo > /dev/tcp/127.0.0.1/9' 2>/dev/null || true) && "
              f"nft -a list ruleset > {WORK}/a 2>/dev/null && {tool(args, *NFT)} >{WORK}/log 2>&1 && "
              f"nft -a list ruleset > {WORK}/b 2>/dev/null && {tool(args, 'check', *NFT)} > {WORK}/check")
    ns(script, env)
    a, b = open(f"{WORK}/a").read(), open(f"{WORK}/b").read()
    assert "handle" in a and a == b, f"handles or counters changed:\n{a}\n---\n{b}"
    assert re.search(r"packets [1-9]", a), "no counter moved; the test proves nothing about counters"
    assert "nothing to change" in open(f"{WORK}/log").read()


@test
def a_new_configuration_replaces_ours_as_iptables_nft_restore_would():
    pairs = [("sidecar-tproxy", "sidecar-dns"), ("kube-virt-cidrs-dual-stack", "drop-invalid-tproxy-dual-stack"),
             ("sidecar-dns-dual-stack", "istio-empty")]
    bad = []
    for a, b in pairs:
        args_a, env_a = scenario(a)
        args_b, env_b = scenario(b)
        first = f"{env_prefix(env_a)} {tool(args_a, *NFT)} >/dev/null 2>&1"
        ours = ns(f"{first} && {tool(args_b, *NFT)} >/dev/null 2>&1 && {STATE}", env_b).stdout
        ref = restored_state(args_b, env_b)
        # Tables the first configuration created stay (empty built-in chains): compare the rest.
        strip = lambda s: "\n".join(l for l in normalised(s).splitlines())
        ours_n, ref_n = strip(ours), strip(ref)
        if not all(l in ours_n.splitlines() for l in ref_n.splitlines() if "ISTIO" in l) or \
                any("ISTIO" in l and l not in ref_n.splitlines() for l in ours_n.splitlines()):
            bad.append(f"{a} -> {b}")
    assert not bad, f"not converged: {bad}"


@test
def a_concurrent_writer_never_loses_a_rule():
    args, env = scenario("sidecar-dns-dual-stack")
    n = 400
    script = ("nft add table ip other && nft add chain ip other c && "
              f"( for i in $(seq {n}); do nft add rule ip other c counter || echo lost; done > {WORK}/writer ) & "
              f"for k in $(seq 12); do {tool(args, *NFT)} >>{WORK}/log 2>&1 || echo fail; "
              f"{tool(args, 'cleanup', *NFT)} >>{WORK}/log 2>&1 || echo fail; done; wait; "
              f"{tool(args, *NFT)} >>{WORK}/log 2>&1 && nft -a list chain ip other c | grep -c counter && "
              f"{tool(args, 'check', *NFT)} >/dev/null && echo checked")
    p = ns(script, env)
    assert "fail" not in p.stdout, open(f"{WORK}/log").read()
    assert "lost" not in open(f"{WORK}/writer").read()
    lines = p.stdout.split()
    assert lines[-2] == str(n) and lines[-1] == "checked", p.stdout


@test
def check_and_cleanup_in_process():
    args, env = scenario("sidecar-tproxy")
    script = (f"{tool(args, 'check', *NFT)} > {WORK}/c1; echo rc1=$?; {tool(args, *NFT)} >/dev/null 2>&1 && "
              f"{tool(args, 'check', *NFT)} > {WORK}/c2; echo rc2=$?; "
              "nft delete rule ip nat ISTIO_OUTPUT handle $(nft -a list chain ip nat ISTIO_OUTPUT | "
              "grep -m1 'return # handle' | grep -o '[0-9]*$') && "
              f"{tool(args, 'check', *NFT)} > {WORK}/c3; echo rc3=$?; "
              f"{tool(args, 'cleanup', *NFT)} >/dev/null 2>&1 && {{ iptables-nft-save; ip6tables-nft-save; }} | grep -c ISTIO; true")
    p = ns(script, env)
    assert "rc1=0" not in p.stdout and "rc2=0" in p.stdout and "rc3=0" not in p.stdout, p.stdout
    assert "missing" in open(f"{WORK}/c3").read(), open(f"{WORK}/c3").read()
    assert p.stdout.split()[-1] == "0", p.stdout


sys.exit(harness.finish())
