// The flow simulator (see explain.h for why it is three-valued and never guesses).
//
// Hook order is the kernel's. iptables: raw (-300), mangle (-150), nat (-100) at OUTPUT for
// `out`, at PREROUTING for `in`. nftables: every base chain of our tables on the hook, by
// priority. Three kernel facts shape the walk beyond the rules themselves:
//
// - nat chains see only the first packet of a connection (NEW, or the first of a RELATED one);
//   later packets follow the binding made then, which explain cannot see.
// - A packet the pod sends to one of its own addresses leaves by lo and comes back in through
//   PREROUTING (raw and mangle: its NAT was decided in OUTPUT, so nat PREROUTING is not asked),
//   without a socket, keeping its mark. TPROXY mode relies on exactly that (marks 1337/1338).
// - Owner matching differs: xt_owner matches a packet without a socket iff the match is
//   negated; nft's skuid/skgid never match one. Both compare the socket's fsuid/fsgid;
//   supplementary groups count only with --suppl-groups, which our model does not have (a rule
//   using it is outside the model and read back undecoded).
//
// Visitors end with a template overload: a match, statement or target added to the model later
// is "not modelled" here (the verdict turns uncertain) instead of breaking the build.
#include "core/explain.h"

#include <algorithm>
#include <cstdio>

#include "core/message.h"
#include "core/nft_planner.h"
#include "core/nft_script.h"
#include "core/number.h"
#include "core/restore_text.h"
#include "core/settings.h"

namespace istio_iptables {
namespace {

// ---- flow parsing -------------------------------------------------------------------------------

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string word;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n') {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

struct Endpoint {
  Address address;
  std::optional<std::uint16_t> port;
};

// "192.0.2.1", "192.0.2.1:80", "2001:db8::1", "[2001:db8::1]:80".
std::optional<Endpoint> parse_endpoint(const std::string& word) {
  std::string host = word;
  std::string port;
  if (!word.empty() && word.front() == '[') {
    auto close = word.find(']');
    if (close == std::string::npos) return std::nullopt;
    host = word.substr(1, close - 1);
    std::string rest = word.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
      if (port.empty()) return std::nullopt;
    }
  } else if (std::count(word.begin(), word.end(), ':') == 1) {
    auto colon = word.find(':');
    host = word.substr(0, colon);
    port = word.substr(colon + 1);
    if (port.empty()) return std::nullopt;
  }
  auto address = parse_address(host);
  if (!address) return std::nullopt;
  Endpoint e{*address, std::nullopt};
  if (!port.empty()) {
    auto p = parse_unsigned(port, 65535);
    if (!p) return std::nullopt;
    e.port = static_cast<std::uint16_t>(*p);
  }
  return e;
}

Error flow_error(const std::string& text, const std::string& word, const std::string& why) {
  return Error{"flow " + quoted_for_message(text) + ": " + quoted_for_message(word) + ": " + why};
}

}  // namespace

Result<Packet> parse_flow(const std::string& text) {
  const auto w = words_of(text);
  const char* shape = "expected `out|in tcp|udp SRC[:PORT] -> DST[:PORT]` and then uid, gid, iif, oif, mark, "
                      "connmark or state words";
  if (w.size() < 5) return Error{"flow " + quoted_for_message(text) + ": too short: " + shape};
  Packet p;
  if (w[0] == "out")
    p.direction = FlowDirection::Out;
  else if (w[0] == "in")
    p.direction = FlowDirection::In;
  else
    return flow_error(text, w[0], "expected out or in");
  if (w[1] == "tcp")
    p.protocol = Protocol::Tcp;
  else if (w[1] == "udp")
    p.protocol = Protocol::Udp;
  else
    return flow_error(text, w[1], "expected tcp or udp");
  auto src = parse_endpoint(w[2]);
  if (!src) return flow_error(text, w[2], "expected a source address, optionally with :PORT ([IPv6]:PORT)");
  if (w[3] != "->") return flow_error(text, w[3], "expected ->");
  auto dst = parse_endpoint(w[4]);
  if (!dst) return flow_error(text, w[4], "expected a destination address, optionally with :PORT ([IPv6]:PORT)");
  if (src->address.family != dst->address.family)
    return flow_error(text, w[4], "the source and the destination are of different families");
  p.source = src->address;
  p.source_port = src->port;
  p.destination = dst->address;
  p.destination_port = dst->port;

  std::vector<std::string> seen;
  for (std::size_t i = 5; i < w.size(); i += 2) {
    const std::string& key = w[i];
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) return flow_error(text, key, "given twice");
    seen.push_back(key);
    if (i + 1 >= w.size()) return flow_error(text, key, "needs a value");
    const std::string& value = w[i + 1];
    auto number = [&](NumberSyntax syntax) { return parse_unsigned(value, 0xffffffffULL, syntax); };
    if (key == "uid" || key == "gid") {
      if (p.direction == FlowDirection::In)
        return flow_error(text, key, "a packet that arrives has no socket, hence no owner");
      auto n = number(NumberSyntax::Decimal);
      if (!n) return flow_error(text, value, "expected a number 0-4294967295 for " + key);
      (key == "uid" ? p.uid : p.gid) = static_cast<std::uint32_t>(*n);
    } else if (key == "iif" || key == "oif") {
      if ((key == "iif") != (p.direction == FlowDirection::In))
        return flow_error(text, key,
                          p.direction == FlowDirection::In ? "a packet that arrives has no output interface yet"
                                                           : "a packet the pod sends has no input interface");
      if (!valid_interface_name(value)) return flow_error(text, value, "not an interface name");
      (key == "iif" ? p.in_interface : p.out_interface).name = value;
    } else if (key == "mark" || key == "connmark") {
      auto n = number(NumberSyntax::DecimalOrHex);
      if (!n) return flow_error(text, value, "expected a number (decimal or 0x hexadecimal) for " + key);
      if (key == "mark")
        p.mark = static_cast<std::uint32_t>(*n);
      else
        p.connmark = static_cast<std::uint32_t>(*n);
    } else if (key == "state") {
      if (value == "new")
        p.state = ConntrackState::New;
      else if (value == "established")
        p.state = ConntrackState::Established;
      else if (value == "related")
        p.state = ConntrackState::Related;
      else if (value == "invalid")
        p.state = ConntrackState::Invalid;
      else
        return flow_error(text, value, "expected new, established, related or invalid");
    } else {
      return flow_error(text, key, "unknown word: expected uid, gid, iif, oif, mark, connmark or state");
    }
  }
  // Defaults: out to a loopback address leaves by lo, otherwise by the pod's interface; in
  // arrives on the pod's interface. The side a packet does not have is "" to the kernel.
  if (p.direction == FlowDirection::Out) {
    p.in_interface.name = "";
    if (!p.out_interface.name && is_loopback(p.destination)) p.out_interface.name = "lo";
  } else {
    p.out_interface.name = "";
  }
  if (p.state == ConntrackState::New && !p.connmark) p.connmark = 0;
  return p;
}

// ---- views --------------------------------------------------------------------------------------

const ViewChain* ViewTable::find(const std::string& chain) const {
  for (const auto& c : chains)
    if (c.name == chain) return &c;
  return nullptr;
}

const ViewTable* IptablesView::find(Table table) const {
  for (const auto& t : tables)
    if (t.table == table) return &t;
  return nullptr;
}

const NftViewChain* NftViewTable::find(const std::string& chain) const {
  for (const auto& c : chains)
    if (c.name == chain) return &c;
  return nullptr;
}

namespace {

ViewChain& chain_in(ViewTable& table, const std::string& name) {
  for (auto& c : table.chains)
    if (c.name == name) return c;
  table.chains.push_back(ViewChain{name, false, {}});
  return table.chains.back();
}

std::string rule_line(const std::string& chain, const Rule& rule) { return "-A " + chain + " " + rule_spec(rule); }

}  // namespace

IptablesView view_of_ruleset(const Ruleset& ruleset) {
  IptablesView view;
  view.family = ruleset.family;
  for (Table t : kAllTables) {
    if (!ruleset.uses_table(t)) continue;
    ViewTable table;
    table.table = t;
    for (const auto& name : builtin_chains(t)) table.chains.push_back(ViewChain{name, false, {}});
    for (const auto& op : ruleset.ops) {
      if (op.table != t) continue;
      auto& rules = chain_in(table, op.chain).rules;
      ViewRule r{op.rule, rule_line(op.chain, op.rule)};
      if (op.insert_position && *op.insert_position >= 1 && *op.insert_position <= rules.size())
        rules.insert(rules.begin() + static_cast<std::ptrdiff_t>(*op.insert_position - 1), std::move(r));
      else
        rules.push_back(std::move(r));
      // A jump target is declared (-N) even when it holds no rule.
      if (auto target = jump_chain(op.rule)) chain_in(table, *target);
    }
    view.tables.push_back(std::move(table));
  }
  return view;
}

ViewTable view_of_snapshot(const Snapshot& snapshot) {
  ViewTable table;
  table.table = snapshot.table;
  for (const auto& c : snapshot.chains) {
    ViewChain chain{c.name, c.opaque, {}};
    for (const auto& r : c.rules) {
      if (r.rule) {
        chain.rules.push_back(ViewRule{r.rule, rule_line(c.name, *r.rule)});
        continue;
      }
      // The restore backend keeps a foreign rule's text ("[p:b] spec"); libiptc's is binary.
      std::string spec = r.blob;
      bool printable = std::all_of(spec.begin(), spec.end(), [](char ch) { return ch >= 0x20 && ch < 0x7f; });
      if (printable && !spec.empty() && spec.front() == '[') {
        auto close = spec.find("] ");
        if (close != std::string::npos) spec = spec.substr(close + 2);
      }
      chain.rules.push_back(ViewRule{std::nullopt, printable && !spec.empty()
                                                       ? "-A " + c.name + " " + spec
                                                       : "-A " + c.name + " … (a rule outside our model)"});
    }
    table.chains.push_back(std::move(chain));
  }
  return table;
}

NftView view_of_nft_plan(const NftRuleset& plan) {
  NftView view;
  for (const auto& t : plan.tables) {
    NftViewTable table{t.name, {}};
    for (const auto& c : t.chains) {
      NftViewChain chain{c.name, c.base, "", {}};
      for (auto& r : nft::chain_rules(t, c.name)) {
        std::string text = nft_rule_text(r);
        chain.rules.push_back(NftViewRule{std::move(r), std::move(text)});
      }
      table.chains.push_back(std::move(chain));
    }
    view.tables.push_back(std::move(table));
  }
  return view;
}

NftView view_of_nft_state(
    const nft::InstalledState& state,
    const std::function<const nft::Rule*(const std::string& table, const nft::InstalledRule& rule)>& decode) {
  NftView view;
  for (const auto& t : state.tables) {
    NftViewTable table{t.name, {}};
    for (const auto& c : t.chains) {
      NftViewChain chain{c.name, c.base, c.unexpected, {}};
      for (const auto& r : c.rules) {
        NftViewRule rule{std::nullopt, r.text};
        if (const nft::Rule* ours = decode(t.name, r)) rule.rule = *ours;
        chain.rules.push_back(std::move(rule));
      }
      table.chains.push_back(std::move(chain));
    }
    view.tables.push_back(std::move(table));
  }
  return view;
}

// ---- the walk -----------------------------------------------------------------------------------

const char* outcome_name(Outcome outcome) {
  switch (outcome) {
  case Outcome::Redirect: return "redirect";
  case Outcome::Tproxy: return "tproxy";
  case Outcome::Accept: return "accept";
  case Outcome::Drop: return "drop";
  case Outcome::Uncertain: return "uncertain";
  }
  return "uncertain";
}

namespace {

enum class Truth { False, True, Unknown };

Truth truth(bool b) { return b ? Truth::True : Truth::False; }

Truth negate_if(Truth t, bool negated) {
  if (t == Truth::Unknown || !negated) return t;
  return t == Truth::True ? Truth::False : Truth::True;
}

/// The packet as the walk changes it.
struct State {
  Packet packet;
  bool socket = false;                ///< the packet has a socket (out, before lo)
  std::optional<std::uint32_t> mark;  ///< nullopt: unknown (restored from an unknown connmark)
  std::optional<std::uint16_t> redirected;
  std::optional<std::uint16_t> tproxied;
  std::uint16_t zone = 0;
  bool tracked = false;                ///< a conntrack (or its template) is attached: CT/ct zone set do nothing
  std::optional<TrailStep> passed_by;  ///< the last RETURN/ACCEPT that let the packet go on
  std::string passed_verb;             ///< its verdict, in its ruleset's words
  std::string why;                     ///< why the last match was unknown
};

bool in_prefix(const Address& a, const Prefix& p) {
  if (a.family != p.address.family) return false;
  return masked(Prefix{a, p.length}) == masked(p);
}

bool has_conntrack(const State& s) { return s.packet.state != ConntrackState::Invalid; }

Truth port_equals(State& s, Direction d, const std::vector<std::uint16_t>& ports) {
  const auto& value = d == Direction::Source ? s.packet.source_port : s.packet.destination_port;
  if (value) return truth(std::find(ports.begin(), ports.end(), *value) != ports.end());
  if (d == Direction::Destination) {
    s.why = "the flow has no destination port";
    return Truth::Unknown;
  }
  // An ephemeral source port: only a port of the range could equal it.
  for (auto p : ports)
    if (p >= kEphemeralFirst && p <= kEphemeralLast) {
      s.why = "the flow has no source port and the rule names an ephemeral one";
      return Truth::Unknown;
    }
  return Truth::False;
}

Truth owner_equals(State& s, bool group, const OwnerId& id) {
  const auto& have = group ? s.packet.gid : s.packet.uid;
  if (!have) {
    s.why = std::string("the flow does not say the socket's ") + (group ? "gid (add `gid N`)" : "uid (add `uid N`)");
    return Truth::Unknown;
  }
  if (!id.number) {
    s.why = "the rule names group " + quoted_for_message(id.name) + ", resolved only when installed";
    return Truth::Unknown;
  }
  return truth(*have == *id.number);
}

unsigned state_bits(const std::vector<ConntrackState>& states) {
  unsigned bits = 0;
  for (auto st : states) bits |= static_cast<unsigned>(st);
  return bits;
}

Truth mark_equals(State& s, std::uint32_t value) {
  if (!s.mark) {
    s.why = "the packet's mark was restored from a connection mark the flow does not give";
    return Truth::Unknown;
  }
  return truth(*s.mark == value);
}

Truth connmark_equals(State& s, std::uint32_t value) {
  if (!s.packet.connmark) {
    s.why = "the flow does not give the connection's mark (add `connmark N`)";
    return Truth::Unknown;
  }
  return truth(*s.packet.connmark == value);
}

// Interface names: iptables' trailing '+' and nft's trailing '*' are prefix wildcards.
Truth interface_equals(State& s, const FlowInterface& have, const std::string& rule_name, char wildcard) {
  const bool prefix = !rule_name.empty() && rule_name.back() == wildcard;
  const std::string stem = prefix ? rule_name.substr(0, rule_name.size() - 1) : rule_name;
  if (have.name) return truth(prefix ? have.name->compare(0, stem.size(), stem) == 0 : *have.name == stem);
  if (prefix && stem.empty()) return Truth::True;
  if (!prefix && stem == "lo") return Truth::False;  // the pod's interface is not lo
  s.why = "the flow does not name the pod's interface (add `" +
          std::string(s.packet.direction == FlowDirection::In ? "iif" : "oif") + " NAME`)";
  return Truth::Unknown;
}

// xt matches, as the kernel evaluates them.
struct XtMatch {
  State& s;
  Truth operator()(const ProtocolMatch& m) const {
    return negate_if(truth(s.packet.protocol == m.protocol), m.negated);
  }
  Truth operator()(const AddressMatch& m) const {
    const Address& a = m.direction == Direction::Source ? s.packet.source : s.packet.destination;
    return negate_if(truth(in_prefix(a, m.prefix)), m.negated);
  }
  Truth operator()(const InterfaceMatch& m) const {
    return negate_if(interface_equals(s, m.inbound ? s.packet.in_interface : s.packet.out_interface, m.name, '+'),
                     m.negated);
  }
  Truth operator()(const PortMatch& m) const {
    // The tcp/udp match sits behind `-p` of its protocol: another protocol never matches.
    if (s.packet.protocol != m.protocol) return Truth::False;
    return negate_if(port_equals(s, m.direction, {m.port}), m.negated);
  }
  Truth operator()(const MultiportMatch& m) const {
    return negate_if(port_equals(s, Direction::Destination, m.ports), m.negated);
  }
  Truth operator()(const OwnerMatch& m) const {
    // xt_owner: without a socket, a match holds exactly when it is negated.
    if (!s.socket) return truth(m.negated);
    return negate_if(owner_equals(s, m.group, m.id), m.negated);
  }
  Truth operator()(const ConntrackMatch& m) const {
    return negate_if(truth((static_cast<unsigned>(s.packet.state) & state_bits(m.states)) != 0), m.negated);
  }
  Truth operator()(const MarkMatch& m) const { return negate_if(mark_equals(s, m.mark), m.negated); }
  Truth operator()(const ConnmarkMatch& m) const {
    if (!has_conntrack(s)) return Truth::False;  // connmark_mt: no conntrack, no match
    return negate_if(connmark_equals(s, m.mark), m.negated);
  }
  template <typename T>
  Truth operator()(const T& /*unmodelled*/) const {
    s.why = "a match outside the simulator's model";
    return Truth::Unknown;
  }
};

/// How a table's walk ended.
enum class TableEnd { Accepted, Dropped, Uncertain };

Address loopback_of(Family f) {
  Address a;
  a.family = f;
  if (f == Family::V4)
    a.bytes[0] = 127, a.bytes[3] = 1;
  else
    a.bytes[15] = 1;
  return a;
}

constexpr std::size_t kMaxJumpDepth = 64;

struct Walk {
  State& s;
  Explanation& e;

  TableEnd uncertain(TrailStep step, std::string why) {
    step.modelled = false;
    e.trail.push_back(std::move(step));
    e.reason = std::move(why);
    return TableEnd::Uncertain;
  }

  // One iptables table at one hook.
  TableEnd iptables_table(const ViewTable* table, Family family, const std::string& hook) {
    if (!table) return TableEnd::Accepted;
    const ViewChain* chain = table->find(hook);
    if (!chain) return TableEnd::Accepted;
    struct Frame {
      const ViewChain* chain;
      std::size_t next;
    };
    std::vector<Frame> stack;
    std::size_t i = 0;
    while (true) {
      if (i >= chain->rules.size()) {
        if (stack.empty()) return TableEnd::Accepted;  // the built-in chain's policy (ACCEPT)
        chain = stack.back().chain;
        i = stack.back().next;
        stack.pop_back();
        continue;
      }
      const ViewRule& vr = chain->rules[i];
      TrailStep step{
          family_name(family), table_name(table->table), chain->name, static_cast<unsigned>(i + 1), vr.text, true};
      ++i;
      if (!vr.rule) return uncertain(step, "a rule outside our model: whether it matches cannot be told");
      Truth t = Truth::True;
      for (const auto& m : vr.rule->matches) {
        Truth one = std::visit(XtMatch{s}, m);
        if (one == Truth::False) {
          t = Truth::False;
          break;
        }
        if (one == Truth::Unknown) t = Truth::Unknown;
      }
      if (t == Truth::False) continue;
      if (t == Truth::Unknown) return uncertain(step, s.why);
      e.trail.push_back(step);
      // The target.
      const Target& target = vr.rule->target;
      if (const auto* j = std::get_if<JumpTarget>(&target)) {
        const ViewChain* next = table->find(j->chain);
        if (!next) return uncertain(step, "a jump to chain " + j->chain + ", which the table does not hold");
        if (next->opaque) return uncertain(step, "a jump to chain " + j->chain + ", which was not read rule by rule");
        if (stack.size() >= kMaxJumpDepth) return uncertain(step, "jumps nested deeper than the simulator follows");
        stack.push_back(Frame{chain, i});
        chain = next;
        i = 0;
      } else if (const auto* v = std::get_if<VerdictTarget>(&target)) {
        if (v->verdict == Verdict::Drop) {
          e.reason = std::string("DROP by ") + family_name(family) + " " + step.table + " " + step.chain + " rule " +
                     std::to_string(step.index);
          return TableEnd::Dropped;
        }
        s.passed_by = step;
        s.passed_verb = v->verdict == Verdict::Accept ? "ACCEPT" : "RETURN";
        if (v->verdict == Verdict::Accept || stack.empty()) return TableEnd::Accepted;  // RETURN: the policy
        chain = stack.back().chain;
        i = stack.back().next;
        stack.pop_back();
      } else if (const auto* r = std::get_if<RedirectTarget>(&target)) {
        if (table->table != Table::Nat) return uncertain(step, "REDIRECT outside the nat table");
        s.redirected = r->port;
        return TableEnd::Accepted;
      } else if (const auto* tp = std::get_if<TproxyTarget>(&target)) {
        if (table->table != Table::Mangle || hook != "PREROUTING")
          return uncertain(step, "TPROXY outside mangle PREROUTING");
        // xt_TPROXY: a listener on the port takes the packet (assumed: the proxy listens).
        if (s.mark) s.mark = (*s.mark & ~tp->mask) ^ tp->mark;
        s.tproxied = tp->port;
        return TableEnd::Accepted;
      } else if (const auto* mk = std::get_if<MarkTarget>(&target)) {
        s.mark = mk->mark;
      } else if (const auto* cm = std::get_if<ConnmarkTarget>(&target)) {
        if (has_conntrack(s)) {
          if (cm->restore)
            s.mark = s.packet.connmark;
          else if (s.mark)
            s.packet.connmark = *s.mark;
          else
            s.packet.connmark.reset();
        }
      } else if (const auto* ct = std::get_if<CtTarget>(&target)) {
        // xt_CT: a packet with a conntrack already (an earlier CT, or looped back) is left alone.
        if (!s.tracked) s.zone = ct->zone;
        s.tracked = true;
      } else {
        return uncertain(step, "a target outside the simulator's model");
      }
    }
  }
};

State start_state(const Packet& packet) {
  State s;
  s.packet = packet;
  s.socket = packet.direction == FlowDirection::Out;
  s.mark = packet.mark;
  return s;
}

bool nat_sees(const Packet& p) { return p.state == ConntrackState::New || p.state == ConntrackState::Related; }

void finish(State& s, Explanation& e, TableEnd end) {
  e.zone = s.zone;
  if (end == TableEnd::Dropped) {
    e.outcome = Outcome::Drop;
    return;
  }
  if (end == TableEnd::Uncertain) {
    e.outcome = Outcome::Uncertain;
    return;
  }
  if (s.tproxied) {
    e.outcome = Outcome::Tproxy;
    e.port = s.tproxied;
    e.tproxy_mark = s.mark;
    return;
  }
  if (s.redirected) {
    e.outcome = Outcome::Redirect;
    e.port = s.redirected;
    return;
  }
  e.outcome = Outcome::Accept;
  if (!nat_sees(s.packet))
    e.reason = "nat sees only a connection's first packet; this one follows the connection";
  else if (s.passed_by)
    e.reason = s.passed_verb + " by " + s.passed_by->family + " " + s.passed_by->table + " " + s.passed_by->chain +
               " rule " + std::to_string(s.passed_by->index);
  else
    e.reason = "no rule redirects it (the chains' policy ACCEPT)";
}

// After OUTPUT: a packet leaving by lo (to one of the pod's own addresses, or redirected) comes
// back through PREROUTING without its socket.
void loop_back(State& s) {
  if (s.redirected) {
    s.packet.destination = loopback_of(s.packet.family());
    s.packet.destination_port = s.redirected;
    s.packet.out_interface.name = "lo";
  }
  s.socket = false;
  s.tracked = true;
  s.packet.in_interface.name = "lo";
  s.packet.out_interface.name = "";
}

bool leaves_by_lo(const State& s) {
  return s.redirected || (s.packet.out_interface.name && *s.packet.out_interface.name == "lo");
}

}  // namespace

Explanation explain_iptables(const Packet& packet, const IptablesView& view) {
  Explanation e;
  State s = start_state(packet);
  Walk walk{s, e};
  const Table order[] = {Table::Raw, Table::Mangle, Table::Nat};
  const std::string hook = packet.direction == FlowDirection::Out ? "OUTPUT" : "PREROUTING";
  TableEnd end = TableEnd::Accepted;
  for (Table t : order) {
    if (t == Table::Nat && !nat_sees(s.packet)) continue;
    end = walk.iptables_table(view.find(t), view.family, hook);
    if (end != TableEnd::Accepted) break;
  }
  if (end == TableEnd::Accepted && packet.direction == FlowDirection::Out && leaves_by_lo(s)) {
    loop_back(s);
    for (Table t : {Table::Raw, Table::Mangle}) {
      end = walk.iptables_table(view.find(t), view.family, "PREROUTING");
      if (end != TableEnd::Accepted) break;
    }
  }
  finish(s, e, end);
  return e;
}

// ---- nftables -----------------------------------------------------------------------------------

namespace {

/// How one nft statement went.
enum class Step { Next, NoMatch, Unknown, Accept, Drop, Return, Jump, Goto };

struct NftStatement {
  State& s;
  bool nat_chain;
  std::string* target;  // the chain of a jump or goto

  static Step of(Truth t) { return t == Truth::True ? Step::Next : t == Truth::False ? Step::NoMatch : Step::Unknown; }

  Step operator()(const nft::L4protoMatch& m) const { return of(truth(s.packet.protocol == m.protocol)); }
  Step operator()(const nft::AddressMatch& m) const {
    // `ip …` and `ip6 …` carry a dependency on the packet's family: the other family never matches.
    if (m.prefix.address.family != s.packet.family()) return Step::NoMatch;
    const Address& a = m.direction == Direction::Source ? s.packet.source : s.packet.destination;
    return of(negate_if(truth(in_prefix(a, m.prefix)), m.negated));
  }
  Step operator()(const nft::InterfaceMatch& m) const {
    return of(negate_if(interface_equals(s, m.inbound ? s.packet.in_interface : s.packet.out_interface, m.name, '*'),
                        m.negated));
  }
  Step operator()(const nft::PortMatch& m) const {
    if (m.header == nft::TransportHeader::Tcp && s.packet.protocol != Protocol::Tcp) return Step::NoMatch;
    if (m.header == nft::TransportHeader::Udp && s.packet.protocol != Protocol::Udp) return Step::NoMatch;
    return of(negate_if(port_equals(s, m.direction, m.ports), m.negated));
  }
  Step operator()(const nft::SocketOwnerMatch& m) const {
    if (!s.socket) return Step::NoMatch;  // meta skuid/skgid: no socket, no match (either way)
    return of(negate_if(owner_equals(s, m.group, m.id), m.negated));
  }
  Step operator()(const nft::CtStateMatch& m) const {
    return of(negate_if(truth((static_cast<unsigned>(s.packet.state) & state_bits(m.states)) != 0), m.negated));
  }
  Step operator()(const nft::MarkMatch& m) const { return of(negate_if(mark_equals(s, m.mark), m.negated)); }
  Step operator()(const nft::CtMarkMatch& m) const {
    if (!has_conntrack(s)) return Step::NoMatch;
    return of(negate_if(connmark_equals(s, m.mark), m.negated));
  }
  Step operator()(const nft::CounterStatement&) const { return Step::Next; }
  Step operator()(const nft::VerdictStatement& v) const {
    switch (v.kind) {
    case nft::VerdictKind::Accept: return Step::Accept;
    case nft::VerdictKind::Drop: return Step::Drop;
    case nft::VerdictKind::Return: return Step::Return;
    case nft::VerdictKind::Jump: *target = v.chain; return Step::Jump;
    case nft::VerdictKind::Goto: *target = v.chain; return Step::Goto;
    }
    return Step::Unknown;
  }
  Step operator()(const nft::RedirectStatement& r) const {
    if (!nat_chain) {
      s.why = "redirect outside a nat chain";
      return Step::Unknown;
    }
    s.redirected = r.port;
    return Step::Accept;  // nf_nat_redirect answers NF_ACCEPT
  }
  Step operator()(const nft::TproxyStatement& t) const {
    if (t.family != s.packet.family()) return Step::NoMatch;
    s.tproxied = t.port;  // a listener takes the packet (assumed: the proxy listens)
    return Step::Next;
  }
  Step operator()(const nft::MetaMarkSet& m) const {
    if (m.source == nft::MarkSource::ConnectionMark) {
      if (!has_conntrack(s)) return Step::NoMatch;
      s.mark = s.packet.connmark;
    } else {
      s.mark = m.value;
    }
    return Step::Next;
  }
  Step operator()(const nft::CtMarkSet& m) const {
    if (!has_conntrack(s)) return Step::Next;
    if (m.source == nft::MarkSource::PacketMark)
      s.packet.connmark = s.mark;
    else
      s.packet.connmark = m.value;
    return Step::Next;
  }
  Step operator()(const nft::CtZoneSet& z) const {
    if (!s.tracked) s.zone = z.zone;  // nft_ct_set_zone_eval: an already tracked packet is left alone
    s.tracked = true;
    return Step::Next;
  }
  template <typename T>
  Step operator()(const T& /*unmodelled*/) const {
    s.why = "a statement outside the simulator's model";
    return Step::Unknown;
  }
};

TableEnd nft_base_chain(Walk& w, const NftViewTable& table, const NftViewChain& base) {
  struct Frame {
    const NftViewChain* chain;
    std::size_t next;
  };
  const bool nat = base.base && base.base->type == nft::ChainType::Nat;
  std::vector<Frame> stack;
  const NftViewChain* chain = &base;
  std::size_t i = 0;
  while (true) {
    if (i >= chain->rules.size()) {
      if (stack.empty()) {
        if (!chain->unexpected.empty()) {
          TrailStep step{"inet", table.name, chain->name, static_cast<unsigned>(i + 1), "(end of chain)", true};
          return w.uncertain(step, "the chain's end: " + chain->unexpected);
        }
        return TableEnd::Accepted;  // policy accept
      }
      chain = stack.back().chain;
      i = stack.back().next;
      stack.pop_back();
      continue;
    }
    const NftViewRule& vr = chain->rules[i];
    TrailStep step{"inet", table.name, chain->name, static_cast<unsigned>(i + 1), vr.text, true};
    ++i;
    if (!vr.rule) return w.uncertain(step, "a rule outside our model: whether it matches cannot be told");
    std::string target;
    Step outcome = Step::Next;
    for (const auto& st : vr.rule->statements) {
      outcome = std::visit(NftStatement{w.s, nat, &target}, st);
      if (outcome != Step::Next) break;
    }
    if (outcome == Step::NoMatch) continue;
    if (outcome == Step::Unknown) return w.uncertain(step, w.s.why);
    w.e.trail.push_back(step);
    switch (outcome) {
    case Step::Next: break;
    case Step::Accept:
      if (!w.s.redirected && !w.s.tproxied) {
        w.s.passed_by = step;
        w.s.passed_verb = "accept";
      }
      return TableEnd::Accepted;
    case Step::Drop:
      w.e.reason = "drop by inet " + table.name + " " + chain->name + " rule " + std::to_string(step.index);
      return TableEnd::Dropped;
    case Step::Return:
      w.s.passed_by = step;
      w.s.passed_verb = "return";
      if (stack.empty()) return TableEnd::Accepted;
      chain = stack.back().chain;
      i = stack.back().next;
      stack.pop_back();
      break;
    case Step::Jump:
    case Step::Goto: {
      const NftViewChain* next = table.find(target);
      if (!next) return w.uncertain(step, "a jump to chain " + target + ", which the table does not hold");
      if (stack.size() >= kMaxJumpDepth) return w.uncertain(step, "jumps nested deeper than the simulator follows");
      if (outcome == Step::Jump) stack.push_back(Frame{chain, i});
      chain = next;
      i = 0;
      break;
    }
    case Step::NoMatch:
    case Step::Unknown: break;
    }
  }
}

struct BaseRef {
  int priority;
  const NftViewTable* table;
  const NftViewChain* chain;
};

TableEnd nft_hook(Walk& w, const NftView& view, nft::Hook hook, bool nat_allowed) {
  std::vector<BaseRef> bases;
  for (const auto& t : view.tables)
    for (const auto& c : t.chains)
      if (c.base && c.base->hook == hook) bases.push_back(BaseRef{c.base->priority, &t, &c});
  std::stable_sort(bases.begin(), bases.end(),
                   [](const BaseRef& a, const BaseRef& b) { return a.priority < b.priority; });
  for (const auto& b : bases) {
    if (b.chain->base->type == nft::ChainType::Nat && !nat_allowed) continue;
    TableEnd end = nft_base_chain(w, *b.table, *b.chain);
    if (end != TableEnd::Accepted) return end;
  }
  return TableEnd::Accepted;
}

}  // namespace

Explanation explain_nft(const Packet& packet, const NftView& view) {
  Explanation e;
  State s = start_state(packet);
  Walk walk{s, e};
  const nft::Hook hook = packet.direction == FlowDirection::Out ? nft::Hook::Output : nft::Hook::Prerouting;
  TableEnd end = nft_hook(walk, view, hook, nat_sees(packet));
  if (end == TableEnd::Accepted && packet.direction == FlowDirection::Out && leaves_by_lo(s)) {
    loop_back(s);
    end = nft_hook(walk, view, nft::Hook::Prerouting, false);
  }
  finish(s, e, end);
  return e;
}

// ---- output -------------------------------------------------------------------------------------

std::string format_explanation(const std::string& flow, const Explanation& e) {
  std::string out = flow + "\n  ";
  switch (e.outcome) {
  case Outcome::Redirect: out += "captured: REDIRECT to port " + std::to_string(*e.port); break;
  case Outcome::Tproxy:
    out += "captured: TPROXY to port " + std::to_string(*e.port);
    if (e.tproxy_mark) out += " with mark " + std::to_string(*e.tproxy_mark);
    break;
  case Outcome::Accept: out += "not captured: " + e.reason; break;
  case Outcome::Drop: out += "dropped: " + e.reason; break;
  case Outcome::Uncertain: out += "uncertain: " + e.reason; break;
  }
  if (e.zone != 0) out += " (conntrack zone " + std::to_string(e.zone) + ")";
  out += '\n';
  for (const auto& step : e.trail) {
    out += "    " + step.family + " " + step.table + " " + step.chain + " #" + std::to_string(step.index) + ": " +
           step.rule;
    if (!step.modelled) out += "   <- cannot be evaluated";
    out += '\n';
  }
  return out;
}

namespace {

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

template <typename T>
std::string json_number(const std::optional<T>& value) {
  return value ? std::to_string(*value) : "null";
}

}  // namespace

std::string json_explanation(const std::string& flow, const Explanation& e) {
  std::string out = "{\"flow\":" + json_string(flow) + ",\"verdict\":" + json_string(outcome_name(e.outcome)) +
                    ",\"port\":" + json_number(e.port) + ",\"mark\":" + json_number(e.tproxy_mark) +
                    ",\"zone\":" + std::to_string(e.zone) + ",\"reason\":" + json_string(e.reason) + ",\"trail\":[";
  bool first = true;
  for (const auto& step : e.trail) {
    if (!first) out += ',';
    first = false;
    out += "{\"family\":" + json_string(step.family) + ",\"table\":" + json_string(step.table) +
           ",\"chain\":" + json_string(step.chain) + ",\"index\":" + std::to_string(step.index) +
           ",\"rule\":" + json_string(step.rule) + ",\"modelled\":" + (step.modelled ? "true" : "false") + "}";
  }
  return out + "]}";
}

}  // namespace istio_iptables
