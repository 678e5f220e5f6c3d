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

}  // namespace istio_iptables
