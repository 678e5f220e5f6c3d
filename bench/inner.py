#!/usr/bin/env python3
"""Runs inside a fresh network namespace (made by run.py with `ip netns add`, entered with `nsenter`): the setup steps
(untimed), then one measured command through the measure helper (bench/measure.cc). Prints
JSON: wall time in ms and the peak RSS in KiB of the command (largest of its processes).
usage: inner.py JSON|-  (-: the JSON on standard input, for specs longer than one argument may
be) with keys setup (list of steps: a shell command, or an argument list run as it is), argv
(list) or script (shell text), stdin (path or null), env (dict)."""
import json
import os
import subprocess
import sys
import time

spec = json.loads(sys.stdin.read() if sys.argv[1] == "-" else sys.argv[1])
env = spec.get("env", {})
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for step in spec.get("setup", []):
    argv = step if isinstance(step, list) else ["sh", "-c", step]
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if isinstance(step, list) else None)

argv = spec["argv"] if "argv" in spec else ["sh", "-c", spec["script"]]
p = subprocess.run([spec["measure"], spec.get("stdin") or "-"] + argv, capture_output=True, text=True, env=env)
ms, rss, rc = p.stdout.split()
print(json.dumps({"ms": float(ms), "rss_kib": int(rss), "rc": int(rc), "err": p.stderr[-300:]}))
