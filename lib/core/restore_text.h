// iptables-restore text, exactly as Istio renders it (builder.BuildV4Restore / BuildV6Restore).
#pragma once

#include <string>

#include "core/model.h"
#include "core/planner.h"

namespace istio_iptables {

/// The rule's matches and target as iptables options: "-o lo ! -d 127.0.0.1/32 -p tcp ... -j X".
std::string rule_spec(const Rule& rule);

/// The rule as iptables-save (1.8.9, either variant) lists what the kernel holds: header matches
/// first in its order (-s -d -i -o -p), each port match under its protocol's `-m tcp`/`-m udp`,
/// marks in hex, targets with every option the kernel stores (`--on-ip`, `--set-xmark V/M`,
/// CONNMARK's masks). For a rule read back from the kernel (numbers, not group names).
std::string save_spec(const Rule& rule, Family family);

/// One family's ruleset as iptables-restore input, in Istio's form: tables in alphabetical order,
/// "* table" headers, "-N" declarations (chains with rules, then jump-only targets), then every
/// operation in list order ("-A CHAIN ..." or "-I CHAIN N ..."), "COMMIT". For --noflush.
std::string restore_text(const Ruleset& ruleset);

/// The dry-run output: the IPv4 text, then (when IPv6 is enabled) "# ip6tables-restore" and the
/// IPv6 text.
std::string dry_run_text(const Plan& plan);

/// The commands Istio 1.22/1.23 ran one by one with --restore-format=false: every "-N" first, in
/// order of first use across tables ("iptables -t nat -N ISTIO_INBOUND"; "ip6tables" for IPv6),
/// then every rule in Istio's order across tables ("iptables -t nat -A ...").
std::string command_text(const Ruleset& ruleset, Family family);

/// How Istio's stub recorded a dry run, by release.
struct DryRunRecord {
  bool initial_saves = true;   ///< 1.24 and later: the state check's two saves come first
  bool restore_format = true;  ///< false: 1.22/1.23's --restore-format=false, one command a line
};

/// What Istio's stubbed iptables records in DRY_RUN_FILE_PATH for an apply (the format of its
/// capture golden files): the state check's "iptables-save" and "ip6tables-save" lines (1.24 and
/// later), the IPv4 restore input (or commands), the IPv6 one when IPv6 is enabled, and the
/// final "iptables-save" (and "ip6tables-save" with IPv6).
std::string dry_run_file_text(const Plan& plan, const DryRunRecord& record);

}  // namespace istio_iptables
