// The machine's answers to what Istio reads from it: interface addresses (is IPv6 on?), files
// (resolv.conf, --against) and the passwd database (the proxy user's UID).
//
// Input files are read defensively, because their paths come from flags: a directory once read
// as an empty resolv.conf (DNS capture silently off), /dev/zero grew without bound and a FIFO with
// no writer blocked forever. So a file is opened O_NONBLOCK, must be a regular file, is read up to
// a limit the caller names, and every failure is an error naming the path and the errno text.
// passwd and group files are parsed by glibc's own fgetpwent_r/fgetgrent_r, never through NSS.
#pragma once

#include <string>
#include <utility>

#include "core/settings.h"

namespace istio_iptables {

/// MachineFacts read from the running system (the current network namespace).
class HostFacts final : public MachineFacts {
 public:
  explicit HostFacts(std::string passwd_path = "/etc/passwd") : passwd_path_(std::move(passwd_path)) {}
  using MachineFacts::read_file;
  Result<bool> ipv6_enabled(bool dual_stack) override;
  Result<std::string> read_file(const std::string& path, std::size_t max_bytes) override;
  /// Reads /etc/passwd directly with fgetpwent_r: no NSS module is loaded (Istio hit network
  /// lookups through NSS). A missing /etc/passwd has no users (as glibc's files backend says);
  /// one that exists and cannot be read is an error.
  Result<std::optional<std::uint32_t>> user_id(const std::string& user) override;

 private:
  std::string passwd_path_;
};

/// Opens `path` for reading if it is a regular file: O_NONBLOCK, so that opening a FIFO cannot
/// block, and O_CLOEXEC. A directory, a device, a FIFO or a socket is refused ("is a directory",
/// "is not a regular file"); errors name the path and the errno text. The caller closes the fd.
/// `open_errno`, when given, receives the errno of a failed open(2) (0 otherwise): ENOENT there
/// tells "no such file" from a file that exists and cannot be read.
Result<int> open_regular_file(const std::string& path, int* open_errno = nullptr);

/// "cannot open PATH: REASON", the path quoted for a message.
std::string file_error(const char* what, const std::string& path, const std::string& reason);

}  // namespace istio_iptables
