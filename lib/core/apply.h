// Apply, cleanup and check over a NetfilterStore: the whole-namespace logic, kernel-free.
//
// Apply is all or nothing across tables and families. Every rule is encoded before the first
// commit, so a rule the store cannot express stops the run with nothing changed. Then every
// (family, table) is decided and written through the store's transact_all: one nf_tables
// transaction for the nf_tables store; for the others each table that needs it in one commit,
// and when a later commit fails, the tables already committed are written back as they were
// read, so the namespace is either entirely as before or entirely as planned. A table that
// already holds exactly the plan is not written at all (its counters are kept). Tables the plan
// does not use are visited only when they exist, to remove our rules of an earlier
// configuration; asking whether they exist never creates them.
#pragma once

#include <string>
#include <vector>

#include "core/planner.h"
#include "core/reconcile.h"
#include "core/store.h"

namespace istio_iptables {

/// A (family, table) the run wrote, as "IPv4 nat".
struct ApplyOutcome {
  std::vector<std::string> committed;
};

/// Makes the namespace hold `plan` (our rules of any earlier configuration are replaced).
Result<ApplyOutcome> apply_plan(NetfilterStore& store, const Plan& plan);

/// Removes every ISTIO_* chain and every rule of ours, in every existing table of both families.
Result<ApplyOutcome> cleanup(NetfilterStore& store);

/// Whether any table cleanup would visit exists: when none does, cleanup writes nothing, and a
/// caller need not take the xtables lock to learn it.
Result<bool> holds_any_table(NetfilterStore& store);

/// Differences of one table, and notes that are not differences (foreign rules standing before
/// our jumps in a built-in chain: they may bypass capture, but they are not ours to judge).
struct TableDifferences {
  Family family;
  Table table;
  std::vector<Difference> differences;
  std::vector<PlacementNote> notes;
};

/// Compares what is installed with the plan: the tables that differ or carry notes.
Result<std::vector<TableDifferences>> check(NetfilterStore& store, const Plan& plan);

/// Does any table differ from the plan? (Notes alone do not count.)
bool any_differences(const std::vector<TableDifferences>& tables);

/// A readable report, differences first ("IPv4 nat ISTIO_OUTPUT: missing: -d 127.0.0.1/32 -j
/// RETURN"), then notes ("IPv4 nat OUTPUT: note: foreign rule … stands before our jump …").
std::string format_differences(const std::vector<TableDifferences>& diffs);

}  // namespace istio_iptables
