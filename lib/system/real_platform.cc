// Backend choice. libiptc is the default: in-process, one commit per table, no child process.
// It programs legacy x_tables, so it is the wrong tool where the namespace already holds
// nf_tables-based iptables rules (both would be active, and kube-proxy's or the CNI's would sit
// in the other one) or where the kernel has no legacy x_tables; there the restore backend drives
// iptables-nft-restore. Detection reads nf_tables' table list through netlink and /proc for
// x_tables: it creates nothing (Istio's probe appends a rule, which creates the nat table and
// flips its own answer on the next start).
#include "system/real_platform.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "system/libiptc_store.h"
#include "system/netlink.h"
#include "system/nft_netlink_store.h"
#include "system/restore_store.h"
#include "system/xtables_lock.h"

namespace istio_iptables {

Status RealPlatform::enter_network_namespace(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{fmt::format("cannot open network namespace {}: {}", path, std::strerror(errno))};
  int r = ::setns(fd, CLONE_NEWNET);
  int e = errno;
  ::close(fd);
  if (r != 0)
    return Error{fmt::format("cannot enter network namespace {}: {}{}", path, std::strerror(e),
                             e == EPERM    ? " (needs CAP_SYS_ADMIN)"
                             : e == EINVAL ? " (not a network namespace)"
                                           : "")};
  return ok_status();
}

Result<std::shared_ptr<void>> RealPlatform::lock(double wait_seconds) {
  auto it = environment_.find("XTABLES_LOCKFILE");
  auto lock = XtablesLock::acquire(it == environment_.end() ? "" : it->second, wait_seconds);
  if (!lock) return Error{lock.error().message};
  return std::shared_ptr<void>(std::make_shared<XtablesLock>(std::move(lock).value()));
}

namespace {
// Does the namespace hold tables that iptables-nft made (ip/ip6 family, iptables' table names)?
bool nft_iptables_in_use(std::string& why) {
  auto tables = netlink::list_nft_tables();
  if (!tables) return false;
  for (const auto& t : tables.value()) {
    if (t.family != 2 /*NFPROTO_IPV4*/ && t.family != 10 /*NFPROTO_IPV6*/) continue;
    if (t.name == "nat" || t.name == "filter" || t.name == "mangle" || t.name == "raw") {
      why = fmt::format("the namespace already holds nf_tables-based iptables rules (table {} {})",
                        t.family == 2 ? "ip" : "ip6", t.name);
      return true;
    }
  }
  return false;
}
}  // namespace

Result<OpenedStore> RealPlatform::open_store(const BackendRequest& request) {
  std::string why;
  Backend backend = request.backend;
  std::string variant = request.force_binary;
  if (backend == Backend::Auto) {
    if (variant == "nft") {
      backend = Backend::Restore;
      why = "--force-iptables-binary nft";
    } else if (variant == "legacy") {
      backend = Backend::Libiptc;  // legacy x_tables, in-process; fails clearly where there are none
      why = "--force-iptables-binary legacy";
    } else if (nft_iptables_in_use(why)) {
      backend = Backend::Restore;
      variant = "nft";
    } else if (!legacy_xtables_available(Family::V4)) {
      backend = Backend::Restore;
      variant = "nft";
      why = "the kernel has no legacy x_tables";
    } else {
      backend = Backend::Libiptc;
      why = "legacy x_tables available and no nf_tables-based iptables rules in the namespace";
    }
  }
  if (backend == Backend::Libiptc) {
    if (variant == "nft")
      return Error{"--backend libiptc programs legacy x_tables; it cannot honour --force-iptables-binary nft"};
    return OpenedStore{std::make_unique<LibiptcStore>(groups_),
                       fmt::format("libiptc (in-process): {}", why.empty() ? "--backend libiptc" : why)};
  }
  if (variant.empty()) {
    std::string ignored;
    variant = nft_iptables_in_use(ignored) || !legacy_xtables_available(Family::V4) ? "nft" : "legacy";
  }
  // The binaries see what iptables would: our PATH, our XTABLES_LOCKFILE (so that they and the
  // writers this tool waits for share one lock) and, through --wait, our patience.
  std::map<std::string, std::string> child_environment;
  for (const char* name : {"PATH", "XTABLES_LOCKFILE"})
    if (auto it = environment_.find(name); it != environment_.end()) child_environment.emplace(name, it->second);
  auto store = RestoreStore::open(variant, std::move(child_environment), groups_, request.wait_seconds);
  if (!store) return Error{store.error().message};
  return OpenedStore{std::move(store).value(),
                     fmt::format("iptables-{}-restore: {}", variant, why.empty() ? "--backend restore" : why), false};
}

Status RealPlatform::configure_routes(const RouteRequest& request) {
  if (request.ipv6) {
    auto s = netlink::add_ipv6_passthrough_address();
    if (!s) return s;
  }
  if (request.tproxy_routes) {
    for (Family f : {Family::V4, Family::V6}) {
      if (f == Family::V6 && !request.ipv6) continue;
      auto r = netlink::add_fwmark_rule(f, request.mark, request.table);
      if (!r) return r;
      auto t = netlink::add_local_default_route(f, request.table);
      if (!t) return t;
    }
  }
  return ok_status();
}

}  // namespace istio_iptables

namespace istio_iptables {

Status RealPlatform::remove_routes(const RouteRequest& request) {
  if (request.tproxy_routes) {
    for (Family f : {Family::V4, Family::V6}) {
      auto r = netlink::remove_fwmark_rule(f, request.mark, request.table);
      if (!r) return r;
      auto t = netlink::remove_local_default_route(f, request.table);
      if (!t) return t;
    }
  }
  if (request.ipv6) {
    auto s = netlink::remove_ipv6_passthrough_address();
    if (!s) return s;
  }
  return ok_status();
}

}  // namespace istio_iptables

namespace istio_iptables {

Result<std::unique_ptr<nft::NftStore>> RealPlatform::open_nft_store() {
  auto store = nft::NetlinkStore::open();
  if (!store) return Error{store.error().message};
  return std::unique_ptr<nft::NftStore>(std::move(store).value());
}

}  // namespace istio_iptables
