// The typed rule model: one representation, several renderings.
//
// A rule is an ordered list of typed matches and one typed target, in netfilter's own terms. The
// same objects are rendered as iptables-restore text (restore_text.h), as binary x_tables entries
// through libiptc (system layer) and compared by the diff. Nothing is assembled from strings, so a
// value can never smuggle an option or a line into any rendering.
//
// Match order is part of a rule: iptables prints (and Istio writes) the header matches in the
// order given (`-o lo ! -d 127.0.0.1/32 -p tcp ...` versus `! -d 127.0.0.1/32 -p tcp -o lo ...`),
// and extension matches keep their order in the kernel entry. Keeping the order lets the restore
// renderer reproduce Istio's text token for token and the libiptc renderer reproduce the entry
// iptables-restore would build from that text.
//
// A Ruleset is Istio's ordered list of operations for one family: append to a chain, or insert
// at a 1-based position. Rendering keeps that list; reconcile.cc places the operations among
// what a table already holds, which is what apply, check and cleanup compare.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/address.h"
#include "core/family.h"

namespace istio_iptables {

enum class Table { Filter, Mangle, Nat, Raw };

/// "filter", "mangle", "nat", "raw".
const char* table_name(Table table);

/// Tables in the order iptables-restore text lists them (alphabetical, as Istio renders).
inline constexpr Table kAllTables[] = {Table::Filter, Table::Mangle, Table::Nat, Table::Raw};

/// The built-in chains of a table, in netfilter's hook order.
const std::vector<std::string>& builtin_chains(Table table);

/// True for the chains netfilter creates itself (PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING).
bool is_builtin_chain(const std::string& chain);

enum class Protocol { Tcp, Udp };
const char* protocol_name(Protocol p);

enum class Direction { Source, Destination };

// ---- matches ------------------------------------------------------------------------------------

/// `[!] -p tcp|udp`
struct ProtocolMatch {
  Protocol protocol;
  bool negated = false;
};

/// `[!] -s PREFIX` or `[!] -d PREFIX`
struct AddressMatch {
  Direction direction;
  Prefix prefix;
  bool negated = false;
};

/// `[!] -i NAME` (inbound) or `[!] -o NAME` (outbound); a trailing '+' is iptables' wildcard.
struct InterfaceMatch {
  bool inbound;  // -i when true, -o when false
  std::string name;
  bool negated = false;
};

/// `[!] --sport P` / `[!] --dport P` of the tcp or udp match (needs `-p` of the same protocol).
struct PortMatch {
  Protocol protocol;
  Direction direction;
  std::uint16_t port;
  bool negated = false;
};

/// `-m multiport [!] --dports P1,P2,...` (revision 1, destination ports, at most 15).
struct MultiportMatch {
  std::vector<std::uint16_t> ports;
  bool negated = false;
};

/// A user or group as the owner match takes it: a number, or (groups only) a name that is
/// resolved through the system's group database when the rule is installed.
struct OwnerId {
  std::optional<std::uint32_t> number;
  std::string name;  // set when number is not

  std::string text() const { return number ? std::to_string(*number) : name; }
  friend bool operator==(const OwnerId& a, const OwnerId& b) { return a.number == b.number && a.name == b.name; }
};

/// `-m owner [!] --uid-owner ID` or `-m owner [!] --gid-owner ID`
struct OwnerMatch {
  bool group;  // --gid-owner when true, --uid-owner when false
  OwnerId id;
  bool negated = false;
};

enum class ConntrackState : unsigned { Invalid = 1, Established = 2, Related = 4, New = 8 };

/// `-m conntrack [!] --ctstate S1,S2` (states in the order written; a bit set in the kernel).
struct ConntrackMatch {
  std::vector<ConntrackState> states;
  bool negated = false;
};

/// `-m mark [!] --mark VALUE` (mask 0xffffffff)
struct MarkMatch {
  std::uint32_t mark;
  bool negated = false;
};

/// `-m connmark [!] --mark VALUE` (mask 0xffffffff)
struct ConnmarkMatch {
  std::uint32_t mark;
  bool negated = false;
};

using Match = std::variant<ProtocolMatch, AddressMatch, InterfaceMatch, PortMatch, MultiportMatch, OwnerMatch,
                           ConntrackMatch, MarkMatch, ConnmarkMatch>;

// ---- targets ------------------------------------------------------------------------------------

/// `-j CHAIN`: a jump to a user-defined chain.
struct JumpTarget {
  std::string chain;
};

enum class Verdict { Accept, Drop, Return };

/// `-j ACCEPT|DROP|RETURN`
struct VerdictTarget {
  Verdict verdict;
};

/// `-j REDIRECT --to-ports P` (nat). `singular_spelling` only chooses Istio's `--to-port`
/// spelling in text; the kernel entry is the same.
struct RedirectTarget {
  std::uint16_t port;
  bool singular_spelling = false;
};

/// `-j TPROXY --tproxy-mark MARK/MASK --on-port P` (mangle; listens on any local address).
struct TproxyTarget {
  std::uint16_t port;
  std::uint32_t mark;
  std::uint32_t mask;
};

/// `-j MARK --set-mark VALUE` (= --set-xmark VALUE/0xffffffff).
struct MarkTarget {
  std::uint32_t mark;
};

/// `-j CONNMARK --save-mark` or `--restore-mark` (masks 0xffffffff).
struct ConnmarkTarget {
  bool restore;  // --restore-mark when true, --save-mark when false
};

/// `-j CT --zone N` (raw).
struct CtTarget {
  std::uint16_t zone;
};

/// `-j NFLOG --nflog-prefix P --nflog-group G --nflog-size S`: the trace-logging twins of Istio
/// releases 1.22 to 1.24 (non-terminal). `quoted_prefix` only chooses 1.22/1.23's Go-quoted
/// spelling in text (`"JumpInbound"`); iptables-restore strips the quotes, so the entry is the same.
struct NflogTarget {
  std::string prefix;
  std::uint16_t group = 0;
  std::uint32_t size = 0;
  bool quoted_prefix = false;
};

/// The longest NFLOG prefix the kernel stores (xt_nflog_info's prefix[64] holds a NUL too).
inline constexpr std::size_t kMaxNflogPrefix = 63;

using Target = std::variant<JumpTarget, VerdictTarget, RedirectTarget, TproxyTarget, MarkTarget, ConnmarkTarget,
                            CtTarget, NflogTarget>;

// ---- rules and rulesets -------------------------------------------------------------------------

struct Rule {
  std::vector<Match> matches;
  Target target;
};

/// The chain a rule jumps to, when its target is a jump.
std::optional<std::string> jump_chain(const Rule& rule);

/// One step of Istio's list: append to a chain, or insert at a 1-based position.
struct RuleOp {
  Table table;
  std::string chain;
  std::optional<unsigned> insert_position;  // nullopt = append
  Rule rule;
};

/// Istio's ordered list of rule operations for one family.
struct Ruleset {
  Family family = Family::V4;
  std::vector<RuleOp> ops;

  bool uses_table(Table table) const;
};

}  // namespace istio_iptables
