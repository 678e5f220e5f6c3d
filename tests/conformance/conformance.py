#!/usr/bin/env python3
"""Conformance of the catalogue, in the kernel's own words.

For every scenario in rules/ this test
  1. loads each family's part of our dry-run output into a fresh network namespace with
     iptables-legacy-restore / ip6tables-legacy-restore and with the nft variants (the text must
     be accepted as it is, with --noflush as the tool itself applies it), and
  2. where the scenario names a `reference` (Istio's golden file, or the seed listing), loads our
     output and the reference into fresh namespaces and compares what iptables-legacy-save lists
     (../shared/tools/canon), optionally restricted to some tables (`tables nat`).

A reference of Istio 1.22 or 1.23 (capture-1.22/, capture-1.23/) is not restore text but the
`iptables …` / `ip6tables …` commands that release ran, one a line: those are run one by one with
iptables-legacy in a fresh namespace per family, and what iptables-legacy-save lists then is
brought to canon's form (no comments or counters, tables holding nothing of ours left out, tables
in name order), so that both sides are compared in the kernel's words. The counts of cases
compared are printed per release.

Needs root, unshare and the iptables package; exits 77 (skipped) without them. Never touches the
host's namespace: every load runs under `unshare -n`.
usage: conformance.py BINARY REPO_ROOT SHARED_DIR
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zlib


def split_parts(text):
    """Our dry-run output -> (IPv4 text, IPv6 text)."""
    if "# ip6tables-restore\n" in text:
        v4, v6 = text.split("# ip6tables-restore\n", 1)
        return v4, v6
    return text, ""


def group_file(texts):
    """A private /etc/group that also resolves the group names the texts use (as canon does)."""
    names = sorted({n for t in texts for n in re.findall(r"--gid-owner\s+([A-Za-z_][\w.-]*)", t)})
    if not names:
        return None
    f = tempfile.NamedTemporaryFile("w", delete=False, suffix=".group")
    f.write(open("/etc/group").read())
    for n in names:
        f.write(f"{n}:x:{50000 + zlib.crc32(n.encode()) % 10000}:\n")
    f.close()
    return f.name


def load(text, restore, groups):
    script = f"{restore} --noflush"
    cmd = ["unshare", "-n", "sh", "-c", script]
    if groups:
        cmd = ["unshare", "-n", "-m", "sh", "-c", f"mount --bind {groups} /etc/group && {script}"]
    p = subprocess.run(cmd, input=text, capture_output=True, text=True)
    return p.returncode, p.stderr.strip()


def canon(shared, path):
    p = subprocess.run([sys.executable, os.path.join(shared, "tools", "canon"), path], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip() or p.stdout.strip())
    return p.stdout


COMMAND = re.compile(r"^(ip6?tables)\s+(.*)$")


def is_command_file(text):
    """Istio 1.22/1.23's goldens: one iptables command a line (and the final *-save lines)."""
    lines = [l for l in text.splitlines() if l.strip()]
    return bool(lines) and all(COMMAND.match(l) or re.match(r"^ip6?tables-save$", l) for l in lines)


def canonical_listing(save_output):
    """canon's form of an iptables-legacy-save listing (../shared/tools/canon, function canon)."""
    tables, block = [], []
    for l in save_output.splitlines():
        if l.startswith("#"):
            continue
        block.append(re.sub(r"\[\d+:\d+\]$", "", l).rstrip())
        if l == "COMMIT":
            if any(b.startswith("-") or re.match(r"^:\S+ -$", b) for b in block):
                tables.append(block)
            block = []
    return "\n".join(l for b in sorted(tables, key=lambda b: b[0]) for l in b)


def canon_commands(path):
    """Runs a command-per-line golden, family by family, in fresh namespaces; canon's output form."""
    text = open(path).read()
    families = {"iptables": [], "ip6tables": []}
    for line in text.splitlines():
        m = COMMAND.match(line)
        if m:
            families[m.group(1)].append(m.group(2))
    out = []
    for binary, label in (("iptables", "## ipv4"), ("ip6tables", "## ipv6")):
        out.append(label)
        commands = families[binary]
        if not commands:
            out.append("")
            continue
        # The arguments are Istio's, written as its shell would read them: run them as they are.
        script = "set -e\n" + "".join(f"{binary}-legacy -w {c}\n" for c in commands) + f"{binary}-legacy-save\n"
        groups = group_file([text])
        cmd = ["unshare", "-n", "sh", "-c", script]
        if groups:
            cmd = ["unshare", "-n", "-m", "sh", "-c", f"mount --bind {groups} /etc/group && {script}"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if groups:
            os.unlink(groups)
        if p.returncode != 0:
            raise RuntimeError(f"{binary}-legacy refused a command of {path}: {p.stderr.strip()}")
        out.append(canonical_listing(p.stdout))
    return "\n".join(out) + "\n"


def release_of(reference_file):
    m = re.search(r"capture-(\d+\.\d+)/", reference_file)
    if m:
        return m.group(1)
    return "current" if reference_file.startswith("istio/capture/") else "seed"


def keep_tables(canonical, tables):
    if not tables:
        return canonical
    out, block, keep = [], [], False
    for line in canonical.splitlines():
        if line.startswith("## "):
            out.append(line)
            continue
        if line.startswith("*"):
            keep = line[1:] in tables
            block = [line]
            continue
        block.append(line)
        if line == "COMMIT":
            if keep:
                out.extend(block)
            block = []
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    binary, repo, shared = sys.argv[1:]
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("iptables-legacy-restore"):
        print("skipped: needs root, unshare and iptables (legacy and nft)")
        return 77
    rules = os.path.join(repo, "rules")
    passed, failed = 0, []
    compared = {}  # release -> number of scenarios compared with a reference
    for name in sorted(os.listdir(rules)):
        d = os.path.join(rules, name)
        args = shlex.split(open(os.path.join(d, "args")).read()) + ["--dry-run"]
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        if os.path.exists(os.path.join(d, "env")):
            for line in open(os.path.join(d, "env")).read().splitlines():
                if "=" in line:
                    k, v = line.split("=", 1)
                    env[k] = v
        p = subprocess.run([binary] + args, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            failed.append(f"{name}: the tool failed: {p.stderr.strip()}")
            continue
        ours = p.stdout
        v4, v6 = split_parts(ours)
        groups = group_file([ours])
        problems = []
        # 1. Accepted as it is by every restore variant.
        for part, family in ((v4, ""), (v6, "6")):
            if not part:
                continue
            for variant in ("legacy", "nft"):
                restore = f"ip{family}tables-{variant}-restore"
                rc, err = load(part, restore, groups)
                if rc != 0:
                    problems.append(f"{restore} refused our text: {err}")
        if groups:
            os.unlink(groups)
        # 2. Same rules as the reference, as the kernel lists them.
        ref_path = os.path.join(d, "reference")
        if os.path.exists(ref_path) and not problems:
            ref = dict(line.split(" ", 1) for line in open(ref_path).read().splitlines() if " " in line)
            reference = os.path.join(shared, "conformance", ref["file"])
            tables = ref.get("tables", "").split()
            with tempfile.NamedTemporaryFile("w", suffix=".rules", delete=False) as f:
                f.write(ours)
            try:
                a = keep_tables(canon(shared, f.name), tables)
                if is_command_file(open(reference).read()):
                    b = keep_tables(canon_commands(reference), tables)
                else:
                    b = keep_tables(canon(shared, reference), tables)
                release = release_of(ref["file"])
                compared[release] = compared.get(release, 0) + 1
                if a != b:
                    import difflib
                    diff = "\n".join(difflib.unified_diff(b.splitlines(), a.splitlines(), "reference", "ours", lineterm=""))
                    problems.append(f"differs from {ref['file']}:\n{diff}")
            except RuntimeError as e:
                problems.append(str(e))
            finally:
                os.unlink(f.name)
        if problems:
            failed.append(f"{name}: " + "\n  ".join(problems))
        else:
            passed += 1
    for f in failed:
        print("FAIL", f)
    for release in sorted(compared):
        print(f"compared with a reference, {release}: {compared[release]} scenarios")
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
