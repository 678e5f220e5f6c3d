"""The harness the system test scripts share: a throwaway namespace per shell script, the tool's
command line for a scenario of rules/, the @test decorator and the final report.

Each script keeps its own command line and parses it; it then calls start(), which skips the
whole run (exit 77) without root or a needed program, and makes the work directory: a private
xtables lock file (so that no test waits on, or holds, the host's) and a private /etc/group
holding the host's groups and the ones scenarios name (java, ftp-test, ftp). ns() runs a bash
script in a fresh network and mount namespace with that group file bound over /etc/group, so the
host's rules, routes and files are never touched. finish() prints the summary, removes the work
directory (kept, and printed, when KEEP is set) and returns the exit status.

State lives in this module (TOOL, REPO, WORK, LOCK, BASE_ENV, results): one run of one script.
The scripts are run as `python3 tests/system/X.py ...`, which puts this folder on sys.path.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

TOOL = REPO = ONLY = WORK = GROUPS = LOCK = None
BASE_ENV = {}
results = []

# Groups some scenarios name (owner match by group) and a host may lack.
EXTRA_GROUPS = "java:x:50001:\nftp-test:x:50002:\n"


def start(tool_path, repo, only, prefix, needs, skipped):
    """Exits 77 (printing "skipped: <skipped>") unless root with unshare and the programs `needs`;
    then makes the work directory. Returns (WORK, LOCK, BASE_ENV)."""
    global TOOL, REPO, ONLY, WORK, GROUPS, LOCK, BASE_ENV
    if os.geteuid() != 0 or not all(shutil.which(p) for p in ["unshare", *needs]):
        print(f"skipped: {skipped}")
        sys.exit(77)
    TOOL, REPO, ONLY = tool_path, repo, only
    WORK = tempfile.mkdtemp(prefix=prefix)
    GROUPS = os.path.join(WORK, "group")
    host = open("/etc/group").read()
    with open(GROUPS, "w") as f:
        f.write(host + EXTRA_GROUPS)
        if not re.search(r"^ftp:", host, re.M):
            f.write("ftp:x:50003:\n")
    LOCK = os.path.join(WORK, "xtables.lock")
    BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XTABLES_LOCKFILE": LOCK}
    return WORK, LOCK, BASE_ENV


def ns(script, env=None, check=True):
    """Runs a bash script in a fresh network (and mount) namespace; with `check`, a non-zero exit
    is an AssertionError naming the script and its output."""
    full = f"mount --bind {GROUPS} /etc/group && ip link set lo up && {script}"
    p = subprocess.run(["unshare", "-n", "-m", "bash", "-c", full], capture_output=True, text=True,
                       env={**BASE_ENV, **(env or {})})
    if check and p.returncode != 0:
        raise AssertionError(f"script failed ({p.returncode}): {script}\n{p.stdout}\n{p.stderr}")
    return p


def q(args):
    return " ".join(shlex.quote(a) for a in args)


def scenario(name):
    """A scenario of rules/: its command-line arguments and its environment variables."""
    d = os.path.join(REPO, "rules", name)
    args = shlex.split(open(os.path.join(d, "args")).read())
    env = {}
    if os.path.exists(os.path.join(d, "env")):
        for line in open(os.path.join(d, "env")).read().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return args, env


def tool(args, *more):
    """The tool with a scenario's args, as a shell word list; `more` may start with a command word
    (apply, check, cleanup), then flags. Its log records go to stderr (--log_target stderr), so
    that stdout holds only what a command prints as its result (the tests' listings, check's
    differences); the record format itself is tested by the unit tests."""
    more = list(more)
    command = [more.pop(0)] if more and more[0] in ("apply", "check", "cleanup") else []
    lead = [args[0]] if args and args[0] == "istio-iptables" else []
    # The legacy variant unless the test chooses: these suites compare with iptables-legacy-restore
    # (tests/system/iptables_nft_test.py covers the nf_tables variant a fresh namespace gets).
    chooses = any(w.startswith(("--backend", "--native-nftables", "--force-iptables-binary")) for w in args + more)
    backend = [] if chooses else ["--backend", "libiptc"]
    return f"{shlex.quote(TOOL)} {q(lead + command + args[len(lead):] + more + backend + ['--log_target', 'stderr'])}"


def env_prefix(env):
    """`env K=V ...` setting `env` for one command of a script ("" for none)."""
    return "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) if env else ""


def test(fn):
    """Runs the test now (unless the name filter leaves it out) and records PASS or FAIL; an
    assertion without a message is a failure too."""
    if ONLY and ONLY not in fn.__name__:
        return fn
    try:
        fn()
        results.append((fn.__name__, None))
        print(f"PASS {fn.__name__}", flush=True)
    except AssertionError as e:
        results.append((fn.__name__, str(e) or "assertion failed"))
        print(f"FAIL {fn.__name__}: {e}", flush=True)
    return fn


def finish():
    """Prints the summary, removes the work directory unless KEEP is set (then prints its path),
    and returns the exit status: 1 when a test failed."""
    failed = [r for r in results if r[1] is not None]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if os.environ.get("KEEP"):
        print(WORK)
    else:
        shutil.rmtree(WORK, ignore_errors=True)
    return 1 if failed else 0
