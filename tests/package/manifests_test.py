"""Every manifest in deploy/ does what an operator switching to our image relies on.

Each YAML document is parsed and must be one of these, or the test fails (a manifest nobody
checks is a manifest nobody knows works):

  - Helm values or an IstioOperator: global.proxy_init.image names our image as a full reference
    (Istio's injection template uses it only when it contains a "/");
  - a pod (Pod, or a workload's pod template) with an init container running our image, either
      * written out: its command line, as the image's entrypoint would run it, is one our CLI
        accepts (run with --dry-run: exit 0, restore text printed) and its security context
        grants root with NET_ADMIN and NET_RAW and nothing more (every other capability dropped,
        not privileged, no privilege escalation; a read-only root needs a writable /run for the
        xtables lock), or
      * a merge override of Istio's injected istio-init: only the image, so the injector's own
        arguments and security context stay.

The checker is itself checked: broken variants of the first written-out init container (an
extra capability, privileged, NET_RAW missing, an unknown flag, a read-only root without /run)
must each be refused, so a test that cannot fail would fail.

    python3 tests/package/manifests_test.py BUILD/cli/istio-iptables DEPLOY_DIR
"""
import copy
import glob
import os
import subprocess
import sys

import yaml

ENTRYPOINT = "/usr/local/bin/pilot-agent"
IMAGE_NAME = "istio-iptables"
POD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def ours(image):
    return isinstance(image, str) and IMAGE_NAME in image.rsplit("/", 1)[-1]


def image_problems(image):
    if not ours(image):
        return [f"image {image!r} is not {IMAGE_NAME}"]
    if "/" not in image:
        return [f"image {image!r} is not a full reference (Istio ignores a bare name)"]
    return []


def command_line(container):
    """The argument vector the container runs: its command (or the image's entrypoint), then args."""
    command = container.get("command") or [ENTRYPOINT]
    return [str(a) for a in command + (container.get("args") or [])]


def cli_problems(tool, container):
    argv = command_line(container)
    if os.path.basename(argv[0]) not in ("pilot-agent", "istio-iptables"):
        return [f"the command {argv[0]!r} is not in the image"]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for e in container.get("env") or []:
        env[e["name"]] = str(e.get("value", ""))
    p = subprocess.run([tool, *argv[1:], "--dry-run"], capture_output=True, text=True, env=env)
    if p.returncode != 0 or "COMMIT" not in p.stdout:
        return [f"the CLI refuses {argv[1:]} (exit {p.returncode}): {p.stderr.strip()}"]
    return []


def security_problems(container, pod_spec):
    problems = []
    sc = container.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    added = set(caps.get("add") or [])
    if added != {"NET_ADMIN", "NET_RAW"}:
        problems.append(f"capabilities added are {sorted(added)}, not exactly NET_ADMIN and NET_RAW")
    if "ALL" not in (caps.get("drop") or []):
        problems.append("capabilities do not drop ALL")
    if sc.get("privileged") is not False:
        problems.append("privileged is not false")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    pod_sc = pod_spec.get("securityContext") or {}
    if sc.get("runAsUser", pod_sc.get("runAsUser")) != 0:
        problems.append("runAsUser is not 0 (root)")
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True:
        problems.append("runAsNonRoot is true")
    if sc.get("readOnlyRootFilesystem") is True:
        mounts = {m.get("mountPath") for m in container.get("volumeMounts") or []}
        lock = {e["name"]: e.get("value") for e in container.get("env") or []}.get("XTABLES_LOCKFILE")
        if "/run" not in mounts and not (lock and os.path.dirname(lock) in mounts):
            problems.append("the root filesystem is read-only and /run (the xtables lock) is not mounted")
    return problems


def init_container_problems(tool, container, pod_spec):
    if not container.get("args") and not container.get("command"):
        # A merge override: Istio's injected container supplies the rest, unless this weakens it.
        problems = image_problems(container.get("image"))
        if container.get("name") != "istio-init":
            problems.append("an override must be named istio-init to merge with Istio's container")
        if set(container) - {"name", "image", "imagePullPolicy", "resources"}:
            problems.append(f"an override sets more than the image: {sorted(set(container))}")
        return problems
    return (image_problems(container.get("image")) + cli_problems(tool, container) +
            security_problems(container, pod_spec))


def pod_spec_of(doc):
    if doc.get("kind") == "Pod":
        return doc.get("spec") or {}
    return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}


def document_checks(tool, doc):
    """(what was checked, problems) for one YAML document."""
    if not isinstance(doc, dict):
        return None, ["not a mapping"]
    if doc.get("kind") == "IstioOperator":
        values = (doc.get("spec") or {}).get("values") or {}
        image = ((values.get("global") or {}).get("proxy_init") or {}).get("image")
        return "IstioOperator global.proxy_init.image", image_problems(image)
    if "global" in doc and "kind" not in doc:
        image = ((doc.get("global") or {}).get("proxy_init") or {}).get("image")
        return "Helm values global.proxy_init.image", image_problems(image)
    if doc.get("kind") in POD_KINDS:
        spec = pod_spec_of(doc)
        inits = [c for c in spec.get("initContainers") or [] if ours(c.get("image"))]
        if not inits:
            return None, [f"{doc['kind']} has no init container running {IMAGE_NAME}"]
        problems = []
        for c in inits:
            problems += [f"init container {c.get('name')}: {p}" for p in init_container_problems(tool, c, spec)]
        return f"{doc['kind']} {doc.get('metadata', {}).get('name')}: {len(inits)} init container(s)", problems
    return None, [f"unknown kind of document ({doc.get('kind')})"]


def self_check(tool, pod_doc):
    """Each broken variant of a good written-out init container must be refused."""
    def mutate(change):
        doc = copy.deepcopy(pod_doc)
        spec = pod_spec_of(doc)
        c = next(c for c in spec["initContainers"] if c.get("args"))
        change(c)
        return doc

    def caps(c):
        return c["securityContext"]["capabilities"]

    variants = {
        "an extra capability (SYS_ADMIN)": lambda c: caps(c)["add"].append("SYS_ADMIN"),
        "NET_RAW missing": lambda c: caps(c)["add"].remove("NET_RAW"),
        "nothing dropped": lambda c: caps(c).pop("drop"),
        "privileged": lambda c: c["securityContext"].update(privileged=True),
        "privilege escalation": lambda c: c["securityContext"].update(allowPrivilegeEscalation=True),
        "not root": lambda c: c["securityContext"].update(runAsUser=1337),
        "an unknown flag": lambda c: c["args"].append("--no-such-flag"),
        "a bad port": lambda c: c["args"].__setitem__(c["args"].index("-p") + 1, "70000"),
        "a read-only root without /run": lambda c: c.update(volumeMounts=[],
                                                            securityContext={**c["securityContext"],
                                                                             "readOnlyRootFilesystem": True}),
        "a command not in the image": lambda c: c.update(command=["/bin/sh", "-c"]),
    }
    failures, refused = [], 0
    for name, change in variants.items():
        _, problems = document_checks(tool, mutate(change))
        if problems:
            refused += 1
            print(f"ok: refused, as it must be: {name} ({problems[0]})")
        else:
            failures.append(f"the checker accepts a broken init container: {name}")
    return refused, failures


def main():
    tool, deploy = sys.argv[1], sys.argv[2]
    files = sorted(glob.glob(os.path.join(deploy, "**", "*.y*ml"), recursive=True))
    failures, passed, written_out = [], 0, None
    if not files:
        failures.append(f"no manifest in {deploy}")
    for path in files:
        name = os.path.relpath(path, deploy)
        try:
            docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
        except yaml.YAMLError as e:
            failures.append(f"{name}: not YAML: {e}")
            continue
        if not docs:
            failures.append(f"{name}: no document")
        for doc in docs:
            what, problems = document_checks(tool, doc)
            if problems:
                failures += [f"{name}: {p}" for p in problems]
            else:
                passed += 1
                print(f"ok: {name}: {what}")
                spec = pod_spec_of(doc) if isinstance(doc, dict) else {}
                if written_out is None and any(c.get("args") for c in spec.get("initContainers") or []):
                    written_out = doc
    if written_out is None:
        failures.append("no manifest writes out the init container (its arguments and security context)")
    else:
        refused, broken = self_check(tool, written_out)
        passed += refused
        failures += broken
    print(f"{passed} passed, {len(failures)} failed")
    for f in failures:
        print(f"FAILED: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
