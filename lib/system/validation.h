// Istio's validation probe (--run-validation; the istio-validation init container of CNI
// installs): proves on a real connection that outbound traffic of the proxy's UID to a
// non-loopback local address is redirected to the inbound capture port.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/result.h"

namespace istio_iptables {

struct ValidationRequest {
  bool ipv6 = false;                    ///< probe over ::1 -> ::6 instead of 127.0.0.1 -> 127.0.0.6
  std::uint16_t outbound_port = 15001;  ///< -p: a listener is opened here too, as Istio does
  std::uint16_t inbound_port = 15006;   ///< -z
  std::uint16_t probe_port = 15002;     ///< --iptables-probe-port: the original destination to see
  std::uint32_t timeout_ms = 5000;      ///< --probe-timeout
};

/// Where the probe's log records go as they happen: Istio's texts (validation/validator.go),
/// `error` true for its error-level ones.
using ValidationRecord = std::function<void(bool error, const std::string& message)>;

/// Listens on the two ports, connects to 127.0.0.6:probe_port (::6) once a second, and succeeds
/// when a listener sees probe_port as the connection's original destination. An error (the
/// caller exits 126) when no listener can be opened or the time runs out. Records, in Istio's
/// words: `Starting iptables validation…`, `Listening on <addr>` per port (`Error on listening:
/// …` when one cannot be opened), `Error connecting to <addr>: <Go's dial error>` for each attempt
/// the kernel refuses, and on a listener's failure `Validation failed: …`.
Status run_validation(const ValidationRequest& request, const ValidationRecord& record);

}  // namespace istio_iptables
