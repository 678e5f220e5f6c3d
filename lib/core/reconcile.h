// What to write so that a table holds the plan, and how a table differs from it. Pure.
//
// Ownership. Every chain named ISTIO_* is ours. In any other chain, a rule is ours when it jumps
// to an ISTIO_* chain, and in a built-in chain also when it has the shape of one of Istio's
// non-jump rules (exclude-interface RETURNs, TPROXY's MARK/CONNMARK rules, 1.24's raw DNS zone
// rule, 1.22's UDP DNS rules in nat and raw OUTPUT, the NFLOG twins of trace logging). Shapes,
// because Istio tags nothing (no comments: they would change the listing), and whichever
// configuration installed a rule must be recognisable for replace and cleanup.
//
// Placement. Foreign rules stay where they are: where they stand around ours is not ours to judge
// or move. A rule's place is the number of foreign rules before it in its chain.
//   - A chain holding none of ours (a fresh install) gets ours where iptables-restore --noflush
//     of our dry-run text would put them on top of the foreign ones: appends at the end of a
//     built-in chain, "-I CHAIN N" at position N. So a fresh apply onto a namespace holding
//     foreign rules ends exactly where that restore would.
//   - A chain already holding some of ours: the installed rules of ours are matched with the
//     plan's by a longest common subsequence of identities. A matched rule keeps its place. An
//     unmatched installed rule goes. A new rule goes where restore would put it, held within the
//     places of the installed rules it replaces (the unmatched ones between the same two matched
//     rules), or, when it replaces none, between the places of its matched neighbours.
// So ours are in order when they stand in the plan's relative order, wherever foreign rules stand
// around them: a re-apply of an unchanged configuration writes nothing even after someone
// appended a rule behind our jump, a replaced jump takes the place of the old one, and each chain
// a new configuration changes is rewritten with our rules in the plan's order.
//
// The diff. A plan can hold tens of thousands of rules in one chain, so comparing our rules with
// the plan's must stay near-linear: equal sequences and common ends are compared rule by rule,
// identities found on one side only are set aside, and Myers' O((n+m)·d) bisection in O(n+m)
// memory matches the rest. Chains are looked up by name through hash maps, never by scans.
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
  enum Kind { Missing, Extra } kind;
  std::string chain;
  std::string rule;  ///< rule_spec of the rule, or a description when it cannot be decoded
};

/// How `current` differs from `desired`, chain by chain, in our rules and our chains: in each
/// chain, per stretch between rules that match, the missing rules then the extra ones. Foreign
/// rules are not compared, nor where ours stand among them (see Placement above).
std::vector<Difference> differences(const Snapshot& current, const DesiredTable& desired);

/// A foreign rule that stands before one of our jumps in a built-in chain: the packets it
/// accepts, drops, returns or sends elsewhere never reach our jump, so it can bypass capture.
/// Worth saying, never a difference.
struct PlacementNote {
  std::string chain;
  std::string rule;  ///< the foreign rule: rule_spec, or a description when it cannot be decoded
  std::string jump;  ///< rule_spec of the first jump of ours after it
};

/// The foreign rules standing before our jumps in the built-in chains of `current`, in chain
/// order. Rules whose target only marks (MARK, CONNMARK, CT) are left out: they end no walk.
std::vector<PlacementNote> placement_notes(const Snapshot& current);

}  // namespace istio_iptables
