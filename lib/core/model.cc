#include "core/model.h"

#include <algorithm>
#include <cassert>

namespace istio_iptables {

const char* table_name(Table table) {
  switch (table) {
  case Table::Filter: return "filter";
  case Table::Mangle: return "mangle";
  case Table::Nat: return "nat";
  case Table::Raw: return "raw";
  }
  return "?";
}

const char* protocol_name(Protocol p) { return p == Protocol::Tcp ? "tcp" : "udp"; }

const std::vector<std::string>& builtin_chains(Table table) {
  static const std::vector<std::string> filter = {"INPUT", "FORWARD", "OUTPUT"};
  static const std::vector<std::string> mangle = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};
  static const std::vector<std::string> nat = {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"};
  static const std::vector<std::string> raw = {"PREROUTING", "OUTPUT"};
  switch (table) {
  case Table::Filter: return filter;
  case Table::Mangle: return mangle;
  case Table::Nat: return nat;
  case Table::Raw: return raw;
  }
  return filter;
}

bool is_builtin_chain(const std::string& chain) {
  return chain == "PREROUTING" || chain == "INPUT" || chain == "FORWARD" || chain == "OUTPUT" || chain == "POSTROUTING";
}

std::optional<std::string> jump_chain(const Rule& rule) {
  if (auto* jump = std::get_if<JumpTarget>(&rule.target)) return jump->chain;
  return std::nullopt;
}

bool Ruleset::uses_table(Table table) const {
  return std::any_of(ops.begin(), ops.end(), [&](const RuleOp& op) { return op.table == table; });
}

const ChainContents* TableContents::find(const std::string& chain) const {
  for (const auto& c : chains)
    if (c.name == chain) return &c;
  return nullptr;
}

std::vector<std::string> TableContents::user_chains() const {
  std::vector<std::string> out;
  for (const auto& c : chains)
    if (!is_builtin_chain(c.name)) out.push_back(c.name);
  return out;
}

std::vector<TableContents> materialize(const Ruleset& ruleset) {
  std::vector<TableContents> out;
  for (Table table : kAllTables) {
    if (!ruleset.uses_table(table)) continue;
    TableContents contents{table, {}};
    std::vector<ChainContents> user;
    auto chain_ref = [&](const std::string& name) -> ChainContents& {
      auto& list = is_builtin_chain(name) ? contents.chains : user;
      for (auto& c : list)
        if (c.name == name) return c;
      list.push_back(ChainContents{name, {}});
      return list.back();
    };
    for (const auto& op : ruleset.ops) {
      if (op.table != table) continue;
      ChainContents& chain = chain_ref(op.chain);
      if (op.insert_position) {
        assert(*op.insert_position >= 1 && *op.insert_position - 1 <= chain.rules.size());
        chain.rules.insert(chain.rules.begin() + static_cast<std::ptrdiff_t>(*op.insert_position - 1), op.rule);
      } else {
        chain.rules.push_back(op.rule);
      }
      if (auto target = jump_chain(op.rule)) chain_ref(*target);
    }
    // Built-in chains in netfilter's hook order, then user chains in order of first mention.
    std::vector<ChainContents> ordered;
    for (const auto& name : builtin_chains(table))
      for (auto& c : contents.chains)
        if (c.name == name) ordered.push_back(std::move(c));
    for (auto& c : user) ordered.push_back(std::move(c));
    contents.chains = std::move(ordered);
    out.push_back(std::move(contents));
  }
  return out;
}

}  // namespace istio_iptables
