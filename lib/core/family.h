#pragma once

namespace istio_iptables {

/// The address family a ruleset is for: iptables (IPv4) or ip6tables (IPv6).
enum class Family { V4, V6 };

inline const char* family_name(Family f) { return f == Family::V4 ? "IPv4" : "IPv6"; }

}  // namespace istio_iptables
