// Which variant of iptables to program, chosen as Istio chooses it, without running a binary.
//
// Istio (1.27+, dependencies/implementation_linux.go) probes each candidate binary: it prefers
// legacy when `iptables-legacy-save` shows existing rules, else nf_tables when `iptables-nft` can
// append a rule, else legacy; `--force-iptables-binary` picks one outright. Its probe appends and
// deletes a rule, which creates the nat table it then finds on the next start. We read the same
// facts without writing: the legacy tables the kernel lists in /proc/net/ip{,6}_tables_names for
// this namespace, and whether nf_tables answers a generation request.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace istio_iptables {

enum class IptablesVariant { Legacy, Nft };

/// What the choice looks at.
struct VariantFacts {
  std::vector<std::string> legacy_tables;  ///< legacy tables in the namespace, as "ip nat", "ip6 raw"
  std::optional<std::string> nft_missing;  ///< why nf_tables cannot be used; nullopt when it can
  /// Why the list of legacy tables could not be read (e.g. no permission on /proc/net/...);
  /// nullopt when it was read. Istio's detection takes a failing iptables-legacy-save as "no
  /// legacy rules"; so does the choice, and says so in its reason.
  std::optional<std::string> legacy_unreadable = std::nullopt;
};

struct VariantChoice {
  IptablesVariant variant;
  std::string why;  ///< for the log: the rules found, the support missing, or the flag
};

/// Istio's choice: `force` ("legacy", "nft" or "") wins; then legacy when the namespace holds
/// legacy tables; then nf_tables when the kernel has it; else legacy.
Result<VariantChoice> choose_variant(const std::string& force, const VariantFacts& facts);

/// The facts of the current network namespace. Creates nothing.
VariantFacts read_variant_facts();

}  // namespace istio_iptables
