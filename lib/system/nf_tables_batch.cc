// See nf_tables_batch.h. The socket's buffers are raised (SO_SNDBUFFORCE / SO_RCVBUFFORCE, as
// iptables-nft does) so that a 10 000-rule batch goes out in one sendmsg() and every error of a
// refused batch fits in the receive queue.
#include "system/nf_tables_batch.h"

#include <libnftnl/rule.h>

#include <libnftnl/expr.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace istio_iptables {
namespace {

const std::size_t kBufferSize = static_cast<std::size_t>(MNL_SOCKET_BUFFER_SIZE);

// A receive buffer, left uninitialised: it is read only as far as the kernel wrote. Zeroing 16 KiB
// per request cost more than the request's own encoding, and touched pages nothing else needs.
// (Buffers that are sent stay zeroed: libmnl does not clear an attribute's padding.)
class Buffer {
 public:
  explicit Buffer(std::size_t size) : data_(new char[size]), size_(size) {}
  char* data() { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_;
};

std::string errno_text(int err) { return std::strerror(err); }

// Does this part of a receive buffer end dump `seq` (NLMSG_DONE or an error for it)?
bool ends_dump(const char* data, std::size_t size, std::uint32_t seq) {
  int len = static_cast<int>(size);
  for (auto* h = reinterpret_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len))
    if (h->nlmsg_seq == seq && (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)) return true;
  return false;
}

// Reads and drops the rest of dump `seq` (up to its NLMSG_DONE or error), unless the buffer
// libmnl stopped in (its first `received` bytes) already holds the end.
Status drain_dump(mnl_socket* nl, Buffer& buf, std::size_t received, std::uint32_t seq) {
  if (ends_dump(buf.data(), received, seq)) return ok_status();
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{fmt::format("cannot read nf_tables: receiving an interrupted dump failed ({})", errno_text(errno))};
    }
    if (ends_dump(buf.data(), static_cast<std::size_t>(n), seq)) return ok_status();
  }
}

// Sends one request and runs `cb` over every reply until the dump (or the single answer) ends.
Status request(mnl_socket* nl, nlmsghdr* nlh, std::uint32_t seq, const std::function<int(const nlmsghdr*)>& cb,
               const char* what, bool* interrupted) {
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
    return Error{fmt::format("cannot read nf_tables: sending {} failed ({})", what, errno_text(errno))};
  const unsigned portid = mnl_socket_get_portid(nl);
  Buffer buf(kBufferSize * 4);
  struct Ctx {
    const std::function<int(const nlmsghdr*)>* cb;
    bool* interrupted;
  } ctx{&cb, interrupted};
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR && interrupted) {
        *interrupted = true;
        return ok_status();
      }
      return Error{fmt::format("cannot read nf_tables: receiving {} failed ({})", what, errno_text(errno))};
    }
    const int ret = mnl_cb_run(
        buf.data(), static_cast<std::size_t>(n), seq, portid,
        [](const nlmsghdr* h, void* data) -> int {
          auto* c = static_cast<Ctx*>(data);
          if ((h->nlmsg_flags & NLM_F_DUMP_INTR) && c->interrupted) *c->interrupted = true;
          return (*c->cb)(h);
        },
        &ctx);
    if (ret < 0) {
      const int err = errno;
      if (err == EINTR && interrupted) {
        // libmnl stops at a message flagged NLM_F_DUMP_INTR: read the rest of the dump away, so
        // that the next request on this socket does not find it first.
        *interrupted = true;
        return drain_dump(nl, buf, static_cast<std::size_t>(n), seq);
      }
      if (err == EAFNOSUPPORT || err == EOPNOTSUPP || err == EPROTONOSUPPORT)
        return Error{fmt::format("cannot read nf_tables: the kernel has no nf_tables ({}: {})", what, errno_text(err))};
      return Error{fmt::format("cannot read nf_tables: {} failed ({})", what, errno_text(err))};
    }
    if (ret == MNL_CB_STOP) return ok_status();
  }
}

}  // namespace

NfTablesSocket::NfTablesSocket(mnl_socket* socket)
    : socket_(socket), seq_(static_cast<std::uint32_t>(getpid()) << 12) {}

NfTablesSocket::~NfTablesSocket() { mnl_socket_close(socket_); }

Result<std::unique_ptr<NfTablesSocket>> NfTablesSocket::open() {
  mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl)
    return Error{fmt::format("cannot open a netfilter netlink socket: the kernel has no nfnetlink/nf_tables ({})",
                             errno_text(errno))};
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    mnl_socket_close(nl);
    return Error{fmt::format("cannot bind a netfilter netlink socket ({})", errno_text(err))};
  }
  return std::unique_ptr<NfTablesSocket>(new NfTablesSocket(nl));
}

Result<std::uint32_t> NfTablesSocket::generation() {
  std::vector<char> buf(kBufferSize);  // zeroed: libmnl leaves attribute padding as it finds it
  const std::uint32_t seq = next_seq();
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETGEN, NFPROTO_UNSPEC, NLM_F_ACK, seq);
  std::uint32_t out = 0;
  bool seen = false;
  auto st = request(
      socket_, nlh, seq,
      [&](const nlmsghdr* h) {
        if ((h->nlmsg_type & 0xff) != NFT_MSG_NEWGEN) return MNL_CB_OK;
        nftnl_gen* g = nftnl_gen_alloc();
        if (nftnl_gen_nlmsg_parse(h, g) == 0) {
          out = nftnl_gen_get_u32(g, NFTNL_GEN_ID);
          seen = true;
        }
        nftnl_gen_free(g);
        return MNL_CB_OK;
      },
      "NFT_MSG_GETGEN", nullptr);
  if (!st) return Error{st.error().message};
  if (!seen) return Error{"cannot read nf_tables: the kernel answered NFT_MSG_GETGEN without a generation"};
  return out;
}

Status NfTablesSocket::dump(std::uint16_t type, std::uint16_t family, const std::function<int(const nlmsghdr*)>& cb,
                            bool* interrupted, const std::function<void(nlmsghdr*)>& payload) {
  std::vector<char> buf(kBufferSize);  // zeroed, as the request above
  const std::uint32_t seq = next_seq();
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, family, NLM_F_DUMP, seq);
  if (payload) payload(nlh);
  const char* what = type == NFT_MSG_GETTABLE   ? "NFT_MSG_GETTABLE"
                     : type == NFT_MSG_GETCHAIN ? "NFT_MSG_GETCHAIN"
                     : type == NFT_MSG_GETRULE  ? "NFT_MSG_GETRULE"
                     : type == NFT_MSG_GETSET   ? "NFT_MSG_GETSET"
                                                : "an nf_tables dump";
  return request(socket_, nlh, seq, cb, what, interrupted);
}

NfTablesBatch::NfTablesBatch(NfTablesSocket& socket, std::uint32_t generation)
    : socket_(socket), batch_(nftnl_batch_alloc(static_cast<std::uint32_t>(kBufferSize * 16),
                                                static_cast<std::uint32_t>(kBufferSize * 4))) {
  nlmsghdr* begin = nftnl_batch_begin(static_cast<char*>(nftnl_batch_buffer(batch_)), socket_.next_seq());
  mnl_attr_put_u32(begin, NFNL_BATCH_GENID, htonl(generation));
  nftnl_batch_update(batch_);
}

NfTablesBatch::~NfTablesBatch() { nftnl_batch_free(batch_); }

nlmsghdr* NfTablesBatch::message(std::uint16_t type, std::uint16_t family, std::uint16_t flags,
                                 std::string description) {
  return message(type, family, flags, [d = std::move(description)] { return d; });
}

nlmsghdr* NfTablesBatch::message(std::uint16_t type, std::uint16_t family, std::uint16_t flags,
                                 std::function<std::string()> describe) {
  const std::uint32_t seq = socket_.next_seq();
  described_.emplace_back(seq, std::move(describe));
  return nftnl_nlmsg_build_hdr(static_cast<char*>(nftnl_batch_buffer(batch_)), type, family, flags, seq);
}

void NfTablesBatch::end_message() { nftnl_batch_update(batch_); }

std::string NfTablesBatch::Failure::text(const std::string& hint) const {
  return fmt::format("kernel refused `{}` ({}{})", description, errno_text(error), hint);
}

Result<NfTablesBatch::Outcome> NfTablesBatch::send() {
  nftnl_batch_end(static_cast<char*>(nftnl_batch_buffer(batch_)), socket_.next_seq());
  nftnl_batch_update(batch_);
  const int iovlen = nftnl_batch_iovec_len(batch_);
  std::vector<iovec> iov(static_cast<std::size_t>(iovlen));
  nftnl_batch_iovec(batch_, iov.data(), static_cast<std::uint32_t>(iovlen));
  std::size_t total = 0;
  for (const auto& v : iov) total += v.iov_len;
  const int fd = mnl_socket_get_fd(socket_.socket());
  const int sndbuf = static_cast<int>(std::max<std::size_t>(total * 2, 1 << 20));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
  const int rcvbuf = static_cast<int>(std::max<std::size_t>(described_.size() * 256, 1 << 20));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
  sockaddr_nl snl{};
  snl.nl_family = AF_NETLINK;
  msghdr msg{};
  msg.msg_name = &snl;
  msg.msg_namelen = sizeof(snl);
  msg.msg_iov = iov.data();
  msg.msg_iovlen = iov.size();
  if (sendmsg(fd, &msg, 0) < 0)
    return Error{fmt::format("cannot commit the nf_tables transaction: sendmsg failed ({}); nothing was changed",
                             errno_text(errno))};

  // The kernel ran the batch inside sendmsg(): only failed messages left an error behind.
  Outcome out;
  Buffer buf(kBufferSize * 4);
  for (;;) {
    const ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n <= 0) break;
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(h));
      if (err->error == 0) continue;
      const int e = -err->error;
      if (e == ERESTART || e == EAGAIN) {
        out.restart = true;
        continue;
      }
      auto it =
          std::find_if(described_.begin(), described_.end(), [&](const auto& d) { return d.first == h->nlmsg_seq; });
      if (it == described_.end())
        out.failures.push_back(Failure{described_.size(), e, fmt::format("message {}", h->nlmsg_seq)});
      else
        out.failures.push_back(Failure{static_cast<std::size_t>(it - described_.begin()), e, it->second()});
    }
  }
  return out;
}

nftnl_expr* ExprBuilder::add(const char* name) {
  nftnl_expr* e = nftnl_expr_alloc(name);
  nftnl_rule_add_expr(rule_, e);
  return e;
}

void ExprBuilder::meta_load(std::uint32_t key) {
  nftnl_expr* e = add("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
}

void ExprBuilder::cmp(std::uint32_t op, const void* data, std::uint32_t len) {
  nftnl_expr* e = add("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
}

void ExprBuilder::payload(std::uint32_t base, std::uint32_t offset, std::uint32_t len) {
  nftnl_expr* e = add("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
}

void ExprBuilder::bitwise(const void* mask, const void* xor_value, std::uint32_t len) {
  nftnl_expr* e = add("bitwise");
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor_value, len);
}

}  // namespace istio_iptables
