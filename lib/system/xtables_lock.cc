#include "system/xtables_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

namespace istio_iptables {

Result<XtablesLock> XtablesLock::acquire(const std::string& lockfile, double wait_seconds) {
  const std::string path = lockfile.empty() ? "/run/xtables.lock" : lockfile;
  // Read-only, as iptables opens it: a network namespace file (CNI mode's per-pod lock) refuses
  // O_RDWR, and flock needs no write access.
  int fd = ::open(path.c_str(), O_CREAT | O_RDONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    return Error{fmt::format("cannot open the xtables lock {}: {}{}", path, std::strerror(e),
                             e == EACCES || e == EPERM ? " (run as root, as iptables does)" : "")};
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds);
  // iptables polls with LOCK_NB too; a short interval keeps the wait responsive.
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      int e = errno;
      ::close(fd);
      return Error{fmt::format("cannot lock {}: {}", path, std::strerror(e))};
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::close(fd);
      return Error{
          fmt::format("another program holds the xtables lock {}; gave up after {}s (--wait)", path, wait_seconds)};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return XtablesLock(fd);
}

XtablesLock::XtablesLock(XtablesLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

XtablesLock::~XtablesLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace istio_iptables
