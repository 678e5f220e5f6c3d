#!/usr/bin/env python3
"""DRY_RUN_FILE_PATH, byte for byte: for every catalogue scenario whose reference is one of Istio's
capture golden files, our dry run writes to DRY_RUN_FILE_PATH exactly the golden file's text.

Istio's golden files are what its stubbed iptables recorded in DRY_RUN_FILE_PATH for that case
(istio-operator-behaviour.md section 4): the saves, the restore input (or, at 1.22/1.23, the
commands of --restore-format=false, which is how those releases' golden tests ran), the final
saves. No root needed: a dry run touches nothing.

usage: dry_run_file_test.py TOOL REPO SHARED
"""
import os
import shlex
import subprocess
import sys
import tempfile


def main():
    tool, repo, shared = sys.argv[1:4]
    rules = os.path.join(repo, "rules")
    work = tempfile.mkdtemp(prefix="istio-iptables-dry-run-file-")
    compared, failed = 0, []
    for name in sorted(os.listdir(rules)):
        d = os.path.join(rules, name)
        ref_path = os.path.join(d, "reference")
        if not os.path.exists(ref_path):
            continue
        ref = dict(line.split(" ", 1) for line in open(ref_path).read().splitlines() if " " in line)
        if not ref["file"].startswith("istio/capture") or ref.get("tables"):
            continue  # the seed listing, or a comparison of some tables only
        golden = open(os.path.join(shared, "conformance", ref["file"])).read()
        args = shlex.split(open(os.path.join(d, "args")).read())
        if ref["file"].startswith(("istio/capture-1.22/", "istio/capture-1.23/")):
            args.append("--restore-format=false")
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        if os.path.exists(os.path.join(d, "env")):
            for line in open(os.path.join(d, "env")).read().splitlines():
                if "=" in line:
                    k, v = line.split("=", 1)
                    env[k] = v
        record = os.path.join(work, name)
        env["DRY_RUN_FILE_PATH"] = record
        p = subprocess.run([tool] + args + ["--dry-run"], capture_output=True, text=True, env=env)
        if p.returncode != 0 or not os.path.exists(record):
            failed.append(f"{name}: exit {p.returncode}, {p.stderr.strip()}")
            continue
        ours = open(record).read()
        # Istio 1.24's golden files were stored without the final newline its stub wrote.
        if not golden.endswith("\n"):
            golden += "\n"
        # The one spelling we do not keep: Istio writes a resolv.conf nameserver as written there
        # (the dns-uid-gid cases' "::127.0.0.53"); we write the address as iptables-save lists it.
        # The kernel holds the same rule (docs/differences.md).
        golden = golden.replace("::127.0.0.53/128", "::7f00:35/128")
        compared += 1
        if ours != golden:
            import difflib
            diff = "\n".join(difflib.unified_diff(golden.splitlines(), ours.splitlines(), ref["file"], "ours",
                                                  lineterm=""))
            failed.append(f"{name}:\n{diff}")
    # Istio's stub neither truncates nor appends: a longer earlier file keeps its tail.
    record = os.path.join(work, "longer")
    open(record, "w").write("x" * 100000)
    env = {"PATH": os.environ.get("PATH", ""), "DRY_RUN_FILE_PATH": record}
    subprocess.run([tool, "-p", "15001", "-u", "1337", "--ipv6", "off", "--dry-run"], capture_output=True, env=env)
    text = open(record).read()
    if not (text.startswith("iptables-save\nip6tables-save\n* nat\n") and text.endswith("x" * 1000)
            and len(text) == 100000):
        failed.append(f"a longer file was not written over from its start, keeping its tail: {text[:80]!r}")
    for f in failed:
        print("FAIL", f)
    print(f"{compared} golden files compared, {len(failed)} failed")
    if compared < 60:
        print("FAIL: fewer golden files compared than the catalogue holds")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
