#!/usr/bin/env python3
"""The native nftables store against the kernel, each case in network namespaces of its own.

The expected state always comes from nft itself: the script renderer's text loaded with
`nft -f` into a fresh namespace and listed with `nft -s list ruleset`. Our store must leave the
same listing, must not commit anything on a re-apply (rule handles unchanged), must replace our
tables on a changed configuration, must leave a foreign nft table and foreign iptables rules
alone, must find a deleted rule with `check`, and `cleanup` must leave only the foreign state.

usage: nft_test.py NFT_DRIVER       (exit 77 = skipped: not root, or no nft/unshare)
"""
import os
import shutil
import subprocess
import sys
import unittest

DRIVER = None
CONFIGS = ["sidecar", "sidecar-dns", "tproxy"]


class Netns:
    """A named network namespace, deleted on exit."""

    counter = 0

    def __init__(self):
        Netns.counter += 1
        self.name = "h6nft-%d-%d" % (os.getpid(), Netns.counter)

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run("ip link set lo up")
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def run(self, command, check=True, stdin=None):
        p = subprocess.run(["ip", "netns", "exec", self.name, "sh", "-c", command], input=stdin,
                           capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (command, p.returncode, p.stdout, p.stderr))
        return p

    def driver(self, *args, check=True):
        return self.run(" ".join([DRIVER] + list(args)), check=check)

    def listing(self, flags="-s"):
        return self.run("nft %s list ruleset" % flags).stdout


def script(config):
    return subprocess.run([DRIVER, "script", config], check=True, capture_output=True, text=True).stdout


def nft_listing(text):
    """What the kernel lists after `nft -f` of `text` in a fresh namespace."""
    with Netns() as ns:
        ns.run("nft -f -", stdin=text)
        return ns.listing()


FOREIGN = """add table inet filter
add chain inet filter input { type filter hook input priority 0 ; }
add chain inet filter keep
add rule inet filter input tcp dport 22 counter accept
add rule inet filter keep ip saddr 203.0.113.9 counter drop
"""


def add_foreign(ns):
    ns.run("nft -f -", stdin=FOREIGN)
    ns.run("iptables -t nat -A OUTPUT -p udp --dport 9999 -j RETURN")
    ns.run("iptables -t filter -A INPUT -s 198.51.100.7/32 -j DROP")


def foreign_state(ns):
    return (ns.run("nft -s list table inet filter").stdout,
            ns.run("iptables-save | grep -v '^#'").stdout)


class NftStoreTest(unittest.TestCase):
    def test_apply_equals_nft_f_of_the_script(self):
        for config in CONFIGS:
            with self.subTest(config=config):
                expected = nft_listing(script(config))
                with Netns() as ns:
                    self.assertEqual(ns.driver("apply", config).stdout, "committed (attempts 1)\n")
                    self.assertEqual(ns.listing(), expected)
                    self.assertEqual(ns.driver("check", config).stdout, "")

    def test_reapply_commits_nothing_and_keeps_handles(self):
        for config in CONFIGS:
            with self.subTest(config=config), Netns() as ns:
                ns.driver("apply", config)
                before = ns.listing("-a")
                self.assertEqual(ns.driver("apply", config).stdout, "unchanged (attempts 0)\n")
                self.assertEqual(ns.listing("-a"), before)

    def test_changed_configuration_replaces_our_tables(self):
        for first, second in [("tproxy", "sidecar"), ("sidecar", "sidecar-dns"), ("sidecar-dns", "tproxy")]:
            with self.subTest(first=first, second=second), Netns() as ns:
                ns.driver("apply", first)
                self.assertEqual(ns.driver("apply", second).stdout, "committed (attempts 1)\n")
                # Same rules as a fresh `nft -f` of the second script; table order may differ
                # only when a table was replaced, so compare table by table.
                expected = nft_listing(script(second))
                self.assertEqual(split_tables(ns.listing()), split_tables(expected))
                self.assertEqual(ns.driver("check", second).stdout, "")

    def test_foreign_tables_and_iptables_rules_survive(self):
        with Netns() as ns:
            add_foreign(ns)
            before = foreign_state(ns)
            ns.driver("apply", "tproxy")
            self.assertEqual(foreign_state(ns), before)
            ns.driver("apply", "sidecar")
            self.assertEqual(foreign_state(ns), before)
            ns.driver("cleanup")
            self.assertEqual(foreign_state(ns), before)

    def test_check_finds_a_deleted_rule(self):
        with Netns() as ns:
            ns.driver("apply", "sidecar")
            handles = ns.run("nft -a list chain inet istio-proxy-nat istio-output").stdout
            line = [l for l in handles.splitlines() if "ip daddr 127.0.0.1 counter" in l][0]
            handle = line.rsplit("# handle ", 1)[1].strip()
            ns.run("nft delete rule inet istio-proxy-nat istio-output handle " + handle)
            p = ns.driver("check", "sidecar", check=False)
            self.assertEqual(p.returncode, 1)
            # The rule as the script writes it (the independent source), in nft's words.
            self.assertIn("add rule inet istio-proxy-nat istio-output ip daddr 127.0.0.1/32 counter return\n",
                          script("sidecar"))
            self.assertEqual(p.stdout, "table inet istio-proxy-nat chain istio-output: missing rule "
                                       "`ip daddr 127.0.0.1/32 counter return`\n")
            # apply repairs it, and then there is nothing left to find.
            self.assertEqual(ns.driver("apply", "sidecar").stdout, "committed (attempts 1)\n")
            self.assertEqual(ns.driver("check", "sidecar").stdout, "")

    def test_cleanup_leaves_only_foreign_state(self):
        with Netns() as ns, Netns() as only_foreign:
            add_foreign(only_foreign)
            add_foreign(ns)
            ns.driver("apply", "tproxy")
            self.assertEqual(ns.driver("cleanup").stdout, "committed (attempts 1)\n")
            self.assertEqual(ns.listing(), only_foreign.listing())
            self.assertEqual(ns.driver("cleanup").stdout, "unchanged (attempts 0)\n")


def split_tables(listing):
    tables, current = {}, None
    for line in listing.splitlines():
        if line.startswith("table "):
            current = line
            tables[current] = []
        elif current:
            tables[current].append(line)
    return tables


def main():
    global DRIVER
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    DRIVER = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
        print("skipped: needs root, nft and ip")
        return 77
    result = unittest.main(argv=[sys.argv[0]] + sys.argv[2:], exit=False).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
