#!/usr/bin/env python3
"""Proves `istio-iptables explain` on real packets.

For every scenario of capture_test.py (its pod and peer namespaces, its stand-ins for Envoy, the
agent's DNS proxy, the application and kube-dns, imported, not copied), in iptables mode and in
native nftables mode: apply the scenario, draw at least 200 random flows (owners among the
proxy's UID/GID and others, ports among included, excluded, tunnel and DNS ports, destinations
among the pod's own address, loopback, 127.0.0.6, the peer, another address and the
nameservers, both families where the pod has IPv6), send each as real traffic, observe where it
landed (the proxy's port and the original destination it saw, the agent, or the real
destination), and compare with `explain --installed --json`. A disagreement fails the test and
prints the flow, explain's answer and what happened. The plan-based answers must equal the
installed ones on a freshly applied namespace; after a rule is deleted (the proxy's UID RETURN)
the installed answers must still match the packets and differ from the plan's.

Extra listeners (every port a flow may use, TCP and UDP, in both namespaces) come from this
file's --serve mode; the flows are sent by its --drive mode, one process per namespace that forks
a child per flow to take the flow's UID and GID.

usage: explain_test.py TOOL [SCENARIO-SUBSTRING] [--flows N] [--seed S]
Needs root, iproute2, iptables and nft; exits 77 without root.
"""
import json
import os
import random
import re
import select
import shlex
import shutil
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PORTS = [53, 8080, 9090, 15008, 15020, 15021, 15090]
OWNERS = [(1000, 1000), (1337, 1337), (2000, 1337), (1337, 2000), (1000, 3000)]


# ---- the stand-ins of this file -------------------------------------------------------------------

def serve(ready, name, ports):
    """TCP and UDP listeners on every port given (IPv4 and IPv6) answering "NAME PORT"."""
    socks = []
    for port in ports:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            for host, fam in (("0.0.0.0", socket.AF_INET), ("::", socket.AF_INET6)):
                s = socket.socket(fam, kind)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s.bind((host, port))
                except OSError:
                    s.close()  # taken by capture_test's own stand-in, which answers it
                    continue
                if kind == socket.SOCK_STREAM:
                    s.listen(64)
                socks.append((s, port))
    open(ready, "w").write("ready\n")
    by_fd = {s.fileno(): (s, p) for s, p in socks}
    while True:
        for fd in select.select(list(by_fd), [], [])[0]:
            s, port = by_fd[fd]
            if s.type == socket.SOCK_STREAM:
                conn, _ = s.accept()
                try:
                    conn.sendall(f"{name} {port}\n".encode())
                except OSError:
                    pass
                conn.close()
            else:
                _, peer = s.recvfrom(512)
                s.sendto(f"{name} {port}\n".encode(), peer)


def send_one(f):
    """Sends one flow from (src, sport) and returns the first line of the answer."""
    fam = socket.AF_INET6 if ":" in f["dst"] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if f["proto"] == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(1.0)
    try:
        s.bind((f["src"], f["sport"]))
        if f["proto"] == "udp":
            # Unconnected: a server bound to the wildcard address may answer from another of its
            # addresses (the peer's 192.0.2.5 is secondary).
            s.sendto(b"query", (f["dst"], f["dport"]))
            return s.recv(256).decode().strip() or "EMPTY"
        s.connect((f["dst"], f["dport"]))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        return data.decode().strip() or "EMPTY"
    except socket.timeout:
        return "TIMEOUT"
    except OSError as e:
        return f"ERROR {e.errno}"
    finally:
        s.close()


def drive():
    """Reads a JSON list of flows on stdin, sends each (as its owner when it has one), prints
    the list of answers."""
    flows = json.load(sys.stdin)
    answers = []
    for f in flows:
        if not f.get("owner"):
            answers.append(send_one(f))
            continue
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            uid, gid = f["owner"]
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.write(w, send_one(f).encode())
            os._exit(0)
        os.close(w)
        out = b""
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            out += chunk
        os.close(r)
        os.waitpid(pid, 0)
        answers.append(out.decode())
    json.dump(answers, sys.stdout)


# ---- the test ---------------------------------------------------------------------------------------

def flag_value(flags, name):
    return flags[flags.index(name) + 1] if name in flags else None


def flow_text(f):
    def ep(a, p):
        return f"[{a}]:{p}" if ":" in a else f"{a}:{p}"
    text = f"{f['dir']} {f['proto']} {ep(f['src'], f['sport'])} -> {ep(f['dst'], f['dport'])}"
    if f.get("owner"):
        text += f" uid {f['owner'][0]} gid {f['owner'][1]}"
    if f.get("oif"):
        text += f" oif {f['oif']}"
    if f.get("iif"):
        text += f" iif {f['iif']}"
    return text


def random_flows(ct, rng, flags, count, sports):
    """At least `count` flows for a scenario, both families where the pod has IPv6."""
    ipv6 = flag_value(flags, "--ipv6") == "on"
    dev = f"{ct.TAG}-p"
    needs_dev = "-c" in flags or "-k" in flags
    nameservers = (flag_value(flags, "--dns-servers") or "").split(",")
    out = []
    while len(out) < count:
        v6 = ipv6 and rng.random() < 0.4
        pod, peer = (ct.POD6, ct.PEER6) if v6 else (ct.POD4, ct.PEER4)
        loop = "::1" if v6 else "127.0.0.1"
        passthrough = "::6" if v6 else "127.0.0.6"
        f = {"proto": rng.choice(["tcp", "tcp", "udp"]), "dport": rng.choice(PORTS), "sport": sports.pop()}
        if rng.random() < 0.3:
            f.update(dir="in", src=rng.choice([peer] if v6 else [ct.PEER4, ct.OTHER4]), dst=pod)
            if needs_dev or rng.random() < 0.5:
                f["iif"] = dev
        else:
            remote = [peer] + ([] if v6 else [ct.OTHER4]) + [n for n in nameservers if n and (":" in n) == v6]
            dst = rng.choice([pod, pod, loop, passthrough] + remote * 2)
            f.update(dir="out", dst=dst, owner=list(rng.choice(OWNERS)))
            if dst == pod:
                f["src"], f["oif"] = rng.choice([pod, passthrough]), "lo"
            elif dst in (loop, passthrough):
                f["src"] = rng.choice([loop, passthrough])
                if dst == "::6":
                    f["oif"] = "lo"  # a local address, not a loopback one: the flow must say so
            else:
                f["src"] = pod
                if needs_dev or rng.random() < 0.5:
                    f["oif"] = dev
            if f["dport"] == 53 and rng.random() < 0.5:
                f["proto"] = "udp"
        out.append(f)
    return out


def landed(answer):
    """Where the packet went: ("captured", port, ip, port) / ("delivered", ns) / ("lost",)."""
    m = re.match(r"^PROXY (\d+) (\S+) (\d+)$", answer)
    if m:
        return ("captured", int(m.group(1)), m.group(2), int(m.group(3)))
    if answer == "AGENT":
        return ("captured", 15053, None, None)
    if answer.startswith("APP"):
        return ("delivered", "pod")
    if answer.startswith("PEER") or answer == "KUBEDNS":
        return ("delivered", "peer")
    return ("lost", answer)


def agrees(ct, f, verdict, where):
    local = f["dst"] in (ct.POD4, ct.POD6, "127.0.0.1", "::1", "127.0.0.6", "::6")
    v = verdict["verdict"]
    if v in ("redirect", "tproxy"):
        if where[0] != "captured" or where[1] != verdict["port"]:
            return False
        # The proxy saw the flow's own destination (the agent does not say).
        return where[2] is None or (socket.inet_pton(socket.AF_INET6 if ":" in where[2] else socket.AF_INET, where[2]) ==
                                    socket.inet_pton(socket.AF_INET6 if ":" in f["dst"] else socket.AF_INET, f["dst"])
                                    and where[3] == f["dport"])
    if v == "accept":
        return where == ("delivered", "pod" if local else "peer")
    if v == "drop":
        return where[0] == "lost"
    return False  # uncertain: every flow here says everything explain needs


def explain(ct, flags, env, flows, installed):
    cmd = [ct.TOOL, "explain"] + flags + (["--native-nftables"] if ct.NFT else []) + ["--json"]
    if installed:
        cmd.append("--installed")
    for f in flows:
        cmd += ["--flow", flow_text(f)]
    p = ct.sh(ct.in_ns(ct.POD, " ".join(shlex.quote(c) for c in cmd)), env=env)
    return [json.loads(line) for line in p.stdout.splitlines()]


def send(ct, flows):
    answers = [None] * len(flows)
    for ns, who in ((ct.POD, "out"), (ct.PEER, "in")):
        idx = [i for i, f in enumerate(flows) if f["dir"] == who]
        batch = json.dumps([flows[i] for i in idx])
        p = __import__("subprocess").run(ct.in_ns(ns, f"{ct.PY} {SELF} --drive"), shell=True, input=batch,
                                         capture_output=True, text=True, env=ct.ENV)
        if p.returncode != 0:
            raise AssertionError(f"driver in {ns}: {p.stderr[-500:]}")
        for i, a in zip(idx, json.loads(p.stdout)):
            answers[i] = a
    return answers


def compare(ct, flows, verdicts, answers, label):
    failures = []
    for f, v, a in zip(flows, verdicts, answers):
        where = landed(a)
        if not agrees(ct, f, v, where):
            failures.append(f"{label}: flow {flow_text(f)!r}: explain says {v['verdict']} {v['port']} "
                            f"({v['reason']}), the packet {where}\n      trail: " +
                            "\n             ".join(f"{s['table']} {s['chain']} #{s['index']}: {s['rule']}" for s in v["trail"]))
            break  # the first disagreement
    return failures


def run_scenario(ct, rng, name, flags, env, tproxy, count, sports):
    """Returns (failures, flows proven)."""
    if ct.NFT and "--compat" in flags:
        return [], 0  # no nftables mode in the 1.24 layout (capture_test checks the refusal)
    pod = ct.Pod(tproxy)
    failures, proven = [], 0
    try:
        ct.sh(ct.in_ns(ct.POD, "sysctl -qw net.ipv4.ip_unprivileged_port_start=0"))
        pod.start(ct.POD, f"{ct.PY} {SELF_COPY} --serve {{ready}} APP " + " ".join(map(str, PORTS)), as_uid=ct.APP)
        pod.start(ct.PEER, f"{ct.PY} {SELF_COPY} --serve {{ready}} PEER " + " ".join(map(str, PORTS)))
        ct.sh(ct.in_ns(ct.POD, ct.apply_cmd(flags)), env=env)
        flows = random_flows(ct, rng, flags, count, sports)
        installed = explain(ct, flags, env, flows, True)
        planned = explain(ct, flags, env, flows, False)
        for f, a, b in zip(flows, installed, planned):
            where = lambda v: [(s["table"], s["chain"], s["index"]) for s in v["trail"]]
            if (a["verdict"], a["port"], where(a)) != (b["verdict"], b["port"], where(b)):
                failures.append(f"flow {flow_text(f)!r}: --installed says {a['verdict']} {a['port']} {a['trail']}, "
                                f"the plan {b['verdict']} {b['port']} {b['trail']} on a freshly applied namespace")
                break
        answers = send(ct, flows)
        failures += compare(ct, flows, installed, answers, "installed rules")
        if not failures:
            proven += len(flows)
        if not failures and name == "reference listing, current layout":
            # Tampering: the proxy's UID RETURN deleted. The packets change path, and --installed
            # must follow them while the plan does not.
            if ct.NFT:
                ct.tamper_nft("istio-proxy-nat", "istio-output", r"^(meta )?skuid 1337 counter")
            else:
                # In whichever of legacy and nf_tables x_tables the tool wrote.
                rule = "-t nat -D ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN"
                # (asking legacy first would create its nat table, which changes what "auto" reads).
                which = "nft" if "ISTIO_OUTPUT" in ct.sh(ct.in_ns(ct.POD, "iptables-nft-save -t nat")).stdout else "legacy"
                ct.sh(ct.in_ns(ct.POD, f"iptables-{which} {rule}"))
            flows = random_flows(ct, rng, flags, count, sports)
            after = explain(ct, flags, env, flows, True)
            plan_after = explain(ct, flags, env, flows, False)
            answers = send(ct, flows)
            failures += compare(ct, flows, after, answers, "after tampering")
            if not any((a["verdict"], a["port"]) != (b["verdict"], b["port"]) for a, b in zip(after, plan_after)):
                failures.append("after tampering no flow's installed verdict differs from the plan's")
            if not failures:
                proven += len(flows)
        if failures and ct.NFT:
            failures.append("nft -a list ruleset:\n" + ct.nft_state())
    finally:
        pod.close()
    return failures, proven


def main():
    if os.geteuid() != 0:
        print("skipped: needs root")
        return 77
    args = sys.argv[2:]
    count, seed = 400, int(time.time())
    if "--flows" in args:
        i = args.index("--flows")
        count = int(args[i + 1])
        del args[i:i + 2]
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    only = args[0] if args else ""
    # capture_test reads its command line when imported: it is given the tool alone.
    saved = sys.argv
    sys.argv = [saved[0], saved[1]]
    sys.path.insert(0, HERE)
    import capture_test as ct
    sys.argv = saved
    global SELF_COPY
    SELF_COPY = os.path.join(ct.WORK, "explain_test.py")  # readable by the stand-ins' users
    shutil.copy(SELF, SELF_COPY)
    os.chmod(SELF_COPY, 0o644)
    print(f"seed {seed} (rerun with --seed {seed})")
    rng = random.Random(seed)
    sports = list(range(20000, 32000))
    rng.shuffle(sports)
    results = []
    try:
        for mode in ("iptables", "nftables"):
            ct.NFT = mode == "nftables"
            for name, flags, env, tproxy, _ in ct.SCENARIOS:
                if only and only not in name:
                    continue
                started = time.time()
                failures, proven = run_scenario(ct, rng, name, flags, env, tproxy, count, sports)
                if not failures and proven == 0:
                    continue
                results.append((f"{mode}: {name}", failures, proven, time.time() - started))
    finally:
        shutil.rmtree(ct.WORK, ignore_errors=True)
    failed, total = 0, 0
    for name, failures, proven, took in results:
        total += proven
        if failures:
            failed += 1
            print(f"FAIL {name}")
            for f in failures:
                print(f"  - {f}")
        else:
            print(f"PASS {name}: {proven} flows proven ({took:.1f} s)")
    print(f"{len(results) - failed} scenarios passed, {failed} failed; {total} flows proven")
    return 1 if failed else 0


SELF = os.path.abspath(__file__)
SELF_COPY = SELF

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], [int(p) for p in sys.argv[4:]])
    elif len(sys.argv) > 1 and sys.argv[1] == "--drive":
        drive()
    else:
        sys.exit(main())
