// Fuzz target: the options of one rule (parse_rule_spec), and its canonical form.
//
// parse_rule_spec reads what follows "-A CHAIN" in texts we did not write. Every rule it accepts
// must render (rule_spec) to a text it accepts again and that renders the same, and its canonical
// form (the one `check` compares) must obey the same round trip; otherwise a rule would be
// compared or re-applied as something other than what was written.
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

void check_round_trip(const Rule& rule, const std::string& spec) {
  const std::string rendered = rule_spec(rule);
  auto again = parse_rule_spec(rendered);
  FUZZ_CHECK(again.has_value(), "spec: " + spec + "\nrendered: " + rendered);
  FUZZ_CHECK(rule_spec(*again) == rendered,
             "spec: " + spec + "\nrendered: " + rendered + "\nrendered again: " + rule_spec(*again));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string spec(reinterpret_cast<const char*>(data), size);
  auto rule = parse_rule_spec(spec);
  if (!rule) return 0;
  check_round_trip(*rule, spec);
  const Rule c = canonical(*rule, some_gid);
  check_round_trip(c, spec);
  FUZZ_CHECK(rule_spec(canonical(c, some_gid)) == rule_spec(c), "canonical is not idempotent for: " + spec);
  return 0;
}
