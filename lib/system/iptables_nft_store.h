// NetfilterStore over nf_tables, as iptables-nft 1.8.9 writes it: the nf_tables variant of
// iptables, in-process, every table of both families in one transaction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/store.h"
#include "system/nf_tables_batch.h"
#include "system/xt_entry.h"

struct nftnl_rule;

namespace istio_iptables {

/// Reads the ip/ip6 tables filter, mangle, nat and raw with dumps bracketed by NFT_MSG_GETGEN,
/// decodes the rules iptables-nft writes into our model (the others stay opaque, untouched),
/// encodes ours expression for expression as iptables-nft 1.8.9 does (docs/iptables-nft.md), and
/// commits one batch for every table of both families, guarded by the generation id: a concurrent
/// writer makes the kernel refuse it, and the run reads again, decides again and retries (at most
/// kMaxAttempts times). Only our rules are deleted or added, by handle; foreign rules, chains and
/// tables are never rewritten; a run that changes nothing sends nothing. Not thread-safe.
class IptablesNftStore final : public NetfilterStore {
 public:
  static constexpr int kMaxAttempts = 10;

  /// Opens the netlink socket; an error naming the cause when the kernel has no nf_tables.
  static Result<std::unique_ptr<IptablesNftStore>> open(GroupResolver& groups);

  Result<bool> table_exists(Family family, Table table) override;
  Result<InstalledRule> encode(Family family, Table table, const Rule& rule) override;
  Result<Snapshot> read(Family family, Table table) override;
  Result<bool> transact(Family family, Table table,
                        const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) override;
  Result<std::vector<bool>> transact_all(const std::vector<TableKey>& tables, const TableDecision& decide) override;

  /// Batches the kernel refused because the ruleset changed meanwhile (ERESTART), so far.
  int retries() const { return retries_; }
  /// Batches committed so far.
  int commits() const { return commits_; }

  struct TableRead;  // one table as read, with the handles of its rules (iptables_nft_store.cc)
  struct RulesetRead;

 private:
  IptablesNftStore(std::unique_ptr<NfTablesSocket> socket, GroupResolver& groups);
  Result<RulesetRead> read_tables(const std::vector<TableKey>& tables);

  std::unique_ptr<NfTablesSocket> socket_;
  GroupResolver& groups_;
  /// The ip/ip6 tables of the last table dump ("ip nat"), for table_exists until the next read.
  std::optional<std::vector<std::string>> tables_;
  int retries_ = 0;
  int commits_ = 0;
};

/// The identity the store gives a rule in nf_tables: each expression as libnftnl prints it, with
/// compare lengths and xt payload bytes spelled out and counter values left out. Equal for the
/// rule we send and the rule the kernel dumps back.
std::string nft_rule_identity(const nftnl_rule* rule);

/// Our rule as the expressions (and NFTA_RULE_COMPAT) iptables-nft 1.8.9 builds for it; the
/// caller frees the rule. An error for a rule iptables would refuse.
Result<nftnl_rule*> build_nft_rule(Family family, const Rule& rule, GroupResolver& groups);

/// The rule iptables-nft wrote, read back into our model; nullopt when any expression is outside
/// it or when encoding the result again would not give the same expressions.
std::optional<Rule> decode_nft_rule(Family family, const nftnl_rule* rule);

}  // namespace istio_iptables
