// Planner: Config -> the ordered rule lists Istio's istio-iptables would generate.
#pragma once

#include <optional>

#include "core/config.h"
#include "core/model.h"

namespace istio_iptables {

/// The rules for both families. `v6` is set only when the pod has IPv6 (Config::enable_ipv6).
struct Plan {
  Ruleset v4;
  std::optional<Ruleset> v6;
  /// False when --redirect-dns was asked for but there is nothing to redirect to (current layout:
  /// no nameserver and no --capture-all-dns); Istio then warns and drops DNS capture.
  bool dns_capture_active = false;
};

/// Istio's rule-generation algorithm (capture/run.go Run()), in the layout Config::layout names.
/// Pure: the same Config always gives the same Plan.
Plan plan(const Config& config);

}  // namespace istio_iptables
