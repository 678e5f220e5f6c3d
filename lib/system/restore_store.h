// NetfilterStore over the iptables binaries: iptables-save to read, iptables-restore --noflush
// to write one table in one transaction. For namespaces that use nf_tables-based iptables
// (iptables-nft) or kernels without legacy x_tables, where libiptc cannot go.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/rule_text.h"
#include "core/store.h"
#include "system/xt_entry.h"

namespace istio_iptables {

class RestoreStore final : public NetfilterStore {
 public:
  /// `variant` is "legacy" or "nft". `environment` is what the binaries run with: PATH (where
  /// they are looked up) and XTABLES_LOCKFILE when the tool was given one. `wait_seconds` is
  /// passed to every restore run as --wait.
  static Result<std::unique_ptr<RestoreStore>> open(const std::string& variant,
                                                    std::map<std::string, std::string> environment,
                                                    GroupResolver& groups, std::uint32_t wait_seconds = 30);

  Result<bool> table_exists(Family family, Table table) override;
  Result<InstalledRule> encode(Family family, Table table, const Rule& rule) override;
  Result<Snapshot> read(Family family, Table table) override;
  Result<bool> transact(Family family, Table table,
                        const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) override;

  /// Restore runs started again because another writer changed the table meanwhile.
  int retries() const { return retries_; }

  /// The restore input that turns `now` into what `write` asks for, touching no foreign rule:
  /// our chains are flushed (or created) and filled, in any other chain our rules are deleted
  /// by their specification and inserted at their places, stale chains of ours are deleted.
  /// Empty when there is nothing we may do. Public for tests.
  static Result<std::string> restore_input(Table table, const Snapshot& now, const TableWrite& write,
                                           const std::function<std::optional<std::uint32_t>(const std::string&)>& gid);

 private:
  RestoreStore(std::string variant, std::map<std::string, std::string> environment, GroupResolver& groups,
               std::uint32_t wait)
      : variant_(std::move(variant)), environment_(std::move(environment)), groups_(groups), wait_(wait) {}
  std::string binary(Family family, const char* kind) const;
  std::string path() const;
  Result<const std::vector<TextTable>*> save(Family family);

  std::string variant_;
  std::map<std::string, std::string> environment_;
  GroupResolver& groups_;
  std::uint32_t wait_;
  int retries_ = 0;
  /// The last iptables-save listing per family, parsed, until our next restore run: a run asks
  /// whether each table exists and then reads them, and every save is a process start.
  std::optional<std::vector<TextTable>> saved_[2];
};

}  // namespace istio_iptables
