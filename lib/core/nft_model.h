// The nftables ruleset as typed data: what Istio's native nftables mode writes, in nft's terms.
//
// nft has no separate "target": a rule is an ordered list of statements, some of which match
// (`meta l4proto tcp`, `ip daddr != 127.0.0.1/32`, `skuid 1337`) and some of which act (`counter`,
// `meta mark set 1337`, `redirect to :15001`, `jump istio-output`). Istio's templates put those in
// a fixed order that is not always "matches, counter, verdict" (`counter meta mark set 1337`,
// `tproxy ip to :15006 meta mark set 1337 counter accept`), so a rule here is exactly that ordered
// list, each element a typed statement. The script renderer (nft_script.h) prints them in
// Istio's spelling, and the nf_tables backend will turn the same objects into netlink
// expressions; nothing is ever assembled from strings, so a value can never smuggle a statement
// or a line into a script.
//
// A Table is one `inet` table of ours as Istio's transaction writes it: the chains it declares
// (in Istio's fixed order, base chains with type, hook and priority) and the ordered list of rule
// operations (`add rule`, or `insert rule … index k` placing the rule before the k-th rule the
// chain holds at that moment). The table is always flushed first, so the operations alone decide
// what each chain holds; chain_rules() in nft_planner.h plays them out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/address.h"
#include "core/family.h"
#include "core/model.h"

namespace istio_iptables::nft {

// ---- names --------------------------------------------------------------------------------------

/// Istio's tables (all family inet) and chains, as constants.go names them.
inline constexpr const char* kNatTable = "istio-proxy-nat";
inline constexpr const char* kMangleTable = "istio-proxy-mangle";
inline constexpr const char* kRawTable = "istio-proxy-raw";
/// Every table Istio's sidecar mode owns, in the order its transactions write them.
inline constexpr const char* kAllTables[] = {kNatTable, kMangleTable, kRawTable};

inline constexpr const char* kPrerouting = "prerouting";
inline constexpr const char* kOutput = "output";
inline constexpr const char* kInboundChain = "istio-inbound";
inline constexpr const char* kRedirectChain = "istio-redirect";
inline constexpr const char* kInRedirectChain = "istio-in-redirect";
inline constexpr const char* kOutputChain = "istio-output";
inline constexpr const char* kOutputDnsChain = "istio-output-dns";
inline constexpr const char* kDivertChain = "istio-divert";
inline constexpr const char* kTproxyChain = "istio-tproxy";
inline constexpr const char* kDropChain = "istio-drop";

/// The base chain priorities knftables writes for its symbolic names (dstnat, mangle, raw).
inline constexpr int kDstnatPriority = -100;
inline constexpr int kManglePriority = -150;
inline constexpr int kRawPriority = -300;

// ---- chains -------------------------------------------------------------------------------------

enum class ChainType { Filter, Nat, Route };
enum class Hook { Prerouting, Output };

/// "filter", "nat", "route"; "prerouting", "output".
const char* chain_type_name(ChainType type);
const char* hook_name(Hook hook);

/// What makes a chain a base chain: `{ type T hook H priority N ; }` (policy left to the
/// kernel's default, accept).
struct BaseChain {
  ChainType type;
  Hook hook;
  int priority;

  friend bool operator==(const BaseChain& a, const BaseChain& b) {
    return a.type == b.type && a.hook == b.hook && a.priority == b.priority;
  }
};

/// A chain of an inet table: a base chain when `base` is set, a regular chain otherwise.
struct Chain {
  std::string name;
  std::optional<BaseChain> base;

  friend bool operator==(const Chain& a, const Chain& b) { return a.name == b.name && a.base == b.base; }
};

// ---- match statements ---------------------------------------------------------------------------

/// `meta l4proto tcp|udp`
struct L4protoMatch {
  Protocol protocol;
  friend bool operator==(const L4protoMatch& a, const L4protoMatch& b) { return a.protocol == b.protocol; }
};

/// `ip saddr|daddr [!=] PREFIX` for an IPv4 prefix, `ip6 …` for an IPv6 one (IPv4-mapped
/// included): the payload protocol follows the prefix's family. Always written with its length.
struct AddressMatch {
  Direction direction;
  Prefix prefix;
  bool negated = false;
  friend bool operator==(const AddressMatch& a, const AddressMatch& b) {
    return a.direction == b.direction && a.prefix == b.prefix && a.negated == b.negated;
  }
};

/// `iifname|oifname [!=] NAME` (unquoted, as Istio writes it).
struct InterfaceMatch {
  bool inbound;  // iifname when true, oifname when false
  std::string name;
  bool negated = false;
  friend bool operator==(const InterfaceMatch& a, const InterfaceMatch& b) {
    return a.inbound == b.inbound && a.name == b.name && a.negated == b.negated;
  }
};

/// The header a port match reads: `th` (any transport header), `tcp` or `udp`. A `tcp`/`udp`
/// port match implies the protocol; `th` does not.
enum class TransportHeader { Th, Tcp, Udp };

/// `tcp|udp|th sport|dport [!=] P`, or with `set` the anonymous set `{ P1, P2 }` in the order
/// given (duplicates kept: the kernel folds them).
struct PortMatch {
  TransportHeader header;
  Direction direction;
  std::vector<std::uint16_t> ports;  // exactly one unless `set`
  bool set = false;
  bool negated = false;
  friend bool operator==(const PortMatch& a, const PortMatch& b) {
    return a.header == b.header && a.direction == b.direction && a.ports == b.ports && a.set == b.set &&
           a.negated == b.negated;
  }
};

/// `[meta] skuid|skgid [!=] ID`. A group may be a name, which nft resolves when it loads the
/// script. `meta_keyword` only chooses Istio's spelling (with `meta` in the raw table's zone
/// rules, without elsewhere); the expression is the same.
struct SocketOwnerMatch {
  bool group;  // skgid when true, skuid when false
  OwnerId id;
  bool negated = false;
  bool meta_keyword = false;
  friend bool operator==(const SocketOwnerMatch& a, const SocketOwnerMatch& b) {
    return a.group == b.group && a.id == b.id && a.negated == b.negated && a.meta_keyword == b.meta_keyword;
  }
};

/// `ct state [!=] S1,S2` (states in the order written; a bit mask to the kernel).
struct CtStateMatch {
  std::vector<ConntrackState> states;
  bool negated = false;
  friend bool operator==(const CtStateMatch& a, const CtStateMatch& b) {
    return a.states == b.states && a.negated == b.negated;
  }
};

/// `mark [!=] VALUE` (the packet mark, nft's short form of `meta mark`).
struct MarkMatch {
  std::uint32_t mark;
  bool negated = false;
  friend bool operator==(const MarkMatch& a, const MarkMatch& b) { return a.mark == b.mark && a.negated == b.negated; }
};

/// `ct mark [!=] VALUE` (the connection's mark).
struct CtMarkMatch {
  std::uint32_t mark;
  bool negated = false;
  friend bool operator==(const CtMarkMatch& a, const CtMarkMatch& b) {
    return a.mark == b.mark && a.negated == b.negated;
  }
};

// ---- action statements --------------------------------------------------------------------------

/// `counter` (packets and bytes, starting at zero).
struct CounterStatement {
  friend bool operator==(const CounterStatement&, const CounterStatement&) { return true; }
};

enum class VerdictKind { Accept, Drop, Return, Jump, Goto };

/// `accept`, `drop`, `return`, `jump CHAIN`, `goto CHAIN` (chain only for jump and goto).
struct VerdictStatement {
  VerdictKind kind;
  std::string chain;
  friend bool operator==(const VerdictStatement& a, const VerdictStatement& b) {
    return a.kind == b.kind && a.chain == b.chain;
  }
};

/// `redirect to :PORT` (nat; to the local address the packet arrived on).
struct RedirectStatement {
  std::uint16_t port;
  friend bool operator==(const RedirectStatement& a, const RedirectStatement& b) { return a.port == b.port; }
};

/// `tproxy ip to :PORT` / `tproxy ip6 to :PORT` (any local address; inet tables need the family).
struct TproxyStatement {
  Family family;
  std::uint16_t port;
  friend bool operator==(const TproxyStatement& a, const TproxyStatement& b) {
    return a.family == b.family && a.port == b.port;
  }
};

/// Where a `… mark set` statement takes its value from.
enum class MarkSource { Value, PacketMark, ConnectionMark };

/// `meta mark set VALUE` or `meta mark set ct mark` (CONNMARK --restore-mark).
struct MetaMarkSet {
  MarkSource source;  // Value or ConnectionMark
  std::uint32_t value = 0;
  friend bool operator==(const MetaMarkSet& a, const MetaMarkSet& b) {
    return a.source == b.source && a.value == b.value;
  }
};

/// `ct mark set mark` (CONNMARK --save-mark) or `ct mark set VALUE`.
struct CtMarkSet {
  MarkSource source;  // Value or PacketMark
  std::uint32_t value = 0;
  friend bool operator==(const CtMarkSet& a, const CtMarkSet& b) { return a.source == b.source && a.value == b.value; }
};

/// `ct zone set N` (before conntrack: raw priority).
struct CtZoneSet {
  std::uint16_t zone;
  friend bool operator==(const CtZoneSet& a, const CtZoneSet& b) { return a.zone == b.zone; }
};

/// One element of a rule, in nft's grammar a statement: a match (a relational expression) or an
/// action.
using Statement = std::variant<L4protoMatch, AddressMatch, InterfaceMatch, PortMatch, SocketOwnerMatch, CtStateMatch,
                               MarkMatch, CtMarkMatch, CounterStatement, VerdictStatement, RedirectStatement,
                               TproxyStatement, MetaMarkSet, CtMarkSet, CtZoneSet>;

/// A rule: its statements in order.
struct Rule {
  std::vector<Statement> statements;
  friend bool operator==(const Rule& a, const Rule& b) { return a.statements == b.statements; }
  friend bool operator!=(const Rule& a, const Rule& b) { return !(a == b); }
};

/// The chain a rule jumps or goes to, if it does.
inline std::optional<std::string> verdict_chain(const Rule& rule) {
  for (const auto& s : rule.statements)
    if (const auto* v = std::get_if<VerdictStatement>(&s))
      if (v->kind == VerdictKind::Jump || v->kind == VerdictKind::Goto) return v->chain;
  return std::nullopt;
}

// ---- tables and rulesets ------------------------------------------------------------------------

/// `add rule inet T CHAIN RULE` (index unset) or `insert rule inet T CHAIN index K RULE`: before
/// the rule at 0-based position K of what the chain holds when the operation runs (K is always
/// below the chain's length then).
struct RuleOp {
  std::string chain;
  std::optional<unsigned> index;
  Rule rule;
  friend bool operator==(const RuleOp& a, const RuleOp& b) {
    return a.chain == b.chain && a.index == b.index && a.rule == b.rule;
  }
};

/// One `inet` table, replaced whole: declared (`add table`), emptied (`flush table`), its chains
/// declared in order, then its rule operations in order.
struct Table {
  std::string name;
  std::vector<Chain> chains;
  std::vector<RuleOp> ops;
};

/// The tables a run writes, in transaction order. A table of ours that is not listed is left
/// untouched (Istio's behaviour when a table has no rules).
struct Ruleset {
  std::vector<Table> tables;

  const Table* find(const std::string& name) const {
    for (const auto& t : tables)
      if (t.name == name) return &t;
    return nullptr;
  }
};

}  // namespace istio_iptables::nft

namespace istio_iptables {
/// The native nftables plan: what --native-nftables writes in one transaction.
using NftRuleset = nft::Ruleset;
}  // namespace istio_iptables
