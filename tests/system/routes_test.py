#!/usr/bin/env python3
"""TPROXY policy routing against the kernel: apply installs it, cleanup removes exactly it.

Every test runs in a network namespace it creates (`unshare -n -m`, with a private xtables lock
file); the host's routes are never touched. What a test expects comes from `ip`'s own listing
of the namespace before our run, never from our output. Needs root and iproute2; exits 77
otherwise.
usage: routes_test.py TOOL REPO_ROOT [TEST-NAME-SUBSTRING]
"""
import os
import sys

import harness
from harness import ns, scenario, test, tool

TOOL, REPO = sys.argv[1], sys.argv[2]
WORK, LOCK, BASE_ENV = harness.start(TOOL, REPO, sys.argv[3] if len(sys.argv) > 3 else "",
                                     prefix="istio-iptables-routes-test-", needs=["ip"],
                                     skipped="needs root, unshare and iproute2")


# Everything that routes in the namespace: rules, every table's routes, lo's addresses.
LISTING = ("echo '## rules'; ip rule; echo '## rules6'; ip -6 rule; "
           "echo '## routes'; ip route show table all | grep -v '^local\\|^broadcast' ; "
           "ip route show table all | grep 'table 133' || true; "
           "echo '## routes6'; ip -6 route show table all | grep -v '^local ::1 \\|^multicast\\|^anycast\\|fe80' || true; "
           "echo '## lo'; ip -6 addr show dev lo | grep inet6")

# Routing that is not ours, some of it close to ours: another mark, our mark with another mask
# or an input interface, our table with other routes (another prefix, a gateway, another
# metric), another address on lo.
FOREIGN = """
ip link add veth0 type veth peer name veth1 && ip link set veth1 up && ip link set veth0 up
ip addr add 192.0.2.1/24 dev veth0 && ip -6 addr add 2001:db8::1/64 dev veth0 nodad
ip rule add fwmark 0x1 lookup 100
ip rule add fwmark 0x539/0xff lookup 133
ip rule add fwmark 0x539 iif veth0 lookup 133
ip rule add fwmark 0x539 lookup 134
ip -6 rule add fwmark 0x1 lookup 100
ip -6 rule add fwmark 0x539 iif veth0 lookup 133
ip route add 198.51.100.0/24 dev lo table 133
ip route add local 203.0.113.0/24 dev lo table 133
ip route add default via 192.0.2.2 dev veth0 table 133 metric 50
ip route add local default dev lo table 134
ip -6 route add 2001:db8:5::/64 dev lo table 133
ip -6 route add default via 2001:db8::2 dev veth0 table 133 metric 50
ip route add blackhole default table 133 metric 60
ip -6 route add unreachable default table 133 metric 60
ip -6 addr add 2001:db8:7::7/128 dev lo
""".strip().replace("\n", " && ")


def sections(listing):
    out, name = {}, None
    for line in listing.splitlines():
        if line.startswith("## "):
            name = line[3:]
            out[name] = []
        elif name:
            out[name].append(" ".join(line.split()))
    return out


@test
def cleanup_removes_the_tproxy_routing_it_installed_and_nothing_else():
    args, env = scenario("sidecar-tproxy")  # TPROXY, IPv6 on, mark 1337 (0x539), table 133
    p = ns(f"{FOREIGN} && {{ {LISTING}; }} > {WORK}/before && {tool(args)} 2>{WORK}/log1 && "
           f"{{ {LISTING}; }} > {WORK}/applied && {tool(args, 'cleanup')} 2>{WORK}/log2 && "
           f"{{ {LISTING}; }} > {WORK}/after", env, check=False)
    logs = open(f"{WORK}/log1").read() + open(f"{WORK}/log2").read() if os.path.exists(f"{WORK}/log2") else ""
    assert p.returncode == 0, p.stderr + logs
    before, applied, after = (open(f"{WORK}/{n}").read() for n in ("before", "applied", "after"))
    s, a = sections(before), sections(applied)
    # The apply installed ours (what `ip` shows for it), besides the foreign entries.
    new = {k: [l for l in a[k] if l not in s[k]] for k in a}
    assert [l.split(":", 1)[1].strip() for l in new["rules"]] == ["from all fwmark 0x539 lookup 133"], new
    assert [l.split(":", 1)[1].strip() for l in new["rules6"]] == ["from all fwmark 0x539 lookup 133"], new
    assert any(l.startswith("local default dev lo table 133") for l in new["routes"]), new
    assert any(l.startswith("local default dev lo table 133") for l in new["routes6"]), new
    assert any("inet6 ::6/128" in l for l in new["lo"]), new
    # Cleanup took exactly that away again.
    assert after == before, f"--- before\n{before}\n--- after cleanup\n{after}"


@test
def cleanup_with_no_routing_of_ours_changes_nothing_and_succeeds():
    args, env = scenario("sidecar-tproxy")
    p = ns(f"{FOREIGN} && {{ {LISTING}; }} > {WORK}/before2 && {tool(args, 'cleanup')} && {tool(args, 'cleanup')} && "
           f"{{ {LISTING}; }} > {WORK}/after2", env, check=False)
    assert p.returncode == 0, p.stderr
    before, after = (open(f"{WORK}/{n}").read() for n in ("before2", "after2"))
    assert after == before, f"--- before\n{before}\n--- after cleanup\n{after}"


@test
def cleanup_removes_the_routing_of_a_custom_mark_and_table_only():
    # Installed with mark 0x2a and table 142: cleanup with the same flags removes those, and the
    # default mark/table entries (someone else's here) stay.
    args, env = scenario("sidecar-tproxy")
    custom = args + ["-t", "42", "-r", "142"]
    others = ("ip rule add fwmark 0x539 lookup 133 && ip route add local default dev lo table 133 && "
              "ip -6 route add local default dev lo table 133")
    p = ns(f"{others} && {{ {LISTING}; }} > {WORK}/before3 && {tool(custom)} 2>/dev/null && "
           f"ip rule > {WORK}/applied3 && {tool(custom, 'cleanup')} && {{ {LISTING}; }} > {WORK}/after3", env, check=False)
    assert p.returncode == 0, p.stderr
    applied = open(f"{WORK}/applied3").read()
    assert "fwmark 0x2a lookup 142" in applied, applied
    before, after = (open(f"{WORK}/{n}").read() for n in ("before3", "after3"))
    # ::6/128 was ours too (the apply added it; it was not there before).
    assert after == before, f"--- before\n{before}\n--- after cleanup\n{after}"


sys.exit(harness.finish())
