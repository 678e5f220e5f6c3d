// NetfilterStore over the iptables binaries: iptables-save to read, iptables-restore --noflush
// to write one table in one transaction. For namespaces that use nf_tables-based iptables
// (iptables-nft) or kernels without legacy x_tables, where libiptc cannot go.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/store.h"
#include "system/xt_entry.h"

namespace istio_iptables {

class RestoreStore final : public NetfilterStore {
 public:
  /// `variant` is "legacy" or "nft"; the binaries are looked up in `path`.
  static Result<std::unique_ptr<RestoreStore>> open(const std::string& variant, const std::string& path,
                                                    GroupResolver& groups, std::uint32_t wait_seconds = 30);

  Result<bool> table_exists(Family family, Table table) override;
  Result<InstalledRule> encode(Family family, Table table, const Rule& rule) override;
  Result<Snapshot> read(Family family, Table table) override;
  Result<bool> transact(Family family, Table table,
                        const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) override;

 private:
  RestoreStore(std::string variant, std::string path, GroupResolver& groups, std::uint32_t wait)
      : variant_(std::move(variant)), path_(std::move(path)), groups_(groups), wait_(wait) {}
  std::string binary(Family family, const char* kind) const;
  Result<std::string> save(Family family);

  std::string variant_;
  std::string path_;
  GroupResolver& groups_;
  std::uint32_t wait_;
  /// The last iptables-save output per family, until our next restore run: a run asks whether
  /// each table exists and then reads them, and every save is a process start.
  std::optional<std::string> saved_[2];
};

}  // namespace istio_iptables
