#!/usr/bin/env python3
"""Apply, re-apply, cleanup, check, backends, locking and routes against the kernel.

Every test runs in network namespaces it creates (`unshare -n`, with `-m` so that a private
/etc/group can resolve the group names some scenarios use, and a private xtables lock file);
the host's rules are never touched. Needs root and the iptables package; exits 77 otherwise.
usage: system_test.py TOOL XT_DUMP REPO_ROOT [TEST-NAME-SUBSTRING]
"""
import os
import re
import shlex
import subprocess
import sys

import harness
from harness import env_prefix, ns, q, scenario, test, tool

TOOL, DUMP, REPO = sys.argv[1], sys.argv[2], sys.argv[3]
WORK, LOCK, BASE_ENV = harness.start(TOOL, REPO, sys.argv[4] if len(sys.argv) > 4 else "",
                                     prefix="istio-iptables-test-", needs=["iptables-legacy"],
                                     skipped="needs root, unshare and iptables")


def dry_run(args, env):
    p = subprocess.run([TOOL] + args + ["--dry-run"], capture_output=True, text=True, env={**BASE_ENV, **env})
    assert p.returncode == 0, p.stderr
    text = p.stdout
    if "# ip6tables-restore\n" in text:
        return tuple(text.split("# ip6tables-restore\n", 1))
    return text, ""


SAVE = "{ iptables-legacy-save | grep -v '^#' || true; echo =====; ip6tables-legacy-save | grep -v '^#' || true; }"
STATE = SAVE + f"; echo =====; {DUMP}"


def restored_state(args, env):
    """What iptables-legacy-restore of our dry-run text leaves in a fresh namespace."""
    v4, v6 = dry_run(args, env)
    f4, f6 = os.path.join(WORK, "v4"), os.path.join(WORK, "v6")
    open(f4, "w").write(v4)
    open(f6, "w").write(v6)
    load = f"iptables-legacy-restore --noflush < {f4}" + (f" && ip6tables-legacy-restore --noflush < {f6}" if v6 else "")
    return ns(f"{load} && {{ {STATE}; }}").stdout


def strip_empty_tables(save):
    """Per family, the tables in name order (iptables-save lists them in creation order), without
    tables holding nothing but empty built-in chains (they say nothing)."""
    families = []
    for part in save.split("====="):
        tables, block = [], []
        for line in part.strip().splitlines():
            block.append(line)
            if line == "COMMIT":
                if any(l.startswith("-") or re.match(r"^:\S+ -", l) for l in block):
                    tables.append("\n".join(block))
                block = []
        families.append("\n".join(sorted(tables)))
    return "\n=====\n".join(families)


def counters_zeroed(save):
    return re.sub(r"\[\d+:\d+\]", "[0:0]", save)


FOREIGN = """
iptables-legacy -t filter -A INPUT -s 203.0.113.0/24 -j DROP
iptables-legacy -t filter -N KUBE-FIREWALL
iptables-legacy -t filter -A KUBE-FIREWALL -p tcp --dport 10250 -j ACCEPT
iptables-legacy -t nat -A PREROUTING -s 198.51.100.0/24 -j ACCEPT
iptables-legacy -t nat -N KUBE-SERVICES
iptables-legacy -t nat -A KUBE-SERVICES -d 192.0.2.10/32 -p tcp --dport 80 -j DNAT --to-destination 192.0.2.20:8080
iptables-legacy -t nat -A OUTPUT -j KUBE-SERVICES
iptables-legacy -t nat -A POSTROUTING -o lo -j ACCEPT
iptables-legacy -t mangle -A PREROUTING -p udp --dport 4789 -j ACCEPT
iptables-legacy -t raw -A PREROUTING -p tcp --dport 179 -j NOTRACK
ip6tables-legacy -t nat -A PREROUTING -s 2001:db8:1::/48 -j ACCEPT
ip6tables-legacy -t filter -A OUTPUT -d 2001:db8:2::/48 -j REJECT
ip6tables-legacy -t mangle -A OUTPUT -p tcp --dport 9 -j ACCEPT
""".strip().replace("\n", " && ")


def all_scenarios():
    return sorted(os.listdir(os.path.join(REPO, "rules")))


def ours_state(args, env, backend="libiptc", before=""):
    pre = f"{before} && " if before else ""
    return ns(f"{pre}{tool(args, '--backend', backend)} && {{ {STATE}; }}", env).stdout


# ---- point 2: the same result as iptables-restore, in text and in binary ------------------------

@test
def apply_equals_iptables_restore_for_every_scenario():
    bad = []
    for name in all_scenarios():
        args, env = scenario(name)
        ours = ours_state(args, env)
        ref = restored_state(args, env)
        if ours != ref:
            bad.append(name)
    assert not bad, f"save text or binary entries differ from iptables-legacy-restore's for: {bad}"


# ---- point 3: idempotent, converges, repairs ----------------------------------------------------

@test
def reapply_changes_nothing_and_keeps_counters():
    args, env = scenario("sidecar-dns-dual-stack")
    script = (f"{tool(args)} 2>/dev/null && "
              # traffic through nat OUTPUT so that counters move
              "(timeout 1 bash -c 'echo > /dev/tcp/127.0.0.1/9' 2>/dev/null || true) && "
              "iptables-legacy-save -c -t nat | grep -v '^#' > /tmp/before && "
              f"{tool(args)} 2>/tmp/log && "
              "iptables-legacy-save -c -t nat | grep -v '^#' > /tmp/after && "
              "cat /tmp/log && diff /tmp/before /tmp/after && grep -c '\\[[1-9]' /tmp/after")
    p = ns(script.replace("/dev/tcp", "/dev/tcp"), env)
    assert "nothing to change" in p.stdout, p.stdout


@test
def a_new_configuration_replaces_ours():
    pairs = [("sidecar-tproxy", "sidecar-dns"), ("capture-all-dns-1.24", "istio-empty"),
             ("kube-virt-cidrs-dual-stack", "drop-invalid-tproxy-dual-stack"), ("environment-only", "seed-with-dns"),
             ("istio-1.24-ip-range", "istio-inbound-ports-wildcard-tproxy"), ("dns-several-servers", "kube-virt-wildcard")]
    bad = []
    for a, b in pairs:
        args_a, env_a = scenario(a)
        args_b, env_b = scenario(b)
        env = {**env_a, **env_b}
        # env_a's variables must not leak into b's run: run b with its own environment only.
        first = f"{env_prefix(env_a)} {tool(args_a)} 2>/dev/null"
        ours = ns(f"{first} && {tool(args_b)} 2>/dev/null && {{ {STATE}; }}", env_b).stdout
        ref = restored_state(args_b, env_b)
        if strip_empty_tables("=====".join(ours.split("=====")[:2])) != strip_empty_tables("=====".join(ref.split("=====")[:2])):
            bad.append(f"{a} -> {b}")
    assert not bad, f"not converged: {bad}"


@test
def a_partial_or_tampered_state_is_repaired():
    args, env = scenario("sidecar-dns-dual-stack")
    v4, v6 = dry_run(args, env)
    nat_only = v4.split("* raw")[0]  # as if killed between the nat and the raw commit
    open(os.path.join(WORK, "partial"), "w").write(nat_only)
    damage = (f"iptables-legacy-restore --noflush < {WORK}/partial && "
              "iptables-legacy -t nat -D ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN && "
              "iptables-legacy -t nat -A ISTIO_OUTPUT -p tcp --dport 1 -j RETURN && "
              "iptables-legacy -t nat -N ISTIO_STALE && iptables-legacy -t nat -A PREROUTING -j ISTIO_STALE")
    ours = ns(f"{damage} && {tool(args)} 2>/dev/null && {{ {STATE}; }}", env).stdout
    assert ours == restored_state(args, env), "the damaged namespace was not repaired to the plan"


# ---- point 4 and 5: foreign rules survive; cleanup leaves exactly them ---------------------------

@test
def foreign_rules_survive_apply_reapply_and_cleanup():
    args_a, env_a = scenario("sidecar-tproxy")
    args_b, env_b = scenario("capture-all-dns-1.24")
    foreign_only = ns(f"{FOREIGN} && {{ {SAVE}; }}").stdout
    script = (f"{FOREIGN} && {env_prefix(env_a)} {tool(args_a)} 2>/dev/null && "
              f"{tool(args_a)} 2>/dev/null && {tool(args_b)} 2>/dev/null && {{ {SAVE}; }} > {WORK}/applied && "
              f"{tool(args_b, 'cleanup')} 2>/dev/null && {{ {SAVE}; }}")
    p = ns(script, env_b)
    applied = open(os.path.join(WORK, "applied")).read()
    for line in foreign_only.splitlines():
        if line.startswith("-A"):
            assert line in applied, f"foreign rule lost by apply: {line}"
    assert strip_empty_tables(counters_zeroed(p.stdout)) == strip_empty_tables(counters_zeroed(foreign_only)), \
        f"after cleanup the tables are not exactly the foreign rules:\n{p.stdout}\n---\n{foreign_only}"


@test
def cleanup_removes_every_configuration_of_ours():
    bad = []
    for name in ["sidecar-tproxy", "capture-all-dns-1.24", "drop-invalid-tproxy-dual-stack", "kube-virt-cidrs-dual-stack",
                 "istio-1.24-ipv6-dns-outbound-owner-groups-exclude", "environment-only"]:
        args, env = scenario(name)
        # cleanup with a different (minimal) configuration: it must still remove everything of ours
        out = ns(f"{tool(args)} 2>/dev/null && {TOOL} cleanup --ipv6 off >/dev/null 2>&1 && {{ {SAVE}; }}", env).stdout
        if "ISTIO" in out or re.search(r"^-A", out, re.M):
            bad.append(name)
    assert not bad, f"rules left after cleanup: {bad}"


# ---- point 6: check ---------------------------------------------------------------------------

@test
def check_reports_sameness_and_differences():
    args, env = scenario("sidecar-dns")
    p = ns(f"{tool(args)} 2>/dev/null && {tool(args, 'check')}", env)
    assert "match the plan" in p.stdout
    p = ns(f"{tool(args)} 2>/dev/null && iptables-legacy -t nat -D ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN && "
           f"iptables-legacy -t nat -A ISTIO_OUTPUT -p tcp --dport 7 -j RETURN && {tool(args, 'check')}", env, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "IPv4 nat ISTIO_OUTPUT: missing: -d 127.0.0.1/32 -j RETURN" in p.stdout, p.stdout
    assert "IPv4 nat ISTIO_OUTPUT: extra: -p tcp --dport 7 -j RETURN" in p.stdout, p.stdout
    # In a fresh namespace everything is missing, and asking creates no table.
    p = ns(f"{tool(args, 'check')}; echo rc=$?; cat /proc/net/ip_tables_names", env)
    assert "rc=1" in p.stdout and "missing" in p.stdout
    assert not re.search(r"^(nat|raw|mangle|filter)$", p.stdout, re.M), "check created a table"


@test
def check_against_a_golden_file():
    args, env = scenario("sidecar-tproxy")
    golden = os.path.join(REPO, "rules", "sidecar-tproxy", "expected.rules")
    p = subprocess.run([TOOL, "check", "--against", golden] + args, capture_output=True, text=True, env={**BASE_ENV, **env})
    assert p.returncode == 0, p.stdout + p.stderr
    other = os.path.join(REPO, "rules", "sidecar-dns", "expected.rules")
    p = subprocess.run([TOOL, "check", "--against", other] + args, capture_output=True, text=True, env={**BASE_ENV, **env})
    assert p.returncode == 1 and "IPv6" in p.stdout and "mangle" in p.stdout, p.stdout + p.stderr


# ---- point 8: concurrent writers --------------------------------------------------------------

@test
def eight_applies_and_a_foreign_writer_at_once():
    args, env = scenario("sidecar-dns-dual-stack")
    n_foreign = 150
    script = (
        f"( i=0; while [ $i -lt {n_foreign} ]; do iptables-legacy -w 30 -t nat -A POSTROUTING -s 192.0.2.$((i % 250 + 1)) "
        f"-p tcp --dport $((1000 + i)) -j ACCEPT || exit 1; i=$((i+1)); done ) & writer=$!; "
        + " ".join(f"{tool(args)} 2>>{WORK}/conc.log & p{k}=$!;" for k in range(8))
        + " fail=0; for p in " + " ".join(f"$p{k}" for k in range(8)) + "; do wait $p || fail=1; done; wait $writer || fail=2; "
        f"echo fail=$fail; {tool(args, 'check')}; echo check=$?; iptables-legacy-save -t nat | grep -c 'POSTROUTING -s 192.0.2'")
    p = ns(script, env, check=False)
    assert "fail=0" in p.stdout, p.stdout + open(os.path.join(WORK, "conc.log")).read()
    assert "check=0" in p.stdout, p.stdout
    assert p.stdout.strip().splitlines()[-1] == str(n_foreign), p.stdout


@test
def lock_held_elsewhere_times_out_and_changes_nothing():
    args, env = scenario("sidecar-dns")
    p = ns(f"(flock {LOCK} sleep 4 &) ; sleep 0.5; {tool(args, '--wait', '1')}; echo rc=$?; {SAVE}", env, check=False)
    assert "rc=1" in p.stdout, p.stdout + p.stderr
    assert "gave up after 1s" in p.stdout + p.stderr, p.stderr
    assert "ISTIO" not in p.stdout


@test
def cni_mode_locks_the_pods_network_namespace_not_the_global_lock():
    # Istio's CNI mode (--cni-mode with --network-namespace): the lock file is the namespace's
    # path, so pods set up at once never wait on one another, nor on the node's iptables users.
    args, env = scenario("sidecar-dns")
    cni = ["--cni-mode", "--wait", "1"]
    # Names of this run, deleted on the way out: /run is the host's file system, so the files that
    # `ip netns add` makes outlive the test's mount namespace.
    a, b = f"istio-test-{os.getpid()}-a", f"istio-test-{os.getpid()}-b"
    p = ns(f"trap 'ip netns del {a}; ip netns del {b}' EXIT; ip netns add {a} && ip netns add {b} && "
           f"(flock {LOCK} sleep 4 &) ; sleep 0.5; "
           f"{tool(args, *cni, '--network-namespace', f'/run/netns/{a}')} 2>{WORK}/a.log; echo rc_a=$?; "
           f"echo =====; ip netns exec {a} iptables-legacy-save -t nat | grep -c ISTIO_; echo =====; "
           f"(flock /run/netns/{b} sleep 4 &) ; sleep 0.5; "
           f"{tool(args, *cni, '--network-namespace', f'/run/netns/{b}')} 2>{WORK}/b.log; echo rc_b=$?; "
           f"echo =====; ip netns exec {b} iptables-legacy-save -t nat | grep -c ISTIO_ || true", env, check=False)
    a_log, b_log = open(f"{WORK}/a.log").read(), open(f"{WORK}/b.log").read()
    parts = p.stdout.split("=====\n")
    assert "rc_a=0" in parts[0], p.stdout + a_log
    assert int(parts[1].strip()) > 0, p.stdout
    assert "rc_b=1" in parts[2] and f"/run/netns/{b}" in b_log and "gave up after 1s" in b_log, p.stdout + b_log
    assert parts[3].strip() == "0", p.stdout


@test
def a_network_namespace_owned_by_a_child_user_namespace_gets_the_pods_owner_rules():
    # A pod with `hostUsers: false`: its network namespace belongs to the pod's user namespace
    # (pod UIDs 0-65535 are 100000-165535 outside). Owner matches can only be installed from
    # inside it (the kernel refuses with EINVAL otherwise), and 1337 means the pod's 1337.
    args, env = scenario("sidecar-dns")
    holder = ("{ unshare --user --net sleep 30 & } ; holder=$!; sleep 0.3; "
              "echo '0 100000 65536' > /proc/$holder/uid_map; echo '0 100000 65536' > /proc/$holder/gid_map; "
              "[ \"$(readlink /proc/$holder/ns/user)\" != \"$(readlink /proc/self/ns/user)\" ] || "
              "{ echo 'the holder is not in a user namespace of its own'; exit 1; }; ")
    pod = "--network-namespace /proc/$holder/ns/net"
    for variant in (["--backend", "libiptc"], ["--force-iptables-binary", "nft", "--backend", "auto"]):
        save = "iptables-legacy-save" if "libiptc" in variant else "iptables-nft-save"
        p = ns(holder + f"{tool(args, *variant)} {pod} 2>{WORK}/u.log; echo rc=$?; echo =====; "
               f"nsenter -t $holder -n {save} | grep -c -- '--uid-owner 1337'; echo =====; "
               f"{tool(args, 'check', *variant)} {pod} >/dev/null 2>&1; echo check=$?; kill $holder", env, check=False)
        parts = p.stdout.split("=====\n")
        log = open(f"{WORK}/u.log").read()
        assert "rc=0" in parts[0], f"{variant}: {p.stdout}{p.stderr}{log}"
        assert int(parts[1].strip()) >= 3, f"{variant}: {p.stdout}"
        assert "check=0" in parts[2], f"{variant}: {p.stdout}"


@test
def validation_exits_126_when_no_listener_can_be_opened_with_istios_records():
    # Istio's istio-validation container: `--run-validation --skip-rule-apply`. With both ports
    # taken by another program (no SO_REUSEPORT), no listener opens: exit 126, as Istio's, after
    # its records. Nothing is programmed.
    args = ["--run-validation", "--skip-rule-apply", "--ipv6", "off", "--probe-timeout", "2s", "-p", "15001", "-z", "15006"]
    hold = ("python3 -c 'import socket,time\nfor p in (15001, 15006):\n s=socket.socket(); "
            "s.bind((\"127.0.0.1\", p)); s.listen(); globals()[\"k%d\" % p]=s\ntime.sleep(5)' & sleep 0.5; ")
    p = ns(f"{hold}{tool(args)} 2>{WORK}/v.log; echo rc=$?; iptables-legacy-save | grep -c ISTIO || true", {}, check=False)
    log = open(f"{WORK}/v.log").read()
    assert "rc=126" in p.stdout, p.stdout + log
    for record in ["\tinfo\tStarting iptables validation. This check verifies that iptables rules are properly "
                   "established for the network.\n",
                   "\tinfo\tListening on 127.0.0.1:15001\n",
                   "\terror\tError on listening: listen tcp 127.0.0.1:15001: bind: address already in use\n",
                   "\terror\tValidation failed: no listener available: ",
                   "\terror\tiptables validation failed; workload is not ready for Istio.\n"]:
        assert record in log, f"missing {record!r} in\n{log}"
    assert p.stdout.strip().splitlines()[-1] == "0", p.stdout


@test
def owner_names_resolve_without_the_name_service_in_cni_mode():
    # Istio's CNI mode binds /dev/null over nsswitch.conf so that `-m owner` cannot start NSS or
    # LDAP lookups from a half-set-up pod. We never use NSS: with an nsswitch.conf that names
    # only a module that does not exist, getgrnam would find no group, while the names of
    # ISTIO_OUTBOUND_OWNER_GROUPS (in the test's /etc/group) must still resolve.
    args, env = scenario("istio-outbound-owner-groups")
    conf = os.path.join(WORK, "nsswitch.conf")
    with open(conf, "w") as f:
        f.write("passwd: no-such-module\ngroup: no-such-module\nhosts: no-such-module\n")
    gid = [line.split(":")[2] for line in open(harness.GROUPS) if line.startswith("java:")][0]
    p = ns(f"mount --bind {conf} /etc/nsswitch.conf && getent group java; echo getent=$?; "
           f"{tool(args, '--cni-mode')} 2>{WORK}/nss.log; echo rc=$?; iptables-legacy-save -t nat", env, check=False)
    log = open(f"{WORK}/nss.log").read()
    assert "getent=2" in p.stdout, f"the name service still answers:\n{p.stdout}"
    assert "rc=0" in p.stdout, p.stdout + log
    assert f"--gid-owner {gid}" in p.stdout, p.stdout


# ---- point 9: backends --------------------------------------------------------------------------

@test
def restore_backend_gives_the_same_tables_and_is_idempotent():
    bad = []
    for name in ["sidecar-dns-dual-stack", "sidecar-tproxy", "capture-all-dns-1.24", "istio-outbound-owner-groups"]:
        args, env = scenario(name)
        # A legacy table first: the restore backend then runs the legacy variant's binaries.
        ours = ns(f"iptables-legacy -t nat -S >/dev/null && {tool(args, '--backend', 'restore')} 2>/dev/null && "
                  f"{tool(args, '--backend', 'restore')} 2>{WORK}/log && "
                  f"{{ {SAVE}; }}", env).stdout
        ref = "=====".join(restored_state(args, env).split("=====")[:2])
        # Tables in name order: the legacy table made first changes iptables-save's order only.
        if strip_empty_tables(ours) != strip_empty_tables(ref):
            bad.append(name)
        if "nothing to change" not in open(os.path.join(WORK, "log")).read():
            bad.append(name + " (second run changed something)")
    assert not bad, bad


@test
def auto_backend_follows_iptables_nft_and_creates_no_legacy_table():
    args, env = scenario("sidecar-dns")
    p = ns(f"iptables-nft -t filter -A INPUT -s 203.0.113.9 -j DROP && {tool(args, '--backend', 'auto')} && "
           f"{{ iptables-nft-save | grep -v '^#' || true; }}; "
           f"echo legacy:; cat /proc/net/ip_tables_names; echo cleanup:; {tool(args, 'cleanup', '--backend', 'auto')} && "
           "{ iptables-nft-save | grep -v '^#' || true; }", env)
    assert "iptables-nft in-process" in p.stdout + p.stderr, p.stderr
    applied, rest = p.stdout.split("legacy:")
    legacy, cleaned = rest.split("cleanup:")
    assert "-A ISTIO_OUTPUT" in applied and "-A INPUT -s 203.0.113.9/32 -j DROP" in applied, applied
    assert not re.search(r"^(nat|raw)$", legacy, re.M), "legacy tables were created"
    assert "ISTIO" not in cleaned and "-A INPUT -s 203.0.113.9/32 -j DROP" in cleaned, cleaned


@test
def auto_backend_picks_nf_tables_in_a_fresh_namespace_and_libiptc_beside_legacy_rules():
    # As Istio 1.27+ chooses: legacy only where legacy rules already are.
    args, env = scenario("sidecar-dns")
    p = ns(f"{tool(args, '--backend', 'auto')}", env)
    assert "iptables-nft in-process" in p.stdout + p.stderr, p.stderr
    p = ns(f"iptables-legacy -t filter -A INPUT -s 203.0.113.9 -j DROP && {tool(args, '--backend', 'auto')}", env)
    assert "libiptc" in p.stdout + p.stderr, p.stderr


# ---- point 10: routes and the passthrough address ---------------------------------------------

@test
def tproxy_routes_and_ipv6_passthrough_address():
    args, env = scenario("sidecar-tproxy")
    p = ns(f"{tool(args)} 2>/dev/null && {tool(args)} 2>/dev/null && ip rule; echo ==; ip -6 rule; echo ==; "
           "ip route show table 133; ip -6 route show table 133; echo ==; ip -6 addr show dev lo", env)
    rules4, rules6, routes, addrs = p.stdout.split("==")
    assert rules4.count("fwmark 0x539 lookup 133") == 1, rules4
    assert rules6.count("fwmark 0x539 lookup 133") == 1, rules6
    assert "local default dev lo" in routes and routes.count("local default dev lo") == 2, routes
    assert "inet6 ::6/128" in addrs, addrs


@test
def network_namespace_flag_programs_that_namespace_only():
    args, env = scenario("sidecar-dns")
    # The outer namespace is a throwaway too; the tool must program the named one and not this one.
    name = f"istio-iptables-test-{os.getpid()}"
    p = ns(f"ip netns add {name} && {tool(args, '--network-namespace', '/run/netns/' + name)} 2>/dev/null; "
           f"echo outer:; {{ iptables-legacy-save | grep -c ISTIO || true; }}; echo inner:; "
           f"ip netns exec {name} sh -c 'iptables-legacy-save | grep -c ISTIO'; ip netns del {name}", env)
    outer, inner = p.stdout.split("outer:")[1].split("inner:")
    assert outer.strip() == "0", p.stdout
    assert int(inner.strip()) > 10, p.stdout


# ---- point 11: errors ----------------------------------------------------------------------------

@test
def errors_name_the_cause_and_leave_nothing_half_done():
    args, env = scenario("sidecar-dns")
    open(LOCK, "a").close()
    os.chmod(LOCK, 0o666)  # so that the unprivileged run gets as far as the kernel
    os.chmod(WORK, 0o755)
    p = ns(f"setpriv --reuid=65534 --regid=65534 --clear-groups {tool(args)}", env, check=False)
    assert p.returncode == 1, p.stderr
    assert "permission denied" in p.stdout + p.stderr and "CAP_NET_ADMIN" in p.stdout + p.stderr, p.stderr
    p = ns(f"{tool(args, '--network-namespace', '/nonexistent/ns')}", env, check=False)
    assert p.returncode == 1 and "cannot open network namespace /nonexistent/ns" in p.stdout + p.stderr, p.stderr
    # A group that does not resolve: refused before any table is written.
    p = ns(f"{tool(args)} ; echo rc=$?; {SAVE}", {**env, "ISTIO_OUTBOUND_OWNER_GROUPS": "nosuchgroup"}, check=False)
    assert "rc=1" in p.stdout and "nosuchgroup" in p.stdout + p.stderr and "is not in /etc/group" in p.stdout + p.stderr, p.stdout + p.stderr
    assert "ISTIO" not in p.stdout


@test
def a_broken_libiptc_fails_the_legacy_backend_only_naming_the_library():
    # libip4tc is loaded with dlopen when a legacy table is first opened. With an empty file bound
    # over it, the legacy backend fails naming the library and creates no table; in this
    # namespace, which then holds no legacy table, the nf_tables variant and the native nftables
    # mode have no legacy table to open, never load it, and still apply.
    args, env = scenario("sidecar-dns")
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    ldd = subprocess.run(["ldd", harness.TOOL], capture_output=True, text=True, check=True).stdout
    libdir = os.path.dirname(re.search(r"libc\.so\.6 => (/\S+)", ldd).group(1))
    lib = [p for p in re.findall(r"^\s*libip4tc\.so\.2 \(.*\) => (/\S+)", cache, re.M)
           if os.path.dirname(p) == libdir][0]  # the tool's architecture: beside its libc
    empty = os.path.join(WORK, "empty.so")
    open(empty, "w").close()
    p = ns(f"mount --bind {empty} {lib} && {{ {tool(args, '--backend', 'libiptc')}; echo legacy=$?; }}; "
           f"echo tables=$(cat /proc/net/ip_tables_names 2>/dev/null | wc -l); "
           f"{{ {tool(args, '--force-iptables-binary', 'nft')} >/dev/null 2>&1; echo nft=$?; }}; "
           f"{{ {tool(args, '--native-nftables')} >/dev/null 2>&1; echo native=$?; }}; nft list tables", env, check=False)
    out = p.stdout + p.stderr
    assert "legacy=1" in out and "cannot load libip4tc.so.2" in out and "libip4tc2" in out, out
    assert "tables=0" in out, out
    assert "nft=0" in out and "native=0" in out and "istio-proxy-nat" in out, out


# ---- issue 8: every command does exactly what it says -------------------------------------------

@test
def dry_run_cleanup_and_check_never_write_whatever_else_is_set():
    args, env = scenario("sidecar-dns-dual-stack")
    runs = [
        tool(args, "cleanup", "--dry-run"),
        tool(args, "--cleanup-only", "--dry-run"),
        "CLEANUP_ONLY=true " + tool(args, "check"),
        tool(args, "check", "--cleanup-only"),
        "DRY_RUN=true " + tool(args, "cleanup"),
    ]
    script = f"{tool(args)} 2>/dev/null && {{ {SAVE}; }} > {WORK}/before && " + " && ".join(
        f"{{ {r} >/dev/null 2>&1; echo rc=$?; }}" for r in runs) + f" && {{ {SAVE}; }} > {WORK}/after"
    p = ns(script, env)
    before, after = open(f"{WORK}/before").read(), open(f"{WORK}/after").read()
    assert "ISTIO_OUTPUT" in before, before
    assert counters_zeroed(before) == counters_zeroed(after), "a read-only run changed the tables:\n" + after
    assert p.stdout.split() == ["rc=0"] * 5, p.stdout


@test
def cleanup_dry_run_prints_exactly_what_cleanup_removes():
    args, env = scenario("sidecar-tproxy")
    # What the dry run prints, fed to iptables-restore --noflush, leaves what cleanup leaves.
    p = ns(f"{FOREIGN} && {tool(args)} 2>/dev/null && {tool(args, 'cleanup', '--dry-run')} > {WORK}/removal && "
           f"sed -n '1,/^# ip6tables-restore/p' {WORK}/removal | grep -v '^# ip' > {WORK}/r4 && "
           f"sed -n '/^# ip6tables-restore/,$p' {WORK}/removal | grep -v '^# ip' > {WORK}/r6 && "
           f"iptables-legacy-restore --noflush < {WORK}/r4 && ip6tables-legacy-restore --noflush < {WORK}/r6 && "
           f"{{ {SAVE}; }}", env)
    by_text = p.stdout
    removal = open(f"{WORK}/removal").read()
    assert "-D PREROUTING -p tcp -j ISTIO_INBOUND" in removal, removal
    assert "-X ISTIO_DIVERT" in removal, removal
    p = ns(f"{FOREIGN} && {tool(args)} 2>/dev/null && {tool(args, 'cleanup')} 2>/dev/null && {{ {SAVE}; }}", env)
    assert strip_empty_tables(counters_zeroed(by_text)) == strip_empty_tables(counters_zeroed(p.stdout)), (
        by_text + "\n----\n" + p.stdout)
    assert "ISTIO" not in p.stdout


@test
def unprivileged_cleanup_and_check_fail_clearly_and_change_nothing():
    args, env = scenario("sidecar-dns")
    open(LOCK, "a").close()
    os.chmod(LOCK, 0o666)
    os.chmod(WORK, 0o755)
    nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    p = ns(f"{tool(args)} 2>/dev/null && {{ {nobody} {tool(args, 'cleanup')}; echo cleanup=$?; }} && "
           f"{{ {nobody} {tool(args, 'check')}; echo check=$?; }} && iptables-legacy-save -t nat | grep -c ISTIO", env)
    assert "cleanup=1" in p.stdout and "check=3" in p.stdout, p.stdout + p.stderr
    assert "CAP_NET_ADMIN" in p.stdout + p.stderr, p.stderr
    assert "none of our rules" not in p.stdout + p.stderr and "missing" not in p.stdout, p.stdout + p.stderr
    assert int(p.stdout.strip().splitlines()[-1]) > 10, p.stdout


@test
def ipv6_detection_reads_the_target_namespace():
    args = ["-u", "1337", "-i", "*", "-b", "*", "--ipv6", "auto", "--dry-run"]
    name = f"istio-iptables-v6-{os.getpid()}"
    # The caller's namespace has only an IPv4 address, the target only an IPv6 one.
    p = ns(f"ip netns add {name} && ip link add v4a type veth peer name v6b netns {name} && ip link set v4a up && "
           f"ip addr add 192.0.2.4/24 dev v4a && ip netns exec {name} sh -c 'ip link set lo up && "
           f"ip link set v6b up && ip addr add 2001:db8::6/64 dev v6b nodad' && "
           f"{{ {TOOL} {q(args + ['--network-namespace', '/run/netns/' + name])}; echo rc=$?; }}; "
           f"echo =====; {TOOL} {q(args)}; ip netns del {name}", check=False)
    target, caller = p.stdout.split("=====")
    assert "rc=0" in target, p.stdout + p.stderr
    assert "# ip6tables-restore" in target, "IPv6 was not detected in the target namespace:\n" + target
    assert "# ip6tables-restore" not in caller, caller


sys.exit(harness.finish())
