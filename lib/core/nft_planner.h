// Planner for Istio's native nftables mode: Config -> the tables --native-nftables writes.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "core/nft_model.h"

namespace istio_iptables {

/// Istio's nftables rule generation (tools/istio-nftables/pkg/capture/run.go Run() and the
/// transaction assembly of executeCommands), steps N1-N19 of docs/nftables.md, from the same
/// Config as the iptables plan (Config::layout is not used: the mode exists only in the current
/// layout). Tables without rules are left out. Pure: the same Config always gives the same plan.
NftRuleset plan_nft(const Config& config);

namespace nft {

/// What `chain` of `table` holds after the transaction, in the kernel's order: the rule
/// operations played out (appends at the end, inserts before the indexed rule).
std::vector<Rule> chain_rules(const Table& table, const std::string& chain);

}  // namespace nft
}  // namespace istio_iptables
