// Reading rules back from iptables text: iptables-save output and iptables-restore input (ours
// or Istio's), into the typed model.
//
// Used where the kernel is reached through the iptables binaries (the restore backend reads
// iptables-save) and by `check --against FILE`. Both spellings are accepted: iptables-save's
// (`-m tcp --dport 53`, `--set-xmark 0x53a/0xffffffff`, `--on-ip 0.0.0.0`, hex marks) and
// Istio's (`--dport 53` after `-p tcp`, `--to-port`, `--set-mark 1337`). A rule using anything
// outside the model is kept as text and never decoded: it is someone else's.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/result.h"
#include "core/store.h"

namespace istio_iptables {

/// Parses the options of one rule (what follows "-A CHAIN"); nullopt when outside the model.
std::optional<Rule> parse_rule_spec(const std::string& spec);

/// A rule with header matches in iptables-save's order (-s -d -i -o -p), extension matches in
/// their order, REDIRECT in one spelling and group names resolved by `gid`: two rules with the
/// same canonical form are the same rule to the kernel.
Rule canonical(const Rule& rule, const std::function<std::optional<std::uint32_t>(const std::string&)>& gid);

/// One table of a text: chains in order of appearance, each rule with its text and counters.
struct TextRule {
  std::string spec;          ///< the options after "-A CHAIN", whitespace-normalised
  std::string counters;      ///< "[p:b]" when the text had counters, else ""
  std::optional<Rule> rule;  ///< decoded, when inside the model
};
struct TextChain {
  std::string name;
  bool builtin = false;
  std::vector<TextRule> rules;
};
struct TextTable {
  Table table;
  std::vector<TextChain> chains;
};

/// A whole text split by family: the IPv6 part starts at a "# ip6tables" line, or where a table
/// name comes round again (Istio's golden files). Applies -N, -A, -I N, -F, :CHAIN as
/// iptables-restore would to empty tables. Errors name the line and echo it escaped and cut
/// (quoted_for_message); a rule number outside 1..2147483647 is an error. Linear in the text (up
/// to a log factor for -I at a position): chains are found by name in a hash map and each chain's
/// order is computed once at the end, not by inserting into a vector line by line.
struct ParsedText {
  std::vector<TextTable> v4, v6;
};
Result<ParsedText> parse_ruleset_text(const std::string& text);

/// The snapshot of a parsed table, with identities from canonical forms (undecodable rules:
/// their text), blobs "[p:b] spec" or "spec".
Snapshot snapshot_of(const TextTable& table,
                     const std::function<std::optional<std::uint32_t>(const std::string&)>& gid);

}  // namespace istio_iptables
