// The seam between the pure nftables apply logic (nft_apply.h) and the kernel's nf_tables.
//
// The logic needs three things from the kernel and nothing else: a consistent view of our
// tables together with the ruleset generation it was read at, the kernel's own encoding of a
// rule of ours (so that "is this installed rule the one we plan" compares what the kernel holds,
// after it masked host bits, resolved group names and folded duplicate set elements, never
// text), and one transaction that the kernel refuses as a whole when the generation moved on
// since the read. The system layer implements it with libnftnl over one netlink batch; tests
// implement it in memory and can make a commit lose a race.
//
// Installed rules are fingerprints: canonical strings of their expressions with the counters'
// values left out. A store decodes a rule back into our model where it can, for messages; when it
// cannot (a foreign hand added something we never write), the fingerprint still compares right
// and the text shows the expressions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/nft_model.h"
#include "core/result.h"

namespace istio_iptables::nft {

/// One rule as the kernel holds it.
struct InstalledRule {
  std::string fingerprint;  ///< equal fingerprints = the same rule to the kernel
  std::string text;         ///< nft's words when decodable, otherwise the expressions
  std::uint64_t handle = 0;
};

/// One chain of one of our tables, as read.
struct InstalledChain {
  std::string name;
  std::optional<BaseChain> base;
  /// Non-empty when the chain has something we never create (a policy other than accept, a
  /// device, a hook or type outside our model): it then never equals a planned chain.
  std::string unexpected;
  std::vector<InstalledRule> rules;  ///< in the kernel's order
};

/// One `inet` table whose name is one of ours, as read.
struct InstalledTable {
  std::string name;
  std::string unexpected;              ///< flags, named sets, stateful objects: things we never create
  std::vector<InstalledChain> chains;  ///< in creation order, as the kernel lists them

  const InstalledChain* find(const std::string& chain) const {
    for (const auto& c : chains)
      if (c.name == chain) return &c;
    return nullptr;
  }
};

/// Our tables and the ruleset generation of the read. With tables of ours, the view is the
/// ruleset at `generation` (a GETGEN after the dumps confirmed it); without, it is one table dump
/// made after `generation` was read, and the ruleset may have moved on since: a commit built on
/// it carries `generation` and is refused by the kernel if so. Either way, a commit that the
/// kernel accepts with `generation` took effect on exactly this view.
struct InstalledState {
  std::uint32_t generation = 0;
  std::vector<InstalledTable> tables;
  /// Whether any `ip` or `ip6` table (where iptables-nft keeps its rules) was in the view; unset
  /// when the store does not say. A native apply whose commit the kernel accepted on a view with
  /// none knows no iptables-nft rule of ours existed when its transaction took effect.
  std::optional<bool> xtables_tables;

  const InstalledTable* find(const std::string& table) const {
    for (const auto& t : tables)
      if (t.name == table) return &t;
    return nullptr;
  }
};

/// One operation of a transaction, always on an `inet` table.
struct Operation {
  enum class Kind { AddTable, DeleteTable, FlushTable, AddChain, AddRule };
  Kind kind;
  std::string table;
  Chain chain;  ///< AddChain: the chain to declare; AddRule: the chain appended to (its name)
  Rule rule;    ///< AddRule: appended at the end of the chain
};

/// Operations committed together, or not at all; refused when the ruleset generation is no
/// longer `generation` (the view the operations were computed from is stale).
struct Transaction {
  std::uint32_t generation = 0;
  std::vector<Operation> operations;
};

enum class CommitOutcome { Committed, GenerationChanged };

/// Our nf_tables tables (libnftnl in the system layer; in memory in tests).
class NftStore {
 public:
  virtual ~NftStore() = default;

  /// Reads every `inet` table whose name starts with "istio-proxy-", with the generation the
  /// read saw. An error when the store cannot tell (no nf_tables, no permission).
  virtual Result<InstalledState> read() = 0;

  /// The fingerprint the kernel will report for `rule` once installed in `table`; an error when
  /// the rule cannot be expressed (an unknown group name, an empty interface name).
  virtual Result<std::string> fingerprint(const std::string& table, const Rule& rule) = 0;

  /// Commits `transaction` as one kernel transaction. GenerationChanged: refused because another
  /// writer committed since the read (nothing changed); an error: refused for another reason
  /// (nothing changed either).
  virtual Result<CommitOutcome> commit(const Transaction& transaction) = 0;
};

}  // namespace istio_iptables::nft
