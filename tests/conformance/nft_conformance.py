#!/usr/bin/env python3
"""Native nftables conformance in the kernel's own words.

For every Istio nftables golden file (../shared/conformance/istio/nftables/<case>.golden) our
script for the same case (<case>.nft in the directory given) and the golden are each loaded with
`nft -f` into a fresh network namespace and listed with `nft -s list ruleset`, tables and chains
in name order (../shared/tools/canon-nft does exactly that). The two listings must be identical:
text equality alone proves nothing about what the kernel holds, and two texts can differ and
still mean the same (Istio's test injects `::127.0.0.53`, a real run writes `::7f00:35`).

Scripts of our own without a golden file (own-<name>.nft) must load. For the IPv4-only pod with
only an IPv6 nameserver, Istio's form of the script (our script without the two empty chains we
declare, docs/nftables.md) must be refused, which is why we differ there.

usage: nft_conformance.py OUR_SCRIPTS_DIR SHARED_DIR
       nft_conformance.py --cli ISTIO_IPTABLES PROJECT_DIR SHARED_DIR
The scripts come from the unit tests (NFT_OUT=DIR unit_tests "nft: every golden case*"), or,
with --cli, from our CLI's `--native-nftables --dry-run` with each case's rules/istio-<case>/args
and env (the unit tests' own-* scenarios are then not checked).
Needs root, unshare and nft; exits 77 (skipped) without them.
"""
import difflib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile


def canon(canon_nft, path):
    """The kernel's listing of a script, or (None, error) when nft refuses it."""
    p = subprocess.run([sys.executable, canon_nft, path], capture_output=True, text=True)
    if p.returncode != 0:
        return None, (p.stderr or p.stdout).strip()
    return p.stdout, None


def loads(text):
    """Whether nft accepts a script in a fresh network namespace."""
    p = subprocess.run(["unshare", "-n", "nft", "-f", "-"], input=text, capture_output=True, text=True)
    return p.returncode == 0, p.stderr.strip()


def dry_run_scripts(cli, project, golden_dir, out_dir):
    """Writes <case>.nft for every golden case from the CLI's --native-nftables --dry-run."""
    for f in sorted(os.listdir(golden_dir)):
        if not f.endswith(".golden"):
            continue
        name = f[: -len(".golden")]
        case = os.path.join(project, "rules", "istio-" + name)
        if not os.path.exists(os.path.join(case, "args")):
            continue  # reported as "no script of ours"
        args = shlex.split(open(os.path.join(case, "args")).read())
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        if os.path.exists(os.path.join(case, "env")):
            for line in open(os.path.join(case, "env")).read().splitlines():
                if "=" in line:
                    k, v = line.split("=", 1)
                    env[k] = v
        p = subprocess.run([cli] + args + ["--native-nftables", "--dry-run"], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"our CLI failed on {name} (exit {p.returncode}): {p.stderr.strip()[:400]}")
            continue
        with open(os.path.join(out_dir, name + ".nft"), "w") as out:
            out.write(p.stdout)


def main():
    argv = sys.argv[1:]
    cli = None
    if argv[:1] == ["--cli"] and len(argv) == 4:
        cli, project, shared = argv[1], argv[2], argv[3]
    elif len(argv) == 2:
        ours, shared = argv
    else:
        print(__doc__.strip().split("usage:")[1], file=sys.stderr)
        return 2
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        print("skipped: needs root, nft and unshare")
        return 77
    if cli is not None:
        with tempfile.TemporaryDirectory(prefix="nft-conformance-") as ours:
            dry_run_scripts(cli, project, os.path.join(shared, "conformance", "istio", "nftables"), ours)
            return compare(ours, shared)
    return compare(ours, shared)


def compare(ours, shared):
    canon_nft = os.path.join(shared, "tools", "canon-nft")
    golden_dir = os.path.join(shared, "conformance", "istio", "nftables")
    goldens = sorted(f[: -len(".golden")] for f in os.listdir(golden_dir) if f.endswith(".golden"))
    passed, failed = 0, 0

    def fail(name, why):
        nonlocal failed
        failed += 1
        print(f"FAIL {name}: {why}")

    for name in goldens:
        mine = os.path.join(ours, name + ".nft")
        if not os.path.exists(mine):
            fail(name, f"no script of ours ({mine})")
            continue
        want, err = canon(canon_nft, os.path.join(golden_dir, name + ".golden"))
        if want is None:
            fail(name, f"the golden file does not load: {err}")
            continue
        got, err = canon(canon_nft, mine)
        if got is None:
            fail(name, f"our script does not load: {err}")
            continue
        if got != want:
            diff = difflib.unified_diff(want.splitlines(), got.splitlines(), "istio", "ours", lineterm="")
            fail(name, "the kernel holds something else:\n" + "\n".join(diff))
            continue
        passed += 1
        print(f"ok   {name} (kernel-identical)")

    own = sorted(f for f in os.listdir(ours) if f.startswith("own-") and f.endswith(".nft"))
    for f in own:
        name = f[: -len(".nft")]
        got, err = canon(canon_nft, os.path.join(ours, f))
        if got is None:
            fail(name, f"our script does not load: {err}")
            continue
        passed += 1
        print(f"ok   {name} (loads)")
        if name == "own-ipv4-pod-ipv6-nameserver":
            # Istio's transaction for this pod (Q6) declares neither chain; nft must refuse it.
            text = open(os.path.join(ours, f)).read()
            empty = ["add chain inet istio-proxy-nat istio-output-dns\n", "add chain inet istio-proxy-raw istio-inbound\n"]
            if not all(line in text for line in empty):
                fail(name + " (istio's form)", "our script no longer declares the two empty chains")
                continue
            for line in empty:
                text = text.replace(line, "")
            ok, err = loads(text)
            if ok:
                fail(name + " (istio's form)", "nft accepted Istio's jumps to undeclared chains")
            else:
                passed += 1
                print(f"ok   {name} (istio's form refused: {err.splitlines()[0] if err else '?'})")

    if not goldens:
        fail("goldens", f"no golden file in {golden_dir}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
