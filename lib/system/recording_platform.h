// The read-only substitution of the machine: dry-run and check run against these.
//
// A command that must not write gets, once, when the command is chosen, a platform that cannot
// write: reads go through to the real machine (a dry-run cleanup shows what *this* namespace
// would lose), every write is recorded and not made. So "cleanup --dry-run deletes nothing" is a
// property of the objects the command runs against, not of an `if` somewhere beside it; the same
// apply/cleanup/check code runs in both modes. Istio's own dry-run is built the same way (its
// iptables executor is swapped for a stub that records the commands).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "system/platform.h"

namespace istio_iptables {

/// One table write a command asked for and did not get: what it would have removed and added.
struct RecordedWrite {
  Family family = Family::V4;
  Table table = Table::Nat;
  /// A rule the write would remove from a chain that stays, decoded when the model covers it.
  struct Removal {
    std::string chain;
    std::optional<Rule> rule;
  };
  std::vector<Removal> removed;      ///< from built-in and foreign chains that stay
  std::vector<std::string> flushed;  ///< chains of ours that would be emptied and deleted
  std::vector<std::string> written;  ///< chains whose content would be set
  std::size_t rules_written = 0;     ///< rules in the chains that would be written
};

/// Everything a read-only run asked to change.
struct Recording {
  std::vector<RecordedWrite> writes;
  std::vector<RouteRequest> routes_configured;
  std::vector<RouteRequest> routes_removed;
  std::vector<nft::Transaction> nft_transactions;  ///< native nftables mode
  bool empty() const {
    return writes.empty() && routes_configured.empty() && routes_removed.empty() && nft_transactions.empty();
  }
};

/// A NetfilterStore that reads through `real` and records instead of committing.
class RecordingStore final : public NetfilterStore {
 public:
  RecordingStore(std::unique_ptr<NetfilterStore> real, Recording& recording)
      : real_(std::move(real)), recording_(recording) {}

  Result<bool> table_exists(Family family, Table table) override { return real_->table_exists(family, table); }
  Result<InstalledRule> encode(Family family, Table table, const Rule& rule) override {
    return real_->encode(family, table, rule);
  }
  Result<Snapshot> read(Family family, Table table) override { return real_->read(family, table); }
  /// Reads, asks `decide`, records the write it returns; commits nothing. Returns whether a
  /// commit would have been made.
  Result<bool> transact(Family family, Table table,
                        const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) override;

 private:
  std::unique_ptr<NetfilterStore> real_;
  Recording& recording_;
};

/// An NftStore that reads through `real` and records transactions instead of committing them.
class RecordingNftStore final : public nft::NftStore {
 public:
  RecordingNftStore(std::unique_ptr<nft::NftStore> real, Recording& recording)
      : real_(std::move(real)), recording_(recording) {}
  Result<nft::InstalledState> read() override { return real_->read(); }
  Result<std::string> fingerprint(const std::string& table, const nft::Rule& rule) override {
    return real_->fingerprint(table, rule);
  }
  /// Records the transaction; reports it as committed, commits nothing.
  Result<nft::CommitOutcome> commit(const nft::Transaction& transaction) override {
    recording_.nft_transactions.push_back(transaction);
    return nft::CommitOutcome::Committed;
  }

 private:
  std::unique_ptr<nft::NftStore> real_;
  Recording& recording_;
};

/// A Platform that enters namespaces and reads through `real`, and records every change.
/// The validation probe is passed through: it writes nothing (it listens and connects on
/// loopback), and Istio runs it in dry-run too.
class RecordingPlatform final : public Platform {
 public:
  explicit RecordingPlatform(Platform& real) : real_(real) {}

  Status enter_network_namespace(const std::string& path) override { return real_.enter_network_namespace(path); }
  /// No lock: nothing is written, and a reader must not make writers wait.
  Result<std::shared_ptr<void>> lock(double, const std::string&) override { return std::shared_ptr<void>(); }
  Result<OpenedStore> open_store(const BackendRequest& request) override;
  Result<std::unique_ptr<nft::NftStore>> open_nft_store() override;
  Status configure_routes(const RouteRequest& request) override;
  Status remove_routes(const RouteRequest& request) override;
  Status validate(const ValidationRequest& request, const ValidationRecord& record) override {
    return real_.validate(request, record);
  }

  const Recording& recording() const { return recording_; }

 private:
  Platform& real_;
  Recording recording_;
};

}  // namespace istio_iptables

namespace istio_iptables {

/// What a recording would do, as `iptables-restore --noflush` input (IPv4 tables, then
/// "# ip6tables-restore" and the IPv6 tables): "-D CHAIN RULE" for each rule removed from a
/// chain that stays, "-F"/"-X" for each chain of ours that goes; native nftables transactions
/// as an nft script ("delete table inet istio-proxy-nat", ...); route changes as `ip` commands
/// in comments. Empty when the recording is.
std::string recording_text(const Recording& recording);

}  // namespace istio_iptables
