#include "system/netlink.h"

// glibc's <netinet/in.h> before any <linux/...> header (they redefine in_addr otherwise).
#include <netinet/in.h>
#include <net/if.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include <fmt/format.h>

namespace istio_iptables::netlink {
namespace {

// MNL_SOCKET_BUFFER_SIZE is a sysconf() call in disguise: one page, at most 8 KiB.
constexpr std::size_t kBufferSize = 8192;

struct SocketDeleter {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using Socket = std::unique_ptr<mnl_socket, SocketDeleter>;

Result<Socket> open_socket(int bus) {
  Socket s(mnl_socket_open(bus));
  if (!s) return Error{fmt::format("cannot open a netlink socket: {}", std::strerror(errno))};
  if (mnl_socket_bind(s.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return Error{fmt::format("cannot bind a netlink socket: {}", std::strerror(errno))};
  return s;
}

// Sends one request and waits for its acknowledgement; returns the kernel's errno (0 = ok).
int request(mnl_socket* s, nlmsghdr* nlh) {
  if (mnl_socket_sendto(s, nlh, nlh->nlmsg_len) < 0) return errno;
  std::vector<char> storage(kBufferSize);
  char* buf = storage.data();
  unsigned portid = mnl_socket_get_portid(s);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(s, buf, storage.size());
    if (n < 0) return errno;
    int r = mnl_cb_run(buf, static_cast<size_t>(n), nlh->nlmsg_seq, portid, nullptr, nullptr);
    if (r < 0) return errno;
    if (r == MNL_CB_STOP) return 0;
  }
}

unsigned loopback_index() { return if_nametoindex("lo"); }

constexpr std::uint16_t kCreate = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
constexpr std::uint16_t kDump = NLM_F_REQUEST | NLM_F_DUMP;

// One request: its buffer, the netlink header, and the family-specific header after it.
struct Message {
  std::vector<char> storage = std::vector<char>(kBufferSize);
  nlmsghdr* nlh;
  Message(std::uint16_t type, std::uint16_t flags) : nlh(mnl_nlmsg_put_header(storage.data())) {
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = flags;
    nlh->nlmsg_seq = static_cast<unsigned>(time(nullptr));
  }
  template <typename Header>
  Header* header() {
    return static_cast<Header*>(mnl_nlmsg_put_extra_header(nlh, sizeof(Header)));
  }
};

// Sends a dump request and runs `on_message` on every answer; returns the errno (0 = done).
int dump(mnl_socket* s, Message& m, mnl_cb_t on_message, void* data) {
  if (mnl_socket_sendto(s, m.nlh, m.nlh->nlmsg_len) < 0) return errno;
  std::vector<char> buf(kBufferSize);
  unsigned portid = mnl_socket_get_portid(s);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(s, buf.data(), buf.size());
    if (n < 0) return errno;
    int r = mnl_cb_run(buf.data(), static_cast<size_t>(n), m.nlh->nlmsg_seq, portid, on_message, data);
    if (r < 0) return errno;
    if (r == MNL_CB_STOP) return 0;
  }
}

}  // namespace

Status add_ipv6_passthrough_address() {
  auto s = open_socket(NETLINK_ROUTE);
  if (!s) return Error{s.error().message};
  unsigned lo = loopback_index();
  if (lo == 0) return Error{"cannot add ::6/128 to lo: no interface lo"};
  Message m(RTM_NEWADDR, kCreate);
  nlmsghdr* nlh = m.nlh;
  auto* ifa = m.header<ifaddrmsg>();
  ifa->ifa_family = AF_INET6;
  ifa->ifa_prefixlen = 128;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = lo;
  in6_addr addr{};
  addr.s6_addr[15] = 6;
  mnl_attr_put(nlh, IFA_LOCAL, sizeof addr, &addr);
  mnl_attr_put(nlh, IFA_ADDRESS, sizeof addr, &addr);
  int e = request(s.value().get(), nlh);
  if (e != 0 && e != EEXIST) return Error{fmt::format("cannot add ::6/128 to lo: {}", std::strerror(e))};
  return ok_status();
}

namespace {
// Is there already a rule "fwmark MARK lookup TABLE"? The kernel's duplicate check compares the
// priority too, and a rule added without one gets a new priority each time: look first.
Result<bool> fwmark_rule_exists(mnl_socket* s, Family family, std::uint32_t mark, std::uint32_t table) {
  Message m(RTM_GETRULE, kDump);
  m.header<fib_rule_hdr>()->family = family == Family::V4 ? AF_INET : AF_INET6;
  struct Want {
    std::uint32_t mark, table;
    bool found = false;
  } want{mark, table};
  auto on_rule = [](const nlmsghdr* msg, void* data) -> int {
    auto* w = static_cast<Want*>(data);
    const auto* h = static_cast<const fib_rule_hdr*>(mnl_nlmsg_get_payload(msg));
    struct Seen {
      std::uint32_t mark = 0, table = 0, mask = 0xffffffffU;
      bool has_mark = false;
    } seen;
    seen.table = h->table;
    mnl_attr_parse(
        msg, sizeof(fib_rule_hdr),
        [](const nlattr* attr, void* d) -> int {
          auto* x = static_cast<Seen*>(d);
          if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return MNL_CB_OK;
          switch (mnl_attr_get_type(attr)) {
          case FRA_FWMARK:
            x->mark = mnl_attr_get_u32(attr);
            x->has_mark = true;
            break;
          case FRA_FWMASK: x->mask = mnl_attr_get_u32(attr); break;
          case FRA_TABLE: x->table = mnl_attr_get_u32(attr); break;
          default: break;
          }
          return MNL_CB_OK;
        },
        &seen);
    if (h->action == FR_ACT_TO_TBL && seen.has_mark && seen.mark == w->mark && seen.mask == 0xffffffffU &&
        seen.table == w->table)
      w->found = true;
    return MNL_CB_OK;
  };
  int e = dump(s, m, on_rule, &want);
  if (e != 0) return Error{fmt::format("cannot list routing rules: {}", std::strerror(e))};
  return want.found;
}
}  // namespace

Status add_fwmark_rule(Family family, std::uint32_t mark, std::uint32_t table) {
  auto s = open_socket(NETLINK_ROUTE);
  if (!s) return Error{s.error().message};
  auto exists = fwmark_rule_exists(s.value().get(), family, mark, table);
  if (!exists) return Error{exists.error().message};
  if (exists.value()) return ok_status();
  Message m(RTM_NEWRULE, kCreate);
  nlmsghdr* nlh = m.nlh;
  auto* rule = m.header<fib_rule_hdr>();
  rule->family = family == Family::V4 ? AF_INET : AF_INET6;
  rule->action = FR_ACT_TO_TBL;
  rule->table = static_cast<std::uint8_t>(table < 256 ? table : unsigned{RT_TABLE_UNSPEC});
  mnl_attr_put_u32(nlh, FRA_FWMARK, mark);
  mnl_attr_put_u32(nlh, FRA_TABLE, table);
  int e = request(s.value().get(), nlh);
  if (e != 0 && e != EEXIST)
    return Error{fmt::format("cannot add the {} rule fwmark {} lookup {}: {}", family_name(family), mark, table,
                             std::strerror(e))};
  return ok_status();
}

Status add_local_default_route(Family family, std::uint32_t table) {
  auto s = open_socket(NETLINK_ROUTE);
  if (!s) return Error{s.error().message};
  unsigned lo = loopback_index();
  if (lo == 0) return Error{"cannot add the TPROXY route: no interface lo"};
  Message m(RTM_NEWROUTE, kCreate);
  nlmsghdr* nlh = m.nlh;
  auto* rtm = m.header<rtmsg>();
  rtm->rtm_family = family == Family::V4 ? AF_INET : AF_INET6;
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = static_cast<unsigned char>(table < 256 ? table : unsigned{RT_TABLE_UNSPEC});
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_HOST;
  rtm->rtm_type = RTN_LOCAL;
  mnl_attr_put_u32(nlh, RTA_TABLE, table);
  mnl_attr_put_u32(nlh, RTA_OIF, lo);
  int e = request(s.value().get(), nlh);
  if (e != 0 && e != EEXIST)
    return Error{fmt::format("cannot add the {} local default route to table {}: {}", family_name(family), table,
                             std::strerror(e))};
  return ok_status();
}

Result<std::vector<NftTable>> list_nft_tables() {
  auto s = open_socket(NETLINK_NETFILTER);
  if (!s) return Error{s.error().message};
  Message m((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, kDump);
  auto* nfg = m.header<nfgenmsg>();
  nfg->nfgen_family = NFPROTO_UNSPEC;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  std::vector<NftTable> tables;
  auto on_message = [](const nlmsghdr* msg, void* data) -> int {
    auto* out = static_cast<std::vector<NftTable>*>(data);
    const auto* g = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(msg));
    NftTable t{g->nfgen_family, {}};
    mnl_attr_parse(
        msg, sizeof(nfgenmsg),
        [](const nlattr* attr, void* d) -> int {
          if (mnl_attr_get_type(attr) == NFTA_TABLE_NAME && mnl_attr_validate(attr, MNL_TYPE_STRING) >= 0)
            static_cast<NftTable*>(d)->name = mnl_attr_get_str(attr);
          return MNL_CB_OK;
        },
        &t);
    out->push_back(std::move(t));
    return MNL_CB_OK;
  };
  int e = dump(s.value().get(), m, on_message, &tables);
  if (e == 0 || e == EPROTONOSUPPORT || e == ENOENT || e == EOPNOTSUPP) return tables;  // those: no nf_tables
  return Error{fmt::format("cannot read nf_tables' tables: {}", std::strerror(e))};
}

// TODO(routes helper): real implementations.
Status remove_ipv6_passthrough_address() { return Error{"not implemented: removing ::6/128 from lo"}; }
Status remove_fwmark_rule(Family, std::uint32_t, std::uint32_t) { return Error{"not implemented: removing the fwmark rule"}; }
Status remove_local_default_route(Family, std::uint32_t) { return Error{"not implemented: removing the local route"}; }

}  // namespace istio_iptables::netlink
