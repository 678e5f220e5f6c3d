#include "system/xt_entry.h"

// Header order matters (libiptc-notes.md section 1): libiptc first, then the payload headers.
#include <libiptc/libiptc.h>
extern "C" {
#include <libiptc/libip6tc.h>
}
#include <arpa/inet.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/xt_CONNMARK.h>
#include <linux/netfilter/xt_CT.h>
#include <linux/netfilter/xt_MARK.h>
#include <linux/netfilter/xt_TPROXY.h>
#include <linux/netfilter/xt_connmark.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_multiport.h>
#include <linux/netfilter/xt_owner.h>
#include <linux/netfilter/xt_tcpudp.h>

#include <cstring>
#include <fstream>
#include <vector>

#include <fmt/format.h>

namespace istio_iptables {

std::optional<std::uint32_t> EtcGroupResolver::gid(const std::string& name) {
  if (!groups_) {
    groups_.emplace();
    std::ifstream in("/etc/group");
    std::string line;
    while (std::getline(in, line)) {
      // name:password:gid:members
      auto c1 = line.find(':');
      auto c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
      auto c3 = c2 == std::string::npos ? c2 : line.find(':', c2 + 1);
      if (c3 == std::string::npos) continue;
      std::string id = line.substr(c2 + 1, c3 - c2 - 1);
      if (id.empty() || id.size() > 10 || id.find_first_not_of("0123456789") != std::string::npos) continue;
      groups_->emplace(line.substr(0, c1), static_cast<std::uint32_t>(std::stoull(id)));
    }
  }
  auto it = groups_->find(name);
  if (it == groups_->end()) return std::nullopt;
  return it->second;
}

namespace {

constexpr std::size_t align(std::size_t n) { return XT_ALIGN(n); }

// The family-specific header: ipt_entry / ip6t_entry differ in their ip part only.
struct V4 {
  using Entry = ipt_entry;
  static constexpr std::uint8_t kInvSrc = IPT_INV_SRCIP, kInvDst = IPT_INV_DSTIP, kInvIn = IPT_INV_VIA_IN,
                                kInvOut = IPT_INV_VIA_OUT, kInvProto = XT_INV_PROTO;
  static auto& ip(Entry& e) { return e.ip; }
  static const auto& ip(const Entry& e) { return e.ip; }
  static void set_addr(Entry& e, bool source, const Address& a, unsigned len) {
    in_addr addr{}, mask{};
    std::memcpy(&addr, a.bytes.data(), 4);
    std::uint32_t m = len == 0 ? 0 : htonl(~std::uint32_t{0} << (32 - len));
    std::memcpy(&mask, &m, 4);
    addr.s_addr &= mask.s_addr;
    (source ? e.ip.src : e.ip.dst) = addr;
    (source ? e.ip.smsk : e.ip.dmsk) = mask;
  }
  static std::optional<Prefix> get_addr(const Entry& e, bool source) {
    const in_addr& addr = source ? e.ip.src : e.ip.dst;
    const in_addr& mask = source ? e.ip.smsk : e.ip.dmsk;
    std::uint32_t m = ntohl(mask.s_addr);
    if (m == 0 && addr.s_addr == 0) return std::nullopt;
    unsigned len = 0;
    while (len < 32 && (m & (0x80000000U >> len))) ++len;
    if (len < 32 && (m << len) != 0) return Prefix{};  // a non-contiguous mask: outside the model
    Address a{Family::V4, {}};
    std::memcpy(a.bytes.data(), &addr, 4);
    return Prefix{a, len};
  }
  static void set_proto(Entry& e, std::uint16_t p) { e.ip.proto = p; }
};

struct V6 {
  using Entry = ip6t_entry;
  static constexpr std::uint8_t kInvSrc = IP6T_INV_SRCIP, kInvDst = IP6T_INV_DSTIP, kInvIn = IP6T_INV_VIA_IN,
                                kInvOut = IP6T_INV_VIA_OUT, kInvProto = XT_INV_PROTO;
  static auto& ip(Entry& e) { return e.ipv6; }
  static const auto& ip(const Entry& e) { return e.ipv6; }
  static void set_addr(Entry& e, bool source, const Address& a, unsigned len) {
    in6_addr addr{}, mask{};
    for (unsigned i = 0; i < 16; ++i) {
      unsigned bits = len > i * 8 ? std::min(8U, len - i * 8) : 0;
      mask.s6_addr[i] = static_cast<std::uint8_t>(bits == 0 ? 0 : (0xff << (8 - bits)) & 0xff);
      addr.s6_addr[i] = a.bytes[i] & mask.s6_addr[i];
    }
    (source ? e.ipv6.src : e.ipv6.dst) = addr;
    (source ? e.ipv6.smsk : e.ipv6.dmsk) = mask;
  }
  static std::optional<Prefix> get_addr(const Entry& e, bool source) {
    const in6_addr& addr = source ? e.ipv6.src : e.ipv6.dst;
    const in6_addr& mask = source ? e.ipv6.smsk : e.ipv6.dmsk;
    bool any = false;
    for (unsigned i = 0; i < 16; ++i) any = any || addr.s6_addr[i] || mask.s6_addr[i];
    if (!any) return std::nullopt;
    unsigned len = 0;
    while (len < 128 && (mask.s6_addr[len / 8] & (0x80 >> (len % 8)))) ++len;
    for (unsigned b = len; b < 128; ++b)
      if (mask.s6_addr[b / 8] & (0x80 >> (b % 8))) return Prefix{};
    Address a{Family::V6, {}};
    std::memcpy(a.bytes.data(), &addr, 16);
    return Prefix{a, len};
  }
  static void set_proto(Entry& e, std::uint16_t p) {
    e.ipv6.proto = p;
    e.ipv6.flags |= IP6T_F_PROTO;  // without it the kernel ignores the protocol (libiptc-notes 3)
  }
};

// Interface name and mask exactly as iptables' xtables_parse_interface builds them.
void set_iface(char* name, unsigned char* mask, const std::string& value) {
  std::memset(name, 0, IFNAMSIZ);
  std::memset(mask, 0, IFNAMSIZ);
  std::memcpy(name, value.data(), value.size());
  if (!value.empty() && value.back() == '+')
    std::memset(mask, 0xff, value.size() - 1);
  else
    std::memset(mask, 0xff, value.size() + 1);
}

std::optional<std::string> get_iface(const char* name) {
  std::string n(name, strnlen(name, IFNAMSIZ));
  if (n.empty()) return std::nullopt;
  return n;
}

// A growing entry: header, matches, target.
class EntryBuilder {
 public:
  explicit EntryBuilder(std::size_t header) : bytes_(header, 0) { bytes_.reserve(512); }
  template <typename Payload>
  Payload& add_match(const char* name, std::uint8_t revision) {
    return add<Payload, xt_entry_match>(name, revision, true);
  }
  template <typename Payload>
  Payload& add_target(const char* name, std::uint8_t revision) {
    target_offset_ = bytes_.size();
    return add<Payload, xt_entry_target>(name, revision, false);
  }
  void add_standard_target(const std::string& label) {
    target_offset_ = bytes_.size();
    std::size_t size = align(sizeof(xt_standard_target));
    std::size_t at = bytes_.size();
    bytes_.resize(at + size, 0);
    xt_standard_target t{};
    t.target.u.user.target_size = static_cast<std::uint16_t>(size);  // name "" as the kernel keeps it
    std::memcpy(bytes_.data() + at, &t, sizeof t);
    label_ = label;
  }
  std::string finish() {
    std::string out(bytes_.begin(), bytes_.end());
    return out + label_;
  }
  std::size_t target_offset() const { return target_offset_; }
  std::vector<unsigned char>& bytes() { return bytes_; }

 private:
  template <typename Payload, typename Header>
  Payload& add(const char* name, std::uint8_t revision, bool) {
    std::size_t size = align(sizeof(Header)) + align(sizeof(Payload));
    std::size_t at = bytes_.size();
    bytes_.resize(at + size, 0);
    Header h{};
    if constexpr (std::is_same_v<Header, xt_entry_match>)
      h.u.user.match_size = static_cast<std::uint16_t>(size);
    else
      h.u.user.target_size = static_cast<std::uint16_t>(size);
    std::strncpy(h.u.user.name, name, sizeof h.u.user.name - 1);
    h.u.user.revision = revision;
    std::memcpy(bytes_.data() + at, &h, sizeof h);
    payloads_.push_back(at + align(sizeof(Header)));
    return *reinterpret_cast<Payload*>(bytes_.data() + payloads_.back());  // NOLINT: sized above
  }
  std::vector<unsigned char> bytes_;
  std::vector<std::size_t> payloads_;
  std::size_t target_offset_ = 0;
  std::string label_;
};

std::uint8_t conntrack_bits(const std::vector<ConntrackState>& states) {
  std::uint16_t bits = 0;
  for (auto s : states) switch (s) {
    case ConntrackState::Invalid: bits |= XT_CONNTRACK_STATE_INVALID; break;
    case ConntrackState::Established: bits |= XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED); break;
    case ConntrackState::Related: bits |= XT_CONNTRACK_STATE_BIT(IP_CT_RELATED); break;
    case ConntrackState::New: bits |= XT_CONNTRACK_STATE_BIT(IP_CT_NEW); break;
    }
  return static_cast<std::uint8_t>(bits);
}

template <typename F>
Result<std::string> encode(const Rule& rule, GroupResolver& groups) {
  using Entry = typename F::Entry;
  EntryBuilder b(sizeof(Entry));
  Entry header{};
  std::optional<Protocol> protocol;
  for (const auto& m : rule.matches) {
    if (auto* p = std::get_if<ProtocolMatch>(&m)) {
      F::set_proto(header, p->protocol == Protocol::Tcp ? IPPROTO_TCP : IPPROTO_UDP);
      if (p->negated) F::ip(header).invflags |= F::kInvProto;
      protocol = p->protocol;
    } else if (auto* a = std::get_if<AddressMatch>(&m)) {
      bool source = a->direction == Direction::Source;
      F::set_addr(header, source, a->prefix.address, a->prefix.length);
      if (a->negated) F::ip(header).invflags |= source ? F::kInvSrc : F::kInvDst;
    } else if (auto* i = std::get_if<InterfaceMatch>(&m)) {
      auto& ip = F::ip(header);
      if (i->inbound)
        set_iface(ip.iniface, ip.iniface_mask, i->name);
      else
        set_iface(ip.outiface, ip.outiface_mask, i->name);
      if (i->negated) ip.invflags |= i->inbound ? F::kInvIn : F::kInvOut;
    } else if (auto* port = std::get_if<PortMatch>(&m)) {
      if (!protocol || *protocol != port->protocol) return Error{"internal: a port match without its protocol"};
      bool dst = port->direction == Direction::Destination;
      if (port->protocol == Protocol::Tcp) {
        auto& t = b.add_match<xt_tcp>("tcp", 0);
        t.spts[1] = t.dpts[1] = 0xffff;
        (dst ? t.dpts : t.spts)[0] = (dst ? t.dpts : t.spts)[1] = port->port;
        if (port->negated) t.invflags = dst ? XT_TCP_INV_DSTPT : XT_TCP_INV_SRCPT;
      } else {
        auto& u = b.add_match<xt_udp>("udp", 0);
        u.spts[1] = u.dpts[1] = 0xffff;
        (dst ? u.dpts : u.spts)[0] = (dst ? u.dpts : u.spts)[1] = port->port;
        if (port->negated) u.invflags = dst ? XT_UDP_INV_DSTPT : XT_UDP_INV_SRCPT;
      }
    } else if (auto* mp = std::get_if<MultiportMatch>(&m)) {
      auto& info = b.add_match<xt_multiport_v1>("multiport", 1);
      info.flags = XT_MULTIPORT_DESTINATION;
      info.count = static_cast<std::uint8_t>(mp->ports.size());
      for (std::size_t k = 0; k < mp->ports.size() && k < XT_MULTI_PORTS; ++k) info.ports[k] = mp->ports[k];
      info.invert = mp->negated ? 1 : 0;
    } else if (auto* o = std::get_if<OwnerMatch>(&m)) {
      std::uint32_t id;
      if (o->id.number) {
        id = *o->id.number;
      } else {
        auto gid = groups.gid(o->id.name);
        if (!gid) return Error{fmt::format("group {} is not in /etc/group (owner match)", o->id.name)};
        id = *gid;
      }
      auto& info = b.add_match<xt_owner_match_info>("owner", 1);
      std::uint8_t kind = o->group ? XT_OWNER_GID : XT_OWNER_UID;
      (o->group ? info.gid_min : info.uid_min) = id;
      (o->group ? info.gid_max : info.uid_max) = id;
      info.match = kind;
      if (o->negated) info.invert = kind;
    } else if (auto* c = std::get_if<ConntrackMatch>(&m)) {
      auto& info = b.add_match<xt_conntrack_mtinfo3>("conntrack", 3);
      info.match_flags = XT_CONNTRACK_STATE;
      info.state_mask = conntrack_bits(c->states);
      if (c->negated) info.invert_flags = XT_CONNTRACK_STATE;
    } else if (auto* mk = std::get_if<MarkMatch>(&m)) {
      auto& info = b.add_match<xt_mark_mtinfo1>("mark", 1);
      info.mark = mk->mark;
      info.mask = 0xffffffffU;
      info.invert = mk->negated ? 1 : 0;
    } else if (auto* cm = std::get_if<ConnmarkMatch>(&m)) {
      auto& info = b.add_match<xt_connmark_mtinfo1>("connmark", 1);
      info.mark = cm->mark;
      info.mask = 0xffffffffU;
      info.invert = cm->negated ? 1 : 0;
    }
  }
  struct TargetEncoder {
    EntryBuilder& b;
    Family family;
    void operator()(const JumpTarget& t) const { b.add_standard_target(t.chain); }
    void operator()(const VerdictTarget& t) const {
      b.add_standard_target(t.verdict == Verdict::Accept ? "ACCEPT" : t.verdict == Verdict::Drop ? "DROP" : "RETURN");
    }
    void operator()(const RedirectTarget& t) const {
      if (family == Family::V4) {
        auto& r = b.add_target<nf_nat_ipv4_multi_range_compat>("REDIRECT", 0);
        r.rangesize = 1;
        r.range[0].flags = NF_NAT_RANGE_PROTO_SPECIFIED;
        r.range[0].min.tcp.port = r.range[0].max.tcp.port = htons(t.port);
      } else {
        auto& r = b.add_target<nf_nat_range>("REDIRECT", 0);
        r.flags = NF_NAT_RANGE_PROTO_SPECIFIED;
        r.min_proto.tcp.port = r.max_proto.tcp.port = htons(t.port);
      }
    }
    void operator()(const TproxyTarget& t) const {
      auto& info = b.add_target<xt_tproxy_target_info_v1>("TPROXY", 1);
      info.mark_mask = t.mask;
      info.mark_value = t.mark;
      info.lport = htons(t.port);
    }
    void operator()(const MarkTarget& t) const {
      auto& info = b.add_target<xt_mark_tginfo2>("MARK", 2);
      info.mark = t.mark;
      info.mask = 0xffffffffU;
    }
    void operator()(const ConnmarkTarget& t) const {
      auto& info = b.add_target<xt_connmark_tginfo2>("CONNMARK", 2);
      info.mode = t.restore ? XT_CONNMARK_RESTORE : XT_CONNMARK_SAVE;
      info.ctmask = 0xffffffffU;
      info.nfmask = 0xffffffffU;
    }
    void operator()(const CtTarget& t) const {
      auto& info = b.add_target<xt_ct_target_info_v1>("CT", 2);
      info.zone = t.zone;
    }
  };
  std::visit(TargetEncoder{b, std::is_same_v<F, V4> ? Family::V4 : Family::V6}, rule.target);
  auto& bytes = b.bytes();
  header.target_offset = static_cast<std::uint16_t>(b.target_offset());
  header.next_offset = static_cast<std::uint16_t>(bytes.size());
  std::memcpy(bytes.data(), &header, sizeof header);
  return b.finish();  // entry bytes, then the label
}

// Walks the matches and the target of an entry blob.
template <typename Entry, typename OnMatch>
void for_each_match(const std::string& blob, OnMatch on_match) {
  const auto* e = reinterpret_cast<const Entry*>(blob.data());
  for (std::size_t off = sizeof(Entry); off < e->target_offset;) {
    const auto* m = reinterpret_cast<const xt_entry_match*>(blob.data() + off);
    if (m->u.match_size == 0) break;
    on_match(m);
    off += m->u.match_size;
  }
}

template <typename F>
std::string identity(const std::string& blob) {
  using Entry = typename F::Entry;
  std::string out = blob;
  if (out.size() < sizeof(Entry)) return out;
  auto* e = reinterpret_cast<Entry*>(out.data());
  std::memset(&e->counters, 0, sizeof e->counters);
  e->comefrom = 0;
  e->nfcache = 0;
  for (std::size_t off = sizeof(Entry); off < e->target_offset;) {
    auto* m = reinterpret_cast<xt_entry_match*>(out.data() + off);
    if (m->u.match_size == 0) break;
    std::size_t n = strnlen(m->u.user.name, sizeof m->u.user.name);
    std::memset(m->u.user.name + n, 0, sizeof m->u.user.name - n);
    off += m->u.match_size;
  }
  if (e->target_offset + sizeof(xt_entry_target) <= out.size()) {
    auto* t = reinterpret_cast<xt_entry_target*>(out.data() + e->target_offset);
    std::size_t n = strnlen(t->u.user.name, sizeof t->u.user.name);
    std::memset(t->u.user.name + n, 0, sizeof t->u.user.name - n);
  }
  return out;  // the label, after the entry, is part of the identity
}

template <typename F>
std::optional<Rule> decode(const std::string& blob) {
  using Entry = typename F::Entry;
  if (blob.size() < sizeof(Entry)) return std::nullopt;
  Entry e;
  std::memcpy(&e, blob.data(), sizeof e);
  const auto& ip = F::ip(e);
  Rule r;
  // Header matches in iptables-save's order: -s -d -i -o -p.
  for (bool source : {true, false})
    if (auto p = F::get_addr(e, source)) {
      if (p->address.family != (std::is_same_v<F, V4> ? Family::V4 : Family::V6) && p->length == 0) return std::nullopt;
      bool neg = ip.invflags & (source ? F::kInvSrc : F::kInvDst);
      r.matches.push_back(AddressMatch{source ? Direction::Source : Direction::Destination, *p, neg});
    }
  if (auto i = get_iface(ip.iniface)) r.matches.push_back(InterfaceMatch{true, *i, bool(ip.invflags & F::kInvIn)});
  if (auto o = get_iface(ip.outiface)) r.matches.push_back(InterfaceMatch{false, *o, bool(ip.invflags & F::kInvOut)});
  std::optional<Protocol> proto;
  if (ip.proto == IPPROTO_TCP)
    proto = Protocol::Tcp;
  else if (ip.proto == IPPROTO_UDP)
    proto = Protocol::Udp;
  else if (ip.proto != 0)
    return std::nullopt;
  if (proto) r.matches.push_back(ProtocolMatch{*proto, bool(ip.invflags & F::kInvProto)});
  bool ok = true;
  for_each_match<Entry>(blob, [&](const xt_entry_match* m) {
    const void* data = m->data;
    std::string name(m->u.user.name, strnlen(m->u.user.name, sizeof m->u.user.name));
    int rev = m->u.user.revision;
    if ((name == "tcp" || name == "udp") && rev == 0) {
      // xt_tcp and xt_udp start alike: spts, dpts, then (tcp) option and flags.
      xt_udp u;
      std::memcpy(&u, data, sizeof u);
      Protocol p = name == "tcp" ? Protocol::Tcp : Protocol::Udp;
      bool dst_set = !(u.dpts[0] == 0 && u.dpts[1] == 0xffff);
      bool src_set = !(u.spts[0] == 0 && u.spts[1] == 0xffff);
      std::uint8_t inv = name == "tcp" ? reinterpret_cast<const xt_tcp*>(data)->invflags : u.invflags;
      if (dst_set == src_set || (dst_set ? u.dpts[0] != u.dpts[1] : u.spts[0] != u.spts[1])) {
        ok = false;
        return;
      }
      if (dst_set)
        r.matches.push_back(PortMatch{p, Direction::Destination, u.dpts[0], bool(inv & XT_TCP_INV_DSTPT)});
      else
        r.matches.push_back(PortMatch{p, Direction::Source, u.spts[0], bool(inv & XT_TCP_INV_SRCPT)});
    } else if (name == "multiport" && rev == 1) {
      const auto* p = static_cast<const xt_multiport_v1*>(data);
      if (p->flags != XT_MULTIPORT_DESTINATION) {
        ok = false;
        return;
      }
      MultiportMatch mp{{}, p->invert != 0};
      for (unsigned k = 0; k < p->count; ++k) mp.ports.push_back(p->ports[k]);
      r.matches.push_back(mp);
    } else if (name == "owner" && rev == 1) {
      const auto* o = static_cast<const xt_owner_match_info*>(data);
      if (o->match == XT_OWNER_UID && o->uid_min == o->uid_max)
        r.matches.push_back(OwnerMatch{false, OwnerId{o->uid_min, {}}, o->invert == XT_OWNER_UID});
      else if (o->match == XT_OWNER_GID && o->gid_min == o->gid_max)
        r.matches.push_back(OwnerMatch{true, OwnerId{o->gid_min, {}}, o->invert == XT_OWNER_GID});
      else
        ok = false;
    } else if (name == "conntrack" && rev == 3) {
      const auto* c = static_cast<const xt_conntrack_mtinfo3*>(data);
      if (c->match_flags != XT_CONNTRACK_STATE) {
        ok = false;
        return;
      }
      ConntrackMatch cm{{}, c->invert_flags == XT_CONNTRACK_STATE};
      if (c->state_mask & XT_CONNTRACK_STATE_INVALID) cm.states.push_back(ConntrackState::Invalid);
      if (c->state_mask & XT_CONNTRACK_STATE_BIT(IP_CT_NEW)) cm.states.push_back(ConntrackState::New);
      if (c->state_mask & XT_CONNTRACK_STATE_BIT(IP_CT_RELATED)) cm.states.push_back(ConntrackState::Related);
      if (c->state_mask & XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED)) cm.states.push_back(ConntrackState::Established);
      r.matches.push_back(cm);
    } else if ((name == "mark" || name == "connmark") && rev == 1) {
      const auto* mk = static_cast<const xt_mark_mtinfo1*>(data);
      if (mk->mask != 0xffffffffU) {
        ok = false;
        return;
      }
      if (name == "mark")
        r.matches.push_back(MarkMatch{mk->mark, mk->invert != 0});
      else
        r.matches.push_back(ConnmarkMatch{mk->mark, mk->invert != 0});
    } else {
      ok = false;
    }
  });
  if (!ok) return std::nullopt;
  const auto* t = reinterpret_cast<const xt_entry_target*>(blob.data() + e.target_offset);
  std::string name(t->u.user.name, strnlen(t->u.user.name, sizeof t->u.user.name));
  int rev = t->u.user.revision;
  const void* data = t->data;
  if (name.empty()) {
    name = blob.substr(e.next_offset);  // the label
    if (name == "ACCEPT")
      r.target = VerdictTarget{Verdict::Accept};
    else if (name == "DROP")
      r.target = VerdictTarget{Verdict::Drop};
    else if (name == "RETURN")
      r.target = VerdictTarget{Verdict::Return};
    else if (!name.empty() && name != "QUEUE" && name != "ERROR")
      r.target = JumpTarget{name};
    else
      return std::nullopt;
  } else if (name == "REDIRECT" && rev == 0) {
    std::uint16_t port;
    if constexpr (std::is_same_v<F, V4>) {
      const auto* n = static_cast<const nf_nat_ipv4_multi_range_compat*>(data);
      if (n->range[0].min.tcp.port != n->range[0].max.tcp.port) return std::nullopt;
      port = ntohs(n->range[0].min.tcp.port);
    } else {
      const auto* n = static_cast<const nf_nat_range*>(data);
      if (n->min_proto.tcp.port != n->max_proto.tcp.port) return std::nullopt;
      port = ntohs(n->min_proto.tcp.port);
    }
    r.target = RedirectTarget{port, false};
  } else if (name == "TPROXY" && rev == 1) {
    const auto* info = static_cast<const xt_tproxy_target_info_v1*>(data);
    for (auto b : info->laddr.all)
      if (b != 0) return std::nullopt;  // --on-ip: outside the model
    r.target = TproxyTarget{ntohs(info->lport), info->mark_value, info->mark_mask};
  } else if (name == "MARK" && rev == 2) {
    const auto* info = static_cast<const xt_mark_tginfo2*>(data);
    if (info->mask != 0xffffffffU) return std::nullopt;
    r.target = MarkTarget{info->mark};
  } else if (name == "CONNMARK" && rev == 2) {
    const auto* info = static_cast<const xt_connmark_tginfo2*>(data);
    if (info->ctmask != 0xffffffffU || info->nfmask != 0xffffffffU || info->shift_bits != 0) return std::nullopt;
    if (info->mode == XT_CONNMARK_SAVE)
      r.target = ConnmarkTarget{false};
    else if (info->mode == XT_CONNMARK_RESTORE)
      r.target = ConnmarkTarget{true};
    else
      return std::nullopt;
  } else if (name == "CT" && rev == 2) {
    const auto* info = static_cast<const xt_ct_target_info_v1*>(data);
    // Only a plain zone is ours: NOTRACK, helpers, timeouts and event masks are someone else's.
    if (info->flags != 0 || info->helper[0] != 0 || info->timeout[0] != 0 || info->ct_events != 0 ||
        info->exp_events != 0)
      return std::nullopt;
    r.target = CtTarget{info->zone};
  } else {
    return std::nullopt;
  }
  return r;
}

}  // namespace

Result<std::string> encode_entry(Family family, const Rule& rule, GroupResolver& groups) {
  return family == Family::V4 ? encode<V4>(rule, groups) : encode<V6>(rule, groups);
}

std::string entry_identity(Family family, const std::string& blob) {
  return family == Family::V4 ? identity<V4>(blob) : identity<V6>(blob);
}

std::optional<Rule> decode_entry(Family family, const std::string& blob) {
  return family == Family::V4 ? decode<V4>(blob) : decode<V6>(blob);
}

std::string blob_from_kernel(Family family, const void* entry, const char* label) {
  std::size_t size = family == Family::V4 ? static_cast<const ipt_entry*>(entry)->next_offset
                                          : static_cast<const ip6t_entry*>(entry)->next_offset;
  std::size_t target_offset = family == Family::V4 ? static_cast<const ipt_entry*>(entry)->target_offset
                                                   : static_cast<const ip6t_entry*>(entry)->target_offset;
  std::string blob(static_cast<const char*>(entry), size);
  // The kernel copies only strlen(name)+1 bytes of each name: zero the rest (libiptc-notes 7).
  std::size_t header = family == Family::V4 ? sizeof(ipt_entry) : sizeof(ip6t_entry);
  for (std::size_t off = header; off < target_offset;) {
    auto* m = reinterpret_cast<xt_entry_match*>(blob.data() + off);
    if (m->u.match_size == 0) break;
    std::size_t n = strnlen(m->u.user.name, sizeof m->u.user.name);
    std::memset(m->u.user.name + n, 0, sizeof m->u.user.name - n);
    off += m->u.match_size;
  }
  auto* t = reinterpret_cast<xt_entry_target*>(blob.data() + target_offset);
  std::size_t n = strnlen(t->u.user.name, sizeof t->u.user.name);
  std::memset(t->u.user.name + n, 0, sizeof t->u.user.name - n);
  if (n == 0) {  // the kernel's standard target: a verdict or a jump, named by libiptc's label
    reinterpret_cast<xt_standard_target*>(t)->verdict = 0;
    return blob + label;
  }
  return blob;
}

void entry_for_append(Family family, const std::string& blob, std::string& entry) {
  std::size_t size = family == Family::V4 ? reinterpret_cast<const ipt_entry*>(blob.data())->next_offset
                                          : reinterpret_cast<const ip6t_entry*>(blob.data())->next_offset;
  std::size_t target_offset = family == Family::V4 ? reinterpret_cast<const ipt_entry*>(blob.data())->target_offset
                                                   : reinterpret_cast<const ip6t_entry*>(blob.data())->target_offset;
  entry.assign(blob, 0, size);
  if (blob.size() > size) {  // a label follows the entry
    auto* t = reinterpret_cast<xt_entry_target*>(entry.data() + target_offset);
    std::memset(t->u.user.name, 0, sizeof t->u.user.name);
    std::memcpy(t->u.user.name, blob.data() + size, std::min(blob.size() - size, sizeof t->u.user.name - 1));
  }
}

}  // namespace istio_iptables
