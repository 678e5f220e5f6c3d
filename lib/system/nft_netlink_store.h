// The NftStore of the running kernel: libnftnl messages over one NETLINK_NETFILTER socket.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/nft_store.h"
#include "system/nf_tables_batch.h"
#include "system/xt_entry.h"

namespace istio_iptables::nft {

/// Reads our `inet istio-proxy-*` tables with NFT_MSG_GET* dumps bracketed by NFT_MSG_GETGEN,
/// encodes rules exactly as `nft -f` does, and commits one batch carrying the generation it was
/// built from (NFNL_BATCH_GENID), so that the kernel refuses it with ERESTART when another writer
/// committed in between. Not thread-safe; one store per thread.
class NetlinkStore : public NftStore {
 public:
  /// Opens the socket; an error naming the cause when the kernel has no nfnetlink.
  static Result<std::unique_ptr<NetlinkStore>> open();
  NetlinkStore(const NetlinkStore&) = delete;
  NetlinkStore& operator=(const NetlinkStore&) = delete;

  Result<InstalledState> read() override;
  Result<std::string> fingerprint(const std::string& table, const Rule& rule) override;
  Result<CommitOutcome> commit(const Transaction& transaction) override;

 private:
  explicit NetlinkStore(std::unique_ptr<NfTablesSocket> socket);
  Result<InstalledState> read_once(bool* consistent);
  /// A user or group name, from /etc/passwd or /etc/group read directly (never NSS), once.
  Result<std::uint32_t> resolve_owner(const OwnerId& id, bool group);

  std::unique_ptr<NfTablesSocket> socket_;
  EtcGroupResolver groups_;
  std::map<std::string, std::uint32_t> names_;  // resolved user and group names ("g:java", "u:app")
};

/// A rule's NFT_MSG_NEWRULE attributes (table, chain, expressions) written twice: as commit()
/// writes them, and by libnftnl from expression objects (nftnl_rule_nlmsg_build_payload), the
/// encoder nft itself uses. For the test that holds the two equal.
struct RuleEncodings {
  std::string ours;
  std::string libnftnl;
};
Result<RuleEncodings> rule_encodings(const std::string& table, const std::string& chain, const Rule& rule,
                                     const std::function<Result<std::uint32_t>(const OwnerId&, bool)>& resolve);

}  // namespace istio_iptables::nft
