// NetfilterStore over libiptc: legacy x_tables, in-process, one commit per table.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/store.h"
#include "system/xt_entry.h"

namespace istio_iptables {

/// Reads and writes the current network namespace's x_tables through libiptc. Not thread-safe
/// across instances by itself: every call takes one process-wide mutex (libiptc has global
/// state). The xtables lock is the caller's (XtablesLock), held around a whole run.
class LibiptcStore final : public NetfilterStore {
 public:
  explicit LibiptcStore(GroupResolver& groups) : groups_(groups) {}

  Result<bool> table_exists(Family family, Table table) override;
  Result<std::vector<Table>> existing_tables(Family family) override;  ///< in the kernel's order
  Result<InstalledRule> encode(Family family, Table table, const Rule& rule) override;
  Result<Snapshot> read(Family family, Table table) override;
  Result<bool> transact(Family family, Table table,
                        const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) override;

  /// Number of commits that had to be retried (EAGAIN, EEXIST) so far: for tests and logs.
  int retries() const { return retries_; }

 private:
  // The kernel's list of a family's tables, read once and kept until this store reads or writes
  // a table (libiptc instantiates a missing table when it opens it): a run asks about each of the
  // four tables of both families before it touches any.
  Result<const std::vector<std::string>*> table_names(Family family);

  GroupResolver& groups_;
  int retries_ = 0;
  std::array<std::optional<std::vector<std::string>>, 2> names_;
};

/// Does this kernel offer legacy x_tables for the family? (Reads /proc; creates nothing.)
bool legacy_xtables_available(Family family);

/// The legacy tables that exist in this network namespace for the family, as the kernel lists
/// them in /proc/net/ip{,6}_tables_names ("nat", "raw", ...). No such file: legacy x_tables are
/// not loaded, so none exists (empty). Any other failure to read it is an error naming the file.
Result<std::vector<std::string>> legacy_table_names(Family family);

}  // namespace istio_iptables
