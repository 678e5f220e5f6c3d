// What to write so that a table holds the plan, and how a table differs from it. Pure.
//
// Ownership. Every chain named ISTIO_* is ours. In any other chain, a rule is ours when it jumps
// to an ISTIO_* chain, and in a built-in chain also when it has the shape of one of Istio's
// non-jump rules (exclude-interface RETURNs, TPROXY's MARK/CONNMARK rules, 1.24's raw DNS zone
// rule). Shapes, because Istio tags nothing (no comments: they would change the listing), and
// whichever configuration installed a rule must be recognisable for replace and cleanup.
//
// Placement. Foreign rules stay where they are; our rules are placed as iptables-restore
// --noflush would place them on top of the foreign ones: appends at the end of a built-in chain,
// "-I CHAIN N" at position N. So an apply onto a namespace holding foreign rules ends exactly
// where iptables-restore of our dry-run text would, once our old rules are gone.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/store.h"

namespace istio_iptables {

bool is_owned_chain(const std::string& chain);

/// Is this rule, in `chain` of `table`, one of ours (whichever configuration installed it)?
bool is_owned_rule(Table table, const InstalledChain& chain, const InstalledRule& rule);

/// One of the plan's operations with its rule already encoded by the store.
struct EncodedOp {
  std::string chain;
  std::optional<unsigned> insert_position;
  InstalledRule rule;
};

/// A chain as it should be. The rules point into the snapshot and the encoded ops it was made
/// from (no copies: a plan can hold thousands of rules), so it lives no longer than they do.
struct DesiredChain {
  std::string name;
  bool builtin = false;
  bool opaque = false;
  std::vector<const InstalledRule*> rules;
};

/// The table as it should be: every non-owned chain of the snapshot, then our chains in order.
struct DesiredTable {
  std::vector<DesiredChain> chains;
};

/// Replaces our rules in `current` with the plan's (no ops: removes all of ours).
DesiredTable desired_table(const Snapshot& current, const std::vector<EncodedOp>& ops);

/// The write that turns `current` into `desired`; nullopt when it is there already.
std::optional<TableWrite> write_for(const Snapshot& current, const DesiredTable& desired);

/// The write that puts a table back as it was in `original` (rollback).
std::optional<TableWrite> restore_write(const Snapshot& current, const Snapshot& original);

/// One difference between what is installed and what is planned.
struct Difference {
  enum Kind { Missing, Extra, Misplaced } kind;
  std::string chain;
  std::string rule;  ///< rule_spec of the rule, or a description when it cannot be decoded
};

/// How `current` differs from `desired`, chain by chain, in our rules and our chains.
std::vector<Difference> differences(const Snapshot& current, const DesiredTable& desired);

}  // namespace istio_iptables
