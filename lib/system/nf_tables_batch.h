// The nf_tables netlink plumbing both nf_tables stores share: one NETLINK_NETFILTER socket, the
// generation id, dumps, and one batch sent whole with the generation it was built from.
//
// A batch carries NFNL_BATCH_GENID = the generation of the read it was decided from: the kernel
// checks it under its commit mutex and refuses the whole batch with ERESTART when another writer
// committed in between, so "read, decide, commit" is a compare-and-swap on the whole ruleset. No
// message asks for an ack: the kernel runs the batch inside sendmsg() and queues an error only for
// the messages that failed, which are drained without blocking and named by their description.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

struct mnl_socket;
struct nlmsghdr;
struct nftnl_batch;
struct nftnl_expr;
struct nftnl_rule;

namespace istio_iptables {

/// Appends nf_tables expressions to a rule, each loading into or comparing register 1: the
/// building blocks both encoders (native nftables, iptables-nft) write rules with.
class ExprBuilder {
 public:
  explicit ExprBuilder(nftnl_rule* rule) : rule_(rule) {}
  /// A new expression of type `name`, owned by the rule.
  nftnl_expr* add(const char* name);
  /// `meta KEY` into register 1.
  void meta_load(std::uint32_t key);
  /// `cmp OP register 1, DATA`.
  void cmp(std::uint32_t op, const void* data, std::uint32_t len);
  /// `payload BASE OFFSET LEN` into register 1.
  void payload(std::uint32_t base, std::uint32_t offset, std::uint32_t len);
  /// `bitwise register 1 = (register 1 & MASK) ^ XOR`.
  void bitwise(const void* mask, const void* xor_value, std::uint32_t len);

 protected:
  nftnl_rule* rule_;
};

/// One NETLINK_NETFILTER socket bound to the current network namespace. Not thread-safe.
class NfTablesSocket {
 public:
  /// Opens and binds the socket; an error naming the cause when the kernel has no nfnetlink.
  static Result<std::unique_ptr<NfTablesSocket>> open();
  ~NfTablesSocket();
  NfTablesSocket(const NfTablesSocket&) = delete;
  NfTablesSocket& operator=(const NfTablesSocket&) = delete;

  /// The ruleset's generation id (NFT_MSG_GETGEN).
  Result<std::uint32_t> generation();

  /// Dumps `type` (NFT_MSG_GETTABLE, ...) of `family` (NFPROTO_UNSPEC: all) and runs `on_message`
  /// over every reply (return MNL_CB_OK, or MNL_CB_ERROR to fail). `payload` may add attributes.
  /// An interrupted dump (EINTR, NLM_F_DUMP_INTR) sets *interrupted: the caller reads again.
  Status dump(std::uint16_t type, std::uint16_t family, const std::function<int(const nlmsghdr*)>& on_message,
              bool* interrupted, const std::function<void(nlmsghdr*)>& payload = nullptr);

  std::uint32_t next_seq() { return ++seq_; }
  mnl_socket* socket() { return socket_; }

 private:
  explicit NfTablesSocket(mnl_socket* socket);
  mnl_socket* socket_;
  std::uint32_t seq_;
};

/// One nf_tables batch: BATCH_BEGIN with the generation, the messages, BATCH_END.
class NfTablesBatch {
 public:
  NfTablesBatch(NfTablesSocket& socket, std::uint32_t generation);
  ~NfTablesBatch();
  NfTablesBatch(const NfTablesBatch&) = delete;
  NfTablesBatch& operator=(const NfTablesBatch&) = delete;

  /// Starts a message; `description` names it in an error ("add rule ip nat OUTPUT ..."). Fill
  /// its payload, then call end_message().
  nlmsghdr* message(std::uint16_t type, std::uint16_t family, std::uint16_t flags, std::string description);
  /// The same, with the description made only if the message fails (a rule's text costs more to
  /// make than its encoding; a batch that commits never needs it). `describe` must stay valid
  /// until send() returns.
  nlmsghdr* message(std::uint16_t type, std::uint16_t family, std::uint16_t flags,
                    std::function<std::string()> describe);
  void end_message();
  /// The number of messages between BATCH_BEGIN and BATCH_END.
  std::size_t messages() const { return described_.size(); }

  /// What the kernel said: the whole batch was refused because the generation moved on
  /// (`restart`), or these messages failed (the batch then changed nothing), or it committed.
  struct Failure {
    std::size_t message;      ///< the message's index (messages() when it was started)
    int error;                ///< the kernel's errno
    std::string description;  ///< as given to message()
    /// "kernel refused `DESCRIPTION` (CAUSE)", with `hint` after the cause ("; does ...?").
    std::string text(const std::string& hint = "") const;
  };
  struct Outcome {
    bool restart = false;
    std::vector<Failure> failures;
  };
  /// Ends and sends the batch; an error when it cannot be sent at all.
  Result<Outcome> send();

 private:
  NfTablesSocket& socket_;
  nftnl_batch* batch_;
  std::vector<std::pair<std::uint32_t, std::function<std::string()>>> described_;  // seq -> description
};

}  // namespace istio_iptables
