#include "core/reconcile.h"

#include <algorithm>
#include <iterator>
#include <cassert>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

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

// Istio's non-jump rules in built-in chains, in any configuration and release (planner.cc R1,
// R2, 1.23's drop-invalid, R19, 1.24's raw PREROUTING zone rule, 1.22's UDP DNS rules in nat and
// raw OUTPUT, and the trace-logging NFLOG twins of 1.22-1.24), as exactly as their shapes allow.
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
  // Trace logging's NFLOG twins (Istio 1.22-1.24): a tagged rule's matches, then
  // "-j NFLOG --nflog-prefix ID --nflog-group 1337 --nflog-size 20" (planner.cc, namespace trace).
  if (auto* n = std::get_if<NflogTarget>(&r.target)) {
    static const char* const kIds[] = {
        "JumpInbound",    "JumpOutbound",    "ExcludeInboundPort",     "IncludeInboundPort",
        "InboundCapture", "KubevirtCommand", "ExcludeInterfaceCommand"};
    if (n->group == 1337 && n->size == 20 &&
        std::any_of(std::begin(kIds), std::end(kIds), [&](const char* id) { return n->prefix == id; }))
      return true;
  }
  // 1.22's UDP DNS rules, appended to nat and raw OUTPUT themselves (planner.cc dns_udp_1_24).
  const bool udp = s.protocols.size() == 1 && s.protocols[0]->protocol == Protocol::Udp && !s.protocols[0]->negated;
  const bool one_port = s.ports.size() == 1 && !s.ports[0]->negated && s.ports[0]->protocol == Protocol::Udp;
  const bool dport53 = one_port && s.ports[0]->direction == Direction::Destination && s.ports[0]->port == ports::kDns;
  const bool sport_agent =
      one_port && s.ports[0]->direction == Direction::Source && s.ports[0]->port == ports::kAgentDns;
  const bool to_server =
      s.addresses.size() == 1 && s.addresses[0]->direction == Direction::Destination && !s.addresses[0]->negated;
  if (chain == "OUTPUT" && udp && s.interfaces.empty() && s.marks.empty() && s.connmarks.empty() &&
      s.conntracks.empty() && !s.other) {
    if (table == Table::Nat) {
      // "-p udp --dport 53 -m owner [!] --uid-owner|--gid-owner X … -j RETURN" (proxy UIDs/GIDs,
      // owner groups), and "-p udp --dport 53 [-d S] -j REDIRECT --to-port 15053".
      if (dport53 && is_return(r) && s.addresses.empty()) return true;
      auto* to = std::get_if<RedirectTarget>(&r.target);
      if (dport53 && to && to->port == ports::kAgentDns && s.owners.empty() && (s.addresses.empty() || to_server))
        return true;
    }
    if (table == Table::Raw) {
      // "-p udp --dport 53 -m owner --uid-owner U -j CT --zone 1", "-p udp --sport 15053 -m owner
      // --uid-owner U -j CT --zone 2", "-p udp --dport 53 [-d S] -j CT --zone 2".
      auto* ct = std::get_if<CtTarget>(&r.target);
      const bool one_owner = s.owners.size() == 1 && !s.owners[0]->negated && s.addresses.empty();
      if (ct && ct->zone == zones::kUpstream && dport53 && one_owner) return true;
      if (ct && ct->zone == zones::kApplication && sport_agent && one_owner) return true;
      if (ct && ct->zone == zones::kApplication && dport53 && s.owners.empty() && (s.addresses.empty() || to_server))
        return true;
    }
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

// ---- the diff: a longest common subsequence of identities ---------------------------------------

namespace {

using Pairs = std::vector<std::pair<std::size_t, std::size_t>>;

// Myers' bisection ("An O(ND) Difference Algorithm and Its Variations", 1986, section 4b, in
// the form of diff-match-patch's diff_bisect): walks the edit graph of a[0,n) and b[0,m) from
// both corners at once until the paths meet, and returns a point on an optimal path. O((n+m)·d)
// time, O(n+m) memory. Call it with both sides non-empty and their first and last elements
// different (trimmed), so that the point is neither corner.
std::optional<std::pair<std::size_t, std::size_t>> bisect(const int* a, std::ptrdiff_t n, const int* b,
                                                          std::ptrdiff_t m) {
  const std::ptrdiff_t max_d = (n + m + 1) / 2;
  const std::ptrdiff_t offset = max_d + 1;
  const std::ptrdiff_t length = 2 * max_d + 3;
  std::vector<std::ptrdiff_t> v1(static_cast<std::size_t>(length), -1), v2(static_cast<std::size_t>(length), -1);
  auto at = [&](std::vector<std::ptrdiff_t>& v, std::ptrdiff_t k) -> std::ptrdiff_t& {
    return v[static_cast<std::size_t>(offset + k)];
  };
  at(v1, 1) = 0;
  at(v2, 1) = 0;
  const std::ptrdiff_t delta = n - m;
  const bool front = delta % 2 != 0;  // odd: the forward path detects the overlap
  // Diagonals whose paths ran off the graph are not walked again.
  std::ptrdiff_t k1start = 0, k1end = 0, k2start = 0, k2end = 0;
  for (std::ptrdiff_t d = 0; d < max_d; ++d) {
    for (std::ptrdiff_t k1 = -d + k1start; k1 <= d - k1end; k1 += 2) {
      std::ptrdiff_t x1 =
          k1 == -d || (k1 != d && at(v1, k1 - 1) < at(v1, k1 + 1)) ? at(v1, k1 + 1) : at(v1, k1 - 1) + 1;
      std::ptrdiff_t y1 = x1 - k1;
      while (x1 < n && y1 < m && a[x1] == b[y1]) ++x1, ++y1;
      at(v1, k1) = x1;
      if (x1 > n) {
        k1end += 2;
      } else if (y1 > m) {
        k1start += 2;
      } else if (front) {
        std::ptrdiff_t k2 = delta - k1;
        if (k2 >= -max_d - 1 && k2 <= max_d + 1 && at(v2, k2) != -1 && x1 >= n - at(v2, k2))
          return std::make_pair(static_cast<std::size_t>(x1), static_cast<std::size_t>(y1));
      }
    }
    for (std::ptrdiff_t k2 = -d + k2start; k2 <= d - k2end; k2 += 2) {
      std::ptrdiff_t x2 =
          k2 == -d || (k2 != d && at(v2, k2 - 1) < at(v2, k2 + 1)) ? at(v2, k2 + 1) : at(v2, k2 - 1) + 1;
      std::ptrdiff_t y2 = x2 - k2;
      while (x2 < n && y2 < m && a[n - 1 - x2] == b[m - 1 - y2]) ++x2, ++y2;
      at(v2, k2) = x2;
      if (x2 > n) {
        k2end += 2;
      } else if (y2 > m) {
        k2start += 2;
      } else if (!front) {
        std::ptrdiff_t k1 = delta - k2;
        if (k1 >= -max_d - 1 && k1 <= max_d + 1 && at(v1, k1) != -1 && at(v1, k1) >= n - x2) {
          std::ptrdiff_t x1 = at(v1, k1);
          return std::make_pair(static_cast<std::size_t>(x1), static_cast<std::size_t>(x1 - k1));
        }
      }
    }
  }
  return std::nullopt;  // nothing in common
}

// Appends the matched pairs of a longest common subsequence of a[0,n) and b[0,m) (indices
// shifted by ai, bi), in order. Recursion depth is logarithmic in the number of differences.
void common(const int* a, std::size_t n, const int* b, std::size_t m, std::size_t ai, std::size_t bi, Pairs& out) {
  std::size_t prefix = 0;
  while (prefix < n && prefix < m && a[prefix] == b[prefix]) {
    out.emplace_back(ai + prefix, bi + prefix);
    ++prefix;
  }
  a += prefix, b += prefix, n -= prefix, m -= prefix, ai += prefix, bi += prefix;
  std::size_t suffix = 0;
  while (suffix < n && suffix < m && a[n - 1 - suffix] == b[m - 1 - suffix]) ++suffix;
  n -= suffix, m -= suffix;
  if (n > 0 && m > 0)
    if (auto split = bisect(a, static_cast<std::ptrdiff_t>(n), b, static_cast<std::ptrdiff_t>(m))) {
      auto [x, y] = *split;
      common(a, x, b, y, ai, bi, out);
      common(a + x, n - x, b + y, m - y, ai + x, bi + y, out);
    }
  for (std::size_t k = 0; k < suffix; ++k) out.emplace_back(ai + n + k, bi + m + k);
}

// The pairs (i, j), in order, of a longest common subsequence of the identities of `have` and
// `want`. Equal sequences and common ends cost one comparison per rule; only the middle is
// numbered, and of it only the identities present on both sides go into Myers' algorithm
// (the others cannot match), so the cost is O(n+m) plus O((n+m)·d) in the rules that moved.
Pairs matching(const std::vector<const InstalledRule*>& have, const std::vector<const InstalledRule*>& want) {
  const std::size_t n = have.size(), m = want.size();
  Pairs out;
  out.reserve(std::min(n, m));
  std::size_t prefix = 0;
  while (prefix < n && prefix < m && have[prefix]->id() == want[prefix]->id()) {
    out.emplace_back(prefix, prefix);
    ++prefix;
  }
  std::size_t suffix = 0;
  while (suffix < n - prefix && suffix < m - prefix && have[n - 1 - suffix]->id() == want[m - 1 - suffix]->id())
    ++suffix;
  if (prefix + suffix < n && prefix + suffix < m) {
    std::unordered_map<std::string_view, int> number;  // identity -> number, for the wanted middle
    number.reserve(m - prefix - suffix);
    for (std::size_t j = prefix; j < m - suffix; ++j) number.emplace(want[j]->id(), static_cast<int>(number.size()));
    std::vector<char> in_have(number.size(), 0);
    std::vector<int> a, b;
    std::vector<std::size_t> a_index, b_index;
    for (std::size_t i = prefix; i < n - suffix; ++i) {
      auto it = number.find(have[i]->id());
      if (it == number.end()) continue;
      in_have[static_cast<std::size_t>(it->second)] = 1;
      a.push_back(it->second);
      a_index.push_back(i);
    }
    for (std::size_t j = prefix; j < m - suffix; ++j) {
      int k = number.find(want[j]->id())->second;
      if (!in_have[static_cast<std::size_t>(k)]) continue;
      b.push_back(k);
      b_index.push_back(j);
    }
    Pairs middle;
    common(a.data(), a.size(), b.data(), b.size(), 0, 0, middle);
    for (auto [i, j] : middle) out.emplace_back(a_index[i], b_index[j]);
  }
  for (std::size_t k = suffix; k-- > 0;) out.emplace_back(n - 1 - k, m - 1 - k);
  return out;
}

// Calls f(i0, i1, j0, j1, k) for each stretch between matched pairs: have[i0,i1) are not in
// want, want[j0,j1) are not in have, and pairs[k] (when k < pairs.size()) ends the stretch.
// Empty stretches included.
template <typename F>
void for_each_stretch(const Pairs& pairs, std::size_t n, std::size_t m, F f) {
  std::size_t i0 = 0, j0 = 0;
  for (std::size_t k = 0; k <= pairs.size(); ++k) {
    auto [i1, j1] = k < pairs.size() ? pairs[k] : std::make_pair(n, m);
    f(i0, i1, j0, j1, k);
    i0 = i1 + 1;
    j0 = j1 + 1;
  }
}

// ---- placement ------------------------------------------------------------------------------

// A chain of the snapshot that is not ours, as read: its foreign rules and ours, each of ours
// with its place (the number of foreign rules before it).
struct ChainReading {
  const InstalledChain* chain = nullptr;
  std::vector<const InstalledRule*> foreign;
  std::vector<const InstalledRule*> ours;
  std::vector<std::size_t> ours_place;
};

// Rewrites `restored` (the foreign rules with ours where iptables-restore would put them) so that
// the rules of ours already installed keep their places; see the essay in reconcile.h.
void keep_places(const ChainReading& now, std::vector<const InstalledRule*>& restored) {
  // Our rules in the plan's order, each with the place restore would give it.
  std::vector<const InstalledRule*> want;
  std::vector<std::size_t> place;
  want.reserve(restored.size() - now.foreign.size());
  place.reserve(want.capacity());
  std::size_t f = 0;
  for (const auto* r : restored) {
    if (f < now.foreign.size() && r == now.foreign[f]) {
      ++f;
    } else {
      want.push_back(r);
      place.push_back(f);
    }
  }
  const auto& have = now.ours;
  const auto& have_place = now.ours_place;
  const Pairs pairs = matching(have, want);
  if (pairs.size() == have.size() && pairs.size() == want.size()) {
    restored.clear();  // ours are in order: the chain stays as it is
    for (const auto& r : now.chain->rules) restored.push_back(&r);
    return;
  }
  for_each_stretch(pairs, have.size(), want.size(),
                   [&](std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1, std::size_t k) {
                     std::size_t lo, hi;
                     if (i0 < i1) {  // new rules replace removed ones: they take their places
                       lo = have_place[i0];
                       hi = have_place[i1 - 1];
                     } else {  // new rules only: between the neighbours that stay
                       lo = k > 0 ? have_place[pairs[k - 1].first] : 0;
                       hi = k < pairs.size() ? have_place[i1] : now.foreign.size();
                     }
                     for (std::size_t j = j0; j < j1; ++j) place[j] = std::clamp(place[j], lo, hi);
                     if (k < pairs.size()) place[j1] = have_place[i1];
                   });
  // Places never decrease along `want`: merge it into the foreign rules.
  std::vector<const InstalledRule*> merged;
  merged.reserve(now.foreign.size() + want.size());
  std::size_t w = 0;
  for (std::size_t i = 0; i < now.foreign.size(); ++i) {
    while (w < want.size() && place[w] <= i) merged.push_back(want[w++]);
    merged.push_back(now.foreign[i]);
  }
  while (w < want.size()) merged.push_back(want[w++]);
  restored = std::move(merged);
}

}  // namespace

DesiredTable desired_table(const Snapshot& current, const std::vector<EncodedOp>& ops) {
  const Table table = current.table;
  DesiredTable out;
  out.chains.reserve(current.chains.size() + 8);
  std::vector<ChainReading> readings;  // of out.chains[i], for the chains of the snapshot
  std::unordered_map<std::string, std::size_t> index;
  for (const auto& c : current.chains) {
    if (is_owned_chain(c.name)) continue;
    ChainReading reading;
    reading.chain = &c;
    reading.foreign.reserve(c.rules.size());
    for (const auto& r : c.rules) {
      if (is_owned_rule(table, c, r)) {
        reading.ours.push_back(&r);
        reading.ours_place.push_back(reading.foreign.size());
      } else {
        reading.foreign.push_back(&r);
      }
    }
    index.emplace(c.name, out.chains.size());
    out.chains.push_back(DesiredChain{c.name, c.builtin, c.opaque, reading.foreign});
    readings.push_back(std::move(reading));
  }
  auto chain_index = [&](const std::string& name) -> std::size_t {
    auto it = index.find(name);
    if (it != index.end()) return it->second;
    assert(is_owned_chain(name));  // built-in chains are always in a snapshot
    out.chains.push_back(DesiredChain{name, false, false, {}});
    index.emplace(name, out.chains.size() - 1);
    return out.chains.size() - 1;
  };
  // Where iptables-restore --noflush would put ours.
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
  // Where ours stand already, they stay.
  for (std::size_t i = 0; i < readings.size(); ++i)
    if (!readings[i].ours.empty()) keep_places(readings[i], out.chains[i].rules);
  return out;
}

namespace {
bool same_rules(const std::vector<InstalledRule>& a, const std::vector<const InstalledRule*>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const InstalledRule& x, const InstalledRule* y) { return x.id() == y->id(); });
}

std::unordered_map<std::string_view, const InstalledChain*> by_name(const Snapshot& s) {
  std::unordered_map<std::string_view, const InstalledChain*> out;
  out.reserve(s.chains.size());
  for (const auto& c : s.chains) out.emplace(c.name, &c);
  return out;
}

const InstalledChain* find(const std::unordered_map<std::string_view, const InstalledChain*>& chains,
                           const std::string& name) {
  auto it = chains.find(name);
  return it == chains.end() ? nullptr : it->second;
}

std::optional<TableWrite> write_towards(const Snapshot& current, const std::vector<DesiredChain>& wanted) {
  const auto chains = by_name(current);
  TableWrite w;
  std::unordered_set<std::string_view> kept;
  kept.reserve(wanted.size());
  for (const auto& c : wanted) {
    kept.insert(c.name);
    if (c.opaque) continue;  // unread, untouched
    const InstalledChain* now = find(chains, c.name);
    if (now && same_rules(now->rules, c.rules)) continue;
    TableWrite::Chain chain{c.name, {}};
    chain.blobs.reserve(c.rules.size());
    for (const auto* r : c.rules) chain.blobs.push_back(&r->blob);
    w.chains.push_back(std::move(chain));
  }
  for (const auto& c : current.chains)
    if (!c.builtin && !kept.count(c.name)) w.delete_chains.push_back(c.name);
  if (w.chains.empty() && w.delete_chains.empty()) return std::nullopt;
  return w;
}
}  // namespace

std::optional<TableWrite> write_for(const Snapshot& current, const DesiredTable& desired) {
  return write_towards(current, desired.chains);
}

std::optional<TableWrite> restore_write(const Snapshot& current, const Snapshot& original) {
  std::vector<DesiredChain> wanted;
  wanted.reserve(original.chains.size());
  for (const auto& c : original.chains) {
    DesiredChain d{c.name, c.builtin, c.opaque, {}};
    d.rules.reserve(c.rules.size());
    for (const auto& r : c.rules) d.rules.push_back(&r);
    wanted.push_back(std::move(d));
  }
  return write_towards(current, wanted);
}

namespace {
std::string describe(const InstalledRule& r) {
  return r.rule ? rule_spec(*r.rule) : std::string("(a rule with parts this tool does not model)");
}
}  // namespace

std::vector<Difference> differences(const Snapshot& current, const DesiredTable& desired) {
  const Table table = current.table;
  const auto chains = by_name(current);
  std::vector<Difference> out;
  std::unordered_set<std::string_view> wanted;
  wanted.reserve(desired.chains.size());
  for (const auto& want : desired.chains) {
    wanted.insert(want.name);
    if (want.opaque) continue;
    const InstalledChain* have = find(chains, want.name);
    if (!have) {
      if (want.rules.empty()) out.push_back({Difference::Missing, want.name, "(the empty chain itself)"});
      for (const auto* r : want.rules) out.push_back({Difference::Missing, want.name, describe(*r)});
      continue;
    }
    // Only our rules count: foreign ones are the same pointers on both sides (desired_table).
    std::vector<const InstalledRule*> have_ours, want_ours;
    for (const auto& r : have->rules)
      if (is_owned_rule(table, *have, r)) have_ours.push_back(&r);
    const InstalledChain shape{want.name, want.builtin, {}, want.opaque};
    for (const auto* r : want.rules)
      if (is_owned_rule(table, shape, *r)) want_ours.push_back(r);
    const Pairs pairs = matching(have_ours, want_ours);
    for_each_stretch(pairs, have_ours.size(), want_ours.size(),
                     [&](std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1, std::size_t) {
                       for (std::size_t j = j0; j < j1; ++j)
                         out.push_back({Difference::Missing, want.name, describe(*want_ours[j])});
                       for (std::size_t i = i0; i < i1; ++i)
                         out.push_back({Difference::Extra, want.name, describe(*have_ours[i])});
                     });
  }
  // Chains of ours the plan does not have: each rule is extra, or the empty chain itself.
  for (const auto& c : current.chains) {
    if (!is_owned_chain(c.name) || wanted.count(c.name)) continue;
    if (c.rules.empty()) out.push_back({Difference::Extra, c.name, "(the empty chain itself)"});
    for (const auto& r : c.rules) out.push_back({Difference::Extra, c.name, describe(r)});
  }
  return out;
}

namespace {
// Can a rule end a packet's walk through its chain? Everything but the targets that only mark a
// packet or its connection (and a rule we cannot read might).
bool can_end_walk(const InstalledRule& r) {
  if (!r.rule) return true;
  const Target& t = r.rule->target;
  return !(std::holds_alternative<MarkTarget>(t) || std::holds_alternative<ConnmarkTarget>(t) ||
           std::holds_alternative<CtTarget>(t) || std::holds_alternative<NflogTarget>(t));
}
}  // namespace

std::vector<PlacementNote> placement_notes(const Snapshot& current) {
  const Table table = current.table;
  std::vector<PlacementNote> out;
  for (const auto& c : current.chains) {
    if (!c.builtin) continue;
    // From the end: the next jump of ours after each rule.
    std::vector<PlacementNote> chain_notes;
    const InstalledRule* next_jump = nullptr;
    for (auto it = c.rules.rbegin(); it != c.rules.rend(); ++it) {
      if (is_owned_rule(table, c, *it)) {
        if (it->rule && jump_chain(*it->rule)) next_jump = &*it;
      } else if (next_jump && can_end_walk(*it)) {
        chain_notes.push_back({c.name, describe(*it), describe(*next_jump)});
      }
    }
    out.insert(out.end(), chain_notes.rbegin(), chain_notes.rend());
  }
  return out;
}

}  // namespace istio_iptables
