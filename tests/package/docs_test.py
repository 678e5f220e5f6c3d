"""The man page and the shell completions cover every flag of --help, and no flag it lacks.

The flags are read from the binary's --help here, with a parser of this test's own (not
man/generate.py's), and each one is looked for:
  - in the man page's OPTIONS section, as roff writes it (\\-\\-flag), and in the gzipped copy that
    is installed;
  - in bash completion by running it: bash sources the file and completes "istio-iptables -";
    every flag must be offered, and a flag with a fixed set of values completes to that set;
  - in zsh completion's _arguments specs (and the file parses with zsh -n where zsh exists).

    python3 tests/package/docs_test.py BUILD/cli/istio-iptables BUILD/packaging/docs
"""
import gzip
import os
import re
import shutil
import subprocess
import sys


def help_flags(tool):
    text = subprocess.run([tool, "--help"], capture_output=True, text=True, check=True).stdout
    # pflag's layout: "  -p, --envoy-port string   usage" or "      --dry-run   usage", in every
    # "...Flags...:" block.
    flags, in_flags = set(), False
    for line in text.splitlines():
        if line and not line.startswith(" "):
            in_flags = "Flags" in line
            continue
        m = re.match(r"^\s+(?:(-[A-Za-z0-9]), )?(--[A-Za-z0-9_][A-Za-z0-9_-]*)", line) if in_flags else None
        if m:
            flags.update(n for n in m.groups() if n)
    return flags


def main():
    tool, docs = sys.argv[1], sys.argv[2]
    failures, passed = [], 0

    def check(ok, what):
        nonlocal passed
        if ok:
            passed += 1
            print(f"ok: {what}")
        else:
            failures.append(what)
            print(f"FAILED: {what}")

    flags = help_flags(tool)
    check(len(flags) > 40 and "--envoy-port" in flags and "-p" in flags, f"--help lists {len(flags)} flags")

    page = open(os.path.join(docs, "istio-iptables.8")).read()
    with gzip.open(os.path.join(docs, "istio-iptables.8.gz"), "rt") as f:
        check(f.read() == page, "the installed istio-iptables.8.gz is the man page")
    options = page.split(".SH OPTIONS", 1)[-1].split(".SH ", 1)[0]
    in_man = set(re.findall(r"\\fB((?:\\-)+[A-Za-z0-9_\\-]+)\\fR", options))
    in_man = {f.replace("\\-", "-") for f in in_man}
    check(not flags - in_man, f"the man page's OPTIONS name every flag (missing: {sorted(flags - in_man)})")
    check(not in_man - flags, f"the man page names no flag --help lacks (stale: {sorted(in_man - flags)})")

    bash = os.path.join(docs, "istio-iptables.bash")

    def complete(*words):
        script = (f"source {bash}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
                  f"COMP_CWORD={len(words) - 1}; _istio_iptables; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        p = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
        return set(p.stdout.split()) if p.returncode == 0 else {f"<bash failed: {p.stderr}>"}

    offered = complete("istio-iptables", "-")
    check(not flags - offered, f"bash completes every flag (missing: {sorted(flags - offered)})")
    check(not offered - flags, f"bash offers no flag --help lacks (stale: {sorted(offered - flags)})")
    check(complete("istio-iptables", "--ipv6", "") == {"auto", "on", "off"}, "bash completes --ipv6's values")
    check(complete("istio-iptables", "-m", "T") == {"TPROXY"}, "bash completes -m's values")
    check(complete("istio-iptables", "c") == {"check", "cleanup"}, "bash completes the command word")
    check(complete("istio-iptables", "istio-iptables", "ap") == {"apply"},
          "bash completes the command after the injector's leading word")

    zsh = open(os.path.join(docs, "_istio-iptables")).read()
    in_zsh = set(re.findall(r"(?<=[{,'(*])(--?[A-Za-z0-9_][A-Za-z0-9_-]*)(?=[,}\[])", zsh))
    check(not flags - in_zsh, f"zsh completion specifies every flag (missing: {sorted(flags - in_zsh)})")
    check(not in_zsh - flags, f"zsh completion names no flag --help lacks (stale: {sorted(in_zsh - flags)})")
    check(zsh.startswith("#compdef istio-iptables"), "zsh completion declares #compdef istio-iptables")
    if shutil.which("zsh"):
        p = subprocess.run(["zsh", "-n", os.path.join(docs, "_istio-iptables")], capture_output=True, text=True)
        check(p.returncode == 0, f"zsh parses the completion {p.stderr}")

    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
