#include "system/host_facts.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

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

Result<std::string> HostFacts::read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{fmt::format("cannot open {}: {}", path, std::strerror(errno))};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<std::uint32_t> HostFacts::user_id(const std::string& user) {
  std::ifstream in("/etc/passwd");
  std::string line;
  while (std::getline(in, line)) {
    // name:password:uid:gid:gecos:home:shell
    std::size_t c1 = line.find(':');
    if (c1 == std::string::npos || line.compare(0, c1, user) != 0 || c1 != user.size()) continue;
    std::size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::size_t c3 = line.find(':', c2 + 1);
    std::string uid = line.substr(c2 + 1, c3 == std::string::npos ? std::string::npos : c3 - c2 - 1);
    if (uid.empty() || uid.size() > 10 || uid.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    unsigned long long v = std::stoull(uid);
    if (v > 4294967294ULL) return std::nullopt;
    return static_cast<std::uint32_t>(v);
  }
  return std::nullopt;
}

}  // namespace istio_iptables
