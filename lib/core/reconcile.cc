#include "core/reconcile.h"

#include <algorithm>
#include <cassert>

#include "core/constants.h"
#include "core/restore_text.h"

namespace istio_iptables {

const InstalledChain* Snapshot::find(const std::string& name) const {
  for (const auto& c : chains)
    if (c.name == name) return &c;
  return nullptr;
}

bool is_owned_chain(const std::string& chain) { return chain.rfind(chains::kPrefix, 0) == 0; }

namespace {

template <typename T>
const T* only(const std::vector<Match>& m, std::size_t i) {
  return i < m.size() ? std::get_if<T>(&m[i]) : nullptr;
}

bool is_return(const Rule& r) {
  auto* v = std::get_if<VerdictTarget>(&r.target);
  return v && v->verdict == Verdict::Return;
}

// Istio's non-jump rules in built-in chains, in any configuration (planner.cc R1, R2, R3 in
// 1.23, R19, and 1.24's raw PREROUTING zone rule).
bool has_istio_shape(Table table, const std::string& chain, const Rule& r) {
  const auto& m = r.matches;
  const bool nat_or_mangle = table == Table::Nat || table == Table::Mangle;
  // R1/R2: "-i NIC -j RETURN" in PREROUTING, "-o NIC -j RETURN" in OUTPUT.
  if (nat_or_mangle && is_return(r) && m.size() == 1) {
    auto* i = only<InterfaceMatch>(m, 0);
    if (i && !i->negated && i->inbound == (chain == "PREROUTING") && (chain == "PREROUTING" || chain == "OUTPUT"))
      return true;
  }
  if (table == Table::Mangle) {
    if (std::holds_alternative<ConnmarkTarget>(r.target) || std::holds_alternative<MarkTarget>(r.target)) return true;
    // R19.2: "-p tcp -o lo -m mark --mark M -j RETURN" in OUTPUT.
    if (chain == "OUTPUT" && is_return(r) && m.size() == 3 && only<ProtocolMatch>(m, 0) && only<InterfaceMatch>(m, 1) &&
        only<MarkMatch>(m, 2) && only<InterfaceMatch>(m, 1)->name == "lo")
      return true;
    // 1.23's drop-invalid: "-m conntrack --ctstate INVALID -j DROP" in PREROUTING.
    if (chain == "PREROUTING" && m.size() == 1 && only<ConntrackMatch>(m, 0)) {
      auto* v = std::get_if<VerdictTarget>(&r.target);
      if (v && v->verdict == Verdict::Drop) return true;
    }
  }
  // 1.24's conntrack zone for resolver answers, straight in raw PREROUTING.
  if (table == Table::Raw && chain == "PREROUTING" && std::holds_alternative<CtTarget>(r.target)) return true;
  return false;
}

}  // namespace

bool is_owned_rule(Table table, const InstalledChain& chain, const InstalledRule& installed) {
  if (is_owned_chain(chain.name)) return true;
  if (!installed.rule) return false;  // something we cannot read is never ours
  if (auto target = jump_chain(*installed.rule)) return is_owned_chain(*target);
  return chain.builtin && has_istio_shape(table, chain.name, *installed.rule);
}

DesiredTable desired_table(const Snapshot& current, const std::vector<EncodedOp>& ops) {
  const Table table = current.table;
  DesiredTable out;
  for (const auto& c : current.chains) {
    if (is_owned_chain(c.name)) continue;
    InstalledChain kept{c.name, c.builtin, {}};
    for (const auto& r : c.rules)
      if (!is_owned_rule(table, c, r)) kept.rules.push_back(r);
    out.chains.push_back(std::move(kept));
  }
  auto chain_ref = [&](const std::string& name) -> InstalledChain& {
    for (auto& c : out.chains)
      if (c.name == name) return c;
    assert(is_owned_chain(name));  // built-in chains are always in a snapshot
    out.chains.push_back(InstalledChain{name, false, {}});
    return out.chains.back();
  };
  for (const auto& op : ops) {
    InstalledChain& chain = chain_ref(op.chain);
    if (op.insert_position) {
      std::size_t pos = std::min<std::size_t>(*op.insert_position - 1, chain.rules.size());
      chain.rules.insert(chain.rules.begin() + static_cast<std::ptrdiff_t>(pos), op.rule);
    } else {
      chain.rules.push_back(op.rule);
    }
    if (op.rule.rule)
      if (auto target = jump_chain(*op.rule.rule)) chain_ref(*target);
  }
  return out;
}

namespace {
bool same_rules(const std::vector<InstalledRule>& a, const std::vector<InstalledRule>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const InstalledRule& x, const InstalledRule& y) { return x.identity == y.identity; });
}

std::optional<TableWrite> write_towards(const Snapshot& current, const std::vector<InstalledChain>& wanted) {
  TableWrite w;
  for (const auto& c : wanted) {
    const InstalledChain* now = current.find(c.name);
    if (now && same_rules(now->rules, c.rules)) continue;
    TableWrite::Chain chain{c.name, {}};
    for (const auto& r : c.rules) chain.blobs.push_back(r.blob);
    w.chains.push_back(std::move(chain));
  }
  for (const auto& c : current.chains) {
    if (c.builtin) continue;
    bool kept = std::any_of(wanted.begin(), wanted.end(), [&](const InstalledChain& x) { return x.name == c.name; });
    if (!kept) w.delete_chains.push_back(c.name);
  }
  if (w.chains.empty() && w.delete_chains.empty()) return std::nullopt;
  return w;
}
}  // namespace

std::optional<TableWrite> write_for(const Snapshot& current, const DesiredTable& desired) {
  return write_towards(current, desired.chains);
}

std::optional<TableWrite> restore_write(const Snapshot& current, const Snapshot& original) {
  return write_towards(current, original.chains);
}

namespace {
std::string describe(const InstalledRule& r) {
  return r.rule ? rule_spec(*r.rule) : std::string("(a rule with parts this tool does not model)");
}

// Longest common subsequence of identities; small inputs (our rules of one chain).
void diff_sequences(const std::string& chain, const std::vector<const InstalledRule*>& have,
                    const std::vector<const InstalledRule*>& want, std::vector<Difference>& out) {
  const std::size_t n = have.size(), m = want.size();
  std::vector<std::vector<unsigned>> lcs(n + 1, std::vector<unsigned>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;)
    for (std::size_t j = m; j-- > 0;)
      lcs[i][j] = have[i]->identity == want[j]->identity ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && have[i]->identity == want[j]->identity) {
      ++i;
      ++j;
    } else if (j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      out.push_back({Difference::Missing, chain, describe(*want[j++])});
    } else {
      out.push_back({Difference::Extra, chain, describe(*have[i++])});
    }
  }
}
}  // namespace

std::vector<Difference> differences(const Snapshot& current, const DesiredTable& desired) {
  const Table table = current.table;
  std::vector<Difference> out;
  auto ours = [&](const InstalledChain& c) {
    std::vector<const InstalledRule*> v;
    for (const auto& r : c.rules)
      if (is_owned_rule(table, c, r)) v.push_back(&r);
    return v;
  };
  for (const auto& want : desired.chains) {
    const InstalledChain* have = current.find(want.name);
    if (!have) {
      for (const auto& r : want.rules) out.push_back({Difference::Missing, want.name, describe(r)});
      continue;
    }
    auto have_ours = ours(*have);
    auto want_ours = ours(want);
    std::size_t before = out.size();
    diff_sequences(want.name, have_ours, want_ours, out);
    if (out.size() == before && !same_rules(have->rules, want.rules))
      out.push_back({Difference::Misplaced, want.name, "our rules stand elsewhere among the other rules of this chain"});
  }
  for (const auto& c : current.chains)
    if (is_owned_chain(c.name) && std::none_of(desired.chains.begin(), desired.chains.end(),
                                               [&](const InstalledChain& x) { return x.name == c.name; }))
      for (const auto& r : c.rules.empty() ? std::vector<InstalledRule>{InstalledRule{"", "", std::nullopt}} : c.rules)
        out.push_back({Difference::Extra, c.name, r.rule ? rule_spec(*r.rule) : "(the chain itself)"});
  return out;
}

}  // namespace istio_iptables
