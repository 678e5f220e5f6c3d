// The typed, validated configuration the planner works from.
//
// Everything here has already been parsed and checked (settings.h builds it from flags and
// environment); the planner never sees a string it has to interpret. The two facts Istio reads
// from the machine (is IPv6 enabled, which nameservers resolv.conf names) are plain fields: the
// CLI fills them from flags or from the system layer, so the same Config always plans the same
// rules wherever it runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/address.h"
#include "core/model.h"

namespace istio_iptables {

/// Which Istio release's rule layout to produce (docs/releases.md maps releases to layouts).
enum class Layout {
  Current,  ///< Istio 1.25 and later (ISTIO_OUTPUT_DNS, one protocol-agnostic OUTPUT jump).
  V1_24,    ///< Istio 1.24 (the reference listing: TCP and UDP OUTPUT jumps, UDP DNS last).
  V1_23,    ///< Istio 1.23: 1.24's, but --drop-invalid drops in mangle PREROUTING itself and
            ///< the trace-logging NFLOG prefixes are Go-quoted in the restore text.
  V1_22,    ///< Istio 1.22: 1.23's, but the UDP DNS rules sit in nat and raw OUTPUT themselves
            ///< and CIDR includes end ISTIO_OUTPUT with "-j RETURN".
};

/// True for the layouts of 1.22 to 1.24 (TCP-only OUTPUT jump, UDP DNS after everything else).
inline bool is_pre_1_25(Layout layout) { return layout != Layout::Current; }

enum class InterceptionMode { Redirect, Tproxy };

/// A list of CIDRs, or Istio's "*" (everything).
struct CidrList {
  bool wildcard = false;
  std::vector<Prefix> prefixes;  // in the order given, both families mixed
};

/// A list of ports, or Istio's "*" (every port).
struct PortList {
  bool wildcard = false;
  std::vector<std::uint16_t> ports;
};

/// ISTIO_OUTBOUND_OWNER_GROUPS / _EXCLUDE: which groups' outbound traffic is captured.
struct OwnerGroups {
  bool include_all = true;       ///< include is exactly "*"
  std::vector<OwnerId> include;  ///< when !include_all (may be empty: nothing is captured)
  std::vector<OwnerId> exclude;  ///< only used when include_all
};

struct Config {
  Layout layout = Layout::Current;

  std::uint16_t proxy_port = 15001;                    ///< -p
  std::uint16_t inbound_capture_port = 15006;          ///< -z
  std::uint16_t inbound_tunnel_port = 15008;           ///< -e
  std::vector<std::uint32_t> proxy_uids;               ///< -u
  std::vector<std::uint32_t> proxy_gids;               ///< -g
  InterceptionMode mode = InterceptionMode::Redirect;  ///< -m

  PortList inbound_ports;                             ///< -b (empty: no inbound capture)
  std::vector<std::uint16_t> inbound_ports_exclude;   ///< -d (only with -b '*')
  std::vector<std::string> exclude_interfaces;        ///< -c
  CidrList outbound_include;                          ///< -i
  std::vector<Prefix> outbound_exclude;               ///< -x
  std::vector<std::uint16_t> outbound_ports_include;  ///< -q
  std::vector<std::uint16_t> outbound_ports_exclude;  ///< -o
  std::vector<std::string> kube_virt_interfaces;      ///< -k
  std::uint32_t tproxy_mark = 1337;                   ///< -t
  std::uint32_t tproxy_route_table = 133;             ///< -r

  bool redirect_dns = false;     ///< --redirect-dns
  bool capture_all_dns = false;  ///< --capture-all-dns
  bool drop_invalid = false;     ///< --drop-invalid
  bool trace_logging = false;    ///< --iptables-trace-logging: NFLOG twins (1.22-1.24 layouts only)
  OwnerGroups owner_groups;

  Prefix ipv4_loopback_cidr{Address{Family::V4, {127, 0, 0, 1}}, 32};  ///< ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR

  // Facts about the pod (from flags, or read from the machine by the CLI).
  bool enable_ipv6 = false;
  std::vector<Address> dns_servers_v4;
  std::vector<Address> dns_servers_v6;
};

}  // namespace istio_iptables
