#include "system/host_facts.h"

#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "core/message.h"
#include "system/etc_file.h"

namespace istio_iptables {
namespace {

// Istio skips loopback, link-local unicast and link-local multicast (after unmapping).
bool usable(const Address& a) {
  if (is_loopback(a)) return false;
  if (a.family == Family::V4)
    return !(a.bytes[0] == 169 && a.bytes[1] == 254) && !(a.bytes[0] == 224 && a.bytes[1] == 0 && a.bytes[2] == 0);
  if (a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80) return false;  // fe80::/10
  if (a.bytes[0] == 0xff && (a.bytes[1] & 0x0f) == 0x02) return false;  // ff02::/16 (link-local multicast)
  return true;
}

}  // namespace

Result<bool> HostFacts::ipv6_enabled(bool dual_stack) {
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return Error{fmt::format("cannot list interface addresses: {}", std::strerror(errno))};
  std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> list(raw, freeifaddrs);
  bool found_any = false;
  for (ifaddrs* it = raw; it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr) continue;
    Address a;
    if (it->ifa_addr->sa_family == AF_INET) {
      sockaddr_in sin{};
      std::memcpy(&sin, it->ifa_addr, sizeof sin);
      a.family = Family::V4;
      std::memcpy(a.bytes.data(), &sin.sin_addr, 4);
    } else if (it->ifa_addr->sa_family == AF_INET6) {
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, it->ifa_addr, sizeof sin6);
      a.family = Family::V6;
      std::memcpy(a.bytes.data(), &sin6.sin6_addr, 16);
      if (is_ipv4_mapped(a)) {
        Address v4{Family::V4, {}};
        std::memcpy(v4.bytes.data(), a.bytes.data() + 12, 4);
        a = v4;
      }
    } else {
      continue;
    }
    if (!usable(a)) continue;
    // Not dual stack: the first usable address decides. Dual stack: any IPv6 address enables it.
    if (!dual_stack) return a.family == Family::V6;
    found_any = true;
    if (a.family == Family::V6) return true;
  }
  if (found_any) return false;
  return Error{"no valid local IP address found"};
}

std::string file_error(const char* what, const std::string& path, const std::string& reason) {
  return fmt::format("cannot {} {}: {}", what, quoted_for_message(path), reason);
}

Result<int> open_regular_file(const std::string& path, int* open_errno) {
  if (open_errno) *open_errno = 0;
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int saved = errno;
    if (open_errno) *open_errno = saved;
    return Error{file_error("open", path, std::strerror(saved))};
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int saved = errno;
    ::close(fd);
    return Error{file_error("read", path, std::strerror(saved))};
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error{file_error("read", path, S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file")};
  }
  return fd;
}

Result<std::string> HostFacts::read_file(const std::string& path, std::size_t max_bytes) {
  // "-" is standard input, which may be a pipe: it is the caller's to allow or refuse.
  const bool standard_input = path == "-";
  int fd = STDIN_FILENO;
  if (!standard_input) {
    auto opened = open_regular_file(path);
    if (!opened) return Error{opened.error().message};
    fd = opened.value();
  }
  const std::string name = standard_input ? "standard input" : quoted_for_message(path);
  std::string text;
  std::string failure;
  char buffer[65536];
  while (failure.empty()) {
    // One byte past the limit tells "exactly at the limit" from "larger".
    std::size_t room = max_bytes - text.size();  // text never holds more than max_bytes here
    std::size_t want = room >= sizeof buffer ? sizeof buffer : room + 1;
    ssize_t n = ::read(fd, buffer, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      failure = fmt::format("cannot read {}: {}", name, std::strerror(errno));
    else if (n == 0)
      break;
    else
      text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) failure = fmt::format("cannot read {}: larger than {} bytes", name, max_bytes);
  }
  if (!standard_input) ::close(fd);
  if (!failure.empty()) return Error{failure};
  return text;
}

Result<std::optional<std::uint32_t>> HostFacts::user_id(const std::string& user) {
  std::optional<std::uint32_t> uid;  // none: no such user (also when there is no passwd file)
  auto read = read_etc_file<passwd>(passwd_path_, ::fgetpwent_r, [&](const passwd& entry) {
    if (user != entry.pw_name) return true;
    uid = entry.pw_uid;  // the first entry of a name wins, as getpwnam's
    return false;
  });
  if (!read) return Error{read.error().message};
  return uid;
}

}  // namespace istio_iptables
