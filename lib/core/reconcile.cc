#include "core/reconcile.h"

#include <algorithm>
#include <cassert>
#include <cstdint>

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

// The matches of a rule by kind, whatever their order (rules read from the kernel come back in
// iptables-save's order, ours in Istio's).
struct Shape {
  std::vector<const AddressMatch*> addresses;
  std::vector<const InterfaceMatch*> interfaces;
  std::vector<const ProtocolMatch*> protocols;
  std::vector<const PortMatch*> ports;
  std::vector<const OwnerMatch*> owners;
  std::vector<const MarkMatch*> marks;
  std::vector<const ConnmarkMatch*> connmarks;
  std::vector<const ConntrackMatch*> conntracks;
  bool other = false;

  explicit Shape(const Rule& r) {
    for (const auto& m : r.matches) {
      if (auto* a = std::get_if<AddressMatch>(&m))
        addresses.push_back(a);
      else if (auto* i = std::get_if<InterfaceMatch>(&m))
        interfaces.push_back(i);
      else if (auto* p = std::get_if<ProtocolMatch>(&m))
        protocols.push_back(p);
      else if (auto* port = std::get_if<PortMatch>(&m))
        ports.push_back(port);
      else if (auto* o = std::get_if<OwnerMatch>(&m))
        owners.push_back(o);
      else if (auto* mk = std::get_if<MarkMatch>(&m))
        marks.push_back(mk);
      else if (auto* cm = std::get_if<ConnmarkMatch>(&m))
        connmarks.push_back(cm);
      else if (auto* ct = std::get_if<ConntrackMatch>(&m))
        conntracks.push_back(ct);
      else
        other = true;
    }
  }
  std::size_t count() const {
    return addresses.size() + interfaces.size() + protocols.size() + ports.size() + owners.size() + marks.size() +
           connmarks.size() + conntracks.size() + (other ? 1 : 0);
  }
  bool tcp() const {
    return protocols.size() == 1 && protocols[0]->protocol == Protocol::Tcp && !protocols[0]->negated;
  }
  bool out_lo() const {
    return interfaces.size() == 1 && !interfaces[0]->inbound && interfaces[0]->name == "lo" && !interfaces[0]->negated;
  }
};

// Istio's non-jump rules in built-in chains, in any configuration (planner.cc R1, R2, 1.23's
// drop-invalid, R19, and 1.24's raw PREROUTING zone rule), as exactly as their shapes allow.
bool has_istio_shape(Table table, const std::string& chain, const Rule& r) {
  const Shape s(r);
  const bool nat_or_mangle = table == Table::Nat || table == Table::Mangle;
  // R1/R2: "-i NIC -j RETURN" in PREROUTING, "-o NIC -j RETURN" in OUTPUT.
  if (nat_or_mangle && is_return(r) && s.count() == 1 && s.interfaces.size() == 1 && !s.interfaces[0]->negated &&
      ((chain == "PREROUTING" && s.interfaces[0]->inbound) || (chain == "OUTPUT" && !s.interfaces[0]->inbound)))
    return true;
  if (table == Table::Mangle && chain == "PREROUTING") {
    // R19.1: "-p tcp -m mark --mark M -j CONNMARK --save-mark"
    auto* c = std::get_if<ConnmarkTarget>(&r.target);
    if (c && !c->restore && s.count() == 2 && s.tcp() && s.marks.size() == 1 && !s.marks[0]->negated) return true;
    // 1.23's drop-invalid: "-m conntrack --ctstate INVALID -j DROP"
    auto* v = std::get_if<VerdictTarget>(&r.target);
    if (v && v->verdict == Verdict::Drop && s.count() == 1 && s.conntracks.size() == 1 &&
        s.conntracks[0]->states == std::vector<ConntrackState>{ConntrackState::Invalid})
      return true;
  }
  if (table == Table::Mangle && chain == "OUTPUT") {
    // R19.2: "-p tcp -o lo -m mark --mark M -j RETURN"
    if (is_return(r) && s.count() == 3 && s.tcp() && s.out_lo() && s.marks.size() == 1 && !s.marks[0]->negated)
      return true;
    // R19.3/4: "! -d LO -p tcp -o lo -m owner --uid-owner U -j MARK --set-mark 1338"
    auto* mk = std::get_if<MarkTarget>(&r.target);
    if (mk && mk->mark == marks::kOutbound && s.count() == 4 && s.tcp() && s.out_lo() && s.owners.size() == 1 &&
        !s.owners[0]->negated && s.addresses.size() == 1 && s.addresses[0]->negated &&
        s.addresses[0]->direction == Direction::Destination && is_loopback(s.addresses[0]->prefix.address))
      return true;
    // R19.5: "-p tcp -m connmark --mark M -j CONNMARK --restore-mark"
    auto* c = std::get_if<ConnmarkTarget>(&r.target);
    if (c && c->restore && s.count() == 2 && s.tcp() && s.connmarks.size() == 1 && !s.connmarks[0]->negated)
      return true;
  }
  // 1.24's conntrack zone for resolver answers: "-p udp --sport 53 [-s S] -j CT --zone 1".
  if (table == Table::Raw && chain == "PREROUTING") {
    auto* ct = std::get_if<CtTarget>(&r.target);
    bool udp = s.protocols.size() == 1 && s.protocols[0]->protocol == Protocol::Udp && !s.protocols[0]->negated;
    bool sport53 = s.ports.size() == 1 && s.ports[0]->direction == Direction::Source &&
                   s.ports[0]->port == ports::kDns && !s.ports[0]->negated;
    bool src = s.addresses.empty() ||
               (s.addresses.size() == 1 && s.addresses[0]->direction == Direction::Source && !s.addresses[0]->negated);
    if (ct && ct->zone == zones::kUpstream && udp && sport53 && src && s.count() == 2 + s.addresses.size()) return true;
  }
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
  out.chains.reserve(current.chains.size() + 8);
  for (const auto& c : current.chains) {
    if (is_owned_chain(c.name)) continue;
    DesiredChain kept{c.name, c.builtin, c.opaque, {}};
    kept.rules.reserve(c.rules.size());
    for (const auto& r : c.rules)
      if (!is_owned_rule(table, c, r)) kept.rules.push_back(&r);
    out.chains.push_back(std::move(kept));
  }
  auto chain_index = [&](const std::string& name) -> std::size_t {
    for (std::size_t i = 0; i < out.chains.size(); ++i)
      if (out.chains[i].name == name) return i;
    assert(is_owned_chain(name));  // built-in chains are always in a snapshot
    out.chains.push_back(DesiredChain{name, false, false, {}});
    return out.chains.size() - 1;
  };
  std::size_t last = SIZE_MAX;  // ops come in runs on one chain: remember the last one
  for (const auto& op : ops) {
    std::size_t i = last < out.chains.size() && out.chains[last].name == op.chain ? last : chain_index(op.chain);
    last = i;
    auto& rules = out.chains[i].rules;
    if (op.insert_position) {
      std::size_t pos = std::min<std::size_t>(*op.insert_position - 1, rules.size());
      rules.insert(rules.begin() + static_cast<std::ptrdiff_t>(pos), &op.rule);
    } else {
      rules.push_back(&op.rule);
    }
    if (op.rule.rule)
      if (auto target = jump_chain(*op.rule.rule)) chain_index(*target);
  }
  return out;
}

namespace {
bool same_rules(const std::vector<InstalledRule>& a, const std::vector<const InstalledRule*>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const InstalledRule& x, const InstalledRule* y) { return x.id() == y->id(); });
}

std::optional<TableWrite> write_towards(const Snapshot& current, const std::vector<DesiredChain>& wanted) {
  TableWrite w;
  for (const auto& c : wanted) {
    if (c.opaque) continue;  // unread, untouched
    const InstalledChain* now = current.find(c.name);
    if (now && same_rules(now->rules, c.rules)) continue;
    TableWrite::Chain chain{c.name, {}};
    chain.blobs.reserve(c.rules.size());
    for (const auto* r : c.rules) chain.blobs.push_back(&r->blob);
    w.chains.push_back(std::move(chain));
  }
  for (const auto& c : current.chains) {
    if (c.builtin) continue;
    bool kept = std::any_of(wanted.begin(), wanted.end(), [&](const DesiredChain& x) { return x.name == c.name; });
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
  std::vector<DesiredChain> wanted;
  for (const auto& c : original.chains) {
    DesiredChain d{c.name, c.builtin, c.opaque, {}};
    for (const auto& r : c.rules) d.rules.push_back(&r);
    wanted.push_back(std::move(d));
  }
  return write_towards(current, wanted);
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
      lcs[i][j] = have[i]->id() == want[j]->id() ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && have[i]->id() == want[j]->id()) {
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
  auto ours_wanted = [&](const DesiredChain& c) {
    InstalledChain shape{c.name, c.builtin, {}, c.opaque};
    std::vector<const InstalledRule*> v;
    for (const auto* r : c.rules)
      if (is_owned_rule(table, shape, *r)) v.push_back(r);
    return v;
  };
  for (const auto& want : desired.chains) {
    if (want.opaque) continue;
    const InstalledChain* have = current.find(want.name);
    if (!have) {
      for (const auto* r : want.rules) out.push_back({Difference::Missing, want.name, describe(*r)});
      continue;
    }
    auto have_ours = ours(*have);
    auto want_ours = ours_wanted(want);
    std::size_t before = out.size();
    diff_sequences(want.name, have_ours, want_ours, out);
    if (out.size() == before && !same_rules(have->rules, want.rules))
      out.push_back(
          {Difference::Misplaced, want.name, "our rules stand elsewhere among the other rules of this chain"});
  }
  // Chains of ours the plan does not have: each rule is extra, or the empty chain itself.
  for (const auto& c : current.chains) {
    if (!is_owned_chain(c.name) || std::any_of(desired.chains.begin(), desired.chains.end(),
                                               [&](const DesiredChain& x) { return x.name == c.name; }))
      continue;
    if (c.rules.empty()) out.push_back({Difference::Extra, c.name, "(the empty chain itself)"});
    for (const auto& r : c.rules) out.push_back({Difference::Extra, c.name, describe(r)});
  }
  return out;
}

}  // namespace istio_iptables
