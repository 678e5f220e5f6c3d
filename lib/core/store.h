// The seam between the pure apply logic and the kernel: a store of netfilter tables.
//
// The apply, check and cleanup logic (apply.h) only reads snapshots and asks for whole-table
// writes through this interface. The system layer implements it with libiptc (one commit per
// table, under the xtables lock); tests implement it in memory and can make any commit fail.
// Rules read from the kernel are opaque blobs with an identity; only the store knows how they
// are encoded. A rule of ours is encoded by the store too, so that "is this installed rule the
// one we want" is a comparison of identities, i.e. of what the kernel holds, not of text.
//
// A run decides every (family, table) it visits through transact_all. x_tables commit one table
// at a time, so the default implementation (apply.cc) transacts table by table and writes the
// tables already committed back when a later one fails; nf_tables can commit every table of both
// families in one transaction, and its store does exactly that from one read.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/result.h"

namespace istio_iptables {

/// One installed rule.
struct InstalledRule {
  std::string blob;          ///< what the store needs to install this rule again, as it was
  std::string identity;      ///< equal identities = the same rule to the kernel; empty: the blob
  std::optional<Rule> rule;  ///< decoded, when every part of it is in our model

  const std::string& id() const { return identity.empty() ? blob : identity; }
};

struct InstalledChain {
  std::string name;
  bool builtin = false;
  std::vector<InstalledRule> rules;
  /// A foreign user chain the store did not read rule by rule because nothing in it is ours
  /// (no jump to an ISTIO_* chain): it is kept as it is and never written.
  bool opaque = false;
  /// A built-in chain's policy and its counters, for listings (Istio's final state); "" when the
  /// store does not know it (listed as ACCEPT [0:0]).
  std::string policy{};
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
};

/// One table as read in one snapshot.
struct Snapshot {
  Table table = Table::Nat;
  std::vector<InstalledChain> chains;  // built-in chains first, then user chains

  const InstalledChain* find(const std::string& name) const;
};

/// What to write to one table in one commit: chains to (re)write completely, in this order
/// (created when missing), and user chains to delete afterwards. The blobs point into the
/// snapshot and the encoded rules the write was computed from (valid while they live: within
/// one transact call).
struct TableWrite {
  struct Chain {
    std::string name;
    std::vector<const std::string*> blobs;
  };
  std::vector<Chain> chains;
  std::vector<std::string> delete_chains;
};

/// One (family, table) of a transaction over several tables.
struct TableKey {
  Family family;
  Table table;
};

/// What to write to tables[index], given the table as read (nullopt: nothing).
using TableDecision = std::function<Result<std::optional<TableWrite>>(std::size_t index, const Snapshot&)>;

/// A store of netfilter tables (libiptc in the system layer; in memory in tests).
class NetfilterStore {
 public:
  virtual ~NetfilterStore() = default;

  /// Does the table exist already? (Asking must not create it.) An error when the store cannot
  /// tell (no permission, unreadable listing): never "no" for "could not look".
  [[nodiscard]] virtual Result<bool> table_exists(Family family, Table table) = 0;

  /// Encodes one of our rules as a blob (and its identity) for this family.
  virtual Result<InstalledRule> encode(Family family, Table table, const Rule& rule) = 0;

  /// Reads the table.
  virtual Result<Snapshot> read(Family family, Table table) = 0;

  /// Reads the table, asks `decide` what to write (nullopt: nothing) and writes it in one
  /// commit. A commit that races another writer is retried from a fresh read; after any other
  /// failed commit the table is read again and `decide` asked again: nullopt then means the
  /// table is as wanted after all. Returns whether a commit was made.
  virtual Result<bool> transact(Family family, Table table,
                                const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) = 0;

  /// Reads every table of `tables`, asks `decide` about each and writes what it answers: all of
  /// it or none of it. Returns, per table, whether it was written. The default commits table by
  /// table through transact() and, when a commit fails, writes the tables already committed back
  /// as they were read (the error says whether that worked); a store that can commit all tables
  /// in one transaction overrides it.
  /// The family's existing tables among filter, mangle, nat and raw, in the order the kernel lists
  /// them where that order is iptables-save's (legacy: /proc/net/ip_tables_names); by default
  /// in kAllTables' order. Never creates a table.
  virtual Result<std::vector<Table>> existing_tables(Family family);

  virtual Result<std::vector<bool>> transact_all(const std::vector<TableKey>& tables, const TableDecision& decide);
};

}  // namespace istio_iptables
