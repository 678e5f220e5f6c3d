// Backend choice. First the variant, as Istio chooses it (iptables_nft_choice.h): legacy where
// the namespace already holds legacy tables, else nf_tables where the kernel has it, else legacy;
// --force-iptables-binary picks one. Then the mechanism (--backend): in-process by default,
// libiptc for legacy x_tables and IptablesNftStore for nf_tables (every table of both families in
// one transaction, no child process), falling back to iptables-nft-restore where netlink is
// refused; --backend restore drives the chosen variant's restore binaries. The detection reads
// /proc and asks nf_tables for its generation: it creates nothing (Istio's probe appends a rule,
// which creates the nat table and flips its own answer on the next start).
#include "system/real_platform.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "system/iptables_nft_choice.h"
#include "system/iptables_nft_store.h"
#include "system/libiptc_store.h"
#include "system/netlink.h"
#include "system/nft_netlink_store.h"
#include "system/restore_store.h"
#include "system/xtables_lock.h"

namespace istio_iptables {

namespace {

// The user namespace that owns the network namespace `netns_fd`, when it is not ours; -1 when
// it is ours. The kernel answers NS_GET_USERNS with a new descriptor.
Result<int> foreign_owner(int netns_fd, const std::string& path) {
  const int owner = ::ioctl(netns_fd, NS_GET_USERNS);
  if (owner < 0)
    return Error{
        fmt::format("cannot find the user namespace that owns network namespace {}: {}", path, std::strerror(errno))};
  struct stat theirs {};
  struct stat ours {};
  if (::fstat(owner, &theirs) != 0 || ::stat("/proc/self/ns/user", &ours) != 0) {
    const int e = errno;
    ::close(owner);
    return Error{fmt::format("cannot compare user namespaces for {}: {}", path, std::strerror(e))};
  }
  if (theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino) {
    ::close(owner);
    return -1;
  }
  return owner;
}

}  // namespace

Status RealPlatform::enter_network_namespace(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{fmt::format("cannot open network namespace {}: {}", path, std::strerror(errno))};
  // A pod with `hostUsers: false`: its network namespace belongs to the pod's user namespace.
  // Only a writer inside that user namespace may install owner matches there (xt_owner refuses
  // any other with EINVAL), and the UIDs and GIDs of our rules are the pod's. So we join it
  // first, as Istio's CNI does with `nsenter --user --net`: from an ancestor user namespace we
  // hold every capability in it, and after joining we hold them there.
  auto owner = foreign_owner(fd, path);
  if (!owner) {
    ::close(fd);
    return owner.error();
  }
  if (owner.value() >= 0) {
    const int joined = ::setns(owner.value(), CLONE_NEWUSER);
    const int e = errno;
    ::close(owner.value());
    if (joined != 0) {
      ::close(fd);
      return Error{fmt::format("cannot enter the user namespace that owns network namespace {}: {}{}", path,
                               std::strerror(e), e == EPERM ? " (needs CAP_SYS_ADMIN over it)" : "")};
    }
  }
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

Result<std::shared_ptr<void>> RealPlatform::lock(double wait_seconds, const std::string& file) {
  if (!file.empty()) {
    auto lock = XtablesLock::acquire(file, wait_seconds);
    if (!lock) return Error{lock.error().message};
    return std::shared_ptr<void>(std::make_shared<XtablesLock>(std::move(lock).value()));
  }
  auto it = environment_.find("XTABLES_LOCKFILE");
  auto lock = XtablesLock::acquire(it == environment_.end() ? "" : it->second, wait_seconds);
  if (!lock) return Error{lock.error().message};
  return std::shared_ptr<void>(std::make_shared<XtablesLock>(std::move(lock).value()));
}

Result<OpenedStore> RealPlatform::open_store(const BackendRequest& request) {
  // --backend libiptc names legacy x_tables' own library: the legacy variant, in-process.
  if (request.backend == Backend::Libiptc) {
    if (request.force_binary == "nft")
      return Error{"--backend libiptc programs legacy x_tables; it cannot honour --force-iptables-binary nft"};
    return OpenedStore{std::make_unique<LibiptcStore>(groups_),
                       "libiptc (in-process, legacy x_tables): --backend libiptc"};
  }
  // A forced variant needs no facts (and no nf_tables probe).
  auto choice =
      choose_variant(request.force_binary, request.force_binary.empty() ? read_variant_facts() : VariantFacts{});
  if (!choice) return Error{choice.error().message};
  const bool nft = choice.value().variant == IptablesVariant::Nft;
  std::string why = choice.value().why;
  if (request.backend == Backend::Auto) {
    if (!nft)
      return OpenedStore{std::make_unique<LibiptcStore>(groups_),
                         fmt::format("libiptc (in-process, legacy x_tables): {}", why)};
    auto store = IptablesNftStore::open(groups_);
    if (store)
      return OpenedStore{std::move(store).value(),
                         fmt::format("iptables-nft in-process (nf_tables, one transaction): {}", why), false};
    why = fmt::format("{}; in-process nf_tables refused ({})", why, store.error().message);
  }
  // The binaries see what iptables would: our PATH, our XTABLES_LOCKFILE (so that they and the
  // writers this tool waits for share one lock) and, through --wait, our patience.
  const std::string variant = nft ? "nft" : "legacy";
  std::map<std::string, std::string> child_environment;
  for (const char* name : {"PATH", "XTABLES_LOCKFILE"})
    if (auto it = environment_.find(name); it != environment_.end()) child_environment.emplace(name, it->second);
  if (!request.lock_file.empty()) child_environment["XTABLES_LOCKFILE"] = request.lock_file;  // CNI: per pod
  auto store = RestoreStore::open(variant, std::move(child_environment), groups_, request.wait_seconds);
  if (!store) return Error{store.error().message};
  return OpenedStore{std::move(store).value(),
                     fmt::format("iptables-{}-restore: {}{}", variant, why,
                                 request.backend == Backend::Restore ? " (--backend restore)" : ""),
                     false};
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
