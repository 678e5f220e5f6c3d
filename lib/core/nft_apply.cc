// Apply, check and cleanup of the native nftables plan: see nft_apply.h for the contract.
//
// Everything is decided from one read. The plan is first turned into "what the kernel would
// hold" (each chain's rules in final order), and a table is equal when its chains, in creation
// order, have the same names, the same base chain specification and the same rule fingerprints
// in the same order, with nothing we never create. The store fingerprints a planned rule so that
// prefixes with host bits, group names and repeated set elements compare as the kernel stores
// them; it is asked only where an installed table of the same name is to be compared.
//
// Rules are appended in their final order rather than replayed as Istio's `insert … index K`
// operations: the result in each chain is the same (chain_rules() plays the inserts out), no
// rule needs a position reference inside the batch, and only the handles' numbering differs
// from `nft -f` of the script.
#include "core/nft_apply.h"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "core/nft_planner.h"
#include "core/nft_script.h"

namespace istio_iptables::nft {
namespace {

/// A planned chain as the kernel would hold it.
struct WantedChain {
  const Chain* chain;
  std::vector<Rule> rules;
  std::vector<std::string> fingerprints;  ///< filled by fingerprint_table(), when there is something to compare
};

struct WantedTable {
  const Table* table;
  std::vector<WantedChain> chains;
  bool fingerprinted = false;
};

std::vector<WantedTable> wanted_tables(const Ruleset& plan) {
  std::vector<WantedTable> out;
  for (const auto& table : plan.tables) {
    WantedTable wt{&table, {}, false};
    for (const auto& chain : table.chains) wt.chains.push_back(WantedChain{&chain, chain_rules(table, chain.name), {}});
    out.push_back(std::move(wt));
  }
  return out;
}

// Fingerprints are only needed to compare with an installed table of the same name: a fresh
// namespace (the init container's case) never asks for them, and the batch encodes each rule
// once. A rule the store cannot express then fails while the batch is built, before it is sent.
Status fingerprint_table(NftStore& store, WantedTable& want) {
  if (want.fingerprinted) return ok_status();
  for (auto& wc : want.chains) {
    wc.fingerprints.clear();
    for (const auto& rule : wc.rules) {
      auto fp = store.fingerprint(want.table->name, rule);
      if (!fp) return fp.error();
      wc.fingerprints.push_back(std::move(fp).value());
    }
  }
  want.fingerprinted = true;
  return ok_status();
}

Result<std::vector<WantedTable>> fingerprinted_tables(NftStore& store, const Ruleset& plan) {
  auto wanted = wanted_tables(plan);
  for (auto& want : wanted)
    if (auto done = fingerprint_table(store, want); !done) return done.error();
  return wanted;
}

std::string chain_spec(const std::optional<BaseChain>& base) {
  if (!base) return "a regular chain";
  return std::string("type ") + chain_type_name(base->type) + " hook " + hook_name(base->hook) + " priority " +
         std::to_string(base->priority);
}

bool chain_equal(const InstalledChain& have, const WantedChain& want) {
  if (have.name != want.chain->name || !(have.base == want.chain->base) || !have.unexpected.empty()) return false;
  if (have.rules.size() != want.fingerprints.size()) return false;
  for (std::size_t i = 0; i < have.rules.size(); ++i)
    if (have.rules[i].fingerprint != want.fingerprints[i]) return false;
  return true;
}

bool table_equal(const InstalledTable& have, const WantedTable& want) {
  if (!have.unexpected.empty() || have.chains.size() != want.chains.size()) return false;
  for (std::size_t i = 0; i < have.chains.size(); ++i)
    if (!chain_equal(have.chains[i], want.chains[i])) return false;
  return true;
}

Operation table_op(Operation::Kind kind, const std::string& table) { return Operation{kind, table, Chain{}, Rule{}}; }

/// Declares `want` from scratch: add table, its chains in order, its rules in final order.
void declare_table(const WantedTable& want, std::vector<Operation>& ops) {
  ops.push_back(table_op(Operation::Kind::AddTable, want.table->name));
  for (const auto& wc : want.chains)
    ops.push_back(Operation{Operation::Kind::AddChain, want.table->name, *wc.chain, Rule{}});
  for (const auto& wc : want.chains)
    for (const auto& rule : wc.rules)
      ops.push_back(Operation{Operation::Kind::AddRule, want.table->name, Chain{wc.chain->name, std::nullopt}, rule});
}

Result<Transaction> transaction_for(NftStore& store, std::vector<WantedTable>& wanted, const InstalledState& installed,
                                    NftOutcome* outcome) {
  Transaction tx;
  tx.generation = installed.generation;
  // Deletions first: a table the plan no longer has.
  for (const auto& have : installed.tables) {
    if (!is_our_table(have.name)) continue;
    const bool planned =
        std::any_of(wanted.begin(), wanted.end(), [&](const WantedTable& w) { return w.table->name == have.name; });
    if (planned) continue;
    tx.operations.push_back(table_op(Operation::Kind::DeleteTable, have.name));
    if (outcome) outcome->deleted.push_back(have.name);
  }
  for (auto& want : wanted) {
    const InstalledTable* have = installed.find(want.table->name);
    if (have) {
      if (auto done = fingerprint_table(store, want); !done) return done.error();
      if (table_equal(*have, want)) continue;
    }
    // A table that differs is deleted and declared again in the same batch: unlike a flush,
    // this also drops chains the plan no longer has and base chains of another type.
    if (have) tx.operations.push_back(table_op(Operation::Kind::DeleteTable, want.table->name));
    declare_table(want, tx.operations);
    if (outcome) outcome->written.push_back(want.table->name);
  }
  return tx;
}

std::string rule_where(const std::string& table, const std::string& chain) {
  return "table inet " + table + " chain " + chain + ": ";
}

/// Differences of one chain's rules: a longest common subsequence of fingerprints is "in place";
/// a planned rule outside it is misplaced when the chain holds it elsewhere, else missing; an
/// installed rule outside it that the plan does not place elsewhere is extra.
void diff_rules(const std::string& table, const InstalledChain& have, const WantedChain& want,
                std::vector<std::string>& out) {
  const auto& a = want.fingerprints;
  const std::size_t n = a.size(), m = have.rules.size();
  std::vector<std::vector<unsigned>> lcs(n + 1, std::vector<unsigned>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;)
    for (std::size_t j = m; j-- > 0;)
      lcs[i][j] = a[i] == have.rules[j].fingerprint ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  std::vector<bool> want_kept(n, false), have_kept(m, false);
  for (std::size_t i = 0, j = 0; i < n && j < m;) {
    if (a[i] == have.rules[j].fingerprint) {
      want_kept[i++] = true;
      have_kept[j++] = true;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
      ++i;
    } else {
      ++j;
    }
  }
  const std::string where = rule_where(table, have.name);
  std::vector<bool> have_claimed = have_kept;
  for (std::size_t i = 0; i < n; ++i) {
    if (want_kept[i]) continue;
    const std::string text = nft_rule_text(want.rules[i]);
    auto found = std::find_if(have.rules.begin(), have.rules.end(), [&](const InstalledRule& r) {
      const auto k = static_cast<std::size_t>(&r - have.rules.data());
      return !have_claimed[k] && r.fingerprint == a[i];
    });
    if (found != have.rules.end()) {
      const auto k = static_cast<std::size_t>(found - have.rules.begin());
      have_claimed[k] = true;
      out.push_back(where + "misplaced rule `" + text + "` (rule " + std::to_string(k + 1) + ", planned as rule " +
                    std::to_string(i + 1) + ")");
    } else {
      out.push_back(where + "missing rule `" + text + "`");
    }
  }
  for (std::size_t j = 0; j < m; ++j)
    if (!have_claimed[j]) out.push_back(where + "extra rule `" + have.rules[j].text + "`");
}

void diff_table(const InstalledTable& have, const WantedTable& want, std::vector<std::string>& out) {
  const std::string& name = want.table->name;
  if (!have.unexpected.empty()) out.push_back("table inet " + name + ": unexpected " + have.unexpected);
  for (const auto& wc : want.chains) {
    const InstalledChain* hc = have.find(wc.chain->name);
    if (!hc) {
      out.push_back("table inet " + name + ": missing chain " + wc.chain->name);
      continue;
    }
    if (!(hc->base == wc.chain->base))
      out.push_back("table inet " + name + " chain " + hc->name + ": is " + chain_spec(hc->base) + ", planned " +
                    chain_spec(wc.chain->base));
    if (!hc->unexpected.empty())
      out.push_back("table inet " + name + " chain " + hc->name + ": unexpected " + hc->unexpected);
    diff_rules(name, *hc, wc, out);
  }
  for (const auto& hc : have.chains) {
    const bool planned = std::any_of(want.chains.begin(), want.chains.end(),
                                     [&](const WantedChain& w) { return w.chain->name == hc.name; });
    if (!planned) out.push_back("table inet " + name + ": extra chain " + hc.name);
  }
}

}  // namespace

bool is_our_table(const std::string& name) {
  return std::any_of(std::begin(kAllTables), std::end(kAllTables), [&](const char* t) { return name == t; });
}

Result<Transaction> plan_transaction(NftStore& store, const InstalledState& installed, const Ruleset& plan) {
  auto wanted = wanted_tables(plan);
  return transaction_for(store, wanted, installed, nullptr);
}

Result<NftOutcome> apply_nft(NftStore& store, const Ruleset& plan) {
  // Fingerprints depend only on the plan (and on /etc/group, read once): each table's are
  // computed at most once, across retries, and only when an installed table needs comparing.
  auto wanted = wanted_tables(plan);
  NftOutcome outcome;
  while (outcome.attempts < kMaxAttempts) {
    auto installed = store.read();
    if (!installed) return installed.error();
    NftOutcome attempt;
    auto tx = transaction_for(store, wanted, installed.value(), &attempt);
    if (!tx) return tx.error();
    outcome.xtables_tables = installed.value().xtables_tables;
    if (tx.value().operations.empty()) {
      outcome.written.clear();
      outcome.deleted.clear();
      return outcome;
    }
    ++outcome.attempts;
    auto committed = store.commit(tx.value());
    if (!committed) return committed.error();
    if (committed.value() == CommitOutcome::Committed) {
      outcome.committed = true;
      outcome.written = std::move(attempt.written);
      outcome.deleted = std::move(attempt.deleted);
      return outcome;
    }
  }
  return Error{"cannot apply the nftables tables: the ruleset changed during each of " + std::to_string(kMaxAttempts) +
               " attempts (another program keeps writing nf_tables); nothing was changed"};
}

Result<NftOutcome> cleanup_nft(NftStore& store) {
  NftOutcome outcome;
  while (outcome.attempts < kMaxAttempts) {
    auto installed = store.read();
    if (!installed) return installed.error();
    Transaction tx;
    tx.generation = installed.value().generation;
    std::vector<std::string> deleted;
    for (const auto& t : installed.value().tables) {
      if (!is_our_table(t.name)) continue;
      tx.operations.push_back(table_op(Operation::Kind::DeleteTable, t.name));
      deleted.push_back(t.name);
    }
    if (tx.operations.empty()) return outcome;
    ++outcome.attempts;
    auto committed = store.commit(tx);
    if (!committed) return committed.error();
    if (committed.value() == CommitOutcome::Committed) {
      outcome.committed = true;
      outcome.deleted = std::move(deleted);
      return outcome;
    }
  }
  return Error{"cannot delete the nftables tables: the ruleset changed during each of " + std::to_string(kMaxAttempts) +
               " attempts; nothing was changed"};
}

Result<std::vector<std::string>> check_nft(NftStore& store, const Ruleset& plan) {
  auto wanted = fingerprinted_tables(store, plan);
  if (!wanted) return wanted.error();
  auto installed = store.read();
  if (!installed) return installed.error();
  std::vector<std::string> out;
  for (const auto& want : wanted.value()) {
    const InstalledTable* have = installed.value().find(want.table->name);
    if (!have)
      out.push_back("missing table inet " + want.table->name);
    else
      diff_table(*have, want, out);
  }
  for (const auto& have : installed.value().tables) {
    if (!is_our_table(have.name) || plan.find(have.name)) continue;
    out.push_back("extra table inet " + have.name);
  }
  return out;
}

}  // namespace istio_iptables::nft
