#!/usr/bin/env python3
"""The restore backend and the libiptc backend against the kernel: foreign rules, concurrent
writers, lock and wait settings, rollback.

Every test runs in network namespaces it creates (`unshare -n -m`, with a private xtables lock
file and a private /etc/group); the host's rules are never touched. What a test expects comes
from the kernel's own listing (iptables-save before our run) or from what the foreign writer
did, never from our output. Needs root and the iptables package; exits 77 otherwise.
usage: backend_test.py TOOL REPO_ROOT [TEST-NAME-SUBSTRING]
"""
import os
import re
import shlex
import subprocess
import sys

import harness
from harness import env_prefix, ns, q, scenario, test, tool

TOOL, REPO = sys.argv[1], sys.argv[2]
WORK, LOCK, BASE_ENV = harness.start(TOOL, REPO, sys.argv[3] if len(sys.argv) > 3 else "",
                                     prefix="istio-iptables-backend-test-", needs=["iptables-legacy", "iptables-nft"],
                                     skipped="needs root, unshare and iptables (legacy and nft)")


def save(variant):
    """Both families' listings without iptables-save's '#' lines, counters zeroed."""
    return (f"{{ iptables-{variant}-save -c | grep -v '^#' || true; echo =====; "
            f"ip6tables-{variant}-save -c | grep -v '^#' || true; }} | sed -E 's/\\[[0-9]+:[0-9]+\\]/[0:0]/'")


def without_empty_tables(listing):
    """The listing without tables that hold nothing but empty built-in chains (an apply creates
    the tables it uses; cleanup leaves them, empty)."""
    out, block = [], []
    for line in listing.split("\n"):
        block.append(line)
        if line == "COMMIT":
            if any(l.startswith(("-", "[")) or re.match(r"^:\S+ -", l) for l in block):
                out.extend(block)
            block = []
    return "\n".join(out + block)


# Foreign rules that a re-joining of whitespace tokens would change: two spaces inside a quoted
# comment and inside a string match (which would change what the rule matches), and a comment
# holding a newline (iptables-save prints it as it is, over two lines).
TRICKY = [
    ["-t", "nat", "-A", "OUTPUT", "-m", "comment", "--comment", "two  spaces", "-j", "RETURN"],
    ["-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "string", "--algo", "bm", "--string", "a  b", "-j", "RETURN"],
    ["-t", "nat", "-A", "PREROUTING", "-m", "comment", "--comment", "line one\nline two", "-j", "RETURN"],
    ["-t", "nat", "-A", "OUTPUT", "-m", "comment", "--comment", 'say "hi"\\ there', "-j", "RETURN"],
]


def tricky_rules(binary):
    return " && ".join(f"{binary} {q(r)}" for r in TRICKY)


# ---- defect 7: foreign rules are never re-written --------------------------------------------

def foreign_rules_stay_byte_for_byte(variant):
    args, env = scenario("sidecar-dns")  # every rule of ours names an ISTIO_ chain
    backend = ["--backend", "restore", "--force-iptables-binary", variant]
    script = (f"{tricky_rules('iptables-' + variant)} && {{ {save(variant)}; }} > {WORK}/before && "
              f"{tool(args, *backend)} 2>{WORK}/log1 && {{ {save(variant)}; }} > {WORK}/applied && "
              f"{tool(args, *backend)} 2>{WORK}/log2 && "
              f"{tool(args, 'check', *backend)} > {WORK}/check && "
              f"{tool(args, 'cleanup', *backend)} 2>{WORK}/log3 && {{ {save(variant)}; }} > {WORK}/after")
    p = ns(script, env, check=False)
    read = lambda name: open(os.path.join(WORK, name)).read() if os.path.exists(os.path.join(WORK, name)) else ""
    assert p.returncode == 0, f"rc={p.returncode}\n{p.stderr}\n{read('log1')}{read('log2')}{read('log3')}"
    before, applied, after = read("before"), read("applied"), read("after")
    assert 'two  spaces' in before and '"a  b"' in before and "line one\nline two" in before, before
    # After the apply: the listing without our lines is the listing before, byte for byte.
    ours = lambda line: "ISTIO" in line
    without_ours = "\n".join(l for l in applied.split("\n") if not ours(l))
    assert without_empty_tables(without_ours) == without_empty_tables(before), f"foreign rules changed by apply:\n--- before\n{before}\n--- applied\n{applied}"
    assert "-A OUTPUT -j ISTIO_OUTPUT" in applied, applied
    assert "nothing to change" in read("log2"), read("log2")
    assert "match the plan" in read("check"), read("check")
    assert without_empty_tables(after) == without_empty_tables(before), f"cleanup left other than the foreign rules:\n--- before\n{before}\n--- after\n{after}"


@test
def restore_backend_legacy_keeps_tricky_foreign_rules_byte_for_byte():
    foreign_rules_stay_byte_for_byte("legacy")


@test
def restore_backend_nft_keeps_tricky_foreign_rules_byte_for_byte():
    foreign_rules_stay_byte_for_byte("nft")


@test
def restore_backend_places_ours_among_foreign_rules_as_iptables_restore_would():
    # Our -I positions and appends land where iptables-restore --noflush of the dry-run text
    # puts them on top of the same foreign rules (our old rules removed first).
    args, env = scenario("sidecar-tproxy")
    foreign = ("iptables-legacy -t nat -A OUTPUT -d 203.0.113.1/32 -j RETURN && "
               "iptables-legacy -t nat -I OUTPUT -m comment --comment 'first  one' -j RETURN && "
               "iptables-legacy -t mangle -A PREROUTING -p udp --dport 4789 -j ACCEPT && "
               "ip6tables-legacy -t nat -A OUTPUT -d 2001:db8::1/128 -j RETURN")
    dry = subprocess.run([TOOL] + args + ["--dry-run"], capture_output=True, text=True, env={**BASE_ENV, **env})
    assert dry.returncode == 0, dry.stderr
    v4, _, v6 = dry.stdout.partition("# ip6tables-restore\n")
    open(os.path.join(WORK, "v4"), "w").write(v4)
    open(os.path.join(WORK, "v6"), "w").write(v6)
    ref = ns(f"{foreign} && iptables-legacy-restore --noflush < {WORK}/v4 && "
             f"ip6tables-legacy-restore --noflush < {WORK}/v6 && {{ {save('legacy')}; }}").stdout
    # Ours over an older configuration of ours, so that deletions and insertions both happen.
    old_args, old_env = scenario("sidecar-dns")
    ours = ns(f"{foreign} && {env_prefix(old_env)} {tool(old_args, '--backend', 'restore')} 2>/dev/null && "
              f"{tool(args, '--backend', 'restore')} && {{ {save('legacy')}; }}", env).stdout
    assert ours == ref, f"--- iptables-restore\n{ref}\n--- ours\n{ours}"


@test
def restore_backend_children_use_our_lock_file_and_wait():
    # The lock file named by XTABLES_LOCKFILE is held: iptables-legacy-restore must wait on it
    # (not on the default /run/xtables.lock) and give up after --wait seconds.
    args, env = scenario("sidecar-dns")
    p = ns(f"(flock {LOCK} sleep 6 &) ; sleep 0.5; "
           f"{tool(args, '--backend', 'restore', '--force-iptables-binary', 'legacy', '--wait', '1')}; echo rc=$?; "
           "iptables-legacy-save", env, check=False)
    assert "rc=1" in p.stdout, p.stdout + p.stderr
    assert "ISTIO" not in p.stdout, p.stdout
    assert "xtables lock" in p.stderr, p.stderr


@test
def restore_backend_unreadable_state_names_the_binary_and_why():
    args, env = scenario("sidecar-dns")
    empty = os.path.join(WORK, "emptybin")
    os.makedirs(empty, exist_ok=True)
    p = ns(f"env PATH={empty} {tool(args, 'check', '--backend', 'restore', '--force-iptables-binary', 'legacy')}",
           env, check=False)
    assert p.returncode != 0 and "iptables-legacy-save" in p.stderr and "not found" in p.stderr, p.stderr
    open(LOCK, "a").close()
    os.chmod(LOCK, 0o666)
    os.chmod(WORK, 0o755)
    p = ns(f"setpriv --reuid=65534 --regid=65534 --clear-groups "
           f"{tool(args, 'cleanup', '--backend', 'restore', '--force-iptables-binary', 'legacy')}", env, check=False)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "iptables-legacy-save" in p.stderr and "Permission denied" in p.stderr, p.stderr


# ---- concurrent writers ------------------------------------------------------------------------

def writer_loop(binary, n, lock, deletes=True):
    """Appends n foreign rules to nat OUTPUT and POSTROUTING, deleting every third one's
    predecessor again (unless not `deletes`). A well-behaved writer without the tool's lock: when its own commit fails
    (legacy iptables does not retry when a concurrent commit changed the table: EAGAIN, or
    EINVAL when its counters no longer fit), it looks (-C) and tries again until its change is
    there. Prints each retry and each give-up. Returns (script, the rules that must remain)."""
    lines, remain = [], []
    step = ("n=0; until {check}; do {binary} -w 30 -t nat {op} {rule} 2>/dev/null || echo writer-retry; "
            "n=$((n+1)); [ $n -lt 50 ] || {{ echo writer-gave-up-{what}; break; }}; done")
    for i in range(n):
        chain = "OUTPUT" if i % 2 else "POSTROUTING"
        spec = f"-s 192.0.2.{i % 250 + 1}/32 -p tcp -m tcp --dport {1000 + i} -j ACCEPT"
        rule = f"{chain} {spec}"
        lines.append(step.format(check=f"{binary} -t nat -C {rule} 2>/dev/null", binary=binary, op="-A", rule=rule,
                                 what=f"append-{i}"))
        remain.append(f"-A {rule}")
        if deletes and i % 3 == 2:
            prev = remain.pop(-2)[3:]
            lines.append(step.format(check=f"! {binary} -t nat -C {prev} 2>/dev/null", binary=binary, op="-D",
                                     rule=prev, what=f"delete-{i - 1}"))
    return f"XTABLES_LOCKFILE={lock} bash -c {shlex.quote('; '.join(lines))}", remain


def race(backend_flags, tool_lock, writer_binary, writer_lock, n_foreign=240, wrap="", deletes=True):
    """Applies alternating between two configurations (each apply changes nat OUTPUT and
    PREROUTING) for as long as a foreign writer appends and deletes in the same table, then
    once more with the first configuration. `wrap` prefixes each run of the tool (a tracer)."""
    args_a, env_a = scenario("sidecar-dns")
    args_b, env_b = args_a + ["-c", "eth9"], env_a  # adds "-i/-o eth9 -j RETURN" to both chains
    writer, remain = writer_loop(writer_binary, n_foreign, writer_lock, deletes)
    run = lambda args, k: (f"env XTABLES_LOCKFILE={tool_lock} {env_prefix(env_a)} {wrap} {tool(args, *backend_flags)} "
                           f"2>>{WORK}/race.log || echo tool-failed-{k}")
    script = (f"( {writer} ) > {WORK}/writer.out 2>&1 & w=$!; "
              f"k=0; while kill -0 $w 2>/dev/null; do {run(args_a, 'a$k')}; {run(args_b, 'b$k')}; k=$((k+1)); done; "
              f"wait $w; {run(args_a, 'last')}; echo applies=$((2*k+1)); cat {WORK}/writer.out; "
              f"env XTABLES_LOCKFILE={tool_lock} {env_prefix(env_a)} {tool(args_a, 'check', *backend_flags)}; "
              f"echo check=$?; {save('legacy' if 'legacy' in writer_binary else 'nft')}")
    p = ns(script, env_a, check=False)
    return p, remain


def assert_race_outcome(p, remain):
    out = p.stdout
    assert "tool-failed" not in out, out[:2000] + open(os.path.join(WORK, "race.log")).read()[-3000:]
    assert "writer-gave-up" not in out, f"the foreign writer could not make its change:\n{out[:3000]}"
    assert "check=0" in out, out[:3000]
    # The save's rules only: check's "note:" lines name foreign rules too.
    listed = [l for l in out.splitlines() if "192.0.2." in l and "--dport" in l and "note:" not in l]
    listed = [re.sub(r"^\[\d+:\d+\] ", "", l) for l in listed]
    missing = [r for r in remain if r not in listed]
    extra = [l for l in listed if l not in remain]
    assert not missing and not extra, f"{len(missing)} foreign rules lost: {missing[:5]}; " \
                                      f"{len(extra)} deleted rules back: {extra[:5]}"


@test
def libiptc_apply_races_a_foreign_writer_on_another_lock_file():
    # The two lock files differ, so nothing serialises the tool and the writer: the tool's
    # commits meet a table changed since its read (the kernel answers EAGAIN) and must start
    # again from a fresh read. The writer only appends here: the kernel notices a concurrent
    # change only by the number of entries, so an append and a delete of the writer between
    # our read and our commit would go unnoticed by any x_tables writer (iptables itself
    # relies on the shared lock for exactly that).
    # RACE_WRAP (say "strace -f -e trace=setsockopt -o '|cat >>/tmp/trace'") shows the retries.
    p, remain = race(["--backend", "libiptc"], f"{WORK}/lock-a", "iptables-legacy", f"{WORK}/lock-b", deletes=False,
                     wrap=os.environ.get("RACE_WRAP", ""))
    assert_race_outcome(p, remain)


@test
def restore_backend_keeps_the_rules_a_concurrent_writer_adds_to_built_in_chains():
    # Same lock file: each restore run and each writer command are serialised, but our save
    # and our restore are two steps; a flush and refill of nat OUTPUT would drop what the
    # writer appended in between.
    for variant in ("legacy", "nft"):
        p, remain = race(["--backend", "restore", "--force-iptables-binary", variant], LOCK,
                         f"iptables-{variant}", LOCK, n_foreign=150)
        assert_race_outcome(p, remain)


# ---- rollback of the restore backend ------------------------------------------------------------

WRAPPER = """#!/bin/sh
# ip6tables-legacy-restore that refuses any input for the nat table, and passes the rest on.
input=$(mktemp)
cat > "$input"
if grep -q '^\\*nat' "$input"; then echo "refused by the test: nat" >&2; rm -f "$input"; exit 1; fi
/usr/sbin/ip6tables-legacy-restore "$@" < "$input"; rc=$?; rm -f "$input"; exit $rc
"""


@test
def restore_backend_rollback_puts_back_every_table_written_before_the_failure():
    wrapdir = os.path.join(WORK, "wrap")
    os.makedirs(wrapdir, exist_ok=True)
    w = os.path.join(wrapdir, "ip6tables-legacy-restore")
    open(w, "w").write(WRAPPER)
    os.chmod(w, 0o755)
    args_a, env_a = scenario("sidecar-dns-dual-stack")
    args_b, env_b = scenario("sidecar-tproxy")  # other rules in every table, both families
    backend = ["--backend", "restore", "--force-iptables-binary", "legacy"]
    foreign = (f"{tricky_rules('iptables-legacy')} && iptables-legacy -t mangle -A PREROUTING -p udp --dport 4789 "
               "-j ACCEPT && ip6tables-legacy -t mangle -A OUTPUT -p tcp --dport 9 -j ACCEPT && "
               "ip6tables-legacy -t nat -A PREROUTING -s 2001:db8:1::/48 -j ACCEPT")
    p = ns(f"{foreign} && {env_prefix(env_a)} {tool(args_a, *backend)} 2>/dev/null && "
           f"{{ {save('legacy')}; }} > {WORK}/rb-before && "
           f"env PATH={wrapdir}:{BASE_ENV['PATH']} {env_prefix(env_b)} {tool(args_b, *backend)}; echo rc=$?; "
           f"{{ {save('legacy')}; }} > {WORK}/rb-after", {}, check=False)
    read = lambda name: open(os.path.join(WORK, name)).read() if os.path.exists(os.path.join(WORK, name)) else ""
    before, after = read("rb-before"), read("rb-after")
    assert "rc=1" in p.stdout, p.stdout + p.stderr
    assert "refused by the test" in p.stderr and "put back" in p.stderr, p.stderr
    assert "ISTIO" in before and "two  spaces" in before and "*mangle" in before.split("=====")[0], before
    assert after == before, f"not rolled back:\n--- before\n{before}\n--- after\n{after}"


sys.exit(harness.finish())
