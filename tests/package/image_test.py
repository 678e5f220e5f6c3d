"""The init-container image, as a kubelet would run it, checked against the kernel.

scripts/build-image.sh builds the image with podman from this build's binary (in a throwaway
podman store) and writes it as an OCI layout; umoci unpacks it into a root filesystem and the
runtime configuration. The test then does what a container runtime does for Istio's istio-init:
it runs the configuration's entrypoint with the injector's argument vector (`istio-iptables -p
15001 ...`), as root, chrooted into the read-only root filesystem with /proc and a writable /run
mounted, in a fresh network namespace that looks like a pod's (lo and one veth with an IPv4
address). podman run is not used: on these machines crun cannot set rlimits.

What is asserted, each from an independent source:
  - the image is under 5 MiB, packed and unpacked, and holds nothing but the tool, the shared
    objects ldd lists for it and libiptc (loaded with dlopen), and empty mount points (no
    shell, no package manager);
  - its entrypoint is /usr/local/bin/pilot-agent (where Istio's proxyv2 image has it) running as
    root, and /usr/local/bin/istio-iptables is the same program;
  - the kernel's listing (iptables-legacy-save, or iptables-nft-save where the tool chose
    nf_tables) after the image applied the reference sidecar equals the listing that front end's
    iptables-restore makes of the image's own --dry-run of the same command, and it redirects
    outbound TCP to 15001 and inbound to 15006 (the flags' meaning);
  - `check` through the image then finds the rules in place (exit 0).

    python3 tests/package/image_test.py BUILD/cli/istio-iptables REPO
Exit 77 without root; as root a missing podman or umoci is a failure (scripts/install-deps.sh
installs them), not a skip.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

MIB = 1024 * 1024
TAG = "localhost/istio-iptables:test"
# The sidecar the injector asks for (Istio's injection template, default values).
ISTIO_ARGS = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*",
              "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"]
# A pod's network namespace: loopback and one interface with an IPv4 address (IPv6 detection
# then says no, as in an IPv4-only cluster).
POD = ("ip link set lo up && ip link add eth0 type veth peer name peer0 && "
       "ip addr add 192.0.2.10/24 dev eth0 && ip link set eth0 up && ip link set peer0 up")

failures = []
passed = 0


def check(condition, what):
    global passed
    if condition:
        passed += 1
        print(f"ok: {what}")
    else:
        failures.append(what)
        print(f"FAILED: {what}")


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def in_pod(script):
    """Runs a shell script in a fresh network and mount namespace set up as a pod's."""
    return run(["unshare", "-n", "-m", "sh", "-c", f"set -e; {POD}; {script}"])


MODES = ["legacy", "nft"]


def listings(output):
    """"#### MODE" headed iptables-save outputs, v4 then v6 for each, as {"MODE v4": listing}."""
    out, seen = {}, {}
    for part in output.split("#### ")[1:]:
        mode, _, text = part.partition("\n")
        family = "v6" if seen.get(mode) else "v4"
        seen[mode] = True
        out[f"{mode} {family}"] = listing(text)
    return out


def listing(save_output):
    """iptables-save text without its comments and counters (the packets seen are not the rules)."""
    lines = [l for l in save_output.splitlines() if not l.startswith("#")]
    return "\n".join(re.sub(r"\[\d+:\d+\]$", "[0:0]", l) for l in lines)


def main():
    tool, repo = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        print("skipped: needs root (network namespaces, chroot)")
        return 77
    missing = [p for p in ["podman", "umoci", "unshare", "chroot", "ip", "setpriv"] +
               [f"ip{v}tables-{m}-{op}" for m in MODES for v in ("", "6") for op in ("save", "restore")] if not shutil.which(p)]
    if missing:
        print(f"error: missing {', '.join(missing)}; scripts/install-deps.sh installs them")
        return 1
    work = tempfile.mkdtemp(prefix="istio-iptables-image-")
    try:
        return run_checks(tool, repo, work)
    finally:
        if os.environ.get("KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_checks(tool, repo, work):
    oci = os.path.join(work, "oci")
    env = {**os.environ, "ISTIO_IPTABLES_PODMAN_ROOT": os.path.join(work, "podman")}
    built = run([os.path.join(repo, "scripts/build-image.sh"), "--binary", tool, "--tag", TAG, "--oci-dir", oci],
                env=env)
    if built.returncode != 0:
        print(built.stdout, built.stderr)
        check(False, "scripts/build-image.sh builds the image")
        return finish()
    check(built.stdout.strip().splitlines()[-1] == TAG, "build-image.sh prints the image reference last")
    size = run(["podman", "--root", f"{work}/podman/storage", "--runroot", f"{work}/podman/run",
                "--storage-driver", "vfs", "image", "inspect", "--format", "{{.Size}}", TAG])
    print(f"image size (podman): {size.stdout.strip()} bytes")
    check(size.returncode == 0 and int(size.stdout) < 5 * MIB, "the image is under 5 MiB (podman's size)")
    layers = sum(os.path.getsize(os.path.join(oci, "blobs/sha256", b)) for b in os.listdir(f"{oci}/blobs/sha256"))
    print(f"OCI layout (compressed blobs): {layers} bytes")
    check(layers < 5 * MIB, "the OCI layout is under 5 MiB")

    bundle = os.path.join(work, "bundle")
    unpacked = run(["umoci", "unpack", "--image", f"{oci}:{TAG}", bundle])
    check(unpacked.returncode == 0, f"umoci unpacks the image {unpacked.stderr.strip()}")
    if unpacked.returncode != 0:
        return finish()
    root = os.path.join(bundle, "rootfs")
    config = json.load(open(os.path.join(bundle, "config.json")))
    entrypoint = config["process"]["args"]
    check(entrypoint == ["/usr/local/bin/pilot-agent"], f"the entrypoint is pilot-agent's path ({entrypoint})")
    check(config["process"]["user"].get("uid") == 0, "the image runs as root")

    # Contents: regular files are the tool and ELF shared objects ldd names; nothing else.
    total, files, dirs = 0, [], []
    for base, subdirs, names in os.walk(root):
        for n in names:
            p = os.path.join(base, n)
            rel = "/" + os.path.relpath(p, root)
            if os.path.islink(p):
                check(rel == "/usr/local/bin/pilot-agent" and os.readlink(p) == "istio-iptables",
                      f"the only link is pilot-agent -> istio-iptables ({rel})")
                continue
            total += os.path.getsize(p)
            files.append(rel)
        dirs += ["/" + os.path.relpath(os.path.join(base, d), root) for d in subdirs]
    print(f"unpacked root filesystem: {total} bytes in {len(files)} files")
    check(total < 5 * MIB, "the unpacked root filesystem is under 5 MiB")
    ldd = run(["ldd", tool]).stdout
    wanted = set(re.findall(r"=> (/\S+)", ldd)) | set(re.findall(r"^\s*(/\S+) \(", ldd, re.M))
    # and libiptc, which the tool loads with dlopen when it first opens a legacy table
    cache = run(["ldconfig", "-p"]).stdout
    libdirs = {os.path.dirname(p) for p in wanted if os.path.basename(p) == "libc.so.6"}
    dlopened = {path for path in re.findall(r"^\s*libip[46]tc\.so\.2 \(.*\) => (/\S+)", cache, re.M)
                if os.path.dirname(path) in libdirs}  # the tool's architecture: beside its libc
    check(len(dlopened) == 2, f"the loader's cache names libip4tc.so.2 and libip6tc.so.2 ({sorted(dlopened)})")
    check(sorted(files) == sorted(wanted | dlopened | {"/usr/local/bin/istio-iptables"}),
          f"the files are the tool, what ldd lists and libiptc, nothing else ({sorted(files)})")
    check(not any(os.path.exists(os.path.join(root, p)) for p in ["bin/sh", "usr/bin", "etc"]),
          "no shell, no /usr/bin, no /etc")

    # The image applies the sidecar; the kernel lists it; check through the image agrees.
    # The root is read-only as a pod's may be: only /run (the xtables lock) is writable.
    mounts = (f"mount --bind {root} {root} && mount -o remount,bind,ro {root} && "
              f"mount -t tmpfs tmpfs {root}/run && mount -t proc proc {root}/proc")
    injected = shlex.join(["chroot", root, *entrypoint, *ISTIO_ARGS])
    check_cmd = shlex.join(["chroot", root, *entrypoint, "check", *ISTIO_ARGS[1:]])
    # Whichever x_tables front end the tool chooses (nf_tables as iptables-nft, or legacy), the
    # kernel is listed with that front end's save, and the reference is made with its restore.
    # Once as the tool chooses in a fresh namespace, once with legacy x_tables forced.
    saves = " && ".join(f"echo '#### {m}' && ip{v}tables-{m}-save" for m in MODES for v in ("", "6"))
    dry = in_pod(f"{mounts} && {injected} --dry-run")
    check(dry.returncode == 0 and "COMMIT" in dry.stdout, f"the image's --dry-run prints restore text {dry.stderr.strip()}")
    kernel_v4 = ""
    for extra, want in [("", None), (shlex.join(["--force-iptables-binary", "legacy"]), "legacy")]:
        applied = in_pod(f"{mounts} && {injected} {extra} && {check_cmd} {extra} && {saves}")
        print(applied.stderr)
        check(applied.returncode == 0, f"the entrypoint applies Istio's injected arguments {extra}, then check "
              "says in place")
        kernel = listings(applied.stdout)
        used = [m for m in MODES if kernel.get(f"{m} v4")]
        check(len(used) == 1 and want in (None, used[0]), f"the rules are in one front end's tables ({used})")
        mode = used[0] if used else "legacy"
        restored = run(["unshare", "-n", "sh", "-c", f"iptables-{mode}-restore && " +
                        " && ".join(f"echo '#### {mode}' && ip{v}tables-{mode}-save" for v in ("", "6"))],
                       input=dry.stdout)
        check(restored.returncode == 0, f"iptables-{mode}-restore takes the dry-run {restored.stderr.strip()}")
        reference = listings(restored.stdout)
        check(kernel.get(f"{mode} v4") == reference.get(f"{mode} v4"), f"the kernel lists ({mode}), after the "
              f"image applied it, what iptables-{mode}-restore makes of the dry-run")
        check(kernel.get(f"{mode} v6") == reference.get(f"{mode} v6"), f"IPv6 listings agree ({mode}; not detected)")
        kernel_v4 = kernel.get(f"{mode} v4", "")
        check("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in kernel_v4 and
              "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in kernel_v4,
              f"outbound TCP goes to 15001 and inbound to 15006 (-p, -z; {mode})")
        if kernel_v4 != reference.get(f"{mode} v4"):
            print(f"kernel:\n{kernel_v4}\nreference:\n{reference.get(mode + ' v4')}")

    # The pod's capabilities are enough, and each is needed: with NET_ADMIN and NET_RAW in the
    # bounding set (SYS_CHROOT only for this test's chroot) the apply works, through nf_tables
    # and through legacy x_tables; legacy x_tables without NET_RAW (libiptc's raw socket) fails,
    # and so does anything without NET_ADMIN.
    legacy = shlex.join(["--force-iptables-binary", "legacy"])
    for caps, extra, works in [("+net_admin,+net_raw", "", True), ("+net_admin,+net_raw", legacy, True),
                               ("+net_admin", legacy, False), ("+net_raw", "", False)]:
        limited = in_pod(f"{mounts} && setpriv --bounding-set=-all,{caps},+sys_chroot --inh-caps=-all "
                         f"{injected} {extra}")
        check((limited.returncode == 0) == works, f"with only {caps.replace('+', '').upper()} the apply "
              f"{'works' if works else 'fails'}{' (legacy x_tables)' if extra else ''}")

    # The same program under its own name, without the leading word (legacy, as the last apply).
    direct = in_pod(f"{mounts} && " + shlex.join(["chroot", root, "/usr/local/bin/istio-iptables", *ISTIO_ARGS[1:]])
                    + f" {legacy} --log_target stderr && iptables-legacy-save")
    check(direct.returncode == 0 and listing(direct.stdout) == kernel_v4,
          "/usr/local/bin/istio-iptables without the leading word programs the same rules")
    return finish()


def finish():
    print(f"{passed} passed, {len(failures)} failed")
    for f in failures:
        print(f"  failed: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
