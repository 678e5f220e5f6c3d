// Fuzz target: whole iptables-save / iptables-restore texts (parse_ruleset_text).
//
// The text comes from `check --against FILE` and from iptables-save, so any bytes may arrive. Past
// "no crash, no undefined behaviour", every rule the parser decodes must survive our own rendering:
// rule_spec() of it parses back to a rule that renders the same. A rule that did not would be
// compared, and re-applied, as something other than what the text said. The snapshot (identities
// and blobs, as the restore backend and `check` use them) is built too, with and without group
// lookups.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/restore_text.h"
#include "core/rule_text.h"
#include "fuzz_check.h"

namespace {

using namespace istio_iptables;

std::optional<std::uint32_t> some_gid(const std::string& name) {
  if (name.empty() || name.size() > 8) return std::nullopt;
  return static_cast<std::uint32_t>(name.size() * 1000);
}

std::optional<std::uint32_t> no_gid(const std::string&) { return std::nullopt; }

void check_round_trip(const Rule& rule, const std::string& spec) {
  const std::string rendered = rule_spec(rule);
  auto again = parse_rule_spec(rendered);
  FUZZ_CHECK(again.has_value(), "spec: " + spec + "\nrendered: " + rendered);
  FUZZ_CHECK(rule_spec(*again) == rendered,
             "spec: " + spec + "\nrendered: " + rendered + "\nrendered again: " + rule_spec(*again));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_ruleset_text(text);
  if (!parsed) {
    FUZZ_CHECK(!parsed.error().message.empty(), "an error without a message");
    return 0;
  }
  for (const auto* family : {&parsed.value().v4, &parsed.value().v6})
    for (const auto& table : *family) {
      for (const auto& chain : table.chains)
        for (const auto& rule : chain.rules)
          if (rule.rule) check_round_trip(*rule.rule, rule.spec);
      (void)snapshot_of(table, some_gid);
      (void)snapshot_of(table, no_gid);
    }
  return 0;
}
