// iptables-restore text, exactly as Istio renders it (builder.BuildV4Restore / BuildV6Restore).
#pragma once

#include <string>

#include "core/model.h"
#include "core/planner.h"

namespace istio_iptables {

/// The rule's matches and target as iptables options: "-o lo ! -d 127.0.0.1/32 -p tcp ... -j X".
std::string rule_spec(const Rule& rule);

/// One family's ruleset as iptables-restore input, in Istio's form: tables in alphabetical order,
/// "* table" headers, "-N" declarations (chains with rules, then jump-only targets), then every
/// operation in list order ("-A CHAIN ..." or "-I CHAIN N ..."), "COMMIT". For --noflush.
std::string restore_text(const Ruleset& ruleset);

/// The dry-run output: the IPv4 text, then (when IPv6 is enabled) "# ip6tables-restore" and the
/// IPv6 text.
std::string dry_run_text(const Plan& plan);

}  // namespace istio_iptables
