// Where a packet goes: a simulator of netfilter's traversal over our typed rules.
//
// `explain` answers "why did this connection (not) go through the proxy" from the same typed
// rules the tool writes, so the answer cannot drift from what is installed: a flow is parsed
// into a Packet, then walked through the tables in the kernel's hook order (raw, mangle, nat at
// OUTPUT for a packet the pod sends, at PREROUTING for one that arrives), each rule's matches
// evaluated with the kernel's semantics (xt_* for iptables, nft expressions for native
// nftables: they differ, e.g. `! --uid-owner` matches a packet without a socket and `skuid !=`
// does not), jumps, returns, gotos and policies played out.
//
// The evaluation is three-valued. A packet's property the flow left open (the owner, the name of
// the pod's interface, the destination port) or a rule outside our model makes a match
// "unknown"; the walk then stops at that rule, shows it in the trail and says the verdict is
// uncertain. It never guesses: a wrong "not captured" is worse than "cannot tell".
//
// Rules come as Views, built from a plan (the rule operations played out into chains) or from
// what a store read back, so the walk itself is the same for both.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/address.h"
#include "core/model.h"
#include "core/nft_model.h"
#include "core/nft_store.h"
#include "core/result.h"
#include "core/store.h"

namespace istio_iptables {

// ---- flows --------------------------------------------------------------------------------------

/// `out`: a packet the pod sends (OUTPUT); `in`: one that arrives (PREROUTING).
enum class FlowDirection { Out, In };

/// An interface as a flow knows it: a name, or "the pod's own interface" whose name is unknown
/// (never lo).
struct FlowInterface {
  std::optional<std::string> name;  ///< nullopt: the pod's interface, name unknown
};

/// The packet a flow describes, as it enters the first table.
struct Packet {
  FlowDirection direction = FlowDirection::Out;
  Protocol protocol = Protocol::Tcp;
  Address source, destination;
  std::optional<std::uint16_t> source_port;       ///< nullopt: an ephemeral port (32768-60999)
  std::optional<std::uint16_t> destination_port;  ///< nullopt: unknown
  std::optional<std::uint32_t> uid, gid;          ///< the socket's owner (out only); nullopt: unknown
  FlowInterface in_interface, out_interface;      ///< the side a packet does not have is ""
  std::uint32_t mark = 0;
  std::optional<std::uint32_t> connmark;  ///< nullopt: unknown (0 for a new connection)
  ConntrackState state = ConntrackState::New;

  Family family() const { return destination.family; }
};

/// The first port number of Linux's default ephemeral range, and the last.
inline constexpr std::uint16_t kEphemeralFirst = 32768;
inline constexpr std::uint16_t kEphemeralLast = 60999;

/// Parses `out|in tcp|udp SRC[:PORT] -> DST[:PORT]` and the words `uid N`, `gid N`, `iif NAME`,
/// `oif NAME`, `mark N`, `connmark N`, `state new|established|related|invalid`; IPv6 addresses
/// with a port in brackets (`[2001:db8::1]:80`). An error names the offending word.
Result<Packet> parse_flow(const std::string& text);

// ---- rules to walk ------------------------------------------------------------------------------

/// One iptables rule of a chain: decoded when inside the model, and as iptables-save writes it.
struct ViewRule {
  std::optional<Rule> rule;
  std::string text;  ///< "-A CHAIN …", or what is known of a rule outside the model
};

struct ViewChain {
  std::string name;
  bool opaque = false;  ///< a foreign chain the store did not read rule by rule
  std::vector<ViewRule> rules;
};

struct ViewTable {
  Table table = Table::Nat;
  std::vector<ViewChain> chains;
  const ViewChain* find(const std::string& chain) const;
};

/// One family's iptables tables (missing tables hold nothing).
struct IptablesView {
  Family family = Family::V4;
  std::vector<ViewTable> tables;
  const ViewTable* find(Table table) const;
};

/// The tables a ruleset leaves, its operations played out into empty tables.
IptablesView view_of_ruleset(const Ruleset& ruleset);

/// A table as a store read it.
ViewTable view_of_snapshot(const Snapshot& snapshot);

/// One nftables rule: decoded when known, and as nft lists it.
struct NftViewRule {
  std::optional<nft::Rule> rule;
  std::string text;
};

struct NftViewChain {
  std::string name;
  std::optional<nft::BaseChain> base;
  std::string unexpected;  ///< non-empty: something we do not model (a policy other than accept)
  std::vector<NftViewRule> rules;
};

struct NftViewTable {
  std::string name;
  std::vector<NftViewChain> chains;
  const NftViewChain* find(const std::string& chain) const;
};

/// Our inet tables.
struct NftView {
  std::vector<NftViewTable> tables;
};

/// The tables a native nftables plan writes.
NftView view_of_nft_plan(const NftRuleset& plan);

/// Installed tables. The store hands back fingerprints and text, not our model: `decode` names
/// the rule of ours an installed rule of `table` is (nullptr: none, the rule is outside the model).
NftView view_of_nft_state(
    const nft::InstalledState& state,
    const std::function<const nft::Rule*(const std::string& table, const nft::InstalledRule& rule)>& decode);

// ---- the walk -----------------------------------------------------------------------------------

enum class Outcome { Redirect, Tproxy, Accept, Drop, Uncertain };

/// "redirect", "tproxy", "accept", "drop", "uncertain".
const char* outcome_name(Outcome outcome);

/// A rule that matched (or could not be evaluated), where it sits.
struct TrailStep {
  std::string family;  ///< "IPv4"/"IPv6" for iptables, "inet" for nftables
  std::string table;
  std::string chain;
  unsigned index = 0;  ///< 1-based position in the chain, as `iptables -L --line-numbers`
  std::string rule;
  bool modelled = true;  ///< false: this rule stopped the walk (uncertain)
};

struct Explanation {
  Outcome outcome = Outcome::Accept;
  std::optional<std::uint16_t> port;         ///< redirect / tproxy
  std::optional<std::uint32_t> tproxy_mark;  ///< tproxy: the packet's mark afterwards
  std::uint16_t zone = 0;                    ///< the conntrack zone the packet was put in
  std::string reason;                        ///< accept: which rule let it pass; uncertain: why; drop: which rule
  std::vector<TrailStep> trail;
};

/// Walks `packet` through one family's iptables tables (`view.family` must be the packet's).
Explanation explain_iptables(const Packet& packet, const IptablesView& view);

/// Walks `packet` through our nftables tables (base chains by hook and priority).
Explanation explain_nft(const Packet& packet, const NftView& view);

/// The explanation for a person: the verdict in one line, then the trail, one rule a line.
std::string format_explanation(const std::string& flow, const Explanation& explanation);

/// One JSON object on one line: flow, verdict, port, mark, zone, reason, trail.
std::string json_explanation(const std::string& flow, const Explanation& explanation);

}  // namespace istio_iptables
