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

// Adding and removal look first. The kernel's duplicate check for rules compares the priority
// (and one added without a priority gets a new one each time), it deletes the first rule or
// route a request's attributes match, and a request can only name what it knows (an IPv6 route
// delete, for one, ignores the route's type). So both list the candidates and keep those that
// are exactly what this file installs: a rule with a fwmark of full mask, a table and no other
// selector (not "fwmark M iif eth0 lookup T"); a local default route through lo, proto boot, no
// gateway. Removal deletes each by its priority (rule) or metric (route), so that the request
// matches that one entry.

namespace {

constexpr std::uint16_t kDelete = NLM_F_REQUEST | NLM_F_ACK;

bool absent(int e) { return e == ENOENT || e == ESRCH || e == EADDRNOTAVAIL || e == EAFNOSUPPORT; }

unsigned char address_family(Family family) { return family == Family::V4 ? AF_INET : AF_INET6; }

// A table number in the one-byte header field: RT_TABLE_UNSPEC above 255 (the attribute says it).
unsigned char table_byte(std::uint32_t table) {
  return static_cast<unsigned char>(table < 256 ? table : unsigned{RT_TABLE_UNSPEC});
}

// The rule "fwmark MARK lookup TABLE" of full mask, as the add and the remove request both name
// it (the remove adds the priority of the one entry it deletes).
void put_fwmark_rule(Message& m, Family family, std::uint32_t mark, std::uint32_t table) {
  auto* rule = m.header<fib_rule_hdr>();
  rule->family = address_family(family);
  rule->action = FR_ACT_TO_TBL;
  rule->table = table_byte(table);
  mnl_attr_put_u32(m.nlh, FRA_FWMARK, mark);
  mnl_attr_put_u32(m.nlh, FRA_FWMASK, 0xffffffffU);
  mnl_attr_put_u32(m.nlh, FRA_TABLE, table);
}

// The route "local default dev lo table TABLE proto boot", as the add and the remove request both
// name it (the remove adds the metric of the one entry it deletes).
void put_local_default_route(Message& m, Family family, std::uint32_t table, unsigned lo) {
  auto* rtm = m.header<rtmsg>();
  rtm->rtm_family = address_family(family);
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = table_byte(table);
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_HOST;
  rtm->rtm_type = RTN_LOCAL;
  mnl_attr_put_u32(m.nlh, RTA_TABLE, table);
  mnl_attr_put_u32(m.nlh, RTA_OIF, lo);
}

// One routing rule as the dump shows it: what we need to tell ours from the rest.
struct RuleSeen {
  std::uint32_t mark = 0, mask = 0xffffffffU, table = 0, priority = 0;
  bool has_mark = false, has_priority = false;
  bool other_selector = false;  // iif, oif, from, to, ports, protocol, uid range, goto, ...
};

int on_rule_attribute(const nlattr* attr, void* data) {
  auto* r = static_cast<RuleSeen*>(data);
  const auto type = mnl_attr_get_type(attr);
  const bool u32 = mnl_attr_validate(attr, MNL_TYPE_U32) >= 0;
  switch (type) {
  case FRA_FWMARK:
    if (u32) r->mark = mnl_attr_get_u32(attr), r->has_mark = true;
    break;
  case FRA_FWMASK:
    if (u32) r->mask = mnl_attr_get_u32(attr);
    break;
  case FRA_TABLE:
    if (u32) r->table = mnl_attr_get_u32(attr);
    break;
  case FRA_PRIORITY:
    if (u32) r->priority = mnl_attr_get_u32(attr), r->has_priority = true;
    break;
  case FRA_SUPPRESS_PREFIXLEN:
  case FRA_SUPPRESS_IFGROUP:
    // Reported always; -1 means unset.
    if (u32 && mnl_attr_get_u32(attr) != 0xffffffffU) r->other_selector = true;
    break;
  case FRA_IIFNAME:
  case FRA_OIFNAME:
  case FRA_SRC:
  case FRA_DST:
  case FRA_GOTO:
  case FRA_FLOW:
  case FRA_TUN_ID:
  case FRA_L3MDEV:
  case FRA_UID_RANGE:
  case FRA_IP_PROTO:
  case FRA_SPORT_RANGE:
  case FRA_DPORT_RANGE: r->other_selector = true; break;
  default: break;
  }
  return MNL_CB_OK;
}

// The priorities of the rules "fwmark MARK lookup TABLE" and nothing more (mask 0xffffffff, as
// put_fwmark_rule names it).
Result<std::vector<std::uint32_t>> fwmark_rule_priorities(mnl_socket* s, Family family, std::uint32_t mark,
                                                          std::uint32_t table) {
  Message m(RTM_GETRULE, kDump);
  m.header<fib_rule_hdr>()->family = address_family(family);
  struct Want {
    std::uint32_t mark, table;
    std::vector<std::uint32_t> priorities;
  } want{mark, table, {}};
  auto on_rule = [](const nlmsghdr* msg, void* data) -> int {
    auto* w = static_cast<Want*>(data);
    const auto* h = static_cast<const fib_rule_hdr*>(mnl_nlmsg_get_payload(msg));
    RuleSeen seen;
    seen.table = h->table;
    mnl_attr_parse(msg, sizeof(fib_rule_hdr), on_rule_attribute, &seen);
    const bool plain =
        h->src_len == 0 && h->dst_len == 0 && h->tos == 0 && (h->flags & FIB_RULE_INVERT) == 0 && !seen.other_selector;
    if (h->action == FR_ACT_TO_TBL && plain && seen.has_mark && seen.mark == w->mark && seen.mask == 0xffffffffU &&
        seen.table == w->table && seen.has_priority)
      w->priorities.push_back(seen.priority);
    return MNL_CB_OK;
  };
  int e = dump(s, m, on_rule, &want);
  if (e == EAFNOSUPPORT) return want.priorities;  // no such family in this kernel: none of ours
  if (e != 0) return Error{fmt::format("cannot list the {} routing rules: {}", family_name(family), std::strerror(e))};
  return want.priorities;
}

// The metrics of the routes "local default dev lo table TABLE proto boot" (IPv6 keeps one
// route per metric; IPv4 reports none, 0).
Result<std::vector<std::uint32_t>> local_default_route_metrics(mnl_socket* s, Family family, std::uint32_t table,
                                                               unsigned lo) {
  Message m(RTM_GETROUTE, kDump);
  m.header<rtmsg>()->rtm_family = address_family(family);
  struct Want {
    std::uint32_t table;
    unsigned lo;
    std::vector<std::uint32_t> metrics;
  } want{table, lo, {}};
  auto on_route = [](const nlmsghdr* msg, void* data) -> int {
    auto* w = static_cast<Want*>(data);
    const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(msg));
    struct Seen {
      std::uint32_t table = 0, oif = 0, metric = 0;
      bool other = false;  // a gateway, a source, several next hops: another shape
    } seen;
    seen.table = rtm->rtm_table;
    mnl_attr_parse(
        msg, sizeof(rtmsg),
        [](const nlattr* attr, void* d) -> int {
          auto* x = static_cast<Seen*>(d);
          switch (mnl_attr_get_type(attr)) {
          case RTA_TABLE:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) x->table = mnl_attr_get_u32(attr);
            break;
          case RTA_OIF:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) x->oif = mnl_attr_get_u32(attr);
            break;
          case RTA_PRIORITY:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) x->metric = mnl_attr_get_u32(attr);
            break;
          case RTA_GATEWAY:
          case RTA_VIA:
          case RTA_MULTIPATH:
          case RTA_PREFSRC:
          case RTA_SRC: x->other = true; break;
          default: break;
          }
          return MNL_CB_OK;
        },
        &seen);
    if (rtm->rtm_dst_len == 0 && rtm->rtm_src_len == 0 && rtm->rtm_type == RTN_LOCAL &&
        rtm->rtm_protocol == RTPROT_BOOT && seen.table == w->table && seen.oif == w->lo && !seen.other)
      w->metrics.push_back(seen.metric);
    return MNL_CB_OK;
  };
  int e = dump(s, m, on_route, &want);
  if (e == EAFNOSUPPORT) return want.metrics;  // no such family in this kernel: none of ours
  if (e != 0) return Error{fmt::format("cannot list the {} routes: {}", family_name(family), std::strerror(e))};
  return want.metrics;
}

}  // namespace

Status add_fwmark_rule(Family family, std::uint32_t mark, std::uint32_t table) {
  auto s = open_socket(NETLINK_ROUTE);
  if (!s) return Error{s.error().message};
  // The kernel's duplicate check compares the priority too, and a rule added without one gets a
  // new priority each time: look first (for exactly this rule, not one with an iif or a mask).
  auto existing = fwmark_rule_priorities(s.value().get(), family, mark, table);
  if (!existing) return Error{existing.error().message};
  if (!existing.value().empty()) return ok_status();
  Message m(RTM_NEWRULE, kCreate);
  put_fwmark_rule(m, family, mark, table);
  int e = request(s.value().get(), m.nlh);
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
  put_local_default_route(m, family, table, lo);
  int e = request(s.value().get(), m.nlh);
  // Right after lo comes up in a fresh namespace, IPv6 may not be ready on it yet and the kernel
  // answers ENETDOWN for a moment (seen in tests ~50 ms after `ip link set lo up`): wait for it,
  // a second at most.
  for (int waited = 0; e == ENETDOWN && waited < 50; ++waited) {
    timespec pause{0, 20'000'000L};
    ::nanosleep(&pause, nullptr);
    e = request(s.value().get(), m.nlh);
  }
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

Status remove_ipv6_passthrough_address() {
  auto s = open_socket(NETLINK_ROUTE);
  if (!s) return Error{s.error().message};
  unsigned lo = loopback_index();
  if (lo == 0) return ok_status();  // no lo: nothing on it
  Message m(RTM_DELADDR, kDelete);
  auto* ifa = m.header<ifaddrmsg>();
  ifa->ifa_family = AF_INET6;
  ifa->ifa_prefixlen = 128;
  ifa->ifa_index = lo;
  in6_addr addr{};
  addr.s6_addr[15] = 6;
  mnl_attr_put(m.nlh, IFA_LOCAL, sizeof addr, &addr);
  int e = request(s.value().get(), m.nlh);
  if (e != 0 && !absent(e)) return Error{fmt::format("cannot remove ::6/128 from lo: {}", std::strerror(e))};
  return ok_status();
}

Status remove_fwmark_rule(Family family, std::uint32_t mark, std::uint32_t table) {
  auto s = open_socket(NETLINK_ROUTE);
  if (!s) return Error{s.error().message};
  auto priorities = fwmark_rule_priorities(s.value().get(), family, mark, table);
  if (!priorities) return Error{priorities.error().message};
  for (std::uint32_t priority : priorities.value()) {
    Message m(RTM_DELRULE, kDelete);
    put_fwmark_rule(m, family, mark, table);
    mnl_attr_put_u32(m.nlh, FRA_PRIORITY, priority);
    int e = request(s.value().get(), m.nlh);
    if (e != 0 && !absent(e))
      return Error{fmt::format("cannot remove the {} rule fwmark {} lookup {}: {}", family_name(family), mark, table,
                               std::strerror(e))};
  }
  return ok_status();
}

Status remove_local_default_route(Family family, std::uint32_t table) {
  auto s = open_socket(NETLINK_ROUTE);
  if (!s) return Error{s.error().message};
  unsigned lo = loopback_index();
  if (lo == 0) return ok_status();  // no lo: no route through it
  auto metrics = local_default_route_metrics(s.value().get(), family, table, lo);
  if (!metrics) return Error{metrics.error().message};
  for (std::uint32_t metric : metrics.value()) {
    Message m(RTM_DELROUTE, kDelete);
    put_local_default_route(m, family, table, lo);
    if (metric != 0) mnl_attr_put_u32(m.nlh, RTA_PRIORITY, metric);
    int e = request(s.value().get(), m.nlh);
    if (e != 0 && !absent(e))
      return Error{fmt::format("cannot remove the {} local default route of table {}: {}", family_name(family), table,
                               std::strerror(e))};
  }
  return ok_status();
}

}  // namespace istio_iptables::netlink
