// The nft script (`nft -f` input) of a native nftables plan, exactly as Istio's knftables writes it.
#pragma once

#include <string>

#include "core/nft_model.h"

namespace istio_iptables {

/// One rule's statements as nft text, joined by single spaces in Istio's spelling:
/// "oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != 15008 skuid 1337 counter
/// jump istio-in-redirect".
std::string nft_rule_text(const nft::Rule& rule);

/// The transaction as knftables renders it, one operation a line: per table `add table inet T`,
/// `flush table inet T`, `add chain …` (base chains with `{ type … hook … priority N ; }`), then
/// `add rule …` / `insert rule … index K …` in plan order. Nothing else: no header, no comment,
/// no blank line. `nft -f` accepts it as one atomic batch.
std::string nft_script(const NftRuleset& ruleset);

/// Istio's cleanup transaction (--cleanup-only): `add table` then `delete table` for each of the
/// three tables, whatever the configuration; the `add` makes the `delete` succeed when the table
/// is absent.
std::string nft_cleanup_script();

}  // namespace istio_iptables
