// The planner: Istio's rule-generation algorithm, step by step.
//
// Rule order is the whole difficulty of this job, and the hardest thing to review, so this file
// follows Istio's own order (tools/istio-iptables/pkg/capture/run.go) one step at a time, each
// step named after its entry in docs/planner.md (R1 ... R19) and commented with why it sits
// where it sits. The output is Istio's *list of operations* (append, or insert at a position),
// not the final chains: iptables-restore text is that list, and rendering it in Istio's order is
// what makes our text comparable with Istio's golden files line for line.
//
// Families. Most rules are added to both lists ("both"); a few exist only for one family or carry
// a family-specific address ("versioned": 127.0.0.6 vs ::6, the IPv4 loopback CIDR vs ::1/128).
// The IPv6 list is only kept when the pod has IPv6, exactly as Istio skips it.
//
// Layouts. Istio 1.25 reworked DNS capture (ISTIO_OUTPUT_DNS, one protocol-agnostic OUTPUT jump,
// UDP also exempted by -o). The 1.23/1.24 layout, the one of the reference listing, differs in
// four places, each marked "1.24:" below: the TCP-only and UDP OUTPUT jumps, TCP-only -o
// exemptions, the TCP DNS redirect inline in ISTIO_OUTPUT with the UDP DNS rules appended after
// everything else, and DNS capture staying on (multiport variants, UDP RETURNs) even when no
// nameserver is known. 1.23 differs from 1.24 only in --drop-invalid (a DROP in mangle
// PREROUTING itself) and in how the trace twins spell their prefix; 1.22 differs from 1.23 in
// where the UDP DNS rules sit (nat and raw OUTPUT themselves) and in a final RETURN after CIDR
// includes. docs/releases.md lists every difference with its source.
//
// Trace logging (1.22-1.24). Istio tags some rules with a command identifier; with
// --iptables-trace-logging each tagged rule gets an NFLOG twin with the same matches, appended
// just before it or inserted just after it at the same position (so it lands in front). The
// tags are the last argument of the builder calls below.
#include "core/planner.h"

#include <cstdint>
#include <optional>
#include <utility>

#include "core/constants.h"

namespace istio_iptables {
namespace {

// ---- small constructors, so each rule below reads like Istio's text ----------------------------

Match proto(Protocol p) { return ProtocolMatch{p, false}; }
Match tcp() { return proto(Protocol::Tcp); }
Match udp() { return proto(Protocol::Udp); }
Match dst(const Prefix& p, bool neg = false) { return AddressMatch{Direction::Destination, p, neg}; }
Match src(const Prefix& p, bool neg = false) { return AddressMatch{Direction::Source, p, neg}; }
Match in_iface(const std::string& n) { return InterfaceMatch{true, n, false}; }
Match out_iface(const std::string& n) { return InterfaceMatch{false, n, false}; }
Match dport(Protocol p, std::uint16_t port, bool neg = false) {
  return PortMatch{p, Direction::Destination, port, neg};
}
Match sport(Protocol p, std::uint16_t port) { return PortMatch{p, Direction::Source, port, false}; }
Match uid_owner(std::uint32_t uid, bool neg = false) { return OwnerMatch{false, OwnerId{uid, {}}, neg}; }
Match gid_owner(const OwnerId& gid, bool neg = false) { return OwnerMatch{true, gid, neg}; }
Match gid_owner(std::uint32_t gid, bool neg = false) { return gid_owner(OwnerId{gid, {}}, neg); }
Match ctstate(std::vector<ConntrackState> s) { return ConntrackMatch{std::move(s), false}; }
Match mark(std::uint32_t m, bool neg = false) { return MarkMatch{m, neg}; }

Target jump(const char* chain) { return JumpTarget{chain}; }
Target ret() { return VerdictTarget{Verdict::Return}; }

Prefix v4_prefix(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, unsigned len) {
  Address addr{Family::V4, {a, b, c, d}};
  return Prefix{addr, len};
}
Prefix v6_prefix(std::uint8_t last, unsigned len) {
  Address addr{Family::V6, {}};
  addr.bytes[15] = last;
  return Prefix{addr, len};
}

// ---- the builder: Istio's AppendRule / InsertRule / AppendVersionedRule ------------------------

// Istio's command identifiers (tools/istio-iptables/pkg/log/command.go): with
// --iptables-trace-logging (1.22-1.24), every rule tagged with one gets an NFLOG twin carrying
// the identifier as its prefix. Untagged rules (nullptr) get none.
namespace trace {
constexpr const char* kJumpInbound = "JumpInbound";
constexpr const char* kJumpOutbound = "JumpOutbound";
constexpr const char* kExcludeInboundPort = "ExcludeInboundPort";
constexpr const char* kIncludeInboundPort = "IncludeInboundPort";
constexpr const char* kInboundCapture = "InboundCapture";
constexpr const char* kKubevirt = "KubevirtCommand";
constexpr const char* kExcludeInterface = "ExcludeInterfaceCommand";
constexpr std::uint16_t kGroup = 1337;  // "a random constant to be matched on the log reader side"
constexpr std::uint32_t kSize = 20;     // enough for the IPv4 header
}  // namespace trace

/// How the trace twins are written: not at all, or with the prefix bare (1.24) or Go-quoted in
/// the text (1.22/1.23; iptables-restore strips the quotes, so the kernel holds the same prefix).
struct TraceLogging {
  bool enabled = false;
  bool quoted = false;
};

class Builder {
 public:
  Builder(bool ipv6, std::size_t expected_rules, TraceLogging trace) : ipv6_(ipv6), trace_(trace) {
    v4_.family = Family::V4;
    v6_.family = Family::V6;
    // Plans with thousands of excluded CIDRs or ports: grow once, not by doubling and moving.
    v4_.ops.reserve(expected_rules);
    if (ipv6_) v6_.ops.reserve(expected_rules);
  }

  /// Appends to both families. `tag`: Istio's command identifier, for the trace twin.
  void append(Table t, const std::string& chain, std::vector<Match> m, Target target, const char* tag = nullptr) {
    Rule r{std::move(m), std::move(target)};
    append_to(v4_, t, chain, r, tag);
    if (ipv6_) append_to(v6_, t, chain, r, tag);
  }
  void append_v4(Table t, const std::string& chain, std::vector<Match> m, Target target, const char* tag = nullptr) {
    append_to(v4_, t, chain, Rule{std::move(m), std::move(target)}, tag);
  }
  void append_v6(Table t, const std::string& chain, std::vector<Match> m, Target target, const char* tag = nullptr) {
    if (ipv6_) append_to(v6_, t, chain, Rule{std::move(m), std::move(target)}, tag);
  }
  /// Appends to one family's list.
  void append_family(Family f, Table t, const std::string& chain, std::vector<Match> m, Target target,
                     const char* tag = nullptr) {
    if (f == Family::V4)
      append_v4(t, chain, std::move(m), std::move(target), tag);
    else
      append_v6(t, chain, std::move(m), std::move(target), tag);
  }
  /// Istio's AppendVersionedRule: the same rule for each family with that family's value.
  template <typename Make>
  void versioned(Table t, const std::string& chain, Make make, const Target& target) {
    append_v4(t, chain, make(Family::V4), target);
    append_v6(t, chain, make(Family::V6), target);
  }
  void insert(Table t, const std::string& chain, unsigned pos, std::vector<Match> m, Target target,
              const char* tag = nullptr) {
    Rule r{std::move(m), std::move(target)};
    insert_to(v4_, t, chain, pos, r, tag);
    if (ipv6_) insert_to(v6_, t, chain, pos, r, tag);
  }
  void insert_family(Family f, Table t, const std::string& chain, unsigned pos, std::vector<Match> m, Target target,
                     const char* tag = nullptr) {
    if (f == Family::V4)
      insert_to(v4_, t, chain, pos, Rule{std::move(m), std::move(target)}, tag);
    else if (ipv6_)
      insert_to(v6_, t, chain, pos, Rule{std::move(m), std::move(target)}, tag);
  }

  Plan finish(bool dns_active) && {
    Plan p;
    p.v4 = std::move(v4_);
    if (ipv6_) p.v6 = std::move(v6_);
    p.dns_capture_active = dns_active;
    return p;
  }

 private:
  // The twin keeps the rule's matches and logs instead (builder/iptables_builder_impl.go).
  std::optional<Rule> twin(const Rule& r, const char* tag) const {
    if (!trace_.enabled || tag == nullptr) return std::nullopt;
    return Rule{r.matches, NflogTarget{tag, trace::kGroup, trace::kSize, trace_.quoted}};
  }
  // Appends: the twin goes immediately before the rule.
  void append_to(Ruleset& rs, Table t, const std::string& chain, const Rule& r, const char* tag) const {
    if (auto tw = twin(r, tag)) rs.ops.push_back(RuleOp{t, chain, std::nullopt, std::move(*tw)});
    rs.ops.push_back(RuleOp{t, chain, std::nullopt, r});
  }
  // Inserts: the twin is inserted at the same position after the rule, so it lands in front.
  void insert_to(Ruleset& rs, Table t, const std::string& chain, unsigned pos, const Rule& r, const char* tag) const {
    rs.ops.push_back(RuleOp{t, chain, pos, r});
    if (auto tw = twin(r, tag)) rs.ops.push_back(RuleOp{t, chain, pos, std::move(*tw)});
  }

  bool ipv6_;
  TraceLogging trace_;
  Ruleset v4_, v6_;
};

// ---- the algorithm ---------------------------------------------------------------------------

// The trace twins exist in 1.22-1.24 only: 1.25 still accepts the flag but generates none.
TraceLogging trace_logging(const Config& c) {
  TraceLogging t;
  t.enabled = c.trace_logging && is_pre_1_25(c.layout);
  t.quoted = c.layout == Layout::V1_22 || c.layout == Layout::V1_23;
  return t;
}

// An upper bound of one family's rule count, to size the lists once (trace twins at most
// double it).
std::size_t expected_rules(const Config& c) {
  const std::size_t nics = c.kube_virt_interfaces.size();
  return (c.trace_logging ? 2 : 1) *
         (64 + 4 * c.exclude_interfaces.size() + nics + c.outbound_exclude.size() +
          2 * c.outbound_ports_exclude.size() + c.outbound_ports_include.size() +
          (1 + nics) * (c.outbound_include.prefixes.size() + 1) +
          3 * (c.inbound_ports.ports.size() + c.inbound_ports_exclude.size()) +
          8 * (c.proxy_uids.size() + c.proxy_gids.size()) + 2 * (c.owner_groups.exclude.size() + 1) +
          6 * (c.dns_servers_v4.size() + c.dns_servers_v6.size()));
}

class Planner {
 public:
  explicit Planner(const Config& c) : c_(c), b_(c.enable_ipv6, expected_rules(c), trace_logging(c)) {}

  Plan run() && {
    const bool legacy = is_pre_1_25(c_.layout);
    // P3: with nothing to redirect DNS to, the current layout drops DNS capture entirely (and with
    // it the multiport/!53 variants below); 1.24 kept every DNS rule that needs no server.
    redirect_dns_ = c_.redirect_dns;
    if (!legacy && redirect_dns_ && !c_.capture_all_dns && c_.dns_servers_v4.empty() && c_.dns_servers_v6.empty())
      redirect_dns_ = false;
    // R11b/R12b are dropped for both families when either include list names a loopback prefix.
    for (const auto& p : c_.outbound_include.prefixes)
      if (is_loopback(p.address)) include_has_loopback_ = true;

    exclude_interfaces();            // R1
    kube_virt_returns();             // R2
    drop_invalid();                  // R3
    fixed_chains();                  // R4-R6
    inbound();                       // R7
    output_jump(legacy);             // R8
    outbound_port_excludes(legacy);  // R9
    // R10: Envoy's inbound passthrough connects from 127.0.0.6 (::6) over lo: never capture it.
    b_.versioned(
        Table::Nat, chains::kOutput,
        [&](Family f) {
          return std::vector<Match>{out_iface("lo"),
                                    src(f == Family::V4 ? v4_prefix(127, 0, 0, 6, 32) : v6_prefix(6, 128))};
        },
        ret());
    proxy_owner_rules(false);  // R11 (UIDs)
    proxy_owner_rules(true);   // R12 (GIDs)
    owner_groups({});          // R13
    if (redirect_dns_) {       // R14
      if (legacy)
        dns_tcp_redirects_1_24();
      else
        dns_current();
    }
    // R15: traffic to the loopback CIDR (Envoy-aware apps, container to container) is left alone.
    b_.versioned(
        Table::Nat, chains::kOutput, [&](Family f) { return std::vector<Match>{dst(loopback(f))}; }, ret());
    // R16: excluded CIDRs return before any include can capture them; IPv4 first, then IPv6.
    for (const auto& p : c_.outbound_exclude)
      if (p.address.family == Family::V4) b_.append_v4(Table::Nat, chains::kOutput, {dst(p)}, ret());
    for (const auto& p : c_.outbound_exclude)
      if (p.address.family == Family::V6) b_.append_v6(Table::Nat, chains::kOutput, {dst(p)}, ret());
    // R17: ports always captured, whatever the destination.
    for (auto port : c_.outbound_ports_include)
      b_.append(Table::Nat, chains::kOutput, {tcp(), dport(Protocol::Tcp, port)}, jump(chains::kRedirect));
    outbound_includes(Family::V4);  // R18
    outbound_includes(Family::V6);
    if (legacy && redirect_dns_) dns_udp_1_24();             // 1.22-1.24: UDP DNS rules come after everything else
    if (c_.mode == InterceptionMode::Tproxy) tproxy_tail();  // R19
    return std::move(b_).finish(redirect_dns_);
  }

 private:
  Prefix loopback(Family f) const { return f == Family::V4 ? c_.ipv4_loopback_cidr : v6_prefix(1, 128); }
  bool tproxy() const { return c_.mode == InterceptionMode::Tproxy; }

  // R1: nothing is captured on an excluded NIC. Appended, so kube-virt and include inserts
  // (at position 1) end up before them in PREROUTING.
  void exclude_interfaces() {
    for (const auto& nic : c_.exclude_interfaces) {
      b_.append(Table::Nat, "PREROUTING", {in_iface(nic)}, ret(), trace::kExcludeInterface);
      b_.append(Table::Nat, "OUTPUT", {out_iface(nic)}, ret(), trace::kExcludeInterface);
    }
    if (tproxy())
      for (const auto& nic : c_.exclude_interfaces) {
        b_.append(Table::Mangle, "PREROUTING", {in_iface(nic)}, ret(), trace::kExcludeInterface);
        b_.append(Table::Mangle, "OUTPUT", {out_iface(nic)}, ret(), trace::kExcludeInterface);
      }
  }

  // R2: inbound traffic from a kube-virt interface is not captured as inbound. Inserted at 1, so
  // the last one listed ends up first.
  void kube_virt_returns() {
    for (const auto& nic : c_.kube_virt_interfaces)
      b_.insert(Table::Nat, "PREROUTING", 1, {in_iface(nic)}, ret(), trace::kKubevirt);
  }

  // R3: drop out-of-window packets instead of letting them reset connections (ISTIO_DROP since
  // 1.24, so that no non-jump rule of ours sits in a built-in chain; 1.22/1.23 dropped in
  // PREROUTING itself).
  void drop_invalid() {
    if (!c_.drop_invalid) return;
    if (c_.layout == Layout::V1_22 || c_.layout == Layout::V1_23) {
      b_.append(Table::Mangle, "PREROUTING", {ctstate({ConntrackState::Invalid})}, VerdictTarget{Verdict::Drop});
      return;
    }
    b_.append(Table::Mangle, "PREROUTING", {ctstate({ConntrackState::Invalid})}, jump(chains::kDrop));
    b_.append(Table::Mangle, chains::kDrop, {}, VerdictTarget{Verdict::Drop});
  }

  // R4-R6: the tunnel port always bypasses inbound capture; the two redirect chains.
  void fixed_chains() {
    b_.append(Table::Nat, chains::kInbound, {tcp(), dport(Protocol::Tcp, c_.inbound_tunnel_port)}, ret());
    b_.append(Table::Nat, chains::kRedirect, {tcp()}, RedirectTarget{c_.proxy_port, false});
    b_.append(Table::Nat, chains::kInRedirect, {tcp()}, RedirectTarget{c_.inbound_capture_port, false},
              trace::kInboundCapture);
  }

  // R7: inbound capture, in nat (REDIRECT) or mangle (TPROXY); only when -b names ports.
  void inbound() {
    if (!c_.inbound_ports.wildcard && c_.inbound_ports.ports.empty()) return;
    Table table = Table::Nat;
    if (tproxy()) {
      // Marked packets are routed to lo by the fwmark rule (table -r) and accepted there.
      b_.append(Table::Mangle, chains::kDivert, {}, MarkTarget{c_.tproxy_mark});
      b_.append(Table::Mangle, chains::kDivert, {}, VerdictTarget{Verdict::Accept});
      b_.versioned(
          Table::Mangle, chains::kTproxy,
          [&](Family f) {
            return std::vector<Match>{dst(loopback(f), true), tcp()};
          },
          TproxyTarget{c_.inbound_capture_port, c_.tproxy_mark, 0xffffffffU});
      table = Table::Mangle;
    }
    b_.append(table, "PREROUTING", {tcp()}, jump(chains::kInbound), trace::kJumpInbound);
    const std::vector<ConntrackState> established = {ConntrackState::Related, ConntrackState::Established};
    if (c_.inbound_ports.wildcard) {
      for (auto port : c_.inbound_ports_exclude)
        b_.append(table, chains::kInbound, {tcp(), dport(Protocol::Tcp, port)}, ret(), trace::kExcludeInboundPort);
      if (tproxy()) {
        // Packets of established connections go straight to the socket; new ones to TPROXY.
        b_.append(Table::Mangle, chains::kInbound, {tcp(), ctstate(established)}, jump(chains::kDivert));
        b_.append(Table::Mangle, chains::kInbound, {tcp()}, jump(chains::kTproxy));
      } else {
        b_.append(Table::Nat, chains::kInbound, {tcp()}, jump(chains::kInRedirect));
      }
      return;
    }
    for (auto port : c_.inbound_ports.ports) {
      if (tproxy()) {
        b_.append(Table::Mangle, chains::kInbound, {tcp(), dport(Protocol::Tcp, port), ctstate(established)},
                  jump(chains::kDivert), trace::kIncludeInboundPort);
        b_.append(Table::Mangle, chains::kInbound, {tcp(), dport(Protocol::Tcp, port)}, jump(chains::kTproxy),
                  trace::kIncludeInboundPort);
      } else {
        b_.append(Table::Nat, chains::kInbound, {tcp(), dport(Protocol::Tcp, port)}, jump(chains::kInRedirect),
                  trace::kIncludeInboundPort);
      }
    }
  }

  // R8: all outbound traffic enters ISTIO_OUTPUT (1.22-1.24: TCP only here; UDP joins with DNS).
  void output_jump(bool legacy) {
    if (legacy)
      b_.append(Table::Nat, "OUTPUT", {tcp()}, jump(chains::kOutput), trace::kJumpOutbound);
    else
      b_.append(Table::Nat, "OUTPUT", {}, jump(chains::kOutput));
  }

  // R9: excluded outbound ports, before anything can redirect them (1.24: TCP only).
  void outbound_port_excludes(bool legacy) {
    for (auto port : c_.outbound_ports_exclude) {
      b_.append(Table::Nat, chains::kOutput, {tcp(), dport(Protocol::Tcp, port)}, ret());
      if (!legacy) b_.append(Table::Nat, chains::kOutput, {udp(), dport(Protocol::Udp, port)}, ret());
    }
  }

  // R11/R12, per proxy UID then per proxy GID:
  //  (a) the proxy calling a non-loopback address over lo (an app's own pod IP, reached through a
  //      service VIP) goes to inbound capture, so app -> Envoy -> Envoy inbound -> app works. With
  //      DNS capture the UID rule also spares port 53 (the agent's own TCP DNS); the GID rule never
  //      had that multiport form (a faithful Istio quirk).
  //  (b) anybody else's traffic over lo is left alone (app -> itself by pod IP), except TCP DNS
  //      when DNS capture is on, so a resolver on localhost is still captured. Dropped when an
  //      include CIDR is loopback: the user asked for loopback to be captured.
  //  (c) everything else the proxy sends is never captured (protocol-independent).
  void proxy_owner_rules(bool group) {
    const auto& ids = group ? c_.proxy_gids : c_.proxy_uids;
    for (auto id : ids) {
      auto owner = [&](bool neg) { return group ? gid_owner(id, neg) : uid_owner(id, neg); };
      b_.versioned(
          Table::Nat, chains::kOutput,
          [&](Family f) {
            if (redirect_dns_ && !group)
              return std::vector<Match>{out_iface("lo"), dst(loopback(f), true), tcp(),
                                        MultiportMatch{{ports::kDns, c_.inbound_tunnel_port}, true}, owner(false)};
            return std::vector<Match>{out_iface("lo"), dst(loopback(f), true), tcp(),
                                      dport(Protocol::Tcp, c_.inbound_tunnel_port, true), owner(false)};
          },
          jump(chains::kInRedirect));
      if (!include_has_loopback_) {
        if (redirect_dns_)
          b_.append(Table::Nat, chains::kOutput,
                    {out_iface("lo"), tcp(), dport(Protocol::Tcp, ports::kDns, true), owner(true)}, ret());
        else
          b_.append(Table::Nat, chains::kOutput, {out_iface("lo"), owner(true)}, ret());
      }
      b_.append(Table::Nat, chains::kOutput, {owner(false)}, ret());
    }
  }

  // R13: owner groups. Include "*": each excluded group returns. Otherwise one rule returns
  // every packet whose group is none of the included ones (an empty include list returns all).
  // `prefix` carries 1.22-1.24's "-p udp --dport 53" for the UDP DNS copy of this filter, and
  // `chain` 1.22's nat OUTPUT for it.
  void owner_groups(const std::vector<Match>& prefix, const char* chain = chains::kOutput) {
    const auto& g = c_.owner_groups;
    if (g.include_all) {
      for (const auto& id : g.exclude) {
        auto m = prefix;
        m.push_back(gid_owner(id));
        b_.append(Table::Nat, chain, std::move(m), ret());
      }
      return;
    }
    auto m = prefix;
    for (const auto& id : g.include) m.push_back(gid_owner(id, true));
    b_.append(Table::Nat, chain, std::move(m), ret());
  }

  // R14, current layout (SetupDNSRedir + addDNSConntrackZones). DNS to the nameservers (or any
  // DNS with capture-all) goes to the agent on 15053, through ISTIO_OUTPUT_DNS, entered after the
  // proxy's own rules (so the agent's upstream queries are not captured) and before the loopback
  // and CIDR returns (so DNS is captured even to an excluded CIDR). Raw-table conntrack zones keep
  // app<->agent (zone 2) and agent<->resolver (zone 1) UDP flows apart.
  void dns_current() {
    const bool all = c_.capture_all_dns;
    const auto& s4 = c_.dns_servers_v4;
    const auto& s6 = c_.dns_servers_v6;
    b_.append(Table::Raw, "OUTPUT", {}, jump(chains::kOutputDns));
    if (all || !s4.empty()) b_.append_v4(Table::Nat, chains::kOutput, {}, jump(chains::kOutputDns));
    if (all || !s6.empty()) b_.append_v6(Table::Nat, chains::kOutput, {}, jump(chains::kOutputDns));
    for (Protocol p : {Protocol::Tcp, Protocol::Udp}) {
      RedirectTarget to{ports::kAgentDns, p == Protocol::Udp};
      if (all) {
        b_.append(Table::Nat, chains::kOutputDns, {proto(p), dport(p, ports::kDns)}, to);
        continue;
      }
      for (const auto& s : s4)
        b_.append_v4(Table::Nat, chains::kOutputDns, {proto(p), dport(p, ports::kDns), dst(host_prefix(s))}, to);
      for (const auto& s : s6)
        b_.append_v6(Table::Nat, chains::kOutputDns, {proto(p), dport(p, ports::kDns), dst(host_prefix(s))}, to);
    }
    conntrack_zones(chains::kOutputDns, /*legacy=*/false);
  }

  // Zones: the proxy's queries to resolvers and its answers to apps, by owner; then app queries
  // to each nameserver (zone 2) and the resolvers' answers (zone 1), entered from raw PREROUTING.
  void conntrack_zones(const char* output_chain, bool legacy) {
    for (auto uid : c_.proxy_uids) {
      b_.append(Table::Raw, output_chain, {udp(), dport(Protocol::Udp, ports::kDns), uid_owner(uid)},
                CtTarget{zones::kUpstream});
      b_.append(Table::Raw, output_chain, {udp(), sport(Protocol::Udp, ports::kAgentDns), uid_owner(uid)},
                CtTarget{zones::kApplication});
    }
    for (auto gid : c_.proxy_gids) {
      b_.append(Table::Raw, output_chain, {udp(), dport(Protocol::Udp, ports::kDns), gid_owner(gid)},
                CtTarget{zones::kUpstream});
      b_.append(Table::Raw, output_chain, {udp(), sport(Protocol::Udp, ports::kAgentDns), gid_owner(gid)},
                CtTarget{zones::kApplication});
    }
    // 1.24 put the zone-1 rules straight into raw PREROUTING; later releases use ISTIO_INBOUND.
    const char* inbound_chain = legacy ? "PREROUTING" : chains::kInbound;
    if (c_.capture_all_dns) {
      if (!legacy) b_.append(Table::Raw, "PREROUTING", {}, jump(chains::kInbound));
      b_.append(Table::Raw, output_chain, {udp(), dport(Protocol::Udp, ports::kDns)}, CtTarget{zones::kApplication});
      b_.append(Table::Raw, inbound_chain, {udp(), sport(Protocol::Udp, ports::kDns)}, CtTarget{zones::kUpstream});
      return;
    }
    for (Family f : {Family::V4, Family::V6}) {
      const auto& servers = f == Family::V4 ? c_.dns_servers_v4 : c_.dns_servers_v6;
      if (!legacy && !servers.empty()) b_.append_family(f, Table::Raw, "PREROUTING", {}, jump(chains::kInbound));
      for (const auto& s : servers) {
        b_.append_family(f, Table::Raw, output_chain, {udp(), dport(Protocol::Udp, ports::kDns), dst(host_prefix(s))},
                         CtTarget{zones::kApplication});
        b_.append_family(f, Table::Raw, inbound_chain, {udp(), sport(Protocol::Udp, ports::kDns), src(host_prefix(s))},
                         CtTarget{zones::kUpstream});
      }
    }
  }

  // R14, 1.24 layout, TCP part: the TCP DNS redirect sits inline in ISTIO_OUTPUT, where the
  // current layout's ISTIO_OUTPUT_DNS jump sits.
  void dns_tcp_redirects_1_24() {
    RedirectTarget to{ports::kAgentDns, false};
    if (c_.capture_all_dns) {
      b_.append(Table::Nat, chains::kOutput, {tcp(), dport(Protocol::Tcp, ports::kDns)}, to);
      return;
    }
    for (const auto& s : c_.dns_servers_v4)
      b_.append_v4(Table::Nat, chains::kOutput, {tcp(), dport(Protocol::Tcp, ports::kDns), dst(host_prefix(s))}, to);
    for (const auto& s : c_.dns_servers_v6)
      b_.append_v6(Table::Nat, chains::kOutput, {tcp(), dport(Protocol::Tcp, ports::kDns), dst(host_prefix(s))}, to);
  }

  // 1.23/1.24 layout, UDP part, appended after the outbound includes: UDP enters ISTIO_OUTPUT
  // through its own OUTPUT jump, falls through every TCP-only rule, and meets the proxy's and the
  // owner groups' DNS returns, then the redirect. Raw OUTPUT gets a UDP jump to ISTIO_OUTPUT.
  // 1.22 (HandleDNSUDP with chain OUTPUT) put the same rules into nat and raw OUTPUT themselves,
  // with no UDP jump and no raw ISTIO_OUTPUT chain.
  void dns_udp_1_24() {
    const bool in_builtin = c_.layout == Layout::V1_22;
    const char* nat_chain = in_builtin ? "OUTPUT" : chains::kOutput;
    // Istio appends both UDP jumps first (nat, then raw): the order across tables shows in
    // 1.22/1.23's one-command-a-line output (--restore-format=false, DRY_RUN_FILE_PATH).
    if (!in_builtin) {
      b_.append(Table::Nat, "OUTPUT", {udp()}, jump(chains::kOutput), trace::kJumpOutbound);
      b_.append(Table::Raw, "OUTPUT", {udp()}, jump(chains::kOutput), trace::kJumpOutbound);
    }
    const std::vector<Match> dns = {udp(), dport(Protocol::Udp, ports::kDns)};
    for (auto uid : c_.proxy_uids)
      b_.append(Table::Nat, nat_chain, {udp(), dport(Protocol::Udp, ports::kDns), uid_owner(uid)}, ret());
    for (auto gid : c_.proxy_gids)
      b_.append(Table::Nat, nat_chain, {udp(), dport(Protocol::Udp, ports::kDns), gid_owner(gid)}, ret());
    owner_groups(dns, nat_chain);
    RedirectTarget to{ports::kAgentDns, true};
    if (c_.capture_all_dns) {
      b_.append(Table::Nat, nat_chain, dns, to);
    } else {
      for (const auto& s : c_.dns_servers_v4)
        b_.append_v4(Table::Nat, nat_chain, {udp(), dport(Protocol::Udp, ports::kDns), dst(host_prefix(s))}, to);
      for (const auto& s : c_.dns_servers_v6)
        b_.append_v6(Table::Nat, nat_chain, {udp(), dport(Protocol::Udp, ports::kDns), dst(host_prefix(s))}, to);
    }
    conntrack_zones(in_builtin ? "OUTPUT" : chains::kOutput, /*legacy=*/true);
  }

  // R18: outbound capture by destination. Wildcard: everything left goes to Envoy, and so does
  // traffic arriving on a kube-virt interface. CIDRs: each one, for outbound and for kube-virt
  // traffic. Without -i nothing is captured outbound by address.
  void outbound_includes(Family f) {
    const auto& inc = c_.outbound_include;
    if (inc.wildcard) {
      b_.append_family(f, Table::Nat, chains::kOutput, {}, jump(chains::kRedirect));
      for (const auto& nic : c_.kube_virt_interfaces)
        b_.insert_family(f, Table::Nat, "PREROUTING", 1, {in_iface(nic)}, jump(chains::kRedirect), trace::kKubevirt);
      return;
    }
    bool any = false;
    for (const auto& p : inc.prefixes) {
      if (p.address.family != f) continue;
      any = true;
      for (const auto& nic : c_.kube_virt_interfaces)
        b_.insert_family(f, Table::Nat, "PREROUTING", 1, {in_iface(nic), dst(p)}, jump(chains::kRedirect),
                         trace::kKubevirt);
      b_.append_family(f, Table::Nat, chains::kOutput, {dst(p)}, jump(chains::kRedirect));
    }
    // 1.22: "all other traffic is not redirected", said once more at the chain's end.
    if (any && c_.layout == Layout::V1_22) b_.append_family(f, Table::Nat, chains::kOutput, {}, ret());
  }

  // R19: TPROXY's marks. The mark Envoy sets (original_src) is saved on the connection and
  // restored on the app's replies so they route back through lo; Envoy's own connections to the
  // app by pod IP get mark 1338, which the inserted ISTIO_INBOUND rules use to tell them apart.
  // Emitted in TPROXY mode even when -b is empty (nothing then jumps to ISTIO_INBOUND).
  void tproxy_tail() {
    const std::uint32_t m = c_.tproxy_mark;
    b_.append(Table::Mangle, "PREROUTING", {tcp(), mark(m)}, ConnmarkTarget{false});
    b_.append(Table::Mangle, "OUTPUT", {tcp(), out_iface("lo"), mark(m)}, ret());
    for (auto uid : c_.proxy_uids)
      b_.versioned(
          Table::Mangle, "OUTPUT",
          [&](Family f) {
            return std::vector<Match>{dst(loopback(f), true), tcp(), out_iface("lo"), uid_owner(uid)};
          },
          MarkTarget{marks::kOutbound});
    for (auto gid : c_.proxy_gids)
      b_.versioned(
          Table::Mangle, "OUTPUT",
          [&](Family f) {
            return std::vector<Match>{dst(loopback(f), true), tcp(), out_iface("lo"), gid_owner(gid)};
          },
          MarkTarget{marks::kOutbound});
    b_.append(Table::Mangle, "OUTPUT", {tcp(), ConnmarkMatch{m, false}}, ConnmarkTarget{true});
    b_.insert(Table::Mangle, chains::kInbound, 1, {tcp(), mark(m)}, ret());
    b_.insert_family(Family::V4, Table::Mangle, chains::kInbound, 2,
                     {tcp(), src(v4_prefix(127, 0, 0, 6, 32)), in_iface("lo")}, ret());
    b_.insert_family(Family::V6, Table::Mangle, chains::kInbound, 2, {tcp(), src(v6_prefix(6, 128)), in_iface("lo")},
                     ret());
    b_.insert(Table::Mangle, chains::kInbound, 3, {tcp(), in_iface("lo"), mark(marks::kOutbound, true)}, ret());
  }

  const Config& c_;
  Builder b_;
  bool redirect_dns_ = false;
  bool include_has_loopback_ = false;
};

}  // namespace

Plan plan(const Config& config) { return Planner(config).run(); }

}  // namespace istio_iptables
