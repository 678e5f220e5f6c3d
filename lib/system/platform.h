// Everything the CLI asks of the machine beyond reading facts, behind one small interface, so
// that the CLI runs in tests against a fake and in production against the kernel.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/result.h"
#include "core/nft_store.h"
#include "core/store.h"
#include "system/validation.h"

namespace istio_iptables {

enum class Backend { Auto, Libiptc, Restore };

/// The choices that pick a backend (from --backend and --force-iptables-binary).
struct BackendRequest {
  Backend backend = Backend::Auto;
  std::string force_binary;         ///< "", "legacy" or "nft"
  std::uint32_t wait_seconds = 30;  ///< passed as --wait to every iptables-restore run (legacy and nft)
  std::string lock_file;            ///< the binaries' XTABLES_LOCKFILE when set (CNI mode)
};

/// An opened backend: the store, and why it was chosen (for the log).
struct OpenedStore {
  std::unique_ptr<NetfilterStore> store;
  std::string description;
  bool needs_xtables_lock = true;  ///< false when the backend's own binaries take the lock
};

/// What TPROXY routing and the IPv6 passthrough address need.
struct RouteRequest {
  bool ipv6 = false;           ///< add ::6/128 to lo
  bool tproxy_routes = false;  ///< ip rule fwmark MARK lookup TABLE; local default route in TABLE
  std::uint32_t mark = 1337;
  std::uint32_t table = 133;
};

class Platform {
 public:
  virtual ~Platform() = default;
  /// Moves this process into the network namespace at `path` (setns), and first into the user
  /// namespace that owns it when that is not ours (a pod with `hostUsers: false`): the kernel
  /// lets only a writer of that user namespace install owner matches (xt_owner), and owner IDs
  /// are the pod's.
  virtual Status enter_network_namespace(const std::string& path) = 0;
  /// Takes the xtables lock, waiting at most `wait_seconds`; released when the guard dies.
  /// `file`: the lock file (CNI mode: the pod's network namespace path, as Istio's CNI locks per
  /// pod); empty for iptables' own, XTABLES_LOCKFILE or /run/xtables.lock.
  virtual Result<std::shared_ptr<void>> lock(double wait_seconds, const std::string& file) = 0;
  /// Opens the backend that will read and write the tables.
  virtual Result<OpenedStore> open_store(const BackendRequest& request) = 0;
  /// Opens the nf_tables store of the current network namespace (native nftables mode).
  virtual Result<std::unique_ptr<nft::NftStore>> open_nft_store() = 0;
  /// ip rule / ip route / address on lo, through netlink. Existing entries are fine.
  virtual Status configure_routes(const RouteRequest& request) = 0;
  /// Removes what configure_routes installs for `request` (the fwmark rule, the local default
  /// route of its table, ::6/128 on lo) and nothing else. Entries already absent are fine.
  virtual Status remove_routes(const RouteRequest& request) = 0;
  /// Istio's validation probe; `log` collects what it saw.
  virtual Status validate(const ValidationRequest& request, const ValidationRecord& record) = 0;
};

}  // namespace istio_iptables
