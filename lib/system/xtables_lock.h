// The xtables lock: the file iptables itself flocks around every change.
#pragma once

#include <string>

#include "core/result.h"

namespace istio_iptables {

/// Holds flock(LOCK_EX) on /run/xtables.lock (or $XTABLES_LOCKFILE) while alive.
class XtablesLock {
 public:
  /// Waits at most `wait_seconds` (0: try once). The path comes from `lockfile` when not empty.
  static Result<XtablesLock> acquire(const std::string& lockfile, double wait_seconds);
  XtablesLock(XtablesLock&& other) noexcept;
  XtablesLock& operator=(XtablesLock&&) = delete;
  XtablesLock(const XtablesLock&) = delete;
  ~XtablesLock();

 private:
  explicit XtablesLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace istio_iptables
