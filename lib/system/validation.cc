// One thread, one poll loop: two listening sockets, one client connection attempt a second.
// SO_ORIGINAL_DST (IP6T_SO_ORIGINAL_DST for IPv6) gives the destination a REDIRECTed
// connection had before nat rewrote it.
#include "system/validation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace istio_iptables {
namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd = o.fd;
      o.fd = -1;
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

sockaddr_storage make_addr(bool ipv6, const char* text, std::uint16_t port, socklen_t& len) {
  sockaddr_storage ss{};
  if (ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, text, &a->sin6_addr);
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, text, &a->sin_addr);
    len = sizeof(sockaddr_in);
  }
  return ss;
}

// The original destination port of an accepted connection, or -1.
int original_port(int fd, bool ipv6) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int r = ipv6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len)
               : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
  if (r != 0) return -1;
  return ipv6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
              : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// Go's spelling of an address with its port (net.JoinHostPort): IPv6 in brackets.
std::string host_port(bool ipv6, const char* ip, std::uint16_t port) {
  return ipv6 ? fmt::format("[{}]:{}", ip, port) : fmt::format("{}:{}", ip, port);
}

// Go's text of a system error (syscall.Errno): strerror's, first letter in lower case.
std::string go_errno(int e) {
  std::string text = std::strerror(e);
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z') text[0] = static_cast<char>(text[0] - 'A' + 'a');
  return text;
}

}  // namespace

Status run_validation(const ValidationRequest& req, const ValidationRecord& record) {
  const bool v6 = req.ipv6;
  const char* listen_ip = v6 ? "::1" : "127.0.0.1";
  const char* server_ip = v6 ? "::6" : "127.0.0.6";
  const std::string server = host_port(v6, server_ip, req.probe_port);
  record(false,
         "Starting iptables validation. This check verifies that iptables rules are properly established for the "
         "network.");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(req.timeout_ms);

  std::vector<Fd> listeners;
  std::string failures;
  for (std::uint16_t port : {req.outbound_port, req.inbound_port}) {
    const std::string where = host_port(v6, listen_ip, port);
    record(false, "Listening on " + where);
    Fd s(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(s.fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    socklen_t len;
    auto addr = make_addr(v6, listen_ip, port, len);
    if (s.fd < 0 || ::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(s.fd, 16) != 0) {
      const std::string cause = fmt::format("listen tcp {}: bind: {}", where, go_errno(errno));
      record(true, "Error on listening: " + cause);
      failures += (failures.empty() ? "" : "; ") + cause;
      continue;
    }
    listeners.push_back(std::move(s));
  }
  if (listeners.empty()) {
    const std::string cause = "no listener available: " + failures;
    record(true, "Validation failed: " + cause);
    return Error{cause};
  }

  Fd client;
  bool client_pending = false;
  auto next_attempt = std::chrono::steady_clock::now();
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return Error{fmt::format(
          "validation timeout after {} ms: no connection to {} reached a listener with its original destination",
          req.timeout_ms, server)};
    if (now >= next_attempt) {
      // A fresh connection from 127.0.0.1:0 (::1) to 127.0.0.6:probe_port (::6) each second.
      client = Fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      socklen_t len;
      auto local = make_addr(v6, listen_ip, 0, len);
      ::bind(client.fd, reinterpret_cast<sockaddr*>(&local), len);
      auto remote = make_addr(v6, server_ip, req.probe_port, len);
      client_pending = ::connect(client.fd, reinterpret_cast<sockaddr*>(&remote), len) != 0 && errno == EINPROGRESS;
      next_attempt = now + std::chrono::seconds(1);
    }
    std::vector<pollfd> fds;
    for (auto& l : listeners) fds.push_back({l.fd, POLLIN, 0});
    if (client_pending) fds.push_back({client.fd, POLLOUT, 0});
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::min(next_attempt, deadline) - now).count();
    ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(wait, 1)));
    if (client_pending && fds.back().revents != 0) {
      // The attempt finished: refused (no rule redirected it, nothing listens there) or connected.
      client_pending = false;
      int error = 0;
      socklen_t size = sizeof error;
      getsockopt(client.fd, SOL_SOCKET, SO_ERROR, &error, &size);
      if (error != 0)
        record(true, fmt::format("Error connecting to {}: dial tcp {}->{}: connect: {}", server,
                                 host_port(v6, listen_ip, 0), server, go_errno(error)));
    }
    for (auto& l : listeners) {
      for (;;) {
        int c = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) break;
        Fd conn(c);
        int port = original_port(conn.fd, v6);
        std::string reply = std::to_string(port);
        (void)!::write(conn.fd, reply.data(), reply.size());
        if (port == req.probe_port) return ok_status();
      }
    }
  }
}

}  // namespace istio_iptables
