// Istio's chain names, ports and marks, in one place.
#pragma once

#include <cstdint>

namespace istio_iptables::chains {
inline constexpr const char* kInbound = "ISTIO_INBOUND";
inline constexpr const char* kRedirect = "ISTIO_REDIRECT";
inline constexpr const char* kInRedirect = "ISTIO_IN_REDIRECT";
inline constexpr const char* kOutput = "ISTIO_OUTPUT";
inline constexpr const char* kOutputDns = "ISTIO_OUTPUT_DNS";
inline constexpr const char* kDivert = "ISTIO_DIVERT";
inline constexpr const char* kTproxy = "ISTIO_TPROXY";
inline constexpr const char* kDrop = "ISTIO_DROP";
/// Every chain this tool owns starts with this; cleanup removes every such chain.
inline constexpr const char* kPrefix = "ISTIO_";
}  // namespace istio_iptables::chains

namespace istio_iptables::ports {
/// The agent's DNS proxy listens here (hard-coded in Istio).
inline constexpr std::uint16_t kAgentDns = 15053;
inline constexpr std::uint16_t kDns = 53;
}  // namespace istio_iptables::ports

namespace istio_iptables::marks {
/// Istio's OutboundMark: Envoy's connections to the app by pod IP in TPROXY mode.
inline constexpr std::uint32_t kOutbound = 1338;
}  // namespace istio_iptables::marks

namespace istio_iptables::zones {
/// Conntrack zone of agent <-> upstream resolver DNS.
inline constexpr std::uint16_t kUpstream = 1;
/// Conntrack zone of application <-> agent DNS.
inline constexpr std::uint16_t kApplication = 2;
}  // namespace istio_iptables::zones
