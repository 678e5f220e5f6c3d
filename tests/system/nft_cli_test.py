#!/usr/bin/env python3
"""The CLI in native nftables mode (`--native-nftables`) against the kernel, in namespaces.

nft_test.py drives the nf_tables store directly; this script runs the real command line, so it
also covers what cli/app.cc adds around the store: the removal of our rules of the other mode,
the TPROXY policy routing, `check`'s exit statuses, `cleanup` of both modes, `--dry-run` and
`--network-namespace`. Every test runs in network namespaces it creates (`unshare -n -m`, a
private xtables lock file, see harness.py); the host's rules and routes are never touched.

Expected values never come from our own output alone: the kernel's listing of `nft -f` of our
dry-run script in a fresh namespace (and, for the scenarios with one, of Istio's golden file),
the state a foreign writer left in a namespace where we never ran, and the routing Istio's
commands (`ip rule add fwmark …`, spec §2.6) leave. A re-apply is checked with `nft -a` (handles)
and counters after traffic, and the check is shown to see Istio's flush-and-refill.

usage: nft_cli_test.py TOOL REPO_ROOT [TEST-NAME-SUBSTRING]
       (exit 77 = skipped: not root, or no unshare/nft/ip/iptables-legacy/setpriv)
The golden files are looked up in $ISTIO_IPTABLES_SHARED_DIR, else REPO_ROOT/../shared.
"""
import os
import re
import shlex
import sys

import harness
from harness import env_prefix, ns, scenario, test, tool

TOOL, REPO = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
WORK, LOCK, BASE_ENV = harness.start(TOOL, REPO, sys.argv[3] if len(sys.argv) > 3 else "",
                                     prefix="istio-iptables-nft-cli-",
                                     needs=["nft", "ip", "iptables-legacy", "ip6tables-legacy", "setpriv"],
                                     skipped="needs root, unshare, nft, ip, iptables-legacy and setpriv")
SHARED = os.environ.get("ISTIO_IPTABLES_SHARED_DIR") or os.path.join(REPO, "..", "shared")
GOLDEN_DIR = os.path.join(SHARED, "conformance", "istio", "nftables")

# Scenarios of rules/: REDIRECT IPv4, DNS with UIDs and GIDs on both families, TPROXY IPv4,
# DNS switched off by having no nameserver, the injected dual-stack sidecar with DNS, TPROXY dual
# stack with drop-invalid, owner groups resolved by name.
SCENARIOS = ["istio-empty", "istio-dns-uid-gid", "istio-inbound-ports-tproxy", "istio-ipv6-dns-uid-gid",
             "sidecar-dns-dual-stack", "drop-invalid-tproxy-dual-stack", "istio-outbound-owner-groups"]
TPROXY = "istio-inbound-ports-tproxy"              # nat + mangle, IPv4, policy routing
TPROXY6 = "drop-invalid-tproxy-dual-stack"         # nat + mangle, both families, routing and ::6
DNS6 = "istio-dns-uid-gid"                          # nat + raw, both families, ::6 only

OURS = ("istio-proxy-nat", "istio-proxy-mangle", "istio-proxy-raw")

# Someone else's state: an nft filter table, an nft `ip nat` table with a rule, iptables-legacy
# rules in built-in and own chains of both families, a policy routing rule and an address.
FOREIGN_NFT = """add table inet filter
add chain inet filter input { type filter hook input priority 0 ; }
add chain inet filter keep
add rule inet filter input tcp dport 22 counter accept
add rule inet filter keep ip saddr 203.0.113.9 counter drop
add table ip nat
add chain ip nat postrouting { type nat hook postrouting priority srcnat ; }
add rule ip nat postrouting ip saddr 198.51.100.0/24 oifname lo counter masquerade
"""
FOREIGN_IPT = ("iptables-legacy -t nat -A OUTPUT -p udp --dport 9999 -j RETURN && "
               "iptables-legacy -t filter -A INPUT -s 198.51.100.7/32 -j DROP && "
               "iptables-legacy -t filter -A OUTPUT -p udp --dport 9999 -j ACCEPT && "
               "iptables-legacy -t mangle -N KEEP && iptables-legacy -t mangle -A KEEP -j MARK --set-mark 7 && "
               "ip6tables-legacy -t nat -A OUTPUT -d 2001:db8::7/128 -j RETURN")
# Traffic that the foreign rules count (the ssh rule, the filter OUTPUT rule), so that their counters
# are part of what must survive.
FOREIGN_TRAFFIC = "echo x > /dev/udp/127.0.0.1/9999; (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null; true"
FOREIGN_ROUTING = ("ip rule add fwmark 0x1 lookup 100 && ip route add local default dev lo table 100 && "
                   "ip -6 addr add 2001:db8::1/128 dev lo")


def foreign(nft=True, ipt=True, routing=False, ip_nat=True):
    """The shell commands that make the foreign state (without `table ip nat` unless ip_nat)."""
    nft_file = os.path.join(WORK, "foreign.nft" if ip_nat else "foreign-filter.nft")
    if not os.path.exists(nft_file):
        open(nft_file, "w").write(FOREIGN_NFT if ip_nat else FOREIGN_NFT.split("add table ip nat")[0])
    parts = ([f"nft -f {shlex.quote(nft_file)}"] if nft else []) + ([FOREIGN_IPT] if ipt else []) + \
            ([FOREIGN_ROUTING] if routing else [])
    return " && ".join(parts + [f"{{ {FOREIGN_TRAFFIC} ; }}"])


# What the foreign writer looks at: its nft tables with handles and counters, the iptables-legacy
# rules of both families with their counters (the `#` lines carry timestamps).
FOREIGN_NFT_STATE = "nft -a list table inet filter; nft -a list table ip nat"
LEGACY_STATE = "iptables-legacy-save -c | grep -v '^#'; ip6tables-legacy-save -c | grep -v '^#'"
LEGACY_RULES = "iptables-legacy-save | grep -v '^#'; ip6tables-legacy-save | grep -v '^#'"
ROUTING_STATE = ("ip -4 rule; ip -6 rule; ip -4 route show table all; ip -6 route show table all; "
                 "ip -4 addr show dev lo; ip -6 addr show dev lo")


def cli(name, *more, native=True):
    """The tool for scenario `name` as a shell command, with the scenario's environment; `more`
    may start with a command word. `--native-nftables` unless native=False."""
    args, env = scenario(name)
    return f"{env_prefix(env)} {tool(args, *more, *(['--native-nftables'] if native else []))}"


class Step:
    def __init__(self, out, err, rc):
        self.out, self.err, self.rc = out, err, rc

    def __repr__(self):
        return f"rc={self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def steps(*pairs, setup="true", env=None):
    """Runs `setup`, then each (name, command) in order in ONE fresh namespace; a failing step does
    not stop the others. Returns {name: Step}. A failing setup is an AssertionError."""
    err = os.path.join(WORK, "step.err")
    parts = [f"{{ {setup} ; }} || {{ echo 'setup failed' >&2; exit 99; }}"]
    for name, command in pairs:
        parts.append(f"echo '@@@ {name}'; ( {command} ) 2>{err}; rc=$?; echo; echo '@@@ err'; cat {err}; "
                     f"echo; echo \"@@@ rc $rc\"")
    p = ns("\n".join(parts), env, check=False)
    if p.returncode != 0:
        raise AssertionError(f"namespace script failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    found = {}
    for m in re.finditer(r"^@@@ (.*?)\n(.*?)\n@@@ err\n(.*?)\n@@@ rc (\d+)$", p.stdout, re.S | re.M):
        found[m.group(1)] = Step(m.group(2), m.group(3), int(m.group(4)))
    missing = [n for n, _ in pairs if n not in found]
    assert not missing, f"steps without output {missing}:\n{p.stdout}\n{p.stderr}"
    return found


_expected = {}


def dry_run_script(name):
    """Our `--native-nftables --dry-run` script for scenario `name`, in a file."""
    path = os.path.join(WORK, f"{name}.nft")
    if not os.path.exists(path):
        p = ns(cli(name, "--dry-run"))
        assert p.stdout.startswith("add table inet istio-proxy-"), p.stdout
        open(path, "w").write(p.stdout)
    return path


def expected(name):
    """The kernel's listing (`nft -s list ruleset`) of `nft -f` of our dry-run script for `name`,
    loaded into a fresh namespace."""
    if name not in _expected:
        _expected[name] = ns(f"nft -f {shlex.quote(dry_run_script(name))} && nft -s list ruleset").stdout
        assert "table inet istio-proxy-nat {" in _expected[name], _expected[name]
    return _expected[name]


def golden_listing(name):
    """The kernel's listing of Istio's golden file for `name` (istio-X is the case X), or None."""
    if not name.startswith("istio-"):
        return None
    path = os.path.join(GOLDEN_DIR, name[len("istio-"):] + ".golden")
    if not os.path.exists(path):
        return None
    return ns(f"nft -f {shlex.quote(path)} && nft -s list ruleset").stdout


def tables(listing):
    """{`table inet T`: its block} for every table of an `nft list` text."""
    found, current = {}, None
    for line in listing.splitlines():
        if line.startswith("table "):
            current = line.rstrip(" {")
            found[current] = []
        elif current:
            found[current].append(line)
            if line == "}":
                current = None
    return {k: "\n".join(v) for k, v in found.items()}


def ours(listing):
    return {k: v for k, v in tables(listing).items() if k.split()[-1] in OURS}


def legacy_rules(save):
    """The rules and own chains of an iptables-save text, by table; tables that hold neither (a
    table merely read shows up with its built-in chains) are left out."""
    by_table, table = {}, None
    for line in save.splitlines():
        if line.startswith("*"):
            table = line
        elif line.startswith("-A ") or (line.startswith(":") and not re.match(
                r":(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ", line)):
            by_table.setdefault(table, []).append(line)
    return by_table


def only_foreign(state, **kinds):
    """`state` (a shell command) run in a namespace that holds the foreign state only."""
    return ns(f"{foreign(**kinds)} && {{ {state} ; }}").stdout


# 1 ----------------------------------------------------------------------------------------------
@test
def an_apply_leaves_the_kernel_listing_that_nft_f_of_the_dry_run_script_leaves():
    goldens = 0
    for name in SCENARIOS:
        s = steps(("apply", cli(name)), ("listing", "nft -s list ruleset"), ("check", cli(name, "check")))
        assert s["apply"].rc == 0, f"{name}: {s['apply']}"
        assert s["listing"].out == expected(name), \
            f"{name}: apply\n{s['listing'].out}\n--- nft -f of the dry-run script\n{expected(name)}"
        gold = golden_listing(name)
        if gold is not None:
            goldens += 1
            assert s["listing"].out == gold, f"{name}: apply\n{s['listing'].out}\n--- Istio's golden file\n{gold}"
        assert s["check"].rc == 0, f"{name}: {s['check']}"
    assert goldens == 5 or not os.path.isdir(GOLDEN_DIR), f"{goldens} golden files compared"
    if not os.path.isdir(GOLDEN_DIR):
        print(f"note: no golden files at {GOLDEN_DIR}: compared with the dry-run script only")


# 2 ----------------------------------------------------------------------------------------------
TRAFFIC = ("echo x > /dev/udp/127.0.0.1/9; (exec 3<>/dev/tcp/127.0.0.1/9); "
           "echo x > /dev/udp/198.51.100.1/53; true")


@test
def a_re_apply_commits_nothing_keeping_handles_and_counters():
    for name in ["istio-empty", "sidecar-dns-dual-stack", TPROXY6]:
        s = steps(("apply", cli(name)), ("traffic", TRAFFIC), ("before", "nft -a list ruleset"),
                  ("reapply", cli(name)), ("after", "nft -a list ruleset"),
                  # Istio's way, flush and refill by `nft -f` of the same script: the comparison sees it.
                  ("refill", f"nft -f {shlex.quote(dry_run_script(name))}"), ("refilled", "nft -a list ruleset"),
                  setup="ip route add 198.51.100.0/24 dev lo")
        assert s["apply"].rc == 0 and s["reapply"].rc == 0, f"{name}: {s['apply']}\n{s['reapply']}"
        before, after = s["before"].out, s["after"].out
        assert re.search(r"counter packets [1-9]", before), f"{name}: no traffic was counted:\n{before}"
        assert after == before, f"{name}: the re-apply changed the ruleset\n{before}\n--- after\n{after}"
        assert s["refill"].rc == 0, s["refill"]
        assert s["refilled"].out != before, f"{name}: a flush and refill leaves the same listing:\n{before}"


@test
def a_plan_past_the_allocation_arena_applies_whole_and_re_applies_unchanged():
    # The executable serves its first 4 MiB of C++ allocations from a bump arena and the rest from
    # malloc (cli/arena.cc). 6 000 excluded ports (12 000 rules) spend the arena: the apply must
    # still leave the listing `nft -f` of its dry-run script leaves, and a re-apply, which
    # compares 12 000 fingerprints, must change nothing.
    ports = ",".join(str(20000 + i) for i in range(6000))
    args = ["-p", "15001", "-u", "1337", "-m", "REDIRECT", "-i", "*", "--ipv6", "off", "-o", ports,
            "--native-nftables"]
    script = os.path.join(WORK, "arena.nft")
    with open(script, "w") as f:
        f.write(ns(tool(args, "--dry-run")).stdout)
    want = ns(f"nft -f {shlex.quote(script)} && nft -s list ruleset").stdout
    assert want.count(" dport ") >= 12000, want[:2000]
    s = steps(("apply", tool(args)), ("listing", "nft -s list ruleset"), ("handles", "nft -a list ruleset"),
              ("reapply", tool(args)), ("after", "nft -a list ruleset"))
    assert s["apply"].rc == 0 and s["reapply"].rc == 0, f"{s['apply']}\n{s['reapply']}"
    assert s["listing"].out == want, "the apply's listing differs from nft -f of the dry-run script"
    assert s["after"].out == s["handles"].out, "the re-apply changed the ruleset"


# 3 ----------------------------------------------------------------------------------------------
def changed_configuration(ip_nat):
    a, b = TPROXY, DNS6
    state = f"{FOREIGN_NFT_STATE if ip_nat else 'nft -a list table inet filter'}; {LEGACY_STATE}"
    s = steps(("f0", state),
              ("apply", cli(a)), ("f1", state), ("ours1", "nft -s list ruleset"),
              ("reapply", cli(a)), ("f2", state),
              ("changed", cli(b)), ("f3", state), ("ours3", "nft -s list ruleset"), ("check", cli(b, "check")),
              ("cleanup", cli(b, "cleanup")), ("f4", state), ("final", "nft -s list ruleset"),
              setup=foreign(ip_nat=ip_nat))
    for k in ["apply", "reapply", "changed", "cleanup"]:
        assert s[k].rc == 0, f"{k}: {s[k]}"
    f0 = s["f0"].out
    assert "ip saddr 203.0.113.9" in f0 and "--dport 9999" in f0 and "2001:db8::7" in f0, f0
    assert ("masquerade" in f0) == ip_nat, f0
    assert "counter packets 1 " in f0 and re.search(r"^\[[1-9]\d*:\d+\] -A OUTPUT -p udp", f0, re.M), \
        f"the foreign rules counted no traffic:\n{f0}"
    for k in ["f1", "f2", "f3", "f4"]:
        assert s[k].out == f0, f"foreign state changed at {k}:\n{f0}\n--- {k}\n{s[k].out}"
    assert ours(s["ours1"].out) == ours(expected(a)), f"{s['ours1'].out}\n--- expected\n{expected(a)}"
    # The new configuration's tables exactly (a replaced table may be listed in another place),
    # and no table of the old one it does not have (istio-proxy-mangle).
    assert ours(s["ours3"].out) == ours(expected(b)), f"{s['ours3'].out}\n--- expected\n{expected(b)}"
    assert "table inet istio-proxy-mangle" not in s["ours3"].out, s["ours3"].out
    assert s["check"].rc == 0, s["check"]
    assert s["final"].out == only_foreign("nft -s list ruleset", ip_nat=ip_nat), s["final"].out


@test
def a_changed_configuration_replaces_our_tables_and_foreign_state_survives_every_step():
    # With a foreign `table ip nat` the CLI's iptables side (removing our iptables rules) runs
    # through iptables-nft; without it through libiptc, beside the foreign legacy rules.
    for ip_nat in [True, False]:
        changed_configuration(ip_nat)


# 4 ----------------------------------------------------------------------------------------------
def unprivileged():
    """A prefix that runs a command as nobody, without capabilities, with an xtables lock file it
    may open (so that what fails is reading the tables, not the lock)."""
    os.chmod(WORK, 0o711)
    d = os.path.join(WORK, "nobody")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o1777)
    return f"env XTABLES_LOCKFILE={shlex.quote(os.path.join(d, 'xtables.lock'))} " \
           "setpriv --reuid=65534 --regid=65534 --clear-groups"


def golden_rule(case, chain, contains):
    """The text of a rule of Istio's golden file (after `add rule inet T CHAIN `)."""
    for line in open(os.path.join(GOLDEN_DIR, case + ".golden")).read().splitlines():
        head = f"add rule inet istio-proxy-nat {chain} "
        if line.startswith(head) and contains in line:
            return line[len(head):]
    raise AssertionError(f"no rule with {contains!r} in {case}.golden")


@test
def check_passes_after_apply_names_a_deleted_rule_and_cannot_read_without_privileges():
    name = "istio-empty"
    delete = ("h=$(nft -a list chain inet istio-proxy-nat istio-output | "
              "sed -n 's/.*ip daddr 127.0.0.1 counter .*# handle \\([0-9]*\\)$/\\1/p') && [ -n \"$h\" ] && "
              "nft delete rule inet istio-proxy-nat istio-output handle $h")
    s = steps(("apply", cli(name)), ("check0", cli(name, "check")),
              ("delete", delete), ("check1", cli(name, "check")),
              ("before", "nft -a list ruleset"),
              ("check3", f"{unprivileged()} {cli(name, 'check')}"),
              ("cleanup1", f"{unprivileged()} {cli(name, 'cleanup')}"),
              ("after", "nft -a list ruleset"),
              ("repair", cli(name)), ("repaired", "nft -s list ruleset"), ("check0b", cli(name, "check")))
    assert s["apply"].rc == 0 and s["delete"].rc == 0, f"{s['apply']}\n{s['delete']}"
    assert s["check0"].rc == 0, s["check0"]
    assert s["check1"].rc == 1, s["check1"]
    rule = golden_rule("empty", "istio-output", "ip daddr 127.0.0.1/32")
    assert rule in s["check1"].out and "missing" in s["check1"].out, \
        f"check does not name the deleted rule `{rule}`:\n{s['check1']}"
    assert s["check3"].rc == 3, f"unprivileged check: {s['check3']}"
    assert s["check3"].err.strip(), s["check3"]
    assert s["cleanup1"].rc == 1, f"unprivileged cleanup: {s['cleanup1']}"
    assert re.search(r"permission denied|not permitted", s["cleanup1"].out + s["cleanup1"].err, re.I), s["cleanup1"]
    assert re.search(r"permission denied|not permitted", s["check3"].err, re.I), s["check3"]
    assert s["after"].out == s["before"].out, f"an unprivileged cleanup changed the ruleset:\n{s['after'].out}"
    assert "table inet istio-proxy-nat" in s["after"].out, s["after"].out
    assert s["repair"].rc == 0 and s["repaired"].out == expected(name), f"{s['repair']}\n{s['repaired'].out}"
    assert s["check0b"].rc == 0, s["check0b"]


# 5 ----------------------------------------------------------------------------------------------
@test
def cleanup_leaves_only_the_foreign_state_and_removes_our_policy_routing():
    everything = f"nft -s list ruleset; {LEGACY_STATE}; {ROUTING_STATE}"
    for name in [TPROXY6, TPROXY, DNS6]:
        s = steps(("apply", cli(name)), ("applied", ROUTING_STATE), ("cleanup", cli(name, "cleanup")),
                  ("state", everything), ("again", cli(name, "cleanup")), ("state2", everything),
                  setup=foreign(routing=True))
        assert s["apply"].rc == 0 and s["cleanup"].rc == 0 and s["again"].rc == 0, \
            f"{name}: {s['apply']}\n{s['cleanup']}\n{s['again']}"
        applied = s["applied"].out
        # Not vacuous: the apply did install routing to remove.
        assert ("fwmark 0x539 lookup 133" in applied) == (name != DNS6), f"{name}:\n{applied}"
        assert ("::6/128" in applied) == (name != TPROXY), f"{name}:\n{applied}"
        reference = only_foreign(everything, routing=True)
        assert "fwmark 0x1 lookup 100" in reference, reference
        assert s["state"].out == reference, f"{name}: after cleanup\n{s['state'].out}\n--- foreign only\n{reference}"
        assert s["state2"].out == reference, f"{name}: second cleanup\n{s['state2'].out}"


# 6 ----------------------------------------------------------------------------------------------
@test
def switching_modes_leaves_our_rules_of_the_new_mode_only_and_foreign_rules_of_both_kinds():
    name = "sidecar-dns-dual-stack"
    legacy = LEGACY_RULES
    s = steps(("f0", FOREIGN_NFT_STATE.replace("; nft -a list table ip nat", "")), ("l0", legacy),
              ("iptables", cli(name, native=False)), ("l1", legacy),
              ("native", cli(name)), ("l2", legacy), ("n2", "nft -s list ruleset"),
              ("f2", "nft -a list table inet filter"),
              ("checkipt", cli(name, "check", native=False)), ("checknft", cli(name, "check")),
              ("back", cli(name, native=False)), ("l3", legacy), ("n3", "nft -s list ruleset"),
              ("f3", "nft -a list table inet filter"), ("checkipt3", cli(name, "check", native=False)),
              # no `table ip nat` here: the iptables apply then uses iptables-legacy
              setup=foreign(ip_nat=False))
    for k in ["iptables", "native", "back"]:
        assert s[k].rc == 0, f"{k}: {s[k]}"
    l0 = legacy_rules(s["l0"].out)
    assert "ISTIO_" in s["l1"].out, f"the iptables apply installed nothing:\n{s['l1'].out}"
    # iptables → native: our iptables rules gone, the foreign ones as they were, our tables in place.
    assert "ISTIO" not in s["l2"].out, f"our iptables rules stay after a native apply:\n{s['l2'].out}"
    assert legacy_rules(s["l2"].out) == l0, f"{s['l0'].out}\n--- after native apply\n{s['l2'].out}"
    assert ours(s["n2"].out) == ours(expected(name)), f"{s['n2'].out}\n--- expected\n{expected(name)}"
    assert s["f2"].out == s["f0"].out, f"{s['f0'].out}\n---\n{s['f2'].out}"
    assert s["checknft"].rc == 0 and s["checkipt"].rc == 1, f"{s['checknft']}\n{s['checkipt']}"
    # native → iptables: our tables gone, the foreign table as it was, our iptables rules back.
    assert not ours(s["n3"].out), f"our tables stay after an iptables apply:\n{s['n3'].out}"
    assert s["f3"].out == s["f0"].out, f"{s['f0'].out}\n---\n{s['f3'].out}"
    assert s["checkipt3"].rc == 0, s["checkipt3"]
    l3 = legacy_rules(s["l3"].out)
    assert {t: [r for r in rules if "ISTIO" not in r] for t, rules in l3.items() if
            any("ISTIO" not in r for r in rules)} == l0, s["l3"].out


@test
def switching_modes_beside_a_foreign_ip_nat_table_keeps_its_rule():
    # The iptables mode on the nf_tables variant (forced: beside the foreign legacy rules of the
    # setup, the choice would be legacy, as Istio's) puts ISTIO_* chains into the foreign
    # `table ip nat`; the native apply must take ours out of it and leave the foreign chain and rule.
    name = "istio-empty"
    s = steps(("nat0", "nft -a list chain ip nat postrouting"), ("f0", "nft -a list table inet filter"),
              ("iptables", cli(name, "--force-iptables-binary", "nft", native=False)),
              ("t1", "nft -s list table ip nat"),
              ("native", cli(name)), ("t2", "nft -s list table ip nat"),
              ("nat2", "nft -a list chain ip nat postrouting"),
              ("f2", "nft -a list table inet filter"), ("n2", "nft -s list ruleset"), ("l2", LEGACY_RULES),
              ("back", cli(name, "--force-iptables-binary", "nft", native=False)), ("n3", "nft -s list ruleset"),
              ("nat3", "nft -a list chain ip nat postrouting"), ("f3", "nft -a list table inet filter"),
              setup=foreign())
    for k in ["iptables", "native", "back"]:
        assert s[k].rc == 0, f"{k}: {s[k]}"
    assert "ISTIO_OUTPUT" in s["t1"].out, f"the iptables apply did not use table ip nat:\n{s['t1'].out}"
    assert "ISTIO" not in s["t2"].out, f"our iptables-nft chains stay after a native apply:\n{s['t2'].out}"
    assert s["nat2"].out == s["nat0"].out and s["f2"].out == s["f0"].out, f"{s['nat0'].out}\n---\n{s['nat2'].out}"
    assert ours(s["n2"].out) == ours(expected(name)), s["n2"].out
    assert "--dport 9999" in s["l2"].out, s["l2"].out
    assert not ours(s["n3"].out), s["n3"].out
    assert s["nat3"].out == s["nat0"].out and s["f3"].out == s["f0"].out, f"{s['nat0'].out}\n---\n{s['nat3'].out}"


# 7 ----------------------------------------------------------------------------------------------
@test
def dry_runs_of_apply_and_cleanup_change_nothing():
    everything = f"nft -a list ruleset; {LEGACY_STATE}; {ROUTING_STATE}"
    s = steps(("empty0", everything),
              ("dry0", cli(TPROXY6, "--dry-run")), ("empty1", everything),
              ("apply", cli(TPROXY)), ("before", everything),
              ("dryapply", cli(DNS6, "--dry-run")), ("drycleanup", cli(TPROXY, "cleanup", "--dry-run")),
              ("drycleanupipt", cli(TPROXY, "cleanup", "--dry-run", native=False)),
              ("dryipt", cli(DNS6, "--dry-run", native=False)),
              ("after", everything))
    for k in ["dry0", "apply", "dryapply", "drycleanup", "drycleanupipt", "dryipt"]:
        assert s[k].rc == 0, f"{k}: {s[k]}"
    assert s["empty1"].out == s["empty0"].out, f"a dry-run apply changed an empty namespace:\n{s['empty1'].out}"
    assert s["after"].out == s["before"].out, f"{s['before'].out}\n--- after the dry runs\n{s['after'].out}"
    # The dry runs did describe changes (so "nothing changed" is not "nothing to do").
    assert s["dryapply"].out == open(dry_run_script(DNS6)).read(), s["dryapply"]
    for out in [s["drycleanup"].out, s["drycleanupipt"].out]:
        lines = out.splitlines()
        assert "delete table inet istio-proxy-nat" in lines and "delete table inet istio-proxy-mangle" in lines, out
        assert "delete table inet istio-proxy-raw" not in lines, out


# 8 ----------------------------------------------------------------------------------------------
@test
def network_namespace_programs_that_namespace_only():
    name = TPROXY6
    netns = f"h11nftcli-{os.getpid()}"
    path = f"/run/netns/{netns}"
    inner = f"ip netns exec {netns}"
    outer_state = f"nft -a list ruleset; {LEGACY_STATE}; {ROUTING_STATE}"
    s = steps(("outer0", outer_state),
              ("apply", cli(name, "--network-namespace", path)),
              ("outer1", outer_state), ("inner", f"{inner} nft -s list ruleset"),
              ("innerroutes", f"{inner} sh -c 'ip -4 rule; ip -6 addr show dev lo'"),
              ("check", cli(name, "check", "--network-namespace", path)), ("checkouter", cli(name, "check")),
              ("cleanup", cli(name, "cleanup", "--network-namespace", path)),
              ("inner2", f"{inner} nft -s list ruleset"), ("outer2", outer_state),
              ("del", f"ip netns del {netns}"),
              setup=f"trap 'ip netns del {netns} 2>/dev/null' EXIT; {foreign()} && ip netns add {netns} && "
                    f"{inner} ip link set lo up")
    assert s["del"].rc == 0, s["del"]
    assert s["apply"].rc == 0, s["apply"]
    assert s["outer1"].out == s["outer0"].out, f"the apply changed the namespace it ran in:\n{s['outer1'].out}"
    assert s["inner"].out == expected(name), f"{s['inner'].out}\n--- expected\n{expected(name)}"
    assert "fwmark 0x539 lookup 133" in s["innerroutes"].out and "::6/128" in s["innerroutes"].out, \
        s["innerroutes"].out
    assert s["check"].rc == 0 and s["checkouter"].rc == 1, f"{s['check']}\n{s['checkouter']}"
    assert s["cleanup"].rc == 0 and s["inner2"].out == "", f"{s['cleanup']}\n{s['inner2'].out}"
    assert s["outer2"].out == s["outer0"].out, s["outer2"].out


# 9 ----------------------------------------------------------------------------------------------
# Istio's commands (tools/common/tproxy, spec §2.6): ::6 when IPv6, then with TPROXY and ports the
# fwmark rule and the local default route per family.
ISTIO_ROUTES_V4 = "ip -4 rule add fwmark 1337 lookup 133 && ip -4 route add local 0.0.0.0/0 dev lo table 133"
ISTIO_ROUTES_V6 = "ip -6 rule add fwmark 1337 lookup 133 && ip -6 route add local ::/0 dev lo table 133"
ISTIO_ADDR_V6 = "ip -6 addr add ::6/128 dev lo"


@test
def a_native_apply_installs_the_policy_routing_istio_does():
    for name, reference in [(TPROXY, ISTIO_ROUTES_V4),
                            (TPROXY6, f"{ISTIO_ADDR_V6} && {ISTIO_ROUTES_V4} && {ISTIO_ROUTES_V6}"),
                            ("sidecar-dns-dual-stack", ISTIO_ADDR_V6),
                            ("istio-empty", "true")]:
        s = steps(("apply", cli(name)), ("routing", ROUTING_STATE), ("again", cli(name)),
                  ("routing2", ROUTING_STATE))
        assert s["apply"].rc == 0 and s["again"].rc == 0, f"{name}: {s['apply']}\n{s['again']}"
        want = ns(f"{reference} && {{ {ROUTING_STATE} ; }}").stdout
        assert s["routing"].out == want, f"{name}: after apply\n{s['routing'].out}\n--- Istio's commands\n{want}"
        assert s["routing2"].out == want, f"{name}: after a re-apply\n{s['routing2'].out}"


# 10 ---------------------------------------------------------------------------------------------
@test
def a_group_name_without_an_entry_fails_the_apply_and_changes_nothing():
    # The batch is encoded whole before it is sent: the name is resolved while it is built, in a
    # fresh namespace (where nothing else needs encoding first) and over tables in place.
    args, env = scenario("istio-outbound-owner-groups")
    bad = dict(env, ISTIO_OUTBOUND_OWNER_GROUPS="no-such-group-4711")
    bad_cli = f"{env_prefix(bad)} {tool(args, '--native-nftables')}"
    everything = f"nft -a list ruleset; {ROUTING_STATE}"
    s = steps(("fresh", bad_cli), ("empty", everything),
              ("apply", cli(TPROXY)), ("before", everything), ("over", bad_cli), ("after", everything))
    for k in ["fresh", "over"]:
        assert s[k].rc == 1 and "no-such-group-4711" in s[k].out + s[k].err, f"{k}: {s[k]}"
    assert s["empty"].out.strip() == "" or "istio-proxy" not in s["empty"].out, s["empty"].out
    assert s["apply"].rc == 0, s["apply"]
    assert s["after"].out == s["before"].out, f"{s['before'].out}\n--- after the refused apply\n{s['after'].out}"


# 11 ---------------------------------------------------------------------------------------------
@test
def a_table_of_our_name_owned_by_another_program_fails_the_apply_naming_each_refused_message():
    # `flags owner` ties a table to the netlink socket that made it: the kernel refuses every
    # change to it by anyone else (EPERM). The whole transaction is then refused, each failed
    # message named in nft's words (the rules' texts are made only now, for the message), and
    # nothing changes: the TPROXY scenario's mangle table is not created either.
    hold = ("(printf 'add table inet istio-proxy-nat { flags owner ; }\\nadd chain inet istio-proxy-nat keep\\n'; "
            "sleep 5) | nft -i >/dev/null 2>&1 & sleep 1")
    s = steps(("apply", f"{hold}; {cli(TPROXY)}"), ("after", "nft list ruleset"))
    text = s["apply"].out + s["apply"].err
    assert s["apply"].rc == 1, s["apply"]
    for refused in ["kernel refused `delete table inet istio-proxy-nat` (Operation not permitted)",
                    "kernel refused `add rule inet istio-proxy-nat istio-output skuid 1337 counter return` "
                    "(Operation not permitted)"]:
        assert refused in text, f"missing {refused!r} in\n{text}"
    assert "istio-proxy-mangle" not in s["after"].out, s["after"].out
    assert "chain keep" in s["after"].out, s["after"].out


sys.exit(harness.finish())
