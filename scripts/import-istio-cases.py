#!/usr/bin/env python3
"""Creates the catalogue folders for Istio's golden test cases (../shared/conformance/istio/cases.tsv).

For each case it writes rules/istio-<name>/ (current layout) and rules/istio-1.24-<name>/
(--compat 1.24): `args` (the case's flags, the base flags and the two machine facts as flags),
`reference` (Istio's golden file the conformance test compares with). `expected.rules` is
written by the catalogue test with REFRESH_GOLDEN=1 and checked by the conformance test against
the reference. Run from the repository root; existing args/reference files are overwritten.
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
    for layout, prefix, golden in (("", "istio-", "capture"), ("--compat 1.24 ", "istio-1.24-", "capture-1.24")):
        d = os.path.join("rules", prefix + name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "args"), "w") as f:
            f.write(layout + args + "\n")
        env_path = os.path.join(d, "env")
        if env:
            with open(env_path, "w") as f:
                f.write(env.replace(" ", "\n") + "\n")
        elif os.path.exists(env_path):
            os.remove(env_path)
        with open(os.path.join(d, "reference"), "w") as f:
            f.write(f"file istio/{golden}/{name}.golden\n")
print("done", file=sys.stderr)
