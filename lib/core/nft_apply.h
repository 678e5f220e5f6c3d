// Apply, check and cleanup of the native nftables plan over an NftStore: kernel-free logic.
//
// Istio flushes and refills its tables on every run, resetting every counter and handle. We
// first read our tables and compare them with the plan in the kernel's own encoding; when they
// are equal nothing is committed at all. Otherwise ONE transaction brings every table of ours to
// the plan: a table the plan no longer has is deleted, a table that differs is deleted and
// declared again with its chains and rules (delete-and-add inside one batch drops chains the plan
// no longer uses, which a flush would keep), a missing table is added, and a table that already
// equals the plan is left alone, counters included. Foreign tables are never named in the
// transaction, so they cannot be touched. The transaction carries the generation of the read:
// when another writer committed in between the kernel refuses it whole, and we read again and
// decide again, a bounded number of times.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/nft_model.h"
#include "core/nft_store.h"
#include "core/result.h"

namespace istio_iptables::nft {

/// How many times a transaction refused for a stale generation is rebuilt before giving up.
inline constexpr unsigned kMaxAttempts = 10;

/// What a run did.
struct NftOutcome {
  bool committed = false;            ///< false: the kernel already held the plan (or nothing to delete)
  unsigned attempts = 0;             ///< commits tried (0 when nothing needed committing)
  std::vector<std::string> written;  ///< tables replaced or added, as "istio-proxy-nat"
  std::vector<std::string> deleted;  ///< tables deleted
  /// The deciding read's InstalledState::xtables_tables: false when no iptables-nft table existed.
  std::optional<bool> xtables_tables;
};

/// Is `name` one of the tables this mode owns (istio-proxy-nat, -mangle, -raw)?
bool is_our_table(const std::string& name);

/// The transaction that turns `installed` into `plan`, empty when they are equal.
Result<Transaction> plan_transaction(NftStore& store, const InstalledState& installed, const Ruleset& plan);

/// Makes our tables hold exactly `plan`, in one transaction (none when they already do).
Result<NftOutcome> apply_nft(NftStore& store, const Ruleset& plan);

/// Deletes our tables in one transaction (none when there is none).
Result<NftOutcome> cleanup_nft(NftStore& store);

/// The differences between our installed tables and `plan`, one line each in nft's words
/// ("table inet istio-proxy-nat chain istio-output: missing rule `skuid 1337 counter return`");
/// empty when they are equal.
Result<std::vector<std::string>> check_nft(NftStore& store, const Ruleset& plan);

}  // namespace istio_iptables::nft
