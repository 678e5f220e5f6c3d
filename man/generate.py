#!/usr/bin/env python3
"""Writes istio-iptables(8) and the bash and zsh completions from the built binary's --help.

The flags are not listed anywhere else: they come from `istio-iptables --help`, the text users
read, which CLI11 prints from the same table the parser uses (lib/core/settings.cc's setting
specs plus cli/app.cc's logging and explain flags). A flag added there appears in the man page
and both completions at the next build; tests/package/docs_test.py fails if one does not.

The prose of the man page (description, commands, exit status, examples) is
man/istio-iptables.8.in; @OPTIONS@, @ENVIRONMENT@, @VERSION@ and @DATE@ are filled in here.
A few flags take one of a fixed set of values; VALUES below lists them for completion, and the
run fails if one of those flags is no longer in --help, so the table cannot outlive its flag.

    man/generate.py --tool BUILD/cli/istio-iptables --template man/istio-iptables.8.in \\
                    --version 0.1.0 --out DIR
"""
import argparse
import gzip
import os
import re
import subprocess
import sys

COMMANDS = ["apply", "check", "cleanup", "explain"]
# Flags whose values are a fixed set (completed as words) or a path (completed as files).
VALUES = {
    "--istio-inbound-interception-mode": ["REDIRECT", "TPROXY"],
    "--ipv6": ["auto", "on", "off"],
    "--backend": ["auto", "libiptc", "restore"],
    # --compat: the releases its help names (see values_of), so a new layout is offered at once.
    "--force-iptables-binary": ["legacy", "nft"],
}
FILES = ["--resolv-conf", "--against", "--network-namespace"]


class Option:
    def __init__(self, names, value, help_text):
        self.names = names  # ["-p", "--envoy-port"]: the short one first, as --help lists them
        self.value = value  # "TEXT" or None for a switch
        self.repeatable = False
        self.help = help_text

    @property
    def long(self):
        return [n for n in self.names if n.startswith("--")][0]


def parse_help(text):
    """The flags of --help, in pflag's layout ("  -p, --envoy-port string   usage", a switch with no
    type word), from every "...Flags...:" block; then the "Environment" block's bindings
    ("  --name   VAR, ALIAS"), added to each flag's help as "[env VAR, ALIAS]"."""
    options, by_name = [], {}
    section = None
    entry = re.compile(r"^\s+(?:(-[A-Za-z0-9]), )?(--[A-Za-z0-9_][A-Za-z0-9_-]*)(?: ([A-Za-z0-9]+))?(?:\s{2,}(\S.*))?$")
    binding = re.compile(r"^  (--[A-Za-z0-9_][A-Za-z0-9_-]*)\s+([A-Z0-9_]+(?:, [A-Z0-9_]+)*)$")
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = "flags" if "Flags" in line else "environment" if line.startswith("Environment") else None
            continue
        if section == "flags":
            m = entry.match(line)
            if m:
                names = ([m.group(1)] if m.group(1) else []) + [m.group(2)]
                opt = Option(names, m.group(3).upper() if m.group(3) else None, m.group(4) or "")
                opt.repeatable = m.group(3) == "stringArray"
                options.append(opt)
                by_name[m.group(2)] = opt
        elif section == "environment":
            m = binding.match(line)
            if m and m.group(1) in by_name:
                by_name[m.group(1)].help += f" [env {m.group(2)}]"
    if not options:
        sys.exit("generate.py: no flag found in --help")
    return options


def env_of(help_text):
    """The environment variables an option's help names ("[env A, B]"), and the help without them."""
    m = re.search(r"\s*\[env ([A-Z0-9_, ]+)\]", help_text)
    if not m:
        return [], help_text
    return [v.strip() for v in m.group(1).split(",")], help_text[: m.start()] + help_text[m.end():]


def roff(text):
    """Text safe in a roff line: backslashes and hyphens escaped, no leading control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def man_options(options):
    out = []
    for o in options:
        names = ", ".join(f"\\fB{roff(n)}\\fR" for n in o.names)
        if o.value:
            names += " \\fIvalue\\fR" + (" ..." if o.repeatable else "")
        env, text = env_of(o.help)
        out.append(".TP")
        out.append(names)
        out.append(roff(text[:1].upper() + text[1:]) + ("." if text and not text.endswith(".") else ""))
        if env:
            out.append("Environment: " + ", ".join(f"\\fB{roff(e)}\\fR" for e in env) + ".")
    return "\n".join(out)


def man_environment(options):
    out = []
    for o in options:
        env, _ = env_of(o.help)
        for i, e in enumerate(env):
            out.append(".TP")
            out.append(f"\\fB{roff(e)}\\fR")
            alias = " (wins over " + roff(env[0]) + ")" if i > 0 else ""
            out.append(f"As \\fB{roff(o.long)}\\fR{alias}; the flag wins over the environment.")
    return "\n".join(out)


def values_of(option):
    """The fixed values of an option: VALUES' list, or for --compat the releases its help names."""
    if option.long == "--compat":
        return re.findall(r"\b\d+\.\d+\b", option.help) + (["current"] if "current" in option.help else [])
    return VALUES.get(option.long)


def bash_completion(options):
    switches = " ".join(n for o in options for n in o.names)
    valued = [n for o in options if o.value for n in o.names]
    cases = []
    for o in options:
        if not o.value:
            continue
        pattern = "|".join(o.names)
        if values_of(o):
            words = " ".join(values_of(o))
            cases.append(f'    {pattern}) COMPREPLY=($(compgen -W "{words}" -- "$cur")); return ;;')
        elif o.long in FILES:
            cases.append(f'    {pattern}) COMPREPLY=($(compgen -f -- "$cur")); return ;;')
    other = "|".join(n for o in options if o.value and not values_of(o) and o.long not in FILES
                     for n in o.names)
    cases.append(f"    {other}) return ;;  # a value with no fixed set")
    assert valued
    return f"""# bash completion for istio-iptables(8). Generated by man/generate.py from
# `istio-iptables --help`; do not edit.
_istio_iptables() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
  COMPREPLY=()
  case $prev in
{chr(10).join(cases)}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "{switches}" -- "$cur"))
  elif ((COMP_CWORD == 1)) || {{ ((COMP_CWORD == 2)) && [[ ${{COMP_WORDS[1]}} == istio-iptables ]]; }}; then
    COMPREPLY=($(compgen -W "{' '.join(COMMANDS)}" -- "$cur"))
  fi
}}
complete -F _istio_iptables istio-iptables
"""


def zsh_quote(text):
    return text.replace("'", "'\\''")


def zsh_completion(options):
    specs = []
    for o in options:
        _, text = env_of(o.help)
        desc = text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
        if values_of(o):
            action = f":value:({' '.join(values_of(o))})"
        elif o.long in FILES:
            action = ":file:_files"
        elif o.value:
            action = ":value: "
        else:
            action = ""
        star = "*" if o.repeatable else ""
        if len(o.names) > 1:
            exclusive = "" if o.repeatable else f"({' '.join(o.names)})"
            names = "{" + ",".join(o.names) + "}"
            specs.append(f"  '{star}{exclusive}'{names}'[{zsh_quote(desc)}]{zsh_quote(action)}'")
        else:
            specs.append(f"  '{star}{o.names[0]}[{zsh_quote(desc)}]{zsh_quote(action)}'")
    specs.append(f"  '1::command:({' '.join(COMMANDS)})'")
    return ("#compdef istio-iptables\n# zsh completion for istio-iptables(8). Generated by man/generate.py from\n"
            "# `istio-iptables --help`; do not edit.\n_arguments -s \\\n" + " \\\n".join(specs) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    help_text = subprocess.run([a.tool, "--help"], check=True, capture_output=True, text=True,
                               env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}).stdout
    options = parse_help(help_text)
    longs = {o.long for o in options}
    stale = sorted(set(VALUES) - longs) + sorted(set(FILES) - longs) + sorted({"--compat"} - longs)
    if stale:
        sys.exit(f"generate.py: VALUES/FILES name flags --help no longer has: {', '.join(stale)}")
    # The page's date is the source's, not the build's, so that builds are reproducible.
    date = os.environ.get("SOURCE_DATE_EPOCH")
    date = subprocess.run(["date", "-u", "-d", f"@{date}", "+%Y-%m-%d"], capture_output=True,
                          text=True).stdout.strip() if date else ""
    page = open(a.template).read()
    for key, value in {"@OPTIONS@": man_options(options), "@ENVIRONMENT@": man_environment(options),
                       "@VERSION@": a.version, "@DATE@": date}.items():
        page = page.replace(key, value)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "istio-iptables.8"), "w") as f:
        f.write(page)
    # gzip -9n: no name and no time stamp in the header (Debian policy; reproducible).
    with open(os.path.join(a.out, "istio-iptables.8.gz"), "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as f:
            f.write(page.encode())
    with open(os.path.join(a.out, "istio-iptables.bash"), "w") as f:
        f.write(bash_completion(options))
    with open(os.path.join(a.out, "_istio-iptables"), "w") as f:
        f.write(zsh_completion(options))


if __name__ == "__main__":
    main()
