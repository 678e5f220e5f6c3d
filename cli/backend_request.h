// The iptables backend a run's options ask for, in one place for every command that opens one.
#pragma once

#include "core/settings.h"
#include "system/platform.h"

namespace istio_iptables {

/// --backend, --force-iptables-binary and --wait as a BackendRequest.
inline BackendRequest backend_request(const RunOptions& run) {
  BackendRequest request;
  request.backend = run.backend == "libiptc"   ? Backend::Libiptc
                    : run.backend == "restore" ? Backend::Restore
                                               : Backend::Auto;
  request.force_binary = run.force_iptables_binary;
  request.wait_seconds = run.wait_seconds;
  request.lock_file = run.lock_file;
  return request;
}

}  // namespace istio_iptables
