// An in-memory nf_tables for tests: our tables as the kernel would hold them (chains in creation
// order, rules with handles) and a foreign table beside them. A commit applies the operations in
// order exactly as nf_tables does (adding an existing table is a no-op, deleting a missing one
// fails the whole batch) and is refused when the generation moved on. Fingerprints are the rule
// text: the fake has no encoding of its own to get wrong.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "core/nft_script.h"
#include "core/nft_store.h"

namespace istio_iptables::testing {
namespace nft_fake {  // nft's names here, without hiding the x_tables ones of the other fakes

using nft::CommitOutcome;
using nft::InstalledChain;
using nft::InstalledRule;
using nft::InstalledState;
using nft::InstalledTable;
using nft::NftStore;
using nft::Operation;
using nft::Rule;
using nft::Transaction;

class MemoryNftStore : public NftStore {
 public:
  InstalledState state;                        // our tables
  std::vector<std::string> foreign{"filter"};  // foreign inet tables, never ours to touch
  std::vector<Transaction> commits;            // every transaction offered
  int races = 0;                               // commits still to lose to "another writer"
  std::uint64_t next_handle = 1;

  Result<InstalledState> read() override { return state; }

  Result<std::string> fingerprint(const std::string&, const Rule& rule) override { return nft_rule_text(rule); }

  Result<CommitOutcome> commit(const Transaction& tx) override {
    commits.push_back(tx);
    if (races > 0) {
      --races;
      ++state.generation;  // someone else committed in between
      return CommitOutcome::GenerationChanged;
    }
    if (tx.generation != state.generation) return CommitOutcome::GenerationChanged;
    InstalledState next = state;
    for (const auto& op : tx.operations) {
      if (std::find(foreign.begin(), foreign.end(), op.table) != foreign.end())
        return Error{"the transaction touched foreign table " + op.table};
      auto table = std::find_if(next.tables.begin(), next.tables.end(),
                                [&](const InstalledTable& t) { return t.name == op.table; });
      switch (op.kind) {
      case Operation::Kind::AddTable:
        if (table == next.tables.end()) next.tables.push_back(InstalledTable{op.table, "", {}});
        break;
      case Operation::Kind::DeleteTable:
        if (table == next.tables.end()) return Error{"delete of missing table " + op.table};
        next.tables.erase(table);
        break;
      case Operation::Kind::FlushTable:
        if (table == next.tables.end()) return Error{"flush of missing table " + op.table};
        for (auto& c : table->chains) c.rules.clear();
        break;
      case Operation::Kind::AddChain:
        if (table == next.tables.end()) return Error{"chain in missing table " + op.table};
        if (!table->find(op.chain.name)) table->chains.push_back(InstalledChain{op.chain.name, op.chain.base, "", {}});
        break;
      case Operation::Kind::AddRule: {
        if (table == next.tables.end()) return Error{"rule in missing table " + op.table};
        auto chain = std::find_if(table->chains.begin(), table->chains.end(),
                                  [&](const InstalledChain& c) { return c.name == op.chain.name; });
        if (chain == table->chains.end()) return Error{"rule in missing chain " + op.chain.name};
        const std::string text = nft_rule_text(op.rule);
        chain->rules.push_back(InstalledRule{text, text, next_handle++});
        break;
      }
      }
    }
    state = std::move(next);
    ++state.generation;
    return CommitOutcome::Committed;
  }

  InstalledChain* chain(const std::string& table, const std::string& name) {
    for (auto& t : state.tables)
      if (t.name == table)
        for (auto& c : t.chains)
          if (c.name == name) return &c;
    return nullptr;
  }

  /// What each chain holds, as "table chain: rule" lines (handles left out).
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (const auto& t : state.tables)
      for (const auto& c : t.chains)
        for (const auto& r : c.rules) out.push_back(t.name + " " + c.name + ": " + r.text);
    return out;
  }

  std::vector<std::uint64_t> handles() const {
    std::vector<std::uint64_t> out;
    for (const auto& t : state.tables)
      for (const auto& c : t.chains)
        for (const auto& r : c.rules) out.push_back(r.handle);
    return out;
  }
};

}  // namespace nft_fake

using nft_fake::MemoryNftStore;

}  // namespace istio_iptables::testing
