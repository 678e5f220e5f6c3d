// See iptables_nft_choice.h. The legacy tables are the lines of /proc/net/ip_tables_names and
// ip6_tables_names: the kernel lists there the x_tables tables instantiated in the reading
// namespace, which is exactly when iptables-legacy-save prints something (Istio's "existing
// rules": three lines or more). No file means no legacy x_tables module, so no legacy rules.
#include "system/iptables_nft_choice.h"

#include <fmt/format.h>

#include "system/libiptc_store.h"
#include "system/nf_tables_batch.h"

namespace istio_iptables {

Result<VariantChoice> choose_variant(const std::string& force, const VariantFacts& facts) {
  if (force == "legacy") return VariantChoice{IptablesVariant::Legacy, "--force-iptables-binary legacy"};
  if (force == "nft") return VariantChoice{IptablesVariant::Nft, "--force-iptables-binary nft"};
  if (!force.empty()) return Error{fmt::format("--force-iptables-binary {}: expected legacy or nft", force)};
  if (!facts.legacy_tables.empty())
    return VariantChoice{IptablesVariant::Legacy, fmt::format("the namespace already holds legacy iptables tables ({})",
                                                              fmt::join(facts.legacy_tables, ", "))};
  const std::string none =
      facts.legacy_unreadable
          ? fmt::format("the namespace's legacy iptables tables could not be listed ({}), taken as none as "
                        "Istio's detection does",
                        *facts.legacy_unreadable)
          : std::string("no legacy iptables tables in the namespace");
  if (!facts.nft_missing) return VariantChoice{IptablesVariant::Nft, none + " and the kernel has nf_tables"};
  return VariantChoice{IptablesVariant::Legacy,
                       fmt::format("{}, but nf_tables is unusable ({})", none, *facts.nft_missing)};
}

VariantFacts read_variant_facts() {
  VariantFacts facts;
  for (Family family : {Family::V4, Family::V6}) {
    auto names = legacy_table_names(family);
    if (!names) {
      facts.legacy_unreadable = names.error().message;
      continue;
    }
    for (const auto& name : names.value())
      if (!name.empty()) facts.legacy_tables.push_back(fmt::format("{} {}", family == Family::V4 ? "ip" : "ip6", name));
  }
  auto socket = NfTablesSocket::open();
  if (!socket) {
    facts.nft_missing = socket.error().message;
  } else if (auto gen = socket.value()->generation(); !gen) {
    facts.nft_missing = gen.error().message;
  }
  return facts;
}

}  // namespace istio_iptables
