#!/usr/bin/env python3
"""Proves the capture on real packets.

For each scenario: a "pod" network namespace joined by a veth pair to a "peer" namespace
(192.0.2.0/24 and 2001:db8::/64, no route anywhere else). In the pod: stand-ins for Envoy
(15001, 15006) and the agent's DNS proxy (15053) running as UID/GID 1337, and an application.
In the peer: a service on 8080/9090 and a DNS server standing for kube-dns (the pod's
nameserver). The tool programs the pod; then clients, as the application (UID 1000), as the
proxy (1337) or from the peer, connect and report who answered and which original destination
the proxy saw. Every namespace and process is removed afterwards, also when a check fails.

With --mode nftables every apply (and the validation probe) adds --native-nftables: the same
packets must take the same paths through Istio's native nftables mode. Each scenario then also
proves the mode was used (only our inet tables in nf_tables, no ISTIO chain in iptables), and a
failing scenario prints `nft -a list ruleset`. The 1.24 layout has no nftables mode, so there
that scenario checks the refusal instead.

usage: capture_test.py TOOL [SCENARIO-SUBSTRING] [--mode iptables|nftables]
                       [--tamper 'COMMAND run in the pod after applying']
                       [--tamper-nft 'TABLE CHAIN REGEX': delete the rule of inet TABLE CHAIN whose
                        listing matches REGEX, after applying; must match exactly one rule]
Needs root, iproute2, iptables (nft for --mode nftables) and python3; exits 77 without root.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

TOOL = os.path.abspath(sys.argv[1])
args = sys.argv[2:]
TAMPER = None
if "--tamper" in args:
    i = args.index("--tamper")
    TAMPER = args[i + 1]
    del args[i:i + 2]
MODE = "iptables"
if "--mode" in args:
    i = args.index("--mode")
    MODE = args[i + 1]
    del args[i:i + 2]
if MODE not in ("iptables", "nftables"):
    raise SystemExit(f"--mode {MODE!r}: expected iptables or nftables")
NFT = MODE == "nftables"
TAMPER_NFT = None
if "--tamper-nft" in args:
    i = args.index("--tamper-nft")
    TAMPER_NFT = args[i + 1].split(None, 2)
    del args[i:i + 2]
    if len(TAMPER_NFT) != 3:
        raise SystemExit("--tamper-nft takes 'TABLE CHAIN REGEX'")
ONLY = args[0] if args else ""
# The stand-ins run as other users: give them a copy of node.py and an interpreter they can read
# (the checkout may sit in a private directory; Debian's python3 is installed by the scripts).
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
TAG = f"it{os.getpid() % 100000}"
POD, PEER = f"{TAG}-pod", f"{TAG}-peer"
WORK = tempfile.mkdtemp(prefix="istio-iptables-e2e-")
os.chmod(WORK, 0o755)
NODE = os.path.join(WORK, "node.py")
shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "node.py"), NODE)
os.chmod(NODE, 0o644)
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XTABLES_LOCKFILE": os.path.join(WORK, "xtables.lock")}

POD4, PEER4, OTHER4 = "192.0.2.2", "192.0.2.1", "192.0.2.5"
POD6, PEER6 = "2001:db8::2", "2001:db8::1"
INJECTED = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*",
            "-d", "15090,15021,15020", "--log_output_level=default:info"]

STARTED = 0
APP = (1000, 1000)
PROXY = (1337, 1337)
PROXY_GROUP = (2000, 1337)  # another UID in the proxy's group
PROXY_UID_ONLY = (1337, 2000)  # the proxy's UID in another group


def sh(cmd, check=True, env=None):
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env={**ENV, **(env or {})})
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def in_ns(ns, cmd):
    return f"ip netns exec {ns} {cmd}"


def as_user(uid_gid, cmd, caps=False):
    uid, gid = uid_gid
    extra = " --inh-caps +net_admin,+net_raw --ambient-caps +net_admin,+net_raw" if caps else ""
    return f"setpriv --reuid={uid} --regid={gid} --clear-groups{extra} {cmd}"


def apply_cmd(flags):
    """The tool with these flags, in the chosen mode."""
    return f"{TOOL} {' '.join(shlex.quote(f) for f in flags + (['--native-nftables'] if NFT else []))}"


def nft_state():
    """The pod's nf_tables ruleset with handles, printed with a failure in nftables mode."""
    return sh(in_ns(POD, "nft -a list ruleset"), check=False).stdout


def nftables_mode_failures():
    """In nftables mode the capture must be nf_tables' own: our inet tables and nothing else,
    neither iptables-nft's ip/ip6 tables nor an ISTIO chain in legacy iptables."""
    tables = sh(in_ns(POD, "nft list tables")).stdout.split("\n")
    tables = [t.strip() for t in tables if t.strip()]
    failures = []
    if "table inet istio-proxy-nat" not in tables:
        failures.append(f"nft list tables: no table inet istio-proxy-nat in {tables}")
    foreign = [t for t in tables if not t.startswith("table inet istio-proxy-")]
    if foreign:
        failures.append(f"nft list tables: tables other than ours: {foreign}")
    legacy = sh(in_ns(POD, "sh -c 'iptables-legacy-save; ip6tables-legacy-save'"), check=False).stdout
    if "ISTIO_" in legacy:
        failures.append("iptables-legacy-save lists ISTIO chains in nftables mode")
    return failures


def tamper_nft(table, chain, regex):
    """Deletes, by its handle, the one rule of inet TABLE CHAIN whose listing matches REGEX."""
    listing = sh(in_ns(POD, f"nft -a list chain inet {table} {chain}")).stdout
    hits = []
    for line in listing.splitlines():
        m = re.match(r"^\s*(.*\S)\s+# handle (\d+)$", line)
        if m and not line.strip().startswith("chain ") and re.search(regex, m.group(1)):
            hits.append((m.group(1), m.group(2)))
    if len(hits) != 1:
        raise AssertionError(f"--tamper-nft {regex!r} matches {len(hits)} rules of {table} {chain}:\n{listing}")
    sh(in_ns(POD, f"nft delete rule inet {table} {chain} handle {hits[0][1]}"))


class Pod:
    """The two namespaces, their addresses and the stand-ins."""

    def __init__(self, tproxy=False):
        self.procs = []
        try:
            self.setup(tproxy)
        except BaseException:
            self.close()
            raise

    def setup(self, tproxy):
        sh(f"ip netns add {POD} && ip netns add {PEER}")
        sh(f"ip link add {TAG}-p type veth peer name {TAG}-q")
        sh(f"ip link set {TAG}-p netns {POD} && ip link set {TAG}-q netns {PEER}")
        for ns, dev, v4, v6, extra in ((POD, f"{TAG}-p", POD4, POD6, ""), (PEER, f"{TAG}-q", PEER4, PEER6, f" && ip addr add {OTHER4}/24 dev {TAG}-q")):
            sh(in_ns(ns, f"sh -c 'ip link set lo up && ip link set {dev} up && ip addr add {v4}/24 dev {dev}{extra} && "
                         f"ip -6 addr add {v6}/64 dev {dev} nodad'"))
        self.start(PEER, f"{PY} {NODE} peer {{ready}}")
        self.start(POD, f"{PY} {NODE} app {{ready}} 8080 9090 15020", as_uid=APP)
        self.start(POD, f"{PY} {NODE} proxy {{ready}}" + (" --tproxy" if tproxy else ""), as_uid=PROXY, caps=tproxy)

    def start(self, ns, cmd, as_uid=None, caps=False):
        global STARTED
        STARTED += 1
        ready = os.path.join(WORK, f"ready-{STARTED}")
        os.chmod(WORK, 0o777)  # the stand-ins write their ready files here
        full = cmd.format(ready=ready)
        if as_uid:
            full = as_user(as_uid, full, caps)
        p = subprocess.Popen(in_ns(ns, full), shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV,
                             start_new_session=True)
        self.procs.append(p)
        for _ in range(200):
            if os.path.exists(ready):
                return
            if p.poll() is not None:
                raise AssertionError(f"{full} died: {p.stderr.read().decode()}")
            time.sleep(0.02)
        raise AssertionError(f"{full} did not start")

    def close(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
            p.wait()
        sh(f"ip netns del {POD}", check=False)
        sh(f"ip netns del {PEER}", check=False)


def client(who, kind, host, port, src=None):
    ns = PEER if who == "peer" else POD
    cmd = f"{PY} {NODE} {kind} {host} {port}" + (f" {src}" if src else "")
    if who != "peer":
        cmd = as_user(who, cmd)
    return sh(in_ns(ns, cmd)).stdout.strip()


# A check: (description, who, kind, host, port, expected regex[, source address])
def outbound_checks(peer=PEER4, pod=POD4):
    return [
        ("an application's connection out reaches 15001 with its original destination", APP, "tcp", peer, 8080, rf"^PROXY 15001 {re.escape(peer)} 8080$"),
        ("the proxy's own connection (UID 1337) reaches the peer directly", PROXY, "tcp", peer, 8080, r"^PEER "),
        ("a connection of another UID in GID 1337 reaches the peer directly", PROXY_GROUP, "tcp", peer, 8080, r"^PEER "),
        ("a connection of UID 1337 in another group reaches the peer directly", PROXY_UID_ONLY, "tcp", peer, 8080, r"^PEER "),
        ("a connection from the peer to an application port reaches 15006 with its original destination", "peer", "tcp", pod, 8080, rf"^PROXY 15006 {re.escape(pod)} 8080$"),
        ("an excluded inbound port (-d) reaches the application directly", "peer", "tcp", pod, 15020, r"^APP 15020$"),
        ("the application calling its own pod IP reaches itself directly", APP, "tcp", pod, 8080, r"^APP 8080$"),
        ("the proxy calling the pod IP goes through inbound capture (15006)", PROXY, "tcp", pod, 8080, rf"^PROXY 15006 {re.escape(pod)} 8080$"),
        ("another UID in the proxy's group calling the pod IP reaches the application directly", PROXY_GROUP, "tcp", pod, 8080, r"^APP 8080$"),
    ]


def passthrough_check(pod=POD4, src="127.0.0.6"):
    return ("the proxy's inbound passthrough (from %s) reaches the application directly" % src, PROXY, "tcp", pod, 8080, r"^APP 8080$", src)


def dns_checks(server=PEER4):
    return [
        ("application DNS over UDP to the nameserver is answered by the agent (15053)", APP, "udp", server, 53, r"^AGENT$"),
        ("application DNS over TCP to the nameserver is answered by the agent (15053)", APP, "tcp", server, 53, r"^AGENT$"),
        ("the proxy's own DNS query over UDP reaches the real server", PROXY, "udp", server, 53, r"^KUBEDNS$"),
        ("the proxy's own DNS query over TCP reaches the real server", PROXY, "tcp", server, 53, r"^KUBEDNS$"),
    ]


DNS4 = ["--redirect-dns", "--dns-servers", PEER4]
SCENARIOS = [
    ("reference listing, 1.24 layout", INJECTED + DNS4 + ["--compat", "1.24", "--ipv6", "off"], {}, False,
     outbound_checks() + dns_checks() + [passthrough_check(),
      ("DNS to a server that is not a nameserver is not captured (that server answers)", APP, "udp", OTHER4, 53, r"^KUBEDNS$"),
      ("loopback traffic is left alone", APP, "tcp", "127.0.0.1", 8080, r"^APP 8080$")]),
    ("reference listing, current layout", INJECTED + DNS4 + ["--ipv6", "off"], {}, False,
     outbound_checks() + dns_checks() + [passthrough_check(),
      ("DNS to a server that is not a nameserver is not captured (that server answers)", APP, "udp", OTHER4, 53, r"^KUBEDNS$"),
      ("loopback traffic is left alone", APP, "tcp", "127.0.0.1", 8080, r"^APP 8080$")]),
    ("IPv6 (dual stack), current layout", INJECTED + ["--redirect-dns", "--dns-servers", f"{PEER4},{PEER6}", "--ipv6", "on"], {}, False,
     outbound_checks() + outbound_checks(PEER6, POD6) + dns_checks() + dns_checks(PEER6) + [passthrough_check(), passthrough_check(POD6, "::6")]),
    ("TPROXY inbound, IPv4 and IPv6", ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "TPROXY", "-i", "*", "-b", "*", "-d", "15020",
                                       "--redirect-dns", "--dns-servers", f"{PEER4},{PEER6}", "--ipv6", "on"], {}, True,
     [c for c in outbound_checks() + outbound_checks(PEER6, POD6) if "pod IP" not in c[0]] + dns_checks()),
    ("outbound include CIDR", ["-u", "1337", "-i", f"{PEER4}/32", "--ipv6", "off"], {}, False,
     [("an included CIDR is captured", APP, "tcp", PEER4, 8080, rf"^PROXY 15001 {PEER4} 8080$"),
      ("an address outside the include list is not captured", APP, "tcp", OTHER4, 8080, r"^PEER ")]),
    ("outbound exclude CIDR", ["-u", "1337", "-i", "*", "-x", f"{OTHER4}/32", "--ipv6", "off"], {}, False,
     [("an excluded CIDR bypasses the proxy", APP, "tcp", OTHER4, 8080, r"^PEER "),
      ("everything else is captured", APP, "tcp", PEER4, 8080, rf"^PROXY 15001 {PEER4} 8080$")]),
    ("inbound port list", ["-u", "1337", "-b", "8080", "--ipv6", "off"], {}, False,
     [("a listed inbound port is captured", "peer", "tcp", POD4, 8080, rf"^PROXY 15006 {POD4} 8080$"),
      ("an unlisted inbound port reaches the application", "peer", "tcp", POD4, 9090, r"^APP 9090$")]),
    ("outbound port lists", ["-u", "1337", "-i", "*", "-o", "8080", "--ipv6", "off"], {}, False,
     [("an excluded outbound port bypasses the proxy", APP, "tcp", PEER4, 8080, r"^PEER "),
      ("another port is captured", APP, "tcp", PEER4, 9090, rf"^PROXY 15001 {PEER4} 9090$")]),
    ("outbound port include", ["-u", "1337", "-q", "9090", "--ipv6", "off"], {}, False,
     [("an included outbound port is captured without -i", APP, "tcp", PEER4, 9090, rf"^PROXY 15001 {PEER4} 9090$"),
      ("another port is not", APP, "tcp", PEER4, 8080, r"^PEER ")]),
    ("exclude interface", ["-u", "1337", "-i", "*", "-b", "*", "-c", f"{TAG}-p", "--ipv6", "off"], {}, False,
     [("outbound through an excluded interface bypasses the proxy", APP, "tcp", PEER4, 8080, r"^PEER "),
      ("inbound on an excluded interface reaches the application", "peer", "tcp", POD4, 8080, r"^APP 8080$")]),
    ("kube-virt interface", ["-u", "1337", "-i", "*", "-b", "*", "-k", f"{TAG}-p", "--ipv6", "off"], {}, False,
     [("inbound on a kube-virt interface is captured as outbound (15001)", "peer", "tcp", POD4, 8080, rf"^PROXY 15001 {POD4} 8080$")]),
    ("owner groups include", ["-u", "1337", "-i", "*", "--ipv6", "off"], {"ISTIO_OUTBOUND_OWNER_GROUPS": "3000"}, False,
     [("a process of an included group is captured", (1000, 3000), "tcp", PEER4, 8080, rf"^PROXY 15001 {PEER4} 8080$"),
      ("a process of another group is not", APP, "tcp", PEER4, 8080, r"^PEER ")]),
    ("owner groups exclude", ["-u", "1337", "-i", "*", "--ipv6", "off"], {"ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "3000"}, False,
     [("a process of an excluded group is not captured", (1000, 3000), "tcp", PEER4, 8080, r"^PEER "),
      ("a process of another group is", APP, "tcp", PEER4, 8080, rf"^PROXY 15001 {PEER4} 8080$")]),
    ("capture all DNS", ["-u", "1337", "-i", "*", "--redirect-dns", "--capture-all-dns", "--ipv6", "off"], {}, False,
     [("DNS over UDP to any server is answered by the agent", APP, "udp", OTHER4, 53, r"^AGENT$"),
      ("DNS over TCP to any server is answered by the agent", APP, "tcp", OTHER4, 53, r"^AGENT$"),
      ("the proxy's own DNS query reaches the real server", PROXY, "udp", PEER4, 53, r"^KUBEDNS$")]),
]


def run_scenario(name, flags, env, tproxy, checks):
    pod = Pod(tproxy)
    failures = []
    try:
        if NFT and "--compat" in flags:
            # Istio's nftables mode exists from 1.27 on (docs/nftables.md "Selection"): an older
            # layout is refused as a usage error, and nothing is written.
            p = sh(in_ns(POD, apply_cmd(flags)), env=env, check=False)
            if p.returncode != 2:
                failures.append(f"--compat 1.24 with --native-nftables: exit {p.returncode}, expected 2 (refused)")
            if sh(in_ns(POD, "nft list ruleset")).stdout.strip():
                failures.append("the refused run left a ruleset:\n" + nft_state())
            return failures
        sh(in_ns(POD, apply_cmd(flags)), env=env)
        if NFT:
            failures += nftables_mode_failures()
        if TAMPER:
            sh(in_ns(POD, TAMPER))
        if TAMPER_NFT:
            tamper_nft(*TAMPER_NFT)
        for check in checks:
            desc, who, kind, host, port, expect = check[:6]
            src = check[6] if len(check) > 6 else None
            got = client(who, kind, host, port, src)
            if not re.search(expect, got):
                failures.append(f"{desc}: got {got!r}, expected /{expect}/")
        if failures and NFT:
            failures.append("state after the checks (nft -a list ruleset):\n" + nft_state())
    finally:
        pod.close()
    return failures


def drop_invalid():
    """--drop-invalid: a TCP segment conntrack calls INVALID (SYN and FIN) is dropped by ISTIO_DROP."""
    pod = Pod()
    try:
        sh(in_ns(POD, apply_cmd(["-u", "1337", "-i", "*", "-b", "*", "--drop-invalid", "--ipv6", "off"])))
        if NFT:
            # N3 matches TCP only in Istio's nftables mode (docs/nftables.md "Quirks"); the probe
            # is a TCP segment, so the expectation is the same. Its counter is istio-drop's.
            count = lambda: int(re.search(r"^\s*counter packets (\d+) bytes \d+ drop$", sh(in_ns(POD, "nft list chain inet istio-proxy-mangle istio-drop")).stdout, re.M).group(1))
        else:
            # A fresh pod namespace gets the nf_tables variant of iptables, as Istio chooses.
            count = lambda: int(re.search(r"^\s*(\d+)\s+\d+\s+DROP", sh(in_ns(POD, "iptables-nft -t mangle -nvxL ISTIO_DROP")).stdout, re.M).group(1))
        before = count()
        sh(in_ns(PEER, f"{PY} {NODE} invalid-tcp {PEER4} {POD4} 8080"))
        time.sleep(0.2)
        after = count()
        return [] if before == 0 and after >= 1 else [f"ISTIO_DROP counted {before} then {after} packets; expected 0 then at least 1"]
    finally:
        pod.close()


def validation():
    """--run-validation as the istio-validation container runs it (UID 1337, --skip-rule-apply)."""
    failures = []
    for ipv6 in ("off", "on"):  # IPv6: the probe goes ::1 -> ::6 (the apply adds ::6 to lo)
        for installed in (True, False):
            sh(f"ip netns add {POD}")
            try:
                sh(in_ns(POD, "ip link set lo up"))
                if installed:
                    sh(in_ns(POD, apply_cmd(INJECTED + ["--ipv6", ipv6])))
                    if NFT:
                        failures += [f"validation (IPv6 {ipv6}): {f}" for f in nftables_mode_failures()]
                p = sh(in_ns(POD, as_user(PROXY, apply_cmd(["--run-validation", "--skip-rule-apply", "--ipv6", ipv6,
                                                             "--probe-timeout", "3s", "-p", "15001", "-z", "15006"]))),
                       check=False)
                want = 0 if installed else 126
                if p.returncode != want:
                    failures.append(f"validation (IPv6 {ipv6}) with rules {'installed' if installed else 'absent'}: "
                                    f"exit {p.returncode}, expected {want}: {p.stderr[-300:]}")
            finally:
                sh(f"ip netns del {POD}", check=False)
    return failures


def main():
    if os.geteuid() != 0:
        print("skipped: needs root")
        return 77
    results = []
    for name, flags, env, tproxy, checks in SCENARIOS:
        if ONLY and ONLY not in name:
            continue
        results.append((name, run_scenario(name, flags, env, tproxy, checks)))
    if not ONLY or ONLY in "drop-invalid":
        results.append(("drop-invalid", drop_invalid()))
    if not ONLY or ONLY in "validation probe":
        results.append(("validation probe", validation()))
    failed = 0
    for name, failures in results:
        if failures:
            failed += 1
            print(f"FAIL {name}")
            for f in failures:
                print(f"  - {f}")
        else:
            print(f"PASS {name}")
    print(f"{len(results) - failed} passed, {failed} failed" + (" (native nftables mode)" if NFT else ""))
    shutil.rmtree(WORK, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:  # also when a setup step or a tamper raised
        shutil.rmtree(WORK, ignore_errors=True)
