// The nftables planner: Istio's native nftables rule generation, step by step.
//
// This file mirrors planner.cc (the iptables planner, R1-R19) one step at a time; each step is
// named after its step in docs/nftables.md (N1 ... N19, N-k being the nftables form of R-k of
// docs/planner.md), so the two files can be read side by side; Q1 ... Q15 are the quirks listed
// there. What differs is nftables' shape, not the order:
//
// * One inet table serves both families. A rule without an `ip`/`ip6` match ("neutral") is
//   added once and matches IPv4 and IPv6 packets alike, even when the pod has no IPv6 (Q10). A
//   "versioned" rule is an IPv4 rule followed by its IPv6 twin, the twin only when the pod has
//   IPv6; the two share one chain.
// * Istio keeps one ordered list per table (nat, mangle, raw), not per chain, and writes the
//   tables one after the other (Q3): the raw DNS rules generated in the middle of the nat rules
//   (N14) are written after all of them.
// * Each entry is an append or an insert at a 0-based index (iptables' -I n is index n-1). When
//   the transaction is assembled an insert becomes an append if its chain has no rule yet in this
//   transaction, or holds no more rules than the index (Q4, Istio's fix for #58135): inserting
//   there would be an error. An insert goes before the rule then at its index, so twins inserted
//   at one index end up IPv6 first, and the next insert lands between them (Q5).
// * A chain is declared only when it has a rule; the chain order of each table is fixed. One
//   deliberate difference from Istio: a chain that is only a jump target is declared too (empty).
//   Istio would write a jump to an undeclared chain when an IPv4-only pod knows only IPv6
//   nameservers (Q6), and nft then refuses the whole transaction; an empty chain makes the jump
//   a no-op, which is what iptables mode does there (it emits no jump for that family).
//
// Every rule carries a `counter` at the position Istio's template puts it (Q12), and the
// spellings Istio uses (`skuid` without `meta` except in raw's zone rules, Q8; `meta l4proto tcp`
// only where Istio's templates have it, Q9) are kept in the model so the script is Istio's byte for
// byte (docs/nftables.md, "Rendering").
#include "core/nft_planner.h"

#include <array>
#include <cassert>
#include <map>
#include <utility>

#include "core/constants.h"

namespace istio_iptables::nft {
namespace {

// ---- small constructors, so each rule below reads like Istio's text ----------------------------

Statement l4proto_tcp() { return L4protoMatch{Protocol::Tcp}; }
Statement daddr(const Prefix& p, bool neg = false) { return AddressMatch{Direction::Destination, p, neg}; }
Statement saddr(const Prefix& p, bool neg = false) { return AddressMatch{Direction::Source, p, neg}; }
Statement iifname(const std::string& name) { return InterfaceMatch{true, name, false}; }
Statement oifname(const std::string& name) { return InterfaceMatch{false, name, false}; }
Statement dport(TransportHeader h, std::uint16_t port, bool neg = false) {
  return PortMatch{h, Direction::Destination, {port}, false, neg};
}
Statement tcp_dport(std::uint16_t port, bool neg = false) { return dport(TransportHeader::Tcp, port, neg); }
Statement udp_dport(std::uint16_t port) { return dport(TransportHeader::Udp, port); }
Statement udp_sport(std::uint16_t port) {
  return PortMatch{TransportHeader::Udp, Direction::Source, {port}, false, false};
}
Statement tcp_dport_not_in(std::vector<std::uint16_t> ports) {
  return PortMatch{TransportHeader::Tcp, Direction::Destination, std::move(ports), true, true};
}
Statement owner(bool group, const OwnerId& id, bool neg = false, bool meta = false) {
  return SocketOwnerMatch{group, id, neg, meta};
}
Statement skgid(const OwnerId& gid, bool neg = false) { return owner(true, gid, neg); }
Statement ct_state(std::vector<ConntrackState> states) { return CtStateMatch{std::move(states), false}; }
Statement mark(std::uint32_t m, bool neg = false) { return MarkMatch{m, neg}; }

Statement counter() { return CounterStatement{}; }
Statement ret() { return VerdictStatement{VerdictKind::Return, {}}; }
Statement accept() { return VerdictStatement{VerdictKind::Accept, {}}; }
Statement drop() { return VerdictStatement{VerdictKind::Drop, {}}; }
Statement jump(const char* chain) { return VerdictStatement{VerdictKind::Jump, chain}; }
Statement redirect(std::uint16_t port) { return RedirectStatement{port}; }
Statement meta_mark_set(std::uint32_t value) { return MetaMarkSet{MarkSource::Value, value}; }
Statement ct_zone_set(std::uint16_t zone) { return CtZoneSet{zone}; }

Prefix v4_prefix(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, unsigned len) {
  return Prefix{Address{Family::V4, {a, b, c, d}}, len};
}
Prefix v6_prefix(std::uint8_t last, unsigned len) {
  Address addr{Family::V6, {}};
  addr.bytes[15] = last;
  return Prefix{addr, len};
}

// P2's HasLoopBackIP: the address is loopback; with the Go current Istio is built with, an
// IPv4-mapped ::ffff:127.x.y.z counts too (docs/nftables.md, "Where we differ from Istio").
bool loopback_for_include(const Address& a) { return is_loopback(a) || (is_ipv4_mapped(a) && a.bytes[12] == 127); }

// ---- the builder: Istio's per-table lists ------------------------------------------------------

enum TableIndex : std::size_t { kNat = 0, kMangle = 1, kRaw = 2 };

// One entry of a table's list: a rule for a chain, appended or inserted at a 0-based index.
struct Entry {
  std::string chain;
  std::optional<unsigned> index;
  Rule rule;
};

class Builder {
 public:
  explicit Builder(bool ipv6) : ipv6_(ipv6) {}

  /// A family-neutral rule, or an IPv4-only one ("neutral" and "v4" in docs/nftables.md).
  void add(TableIndex t, const char* chain, std::vector<Statement> s) {
    lists_[t].push_back(Entry{chain, std::nullopt, Rule{std::move(s)}});
  }
  /// An IPv6 rule: only when the pod has IPv6.
  void add_v6(TableIndex t, const char* chain, std::vector<Statement> s) {
    if (ipv6_) add(t, chain, std::move(s));
  }
  /// A rule of the family of `f`: IPv6 ones only when the pod has IPv6.
  void add_family(Family f, TableIndex t, const char* chain, std::vector<Statement> s) {
    if (f == Family::V4 || ipv6_) add(t, chain, std::move(s));
  }
  /// Istio's versioned rules: the IPv4 rule, then its IPv6 twin (when the pod has IPv6).
  template <typename Make>
  void versioned(TableIndex t, const char* chain, Make make) {
    add(t, chain, make(Family::V4));
    add_v6(t, chain, make(Family::V6));
  }
  void insert(TableIndex t, const char* chain, unsigned index, std::vector<Statement> s) {
    lists_[t].push_back(Entry{chain, index, Rule{std::move(s)}});
  }
  void insert_family(Family f, TableIndex t, const char* chain, unsigned index, std::vector<Statement> s) {
    if (f == Family::V4 || ipv6_) insert(t, chain, index, std::move(s));
  }

  /// The transaction (executeCommands / addIstioTableRules): tables in the order nat, mangle,
  /// raw, each only when it has rules; its chains in the fixed order, each when it has a rule
  /// (or, unlike Istio, is jumped to); inserts that cannot be inserts become appends.
  NftRuleset finish() && {
    static const std::array<const char*, 3> names = {kNatTable, kMangleTable, kRawTable};
    NftRuleset rs;
    for (std::size_t t = 0; t < lists_.size(); ++t) {
      auto& list = lists_[t];
      if (list.empty()) continue;  // Q2: a table without rules is not touched at all
      Table table;
      table.name = names[t];
      std::map<std::string, bool> wanted;
      for (const auto& e : list) {
        wanted[e.chain] = true;
        if (auto target = verdict_chain(e.rule)) wanted[*target] = true;  // Q6, see the top of the file
      }
      for (const auto& chain : chain_order(static_cast<TableIndex>(t)))
        if (wanted.count(chain.name) != 0) table.chains.push_back(chain);
      assert(table.chains.size() == wanted.size());  // every chain used is one of Istio's
      std::map<std::string, unsigned> count;         // rules per chain, in this transaction
      table.ops.reserve(list.size());
      for (auto& e : list) {
        unsigned& c = count[e.chain];
        std::optional<unsigned> index = e.index;
        if (index && (c == 0 || *index >= c)) index.reset();  // Q4: would fail as an insert
        table.ops.push_back(RuleOp{std::move(e.chain), index, std::move(e.rule)});
        ++c;
      }
      rs.tables.push_back(std::move(table));
    }
    return rs;
  }

 private:
  // The chains of each table in Istio's declaration order (docs/nftables.md, "Tables and chains").
  static std::vector<Chain> chain_order(TableIndex t) {
    auto base = [](const char* name, ChainType type, Hook hook, int priority) {
      return Chain{name, BaseChain{type, hook, priority}};
    };
    auto regular = [](const char* name) { return Chain{name, std::nullopt}; };
    switch (t) {
    case kNat:
      return {base(kPrerouting, ChainType::Nat, Hook::Prerouting, kDstnatPriority),
              base(kOutput, ChainType::Nat, Hook::Output, kDstnatPriority),
              regular(kInboundChain),
              regular(kRedirectChain),
              regular(kInRedirectChain),
              regular(kOutputChain),
              regular(kOutputDnsChain)};
    case kMangle:
      return {base(kPrerouting, ChainType::Filter, Hook::Prerouting, kManglePriority),
              base(kOutput, ChainType::Route, Hook::Output, kManglePriority),
              regular(kDivertChain),
              regular(kTproxyChain),
              regular(kInboundChain),
              regular(kDropChain)};
    case kRaw:
      return {base(kPrerouting, ChainType::Filter, Hook::Prerouting, kRawPriority),
              base(kOutput, ChainType::Filter, Hook::Output, kRawPriority), regular(kInboundChain),
              regular(kOutputDnsChain)};
    }
    return {};
  }

  bool ipv6_;
  std::array<std::vector<Entry>, 3> lists_;
};

// ---- the algorithm ---------------------------------------------------------------------------

class Planner {
 public:
  explicit Planner(const Config& c) : c_(c), b_(c.enable_ipv6) {}

  NftRuleset run() && {
    // P3: with nothing to redirect DNS to, DNS capture is dropped (and with it the set and !53
    // variants of N11/N12). Both server lists count, whether or not the pod has IPv6.
    redirect_dns_ = c_.redirect_dns;
    if (redirect_dns_ && !c_.capture_all_dns && c_.dns_servers_v4.empty() && c_.dns_servers_v6.empty())
      redirect_dns_ = false;
    // N11b/N12b are dropped when either family's include list names a loopback prefix.
    for (const auto& p : c_.outbound_include.prefixes)
      if (loopback_for_include(p.address)) include_has_loopback_ = true;

    exclude_interfaces();  // N1
    kube_virt_returns();   // N2
    drop_invalid();        // N3
    fixed_chains();        // N4-N6
    inbound();             // N7
    // N8: all outbound traffic (any protocol, any family) enters istio-output.
    b_.add(kNat, kOutput, {counter(), jump(kOutputChain)});
    outbound_port_excludes();  // N9
    // N10: Envoy's inbound passthrough connects from 127.0.0.6 (::6) over lo: never capture it.
    b_.versioned(kNat, kOutputChain, [&](Family f) {
      return std::vector<Statement>{
          oifname("lo"), saddr(f == Family::V4 ? v4_prefix(127, 0, 0, 6, 32) : v6_prefix(6, 128)), counter(), ret()};
    });
    proxy_owner_rules(false);  // N11 (UIDs)
    proxy_owner_rules(true);   // N12 (GIDs)
    owner_groups();            // N13
    if (redirect_dns_) dns();  // N14
    // N15: traffic to the loopback CIDR is left alone.
    b_.versioned(kNat, kOutputChain, [&](Family f) {
      return std::vector<Statement>{daddr(loopback(f)), counter(), ret()};
    });
    // N16: excluded CIDRs return before any include can capture them; IPv4 first, then IPv6.
    for (Family f : {Family::V4, Family::V6})
      for (const auto& p : c_.outbound_exclude)
        if (p.address.family == f) b_.add_family(f, kNat, kOutputChain, {daddr(p), counter(), ret()});
    // N17: ports always captured, whatever the destination (tcp dport implies TCP).
    for (auto port : c_.outbound_ports_include)
      b_.add(kNat, kOutputChain, {tcp_dport(port), counter(), jump(kRedirectChain)});
    outbound_includes();                                     // N18
    if (c_.mode == InterceptionMode::Tproxy) tproxy_tail();  // N19
    return std::move(b_).finish();
  }

 private:
  Prefix loopback(Family f) const { return f == Family::V4 ? c_.ipv4_loopback_cidr : v6_prefix(1, 128); }
  bool tproxy() const { return c_.mode == InterceptionMode::Tproxy; }

  // N1: nothing is captured on an excluded NIC (per NIC: prerouting, then output); in TPROXY mode
  // mangle gets the same two rules, after all the nat ones.
  void exclude_interfaces() {
    for (const auto& nic : c_.exclude_interfaces) {
      b_.add(kNat, kPrerouting, {iifname(nic), counter(), ret()});
      b_.add(kNat, kOutput, {oifname(nic), counter(), ret()});
    }
    if (tproxy())
      for (const auto& nic : c_.exclude_interfaces) {
        b_.add(kMangle, kPrerouting, {iifname(nic), counter(), ret()});
        b_.add(kMangle, kOutput, {oifname(nic), counter(), ret()});
      }
  }

  // N2: inbound traffic from a kube-virt interface is not captured as inbound. Insert at index 0:
  // the first one becomes an append (empty chain), the later ones go in front of it (Q4).
  void kube_virt_returns() {
    for (const auto& nic : c_.kube_virt_interfaces) b_.insert(kNat, kPrerouting, 0, {iifname(nic), counter(), ret()});
  }

  // N3: drop invalid packets. Unlike iptables (R3, every protocol) Istio matches TCP only.
  void drop_invalid() {
    if (!c_.drop_invalid) return;
    b_.add(kMangle, kPrerouting, {l4proto_tcp(), ct_state({ConntrackState::Invalid}), counter(), jump(kDropChain)});
    b_.add(kMangle, kDropChain, {counter(), drop()});
  }

  // N4-N6: the tunnel port always bypasses inbound capture (Q13: even when nothing jumps to
  // istio-inbound); the two redirect chains.
  void fixed_chains() {
    b_.add(kNat, kInboundChain, {l4proto_tcp(), tcp_dport(c_.inbound_tunnel_port), counter(), ret()});
    b_.add(kNat, kRedirectChain, {l4proto_tcp(), counter(), redirect(c_.proxy_port)});
    b_.add(kNat, kInRedirectChain, {l4proto_tcp(), counter(), redirect(c_.inbound_capture_port)});
  }

  // N7: inbound capture, in nat (REDIRECT) or mangle (TPROXY); only when -b names ports.
  void inbound() {
    if (!c_.inbound_ports.wildcard && c_.inbound_ports.ports.empty()) return;
    TableIndex table = kNat;
    if (tproxy()) {
      // Marked packets are routed to lo by the fwmark rule (table -r) and accepted there.
      b_.add(kMangle, kDivertChain, {counter(), meta_mark_set(c_.tproxy_mark)});
      b_.add(kMangle, kDivertChain, {counter(), accept()});
      b_.versioned(kMangle, kTproxyChain, [&](Family f) {
        return std::vector<Statement>{l4proto_tcp(),
                                      daddr(loopback(f), true),
                                      TproxyStatement{f, c_.inbound_capture_port},
                                      meta_mark_set(c_.tproxy_mark),
                                      counter(),
                                      accept()};
      });
      table = kMangle;
    }
    b_.add(table, kPrerouting, {l4proto_tcp(), counter(), jump(kInboundChain)});
    const std::vector<ConntrackState> established = {ConntrackState::Related, ConntrackState::Established};
    if (c_.inbound_ports.wildcard) {
      for (auto port : c_.inbound_ports_exclude)
        b_.add(table, kInboundChain, {l4proto_tcp(), tcp_dport(port), counter(), ret()});
      if (tproxy()) {
        // Packets of established connections go straight to the socket; new ones to TPROXY.
        b_.add(kMangle, kInboundChain, {l4proto_tcp(), ct_state(established), counter(), jump(kDivertChain)});
        b_.add(kMangle, kInboundChain, {l4proto_tcp(), counter(), jump(kTproxyChain)});
      } else {
        b_.add(kNat, kInboundChain, {l4proto_tcp(), counter(), jump(kInRedirectChain)});
      }
      return;
    }
    for (auto port : c_.inbound_ports.ports) {  // -d is ignored with a port list
      if (tproxy()) {
        b_.add(kMangle, kInboundChain,
               {l4proto_tcp(), ct_state(established), tcp_dport(port), counter(), jump(kDivertChain)});
        b_.add(kMangle, kInboundChain, {l4proto_tcp(), tcp_dport(port), counter(), jump(kTproxyChain)});
      } else {
        b_.add(kNat, kInboundChain, {l4proto_tcp(), tcp_dport(port), counter(), jump(kInRedirectChain)});
      }
    }
  }

  // N9: excluded outbound ports, TCP then UDP, before anything can redirect them (no `meta
  // l4proto`: the port match implies the protocol).
  void outbound_port_excludes() {
    for (auto port : c_.outbound_ports_exclude) {
      b_.add(kNat, kOutputChain, {tcp_dport(port), counter(), ret()});
      b_.add(kNat, kOutputChain, {udp_dport(port), counter(), ret()});
    }
  }

  // N11/N12, per proxy UID then per proxy GID (R11/R12's reasons, see planner.cc):
  //  (a) the proxy calling a non-loopback address over lo goes to inbound capture; with DNS
  //      capture the UID rule also spares port 53 through the set `{ 53, <TUN> }`, the GID rule
  //      never does (Istio's quirk, as in iptables);
  //  (b) anybody else's traffic over lo is left alone, except TCP DNS when DNS capture is on;
  //      dropped when an include CIDR is loopback;
  //  (c) everything else the proxy sends is never captured (any protocol, both families).
  void proxy_owner_rules(bool group) {
    const auto& ids = group ? c_.proxy_gids : c_.proxy_uids;
    for (auto number : ids) {
      const OwnerId id{number, {}};
      b_.versioned(kNat, kOutputChain, [&](Family f) {
        Statement port = redirect_dns_ && !group ? tcp_dport_not_in({ports::kDns, c_.inbound_tunnel_port})
                                                 : tcp_dport(c_.inbound_tunnel_port, true);
        return std::vector<Statement>{oifname("lo"),    l4proto_tcp(), daddr(loopback(f), true), port,
                                      owner(group, id), counter(),     jump(kInRedirectChain)};
      });
      if (!include_has_loopback_) {
        if (redirect_dns_)
          b_.add(
              kNat, kOutputChain,
              {oifname("lo"), l4proto_tcp(), tcp_dport(ports::kDns, true), owner(group, id, true), counter(), ret()});
        else
          b_.add(kNat, kOutputChain, {oifname("lo"), owner(group, id, true), counter(), ret()});
      }
      b_.add(kNat, kOutputChain, {owner(group, id), counter(), ret()});
    }
  }

  // N13: owner groups. Include "*": each excluded group returns. Otherwise ONE rule returns every
  // packet whose group is none of the included ones (an empty include list returns everything).
  void owner_groups() {
    const auto& g = c_.owner_groups;
    if (g.include_all) {
      for (const auto& id : g.exclude) b_.add(kNat, kOutputChain, {skgid(id), counter(), ret()});
      return;
    }
    std::vector<Statement> s;
    for (const auto& id : g.include) s.push_back(skgid(id, true));
    s.push_back(counter());
    s.push_back(ret());
    b_.add(kNat, kOutputChain, std::move(s));
  }

  // N14: DNS to the nameservers (or any DNS with capture-all) goes to the agent on 15053 through
  // istio-output-dns, entered after the proxy's own rules and before the loopback and CIDR
  // returns. The raw table's conntrack zones keep app<->agent (zone 2) and agent<->resolver
  // (zone 1) flows apart. The two jumps (nat istio-output, raw prerouting) are single
  // family-neutral rules, where iptables has one per family with servers.
  void dns() {
    const bool all = c_.capture_all_dns;
    const auto& s4 = c_.dns_servers_v4;
    const auto& s6 = c_.dns_servers_v6;
    b_.add(kRaw, kOutput, {counter(), jump(kOutputDnsChain)});
    if (all || !s4.empty() || !s6.empty()) b_.add(kNat, kOutputChain, {counter(), jump(kOutputDnsChain)});
    // TCP: the capture-all rule has `meta l4proto tcp`, the per-server ones do not (Q9); the
    // address comes before the port here, after it in raw.
    if (all) {
      b_.add(kNat, kOutputDnsChain, {l4proto_tcp(), tcp_dport(ports::kDns), counter(), redirect(ports::kAgentDns)});
    } else {
      for (const auto& s : s4)
        b_.add(kNat, kOutputDnsChain,
               {daddr(host_prefix(s)), tcp_dport(ports::kDns), counter(), redirect(ports::kAgentDns)});
      for (const auto& s : s6)
        b_.add_v6(kNat, kOutputDnsChain,
                  {daddr(host_prefix(s)), tcp_dport(ports::kDns), counter(), redirect(ports::kAgentDns)});
    }
    if (all) {
      b_.add(kNat, kOutputDnsChain, {udp_dport(ports::kDns), counter(), redirect(ports::kAgentDns)});
    } else {
      for (const auto& s : s4)
        b_.add(kNat, kOutputDnsChain,
               {daddr(host_prefix(s)), udp_dport(ports::kDns), counter(), redirect(ports::kAgentDns)});
      for (const auto& s : s6)
        b_.add_v6(kNat, kOutputDnsChain,
                  {daddr(host_prefix(s)), udp_dport(ports::kDns), counter(), redirect(ports::kAgentDns)});
    }
    // Zones of the proxy's own DNS: its queries upstream (zone 1), its answers to apps (zone 2).
    // Written `meta skuid` / `meta skgid` here (Q8).
    for (bool group : {false, true})
      for (auto number : group ? c_.proxy_gids : c_.proxy_uids) {
        const OwnerId id{number, {}};
        b_.add(kRaw, kOutputDnsChain,
               {udp_dport(ports::kDns), owner(group, id, false, true), counter(), ct_zone_set(zones::kUpstream)});
        b_.add(
            kRaw, kOutputDnsChain,
            {udp_sport(ports::kAgentDns), owner(group, id, false, true), counter(), ct_zone_set(zones::kApplication)});
      }
    // Zones of the apps' DNS: queries to a nameserver (zone 2) and its answers (zone 1), the
    // answers through raw prerouting -> istio-inbound.
    if (all) {
      b_.add(kRaw, kPrerouting, {counter(), jump(kInboundChain)});
      b_.add(kRaw, kOutputDnsChain, {udp_dport(ports::kDns), counter(), ct_zone_set(zones::kApplication)});
      b_.add(kRaw, kInboundChain, {udp_sport(ports::kDns), counter(), ct_zone_set(zones::kUpstream)});
      return;
    }
    if (!s4.empty() || !s6.empty()) b_.add(kRaw, kPrerouting, {counter(), jump(kInboundChain)});
    for (Family f : {Family::V4, Family::V6})
      for (const auto& s : f == Family::V4 ? s4 : s6) {
        b_.add_family(f, kRaw, kOutputDnsChain,
                      {udp_dport(ports::kDns), daddr(host_prefix(s)), counter(), ct_zone_set(zones::kApplication)});
        b_.add_family(f, kRaw, kInboundChain,
                      {udp_sport(ports::kDns), saddr(host_prefix(s)), counter(), ct_zone_set(zones::kUpstream)});
      }
  }

  // N18: outbound capture by destination. Wildcard: one family-neutral rule sends everything
  // left to Envoy, and traffic arriving on a kube-virt interface too. CIDRs: each IPv4 one, then
  // each IPv6 one, for kube-virt traffic (inserted at the head of prerouting) and for outbound.
  void outbound_includes() {
    const auto& inc = c_.outbound_include;
    if (inc.wildcard) {
      b_.add(kNat, kOutputChain, {counter(), jump(kRedirectChain)});
      for (const auto& nic : c_.kube_virt_interfaces)
        b_.insert(kNat, kPrerouting, 0, {iifname(nic), counter(), jump(kRedirectChain)});
      return;
    }
    for (Family f : {Family::V4, Family::V6})
      for (const auto& p : inc.prefixes) {
        if (p.address.family != f) continue;
        for (const auto& nic : c_.kube_virt_interfaces)
          b_.insert_family(f, kNat, kPrerouting, 0, {iifname(nic), daddr(p), counter(), jump(kRedirectChain)});
        b_.add_family(f, kNat, kOutputChain, {daddr(p), counter(), jump(kRedirectChain)});
      }
  }

  // N19: TPROXY's marks (R19's reasons, see planner.cc), in mangle; emitted in TPROXY mode even
  // when -b is empty. The three inserts at the head of istio-inbound become appends when the
  // chain holds too few rules (Q4), and the IPv6 twin of the 127.0.0.6 rule lands before its
  // IPv4 rule, with the index-2 rule between them (Q5).
  void tproxy_tail() {
    const std::uint32_t m = c_.tproxy_mark;
    b_.add(kMangle, kPrerouting, {l4proto_tcp(), mark(m), counter(), CtMarkSet{MarkSource::PacketMark, 0}});
    b_.add(kMangle, kOutput, {oifname("lo"), l4proto_tcp(), mark(m), counter(), ret()});
    for (bool group : {false, true})
      for (auto number : group ? c_.proxy_gids : c_.proxy_uids) {
        const OwnerId id{number, {}};
        b_.versioned(kMangle, kOutput, [&](Family f) {
          return std::vector<Statement>{oifname("lo"),    l4proto_tcp(), daddr(loopback(f), true),
                                        owner(group, id), counter(),     meta_mark_set(marks::kOutbound)};
        });
      }
    b_.add(kMangle, kOutput,
           {l4proto_tcp(), CtMarkMatch{m, false}, counter(), MetaMarkSet{MarkSource::ConnectionMark, 0}});
    b_.insert(kMangle, kInboundChain, 0, {l4proto_tcp(), mark(m), counter(), ret()});
    b_.insert(kMangle, kInboundChain, 1,
              {iifname("lo"), l4proto_tcp(), saddr(v4_prefix(127, 0, 0, 6, 32)), counter(), ret()});
    b_.insert_family(Family::V6, kMangle, kInboundChain, 1,
                     {iifname("lo"), l4proto_tcp(), saddr(v6_prefix(6, 128)), counter(), ret()});
    b_.insert(kMangle, kInboundChain, 2,
              {iifname("lo"), l4proto_tcp(), mark(marks::kOutbound, true), counter(), ret()});
  }

  const Config& c_;
  Builder b_;
  bool redirect_dns_ = false;
  bool include_has_loopback_ = false;
};

}  // namespace

std::vector<Rule> chain_rules(const Table& table, const std::string& chain) {
  std::vector<Rule> rules;
  for (const auto& op : table.ops) {
    if (op.chain != chain) continue;
    if (op.index && *op.index < rules.size())
      rules.insert(rules.begin() + static_cast<std::ptrdiff_t>(*op.index), op.rule);
    else
      rules.push_back(op.rule);  // an append (the planner never writes an index past the end)
  }
  return rules;
}

}  // namespace istio_iptables::nft

namespace istio_iptables {

NftRuleset plan_nft(const Config& config) { return nft::Planner(config).run(); }

}  // namespace istio_iptables
