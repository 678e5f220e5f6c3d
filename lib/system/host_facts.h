// The machine's answers to what Istio reads from it: interface addresses (is IPv6 on?), files
// (resolv.conf) and the passwd database (the proxy user's UID).
#pragma once

#include "core/settings.h"

namespace istio_iptables {

/// MachineFacts read from the running system (the current network namespace).
class HostFacts final : public MachineFacts {
 public:
  Result<bool> ipv6_enabled(bool dual_stack) override;
  Result<std::string> read_file(const std::string& path) override;
  /// Reads /etc/passwd directly: no NSS module is loaded (Istio hit network lookups through NSS).
  std::optional<std::uint32_t> user_id(const std::string& user) override;
};

}  // namespace istio_iptables
