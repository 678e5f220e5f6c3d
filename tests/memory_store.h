// An in-memory NetfilterStore for tests: rules are their rule_spec text; any (family, table) can
// be made to fail its next commits; every commit is counted.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "core/restore_text.h"
#include "core/rule_text.h"
#include "core/store.h"

namespace istio_iptables::testing {

class MemoryStore : public NetfilterStore {
 public:
  std::map<std::pair<Family, Table>, Snapshot> tables;
  std::set<std::pair<Family, Table>> fail_commits;
  int commits = 0;

  Result<bool> table_exists(Family f, Table t) override { return tables.count({f, t}) > 0; }

  Result<InstalledRule> encode(Family, Table, const Rule& rule) override {
    return InstalledRule{rule_spec(rule), rule_spec(rule), rule};
  }

  Result<Snapshot> read(Family f, Table t) override { return table(f, t); }

  Result<bool> transact(Family f, Table t,
                        const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) override {
    Snapshot now = table(f, t);
    auto write = decide(now);
    if (!write) return Error{write.error().message};
    if (!write.value()) return false;
    if (fail_commits.count({f, t})) return Error{std::string("cannot commit ") + table_name(t) + ": injected failure"};
    // The write points into `now`'s rules: build every new chain before changing any.
    std::vector<std::vector<InstalledRule>> contents;
    for (const auto& c : write.value()->chains) {
      contents.emplace_back();
      for (const auto* blob : c.blobs) contents.back().push_back(InstalledRule{*blob, *blob, parse(*blob)});
    }
    std::size_t k = 0;
    for (const auto& c : write.value()->chains) {
      InstalledChain* chain = nullptr;
      for (auto& existing : now.chains)
        if (existing.name == c.name) chain = &existing;
      if (!chain) {
        now.chains.push_back(InstalledChain{c.name, false, {}});
        chain = &now.chains.back();
      }
      chain->rules = std::move(contents[k++]);
    }
    for (const auto& name : write.value()->delete_chains)
      now.chains.erase(
          std::remove_if(now.chains.begin(), now.chains.end(), [&](const InstalledChain& c) { return c.name == name; }),
          now.chains.end());
    tables[{f, t}] = now;
    ++commits;
    return true;
  }

  /// Adds a foreign rule (text) at the end of a chain, creating the table and chain as needed.
  void add_foreign(Family f, Table t, const std::string& chain, const std::string& text) {
    Snapshot s = table(f, t);
    InstalledChain* c = nullptr;
    for (auto& existing : s.chains)
      if (existing.name == chain) c = &existing;
    if (!c) {
      s.chains.push_back(InstalledChain{chain, false, {}});
      c = &s.chains.back();
    }
    c->rules.push_back(InstalledRule{text, text, std::nullopt});
    tables[{f, t}] = s;
  }

  /// The rules of a chain, as text ("" when the chain does not exist).
  std::vector<std::string> chain(Family f, Table t, const std::string& name) {
    std::vector<std::string> out;
    for (const auto& c : table(f, t).chains)
      if (c.name == name)
        for (const auto& r : c.rules) out.push_back(r.blob);
    return out;
  }

  std::function<std::optional<Rule>(const std::string&)> parse = parse_rule_spec;

 private:
  Snapshot table(Family f, Table t) {
    auto it = tables.find({f, t});
    if (it != tables.end()) return it->second;
    Snapshot s;
    s.table = t;
    for (const auto& name : builtin_chains(t)) s.chains.push_back(InstalledChain{name, true, {}});
    return s;
  }
};

}  // namespace istio_iptables::testing
