#!/usr/bin/env python3
"""Runs inside a fresh network namespace (started by run.py under `unshare -n`): the setup steps
(untimed), then one measured command through the measure helper (bench/measure.cc). Prints
JSON: wall time in ms and the peak RSS in KiB of the command (largest of its processes).
usage: inner.py JSON  with keys setup (list of shell commands), argv (list) or script (shell
text), stdin (path or null), env (dict)."""
import json
import os
import subprocess
import sys
import time

spec = json.loads(sys.argv[1])
env = spec.get("env", {})
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for step in spec.get("setup", []):
    subprocess.run(["sh", "-c", step], check=True, env=env, stdout=subprocess.DEVNULL)

argv = spec["argv"] if "argv" in spec else ["sh", "-c", spec["script"]]
p = subprocess.run([spec["measure"], spec.get("stdin") or "-"] + argv, capture_output=True, text=True, env=env)
ms, rss, rc = p.stdout.split()
print(json.dumps({"ms": float(ms), "rss_kib": int(rss), "rc": int(rc), "err": p.stderr[-300:]}))
