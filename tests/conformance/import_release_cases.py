#!/usr/bin/env python3
"""Creates the catalogue folders of Istio's golden cases for the releases 1.22 and 1.23.

The same as scripts/import-istio-cases.py does for the current layout and 1.24: for each case
of ../shared/conformance/istio/cases.tsv it writes rules/istio-1.22-<name>/ and
rules/istio-1.23-<name>/ with `args` (--compat, the base flags, the case's flags and the two
machine facts as flags), `env` when the case has one, and `reference` (that release's golden
file, one iptables command a line, which conformance.py runs command by command). The expected
output is written by the catalogue test with REFRESH_GOLDEN=1 and checked against the reference
by the conformance test, in the kernel's words. Run from the repository root.
"""
import os
import shlex
import sys

BASE = "-p 15001 -z 15006 -e 15008 -u 1337 -g 1337 -t 1337 -r 133"
tsv = os.path.join("..", "shared", "conformance", "istio", "cases.tsv")

for line in open(tsv):
    if line.startswith("#") or not line.strip():
        continue
    name, flags, env, ipv6, dns = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
    args = f"{BASE} {flags}".strip()
    args += f" --ipv6 {ipv6}"
    if "--redirect-dns" in flags:
        servers = "" if dns == "-" else ",".join(dns.split(";"))
        args += f" --dns-servers {shlex.quote(servers)}"
    for release in ("1.22", "1.23"):
        d = os.path.join("rules", f"istio-{release}-{name}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "args"), "w") as f:
            f.write(f"--compat {release} {args}\n")
        env_path = os.path.join(d, "env")
        if env:
            with open(env_path, "w") as f:
                f.write(env.replace(" ", "\n") + "\n")
        elif os.path.exists(env_path):
            os.remove(env_path)
        with open(os.path.join(d, "reference"), "w") as f:
            f.write(f"file istio/capture-{release}/{name}.golden\n")
print("done", file=sys.stderr)
