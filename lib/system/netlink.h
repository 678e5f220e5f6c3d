// Netlink requests through libmnl: TPROXY policy routing, the ::6 address, and a read-only look
// at nf_tables (which tables exist) for backend detection.
//
// libmnl (Debian's libmnl-dev) rather than code of our own: it is the library iproute2's
// relatives and nftables use for exactly this, small, and it gets message building, alignment
// and acknowledgements right. No child process (ip, nft) is started.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/family.h"
#include "core/result.h"

namespace istio_iptables::netlink {

/// `ip -6 addr add ::6/128 dev lo`; an existing address is fine.
Status add_ipv6_passthrough_address();

/// `ip rule add fwmark MARK lookup TABLE`; an existing identical rule is fine.
Status add_fwmark_rule(Family family, std::uint32_t mark, std::uint32_t table);

/// `ip route add local default dev lo table TABLE`; an existing route is fine.
Status add_local_default_route(Family family, std::uint32_t table);

/// Removes `ip -6 addr ::6/128 dev lo`; an absent address is fine.
Status remove_ipv6_passthrough_address();

/// Removes `ip rule fwmark MARK lookup TABLE` (every copy); an absent rule is fine.
Status remove_fwmark_rule(Family family, std::uint32_t mark, std::uint32_t table);

/// Removes `ip route local default dev lo table TABLE`; an absent route or table is fine.
Status remove_local_default_route(Family family, std::uint32_t table);

/// One nf_tables table: its family (NFPROTO_*) and name.
struct NftTable {
  std::uint8_t family;
  std::string name;
};

/// The nf_tables tables of the current network namespace (empty when nf_tables is absent).
Result<std::vector<NftTable>> list_nft_tables();

}  // namespace istio_iptables::netlink
