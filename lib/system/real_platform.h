// The Platform of a real machine: setns, the xtables lock, libiptc or iptables-restore,
// netlink routes.
#pragma once

#include <map>
#include <string>

#include "system/platform.h"
#include "system/xt_entry.h"

namespace istio_iptables {

class RealPlatform final : public Platform {
 public:
  /// `environment` provides XTABLES_LOCKFILE (as iptables reads it) and PATH.
  explicit RealPlatform(std::map<std::string, std::string> environment) : environment_(std::move(environment)) {}

  Status enter_network_namespace(const std::string& path) override;
  Result<std::shared_ptr<void>> lock(double wait_seconds, const std::string& file) override;
  Result<OpenedStore> open_store(const BackendRequest& request) override;
  Result<std::unique_ptr<nft::NftStore>> open_nft_store() override;
  Status configure_routes(const RouteRequest& request) override;
  Status remove_routes(const RouteRequest& request) override;
  Status validate(const ValidationRequest& request, const ValidationRecord& record) override {
    return run_validation(request, record);
  }

 private:
  std::map<std::string, std::string> environment_;
  EtcGroupResolver groups_;
};

}  // namespace istio_iptables
