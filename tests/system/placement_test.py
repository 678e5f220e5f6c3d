#!/usr/bin/env python3
"""Where our rules stand among foreign ones, in the kernel's own listing.

Our rules are in order when they stand in the plan's relative order: a foreign rule appended
after our jump must neither fail `check` nor be moved in front of our jump by a re-apply (which
would change what is captured). Every test runs in a network namespace of its own (`unshare -n
-m`, a private xtables lock file); the host's rules are never touched. Needs root and the
iptables package; exits 77 otherwise.
usage: placement_test.py TOOL REPO_ROOT [TEST-NAME-SUBSTRING]
"""
import os
import shlex
import sys

import harness
from harness import env_prefix, ns, scenario, test, tool

TOOL, REPO = sys.argv[1], sys.argv[2]
WORK, LOCK, BASE_ENV = harness.start(TOOL, REPO, sys.argv[3] if len(sys.argv) > 3 else "",
                                     prefix="istio-iptables-placement-", needs=["iptables-legacy"],
                                     skipped="needs root, unshare and iptables")
FOREIGN = "-d 203.0.113.1/32 -j RETURN"


def section(out, name):
    """The text between `== name ==` and the next marker."""
    return out.split(f"== {name} ==\n", 1)[1].split("\n== ", 1)[0].strip() + "\n"


def nat_lines(save, chain):
    return [line for line in save.splitlines() if line.startswith(f"-A {chain} ")]


SAVE_NAT = "iptables-legacy-save -t nat | grep -v '^#'"


def appended_after_our_jump(backend):
    args, env = scenario("sidecar-no-dns")
    # The legacy variant: the listing compared is iptables-legacy's.
    apply = tool(args, "--backend", backend, *(["--force-iptables-binary", "legacy"] if backend == "restore" else []))
    p = ns(f"{apply} 2>/dev/null && iptables-legacy -t nat -A OUTPUT {FOREIGN} && "
           f"echo '== before =='; {SAVE_NAT}; "
           f"echo '== check =='; {tool(args, 'check')} 2>&1; echo rc=$?; "
           f"echo '== reapply =='; {apply} 2>&1; echo rc=$?; "
           f"echo '== after =='; {SAVE_NAT}", env, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    before, after = section(p.stdout, "before"), section(p.stdout, "after")
    # The kernel's listing, as iptables put it: our jump first, the appended rule behind it.
    assert nat_lines(before, "OUTPUT") == ["-A OUTPUT -j ISTIO_OUTPUT", f"-A OUTPUT {FOREIGN}"], before
    check = section(p.stdout, "check")
    assert "rc=0" in check, f"check fails on a foreign rule behind our jump:\n{check}"
    reapply = section(p.stdout, "reapply")
    assert "rc=0" in reapply and "nothing to change" in reapply, f"the re-apply changed something:\n{reapply}"
    assert nat_lines(after, "OUTPUT") == ["-A OUTPUT -j ISTIO_OUTPUT", f"-A OUTPUT {FOREIGN}"], \
        f"the re-apply moved our jump:\n{after}"
    assert after == before, f"the nat table changed:\n{before}\n---\n{after}"


@test
def a_foreign_rule_appended_after_our_jump_passes_check_and_stays_behind_it():
    appended_after_our_jump("libiptc")


@test
def the_restore_backend_leaves_a_foreign_rule_behind_our_jump_too():
    appended_after_our_jump("restore")


@test
def a_new_configuration_keeps_our_jump_in_front_of_a_foreign_rule_appended_after_it():
    args_a, env_a = scenario("sidecar-no-dns")
    args_b, env_b = scenario("sidecar-dns")
    p = ns(f"{env_prefix(env_a)} {tool(args_a)} 2>/dev/null && iptables-legacy -t nat -A OUTPUT {FOREIGN} && "
           f"iptables-legacy -t nat -A PREROUTING -s 198.51.100.0/24 -j ACCEPT && "
           f"{env_prefix(env_b)} {tool(args_b)} 2>/dev/null && "
           f"echo '== after =='; {SAVE_NAT}; echo '== check =='; {env_prefix(env_b)} {tool(args_b, 'check')} 2>&1; echo rc=$?",
           check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    after = section(p.stdout, "after")
    assert nat_lines(after, "OUTPUT") == ["-A OUTPUT -j ISTIO_OUTPUT", f"-A OUTPUT {FOREIGN}"], after
    assert nat_lines(after, "PREROUTING") == ["-A PREROUTING -p tcp -j ISTIO_INBOUND",
                                              "-A PREROUTING -s 198.51.100.0/24 -j ACCEPT"], after
    # Our chain is the new configuration's, as the kernel lists its golden file.
    golden = os.path.join(REPO, "rules", "sidecar-dns", "expected.rules")
    ref = ns(f"iptables-legacy-restore < {shlex.quote(golden)} && {SAVE_NAT}", check=False)
    assert ref.returncode == 0, ref.stderr
    assert nat_lines(after, "ISTIO_OUTPUT") == nat_lines(ref.stdout, "ISTIO_OUTPUT"), after + "---\n" + ref.stdout
    assert "rc=0" in section(p.stdout, "check"), p.stdout


@test
def a_foreign_rule_before_our_jump_is_noted_and_check_still_passes():
    args, env = scenario("sidecar-no-dns")
    p = ns(f"{tool(args)} 2>/dev/null && iptables-legacy -t nat -I OUTPUT 1 {FOREIGN} && "
           f"echo '== check =='; {tool(args, 'check')} 2>&1; echo rc=$?; "
           f"{tool(args)} 2>/dev/null && echo '== after =='; {SAVE_NAT}", env, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    # Not ours to move: it stays first.
    assert nat_lines(section(p.stdout, "after"), "OUTPUT") == [f"-A OUTPUT {FOREIGN}", "-A OUTPUT -j ISTIO_OUTPUT"], \
        p.stdout
    check = section(p.stdout, "check")
    assert "rc=0" in check, f"a foreign rule before our jump failed check:\n{check}"
    assert "203.0.113.1/32" in check, f"check does not mention the rule that can bypass capture:\n{check}"


sys.exit(harness.finish())
