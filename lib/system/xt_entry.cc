#include "system/xt_entry.h"

// Header order matters (docs/libiptc.md, section 1): libiptc first, then the payload headers.
#include <libiptc/libiptc.h>
extern "C" {
#include <libiptc/libip6tc.h>
}
#include <arpa/inet.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/xt_CONNMARK.h>
#include <linux/netfilter/xt_CT.h>
#include <linux/netfilter/xt_MARK.h>
#include <linux/netfilter/xt_NFLOG.h>
#include <linux/netfilter/xt_TPROXY.h>
#include <linux/netfilter/xt_connmark.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_multiport.h>
#include <linux/netfilter/xt_owner.h>
#include <linux/netfilter/xt_tcpudp.h>

#include <grp.h>

#include <cstddef>
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "core/message.h"
#include "core/restore_text.h"
#include "system/etc_file.h"

namespace istio_iptables {

Result<std::optional<std::uint32_t>> EtcGroupResolver::lookup(const std::string& name) {
  if (!groups_) groups_ = read_groups();
  if (!*groups_) return Error{groups_->error().message};
  const auto& groups = groups_->value();
  auto it = groups.find(name);
  if (it == groups.end()) return std::optional<std::uint32_t>();
  return std::optional<std::uint32_t>(it->second);
}

Result<std::map<std::string, std::uint32_t>> EtcGroupResolver::read_groups() const {
  std::map<std::string, std::uint32_t> out;  // empty without a group file, as glibc's files backend says
  auto read = read_etc_file<group>(path_, ::fgetgrent_r, [&](const group& entry) {
    out.emplace(entry.gr_name, entry.gr_gid);  // the first entry of a name wins, as getgrnam's
    return true;
  });
  if (!read) return Error{read.error().message};
  return out;
}

namespace {

constexpr std::size_t align(std::size_t n) { return XT_ALIGN(n); }

// An address field of an entry header: absent (0/0), a prefix, or something no prefix says (a
// non-contiguous mask, address bits outside the mask). The last is never read as a prefix.
struct AddressField {
  enum class Kind { Any, Prefix, Outside } kind;
  Prefix prefix;
};

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
  static AddressField get_addr(const Entry& e, bool source) {
    const in_addr& addr = source ? e.ip.src : e.ip.dst;
    const in_addr& mask = source ? e.ip.smsk : e.ip.dmsk;
    std::uint32_t m = ntohl(mask.s_addr), a = ntohl(addr.s_addr);
    if (m == 0 && a == 0) return {AddressField::Kind::Any, {}};
    unsigned len = 0;
    while (len < 32 && (m & (0x80000000U >> len))) ++len;
    if (len < 32 && (m << len) != 0) return {AddressField::Kind::Outside, {}};  // 10.0.0.0/255.0.255.0
    if ((a & ~m) != 0) return {AddressField::Kind::Outside, {}};  // bits outside the mask: matches nothing
    Address out{Family::V4, {}};
    std::memcpy(out.bytes.data(), &addr, 4);
    return {AddressField::Kind::Prefix, Prefix{out, len}};
  }
  // -f (fragments), -g (goto) and the unused TOS inversion are outside the model.
  static bool header_in_model(const ipt_ip& ip) {
    return ip.flags == 0 && (ip.invflags & ~(kInvSrc | kInvDst | kInvIn | kInvOut | kInvProto)) == 0;
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
  static AddressField get_addr(const Entry& e, bool source) {
    const in6_addr& addr = source ? e.ipv6.src : e.ipv6.dst;
    const in6_addr& mask = source ? e.ipv6.smsk : e.ipv6.dmsk;
    bool any = false;
    for (unsigned i = 0; i < 16; ++i) any = any || addr.s6_addr[i] || mask.s6_addr[i];
    if (!any) return {AddressField::Kind::Any, {}};
    unsigned len = 0;
    while (len < 128 && (mask.s6_addr[len / 8] & (0x80 >> (len % 8)))) ++len;
    for (unsigned b = len; b < 128; ++b)
      if (mask.s6_addr[b / 8] & (0x80 >> (b % 8))) return {AddressField::Kind::Outside, {}};  // non-contiguous
    for (unsigned i = 0; i < 16; ++i)
      if (addr.s6_addr[i] & ~mask.s6_addr[i]) return {AddressField::Kind::Outside, {}};  // bits outside the mask
    Address out{Family::V6, {}};
    std::memcpy(out.bytes.data(), &addr, 16);
    return {AddressField::Kind::Prefix, Prefix{out, len}};
  }
  // The protocol counts only with IP6T_F_PROTO (docs/libiptc.md, section 3); goto and TOS are outside the model.
  static bool header_in_model(const ip6t_ip6& ip) {
    return (ip.flags & ~IP6T_F_PROTO) == 0 && bool(ip.flags & IP6T_F_PROTO) == (ip.proto != 0) && ip.tos == 0 &&
           (ip.invflags & ~(kInvSrc | kInvDst | kInvIn | kInvOut | kInvProto)) == 0;
  }
  static void set_proto(Entry& e, std::uint16_t p) {
    e.ipv6.proto = p;
    e.ipv6.flags |= IP6T_F_PROTO;  // without it the kernel ignores the protocol (docs/libiptc.md, section 3)
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

// The port of a tcp or udp match: exactly one of source and destination, a single port, an
// inversion only of that one. Anything else (ranges, both, flags) is outside the model.
bool decode_ports(Rule& r, Protocol p, const std::uint16_t* spts, const std::uint16_t* dpts, std::uint8_t invflags,
                  std::uint8_t inv_src, std::uint8_t inv_dst) {
  bool dst_set = !(dpts[0] == 0 && dpts[1] == 0xffff);
  bool src_set = !(spts[0] == 0 && spts[1] == 0xffff);
  if (dst_set == src_set) return false;
  if ((invflags & ~(dst_set ? inv_dst : inv_src)) != 0) return false;
  const std::uint16_t* set = dst_set ? dpts : spts;
  if (set[0] != set[1]) return false;
  r.matches.push_back(PortMatch{p, dst_set ? Direction::Destination : Direction::Source, set[0], invflags != 0});
  return true;
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
  // The entry's header holds one protocol, one source, one destination and one interface each
  // way: a second of any is refused, as iptables refuses it ("multiple -p flags not allowed").
  unsigned header_fields_seen = 0;
  auto once = [&](unsigned bit, const char* option) -> Status {
    if (header_fields_seen & bit) return Error{fmt::format("more than one {} in one rule", option)};
    header_fields_seen |= bit;
    return ok_status();
  };
  for (const auto& m : rule.matches) {
    Status single = ok_status();
    if (auto* p = std::get_if<ProtocolMatch>(&m))
      single = once(1U, "-p");
    else if (auto* a = std::get_if<AddressMatch>(&m))
      single = a->direction == Direction::Source ? once(2U, "-s") : once(4U, "-d");
    else if (auto* i = std::get_if<InterfaceMatch>(&m))
      single = i->inbound ? once(8U, "-i") : once(16U, "-o");
    if (!single) return Error{single.error().message};
    if (auto* p = std::get_if<ProtocolMatch>(&m)) {
      F::set_proto(header, p->protocol == Protocol::Tcp ? IPPROTO_TCP : IPPROTO_UDP);
      if (p->negated) F::ip(header).invflags |= F::kInvProto;
      // Port matches need the protocol itself: the kernel refuses them under "! -p" (as iptables).
      protocol = p->negated ? std::nullopt : std::optional<Protocol>(p->protocol);
    } else if (auto* a = std::get_if<AddressMatch>(&m)) {
      bool source = a->direction == Direction::Source;
      const unsigned bits = std::is_same<F, V4>::value ? 32 : 128;
      if (a->prefix.address.family != (std::is_same<F, V4>::value ? Family::V4 : Family::V6) || a->prefix.length > bits)
        return Error{fmt::format("{} address {}/{} in an {} rule", family_name(a->prefix.address.family),
                                 format_address(a->prefix.address), a->prefix.length,
                                 std::is_same<F, V4>::value ? "IPv4" : "IPv6")};
      if (a->negated && a->prefix.length == 0)  // matches nothing; iptables-save could not show it back
        return Error{"a negated /0 address matches no packet; not encoded"};
      F::set_addr(header, source, a->prefix.address, a->prefix.length);
      if (a->negated) F::ip(header).invflags |= source ? F::kInvSrc : F::kInvDst;
    } else if (auto* i = std::get_if<InterfaceMatch>(&m)) {
      if (i->name.empty() || i->name.size() >= IFNAMSIZ)
        return Error{fmt::format("interface name {} does not fit an entry (1 to {} bytes)", quoted_for_message(i->name),
                                 IFNAMSIZ - 1)};
      auto& ip = F::ip(header);
      if (i->inbound)
        set_iface(ip.iniface, ip.iniface_mask, i->name);
      else
        set_iface(ip.outiface, ip.outiface_mask, i->name);
      if (i->negated) ip.invflags |= i->inbound ? F::kInvIn : F::kInvOut;
    } else if (auto* port = std::get_if<PortMatch>(&m)) {
      if (!protocol || *protocol != port->protocol)
        return Error{"a port match needs -p tcp or -p udp (not negated) before it"};
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
      // As iptables: multiport needs a protocol with ports, and the kernel takes at most 15.
      if (!protocol) return Error{"multiport needs -p tcp or -p udp (not negated) before it"};
      if (mp->ports.empty() || mp->ports.size() > XT_MULTI_PORTS)
        return Error{fmt::format("multiport takes 1 to {} ports, not {}", XT_MULTI_PORTS, mp->ports.size())};
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
        auto gid = groups.lookup(o->id.name);
        if (!gid) return Error{gid.error().message};
        if (!gid.value())
          return Error{fmt::format("group {} is not in /etc/group (owner match)", quoted_for_message(o->id.name))};
        id = *gid.value();
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
    void operator()(const NflogTarget& t) const {
      // As libxt_NFLOG 1.8.9 fills it: --nflog-size sets len and the COPY_LEN flag, the
      // threshold stays 0; a prefix too long to keep its NUL is cut here and refused below,
      // where the entry no longer reads back as this rule.
      auto& info = b.add_target<xt_nflog_info>("NFLOG", 0);
      info.len = t.size;
      info.group = t.group;
      info.flags = XT_NFLOG_F_COPY_LEN;
      std::memcpy(info.prefix, t.prefix.data(), std::min(t.prefix.size(), sizeof info.prefix - 1));
    }
  };
  std::visit(TargetEncoder{b, std::is_same_v<F, V4> ? Family::V4 : Family::V6}, rule.target);
  auto& bytes = b.bytes();
  header.target_offset = static_cast<std::uint16_t>(b.target_offset());
  header.next_offset = static_cast<std::uint16_t>(bytes.size());
  std::memcpy(bytes.data(), &header, sizeof header);
  return b.finish();  // entry bytes, then the label
}

// The layout of an entry blob, checked before anything in it is read: every offset and size
// inside the blob and aligned as the kernel requires. A blob that fails is no entry of ours.
struct Layout {
  std::size_t target_offset = 0;
  std::size_t next_offset = 0;
};

template <typename Entry>
std::optional<Layout> layout_of(const std::string& blob) {
  if (blob.size() < sizeof(Entry)) return std::nullopt;
  Entry e;
  std::memcpy(&e, blob.data(), sizeof e);
  Layout l{e.target_offset, e.next_offset};
  if (l.target_offset < sizeof(Entry) || l.target_offset % align(1) != 0 || l.next_offset > blob.size() ||
      l.target_offset + sizeof(xt_entry_target) > l.next_offset)
    return std::nullopt;
  return l;
}

// Calls on_match(offset, header) for each match of a well-formed blob; false when the matches do
// not tile the space between the header and the target exactly.
template <typename Entry, typename OnMatch>
bool for_each_match(const std::string& blob, const Layout& l, OnMatch on_match) {
  for (std::size_t off = sizeof(Entry); off < l.target_offset;) {
    if (off + sizeof(xt_entry_match) > l.target_offset) return false;
    xt_entry_match m;
    std::memcpy(&m, blob.data() + off, sizeof m);
    std::size_t size = m.u.match_size;
    if (size < sizeof(xt_entry_match) || size % align(1) != 0 || off + size > l.target_offset) return false;
    on_match(off, m);
    off += size;
  }
  return true;
}

// The payload of a match or target whose header says it is `size` bytes long, when that is the
// size iptables gives a payload of type P; nullopt otherwise.
template <typename P, typename Header>
std::optional<P> payload(const std::string& blob, std::size_t offset, std::size_t size) {
  if (size != align(sizeof(Header)) + align(sizeof(P))) return std::nullopt;
  P out;
  std::memcpy(&out, blob.data() + offset + align(sizeof(Header)), sizeof out);
  return out;
}

template <typename F>
std::string identity(const std::string& blob) {
  using Entry = typename F::Entry;
  std::string out = blob;
  auto l = layout_of<Entry>(out);
  if (!l) return out;  // not an entry: its bytes are all there is to compare
  Entry e;
  std::memcpy(&e, out.data(), sizeof e);
  std::memset(&e.counters, 0, sizeof e.counters);
  e.comefrom = 0;
  e.nfcache = 0;
  std::memcpy(out.data(), &e, sizeof e);
  auto zero_name_padding = [&](std::size_t name_offset, std::size_t name_size) {
    char* name = out.data() + name_offset;
    std::size_t n = strnlen(name, name_size);
    std::memset(name + n, 0, name_size - n);
  };
  constexpr std::size_t kNameOffset = offsetof(xt_entry_match, u.user.name);
  constexpr std::size_t kNameSize = sizeof(xt_entry_match{}.u.user.name);
  for_each_match<Entry>(
      out, *l, [&](std::size_t off, const xt_entry_match&) { zero_name_padding(off + kNameOffset, kNameSize); });
  zero_name_padding(l->target_offset + offsetof(xt_entry_target, u.user.name), sizeof(xt_entry_target{}.u.user.name));
  return out;  // the label, after the entry, is part of the identity
}

// The interface of a header field, when its mask is exactly the one iptables builds for it.
std::optional<std::string> iface_in_model(const char* name, const unsigned char* mask, bool& outside) {
  std::size_t n = strnlen(name, IFNAMSIZ);
  if (n == 0) {
    for (std::size_t i = 0; i < IFNAMSIZ; ++i) outside = outside || mask[i] != 0;
    return std::nullopt;
  }
  if (n == IFNAMSIZ) {
    outside = true;
    return std::nullopt;
  }
  std::string value(name, n);
  char expected_name[IFNAMSIZ];
  unsigned char expected_mask[IFNAMSIZ];
  set_iface(expected_name, expected_mask, value);
  if (std::memcmp(expected_mask, mask, IFNAMSIZ) != 0) outside = true;  // e.g. a wildcard spelled another way
  return value;
}

template <typename F>
std::optional<Rule> decode(const std::string& blob) {
  using Entry = typename F::Entry;
  auto l = layout_of<Entry>(blob);
  if (!l) return std::nullopt;
  Entry e;
  std::memcpy(&e, blob.data(), sizeof e);
  const auto& ip = F::ip(e);
  if (!F::header_in_model(ip)) return std::nullopt;  // fragments, goto, TOS, unknown flags
  Rule r;
  // Header matches in iptables-save's order: -s -d -i -o -p.
  for (bool source : {true, false}) {
    AddressField a = F::get_addr(e, source);
    bool neg = ip.invflags & (source ? F::kInvSrc : F::kInvDst);
    if (a.kind == AddressField::Kind::Outside) return std::nullopt;  // e.g. 10.0.0.0/255.0.255.0
    if (a.kind == AddressField::Kind::Any) {
      if (neg) return std::nullopt;  // "! -s 0.0.0.0/0" matches nothing; not a rule without -s
      continue;
    }
    r.matches.push_back(AddressMatch{source ? Direction::Source : Direction::Destination, a.prefix, neg});
  }
  bool outside = false;
  auto in = iface_in_model(ip.iniface, ip.iniface_mask, outside);
  auto out = iface_in_model(ip.outiface, ip.outiface_mask, outside);
  if (outside || (!in && (ip.invflags & F::kInvIn)) || (!out && (ip.invflags & F::kInvOut))) return std::nullopt;
  if (in) r.matches.push_back(InterfaceMatch{true, *in, bool(ip.invflags & F::kInvIn)});
  if (out) r.matches.push_back(InterfaceMatch{false, *out, bool(ip.invflags & F::kInvOut)});
  std::optional<Protocol> proto;
  if (ip.proto == IPPROTO_TCP)
    proto = Protocol::Tcp;
  else if (ip.proto == IPPROTO_UDP)
    proto = Protocol::Udp;
  else if (ip.proto != 0)
    return std::nullopt;
  const bool proto_negated = ip.invflags & F::kInvProto;
  if (!proto && proto_negated) return std::nullopt;
  if (proto) r.matches.push_back(ProtocolMatch{*proto, proto_negated});
  // The protocol a port match needs: the header's, not negated (the kernel's own check).
  auto port_protocol_ok = [&](Protocol p) { return proto == p && !proto_negated; };

  bool ok = true;
  bool tiled = for_each_match<Entry>(blob, *l, [&](std::size_t off, const xt_entry_match& m) {
    if (!ok) return;
    const std::size_t size = m.u.match_size;
    std::string name(m.u.user.name, strnlen(m.u.user.name, sizeof m.u.user.name));
    const int rev = m.u.user.revision;
    ok = false;  // until the match is understood whole
    if (name == "tcp" && rev == 0) {
      auto t = payload<xt_tcp, xt_entry_match>(blob, off, size);
      if (!t || t->option != 0 || t->flg_mask != 0 || t->flg_cmp != 0 || !port_protocol_ok(Protocol::Tcp)) return;
      ok = decode_ports(r, Protocol::Tcp, t->spts, t->dpts, t->invflags, XT_TCP_INV_SRCPT, XT_TCP_INV_DSTPT);
    } else if (name == "udp" && rev == 0) {
      auto u = payload<xt_udp, xt_entry_match>(blob, off, size);
      if (!u || !port_protocol_ok(Protocol::Udp)) return;
      ok = decode_ports(r, Protocol::Udp, u->spts, u->dpts, u->invflags, XT_UDP_INV_SRCPT, XT_UDP_INV_DSTPT);
    } else if (name == "multiport" && rev == 1) {
      auto p = payload<xt_multiport_v1, xt_entry_match>(blob, off, size);
      if (!p || p->flags != XT_MULTIPORT_DESTINATION || p->count == 0 || p->count > XT_MULTI_PORTS || p->invert > 1 ||
          !proto || proto_negated)
        return;
      MultiportMatch mp{{}, p->invert != 0};
      for (unsigned k = 0; k < p->count; ++k) {
        if (p->pflags[k] != 0) return;  // a port range: outside the model
        mp.ports.push_back(p->ports[k]);
      }
      r.matches.push_back(mp);
      ok = true;
    } else if (name == "owner" && rev == 1) {
      auto o = payload<xt_owner_match_info, xt_entry_match>(blob, off, size);
      if (!o || (o->invert != 0 && o->invert != o->match)) return;
      if (o->match == XT_OWNER_UID && o->uid_min == o->uid_max)
        r.matches.push_back(OwnerMatch{false, OwnerId{o->uid_min, {}}, o->invert != 0});
      else if (o->match == XT_OWNER_GID && o->gid_min == o->gid_max)
        r.matches.push_back(OwnerMatch{true, OwnerId{o->gid_min, {}}, o->invert != 0});
      else
        return;
      ok = true;
    } else if (name == "conntrack" && rev == 3) {
      auto c = payload<xt_conntrack_mtinfo3, xt_entry_match>(blob, off, size);
      const unsigned known = XT_CONNTRACK_STATE_INVALID | XT_CONNTRACK_STATE_BIT(IP_CT_NEW) |
                             XT_CONNTRACK_STATE_BIT(IP_CT_RELATED) | XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED);
      if (!c || c->match_flags != XT_CONNTRACK_STATE ||
          (c->invert_flags != 0 && c->invert_flags != XT_CONNTRACK_STATE) || c->state_mask == 0 ||
          (c->state_mask & ~known) != 0)
        return;
      // In the order iptables-save prints them.
      ConntrackMatch cm{{}, c->invert_flags != 0};
      if (c->state_mask & XT_CONNTRACK_STATE_INVALID) cm.states.push_back(ConntrackState::Invalid);
      if (c->state_mask & XT_CONNTRACK_STATE_BIT(IP_CT_NEW)) cm.states.push_back(ConntrackState::New);
      if (c->state_mask & XT_CONNTRACK_STATE_BIT(IP_CT_RELATED)) cm.states.push_back(ConntrackState::Related);
      if (c->state_mask & XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED)) cm.states.push_back(ConntrackState::Established);
      r.matches.push_back(cm);
      ok = true;
    } else if (name == "mark" && rev == 1) {
      auto mk = payload<xt_mark_mtinfo1, xt_entry_match>(blob, off, size);
      if (!mk || mk->mask != 0xffffffffU || mk->invert > 1) return;
      r.matches.push_back(MarkMatch{mk->mark, mk->invert != 0});
      ok = true;
    } else if (name == "connmark" && rev == 1) {
      auto mk = payload<xt_connmark_mtinfo1, xt_entry_match>(blob, off, size);
      if (!mk || mk->mask != 0xffffffffU || mk->invert > 1) return;
      r.matches.push_back(ConnmarkMatch{mk->mark, mk->invert != 0});
      ok = true;
    }
  });
  if (!tiled || !ok) return std::nullopt;

  xt_entry_target t;
  std::memcpy(&t, blob.data() + l->target_offset, sizeof t);
  const std::size_t size = t.u.target_size;
  if (l->target_offset + size != l->next_offset) return std::nullopt;
  std::string name(t.u.user.name, strnlen(t.u.user.name, sizeof t.u.user.name));
  const int rev = t.u.user.revision;
  const std::size_t at = l->target_offset;
  if (name.empty()) {
    if (size != align(sizeof(xt_standard_target))) return std::nullopt;
    std::string label = blob.substr(l->next_offset);
    if (label == "ACCEPT")
      r.target = VerdictTarget{Verdict::Accept};
    else if (label == "DROP")
      r.target = VerdictTarget{Verdict::Drop};
    else if (label == "RETURN")
      r.target = VerdictTarget{Verdict::Return};
    else if (!label.empty() && label.size() < XT_EXTENSION_MAXNAMELEN && label.find('\0') == std::string::npos &&
             label != "QUEUE" && label != "ERROR")
      r.target = JumpTarget{label};
    else
      return std::nullopt;
    return r;
  }
  if (blob.size() != l->next_offset) return std::nullopt;  // a module target has no label
  if (name == "REDIRECT" && rev == 0) {
    std::uint16_t port;
    if constexpr (std::is_same_v<F, V4>) {
      auto n = payload<nf_nat_ipv4_multi_range_compat, xt_entry_target>(blob, at, size);
      if (!n || n->rangesize != 1 || n->range[0].flags != NF_NAT_RANGE_PROTO_SPECIFIED || n->range[0].min_ip != 0 ||
          n->range[0].max_ip != 0 || n->range[0].min.tcp.port != n->range[0].max.tcp.port)
        return std::nullopt;  // --random, a port range or an address: outside the model
      port = ntohs(n->range[0].min.tcp.port);
    } else {
      auto n = payload<nf_nat_range, xt_entry_target>(blob, at, size);
      if (!n || n->flags != NF_NAT_RANGE_PROTO_SPECIFIED || n->min_proto.tcp.port != n->max_proto.tcp.port)
        return std::nullopt;
      for (auto w : n->min_addr.all)
        if (w != 0) return std::nullopt;
      for (auto w : n->max_addr.all)
        if (w != 0) return std::nullopt;
      port = ntohs(n->min_proto.tcp.port);
    }
    r.target = RedirectTarget{port, false};
  } else if (name == "TPROXY" && rev == 1) {
    auto info = payload<xt_tproxy_target_info_v1, xt_entry_target>(blob, at, size);
    if (!info) return std::nullopt;
    for (auto w : info->laddr.all)
      if (w != 0) return std::nullopt;  // --on-ip: outside the model
    r.target = TproxyTarget{ntohs(info->lport), info->mark_value, info->mark_mask};
  } else if (name == "MARK" && rev == 2) {
    auto info = payload<xt_mark_tginfo2, xt_entry_target>(blob, at, size);
    if (!info || info->mask != 0xffffffffU) return std::nullopt;
    r.target = MarkTarget{info->mark};
  } else if (name == "CONNMARK" && rev == 2) {
    auto info = payload<xt_connmark_tginfo2, xt_entry_target>(blob, at, size);
    if (!info || info->ctmark != 0 || info->ctmask != 0xffffffffU || info->nfmask != 0xffffffffU ||
        info->shift_dir != 0 || info->shift_bits != 0)
      return std::nullopt;
    if (info->mode == XT_CONNMARK_SAVE)
      r.target = ConnmarkTarget{false};
    else if (info->mode == XT_CONNMARK_RESTORE)
      r.target = ConnmarkTarget{true};
    else
      return std::nullopt;
  } else if (name == "CT" && rev == 2) {
    auto info = payload<xt_ct_target_info_v1, xt_entry_target>(blob, at, size);
    // Only a plain zone is ours: NOTRACK, helpers, timeouts and event masks are someone else's.
    // iptables zero-fills the name fields; any other byte in them (even after a NUL) is not an
    // entry we would write, so it is not read as one of ours.
    auto all_zero = [](const char* field, std::size_t n) {
      return std::all_of(field, field + n, [](char c) { return c == 0; });
    };
    if (!info || info->flags != 0 || !all_zero(info->helper, sizeof info->helper) ||
        !all_zero(info->timeout, sizeof info->timeout) || info->ct_events != 0 || info->exp_events != 0)
      return std::nullopt;
    r.target = CtTarget{info->zone};
  } else if (name == "NFLOG" && rev == 0) {
    auto info = payload<xt_nflog_info, xt_entry_target>(blob, at, size);
    if (!info || info->flags != XT_NFLOG_F_COPY_LEN || info->threshold != 0 || info->pad != 0) return std::nullopt;
    const char* end = std::find(info->prefix, info->prefix + sizeof info->prefix, '\0');
    if (end == info->prefix || end == info->prefix + sizeof info->prefix) return std::nullopt;
    r.target = NflogTarget{std::string(static_cast<const char*>(info->prefix), end), info->group, info->len, false};
  } else {
    return std::nullopt;
  }
  return r;
}

}  // namespace

Result<std::string> encode_entry(Family family, const Rule& rule, GroupResolver& groups) {
  auto blob = family == Family::V4 ? encode<V4>(rule, groups) : encode<V6>(rule, groups);
  if (!blob) return blob;
  // Only what reads back: an entry the decoder would not take as this model's rule (a shape
  // iptables itself refuses, which the text parser let through) is refused before any commit.
  auto back = family == Family::V4 ? decode<V4>(blob.value()) : decode<V6>(blob.value());
  if (!back)
    return Error{fmt::format("the rule {} cannot be written as an entry", quoted_for_message(rule_spec(rule)))};
  return blob;
}

std::string entry_identity(Family family, const std::string& blob) {
  return family == Family::V4 ? identity<V4>(blob) : identity<V6>(blob);
}

std::optional<Rule> decode_entry(Family family, const std::string& blob) {
  auto rule = family == Family::V4 ? decode<V4>(blob) : decode<V6>(blob);
  if (!rule) return std::nullopt;
  // Faithful or nothing: a rule is only read as one of the model's when encoding it gives the
  // entry back (padding, reserved fields and name bytes included). An entry that decodes but
  // carries anything more is someone else's and stays opaque. Numeric IDs only: no group lookup.
  struct NoGroups final : GroupResolver {
    Result<std::optional<std::uint32_t>> lookup(const std::string&) override { return std::optional<std::uint32_t>{}; }
  } no_groups;
  auto again = encode_entry(family, *rule, no_groups);
  if (!again || entry_identity(family, again.value()) != entry_identity(family, blob)) return std::nullopt;
  return rule;
}

std::string blob_from_kernel(Family family, const void* entry, const char* label) {
  std::size_t size = family == Family::V4 ? static_cast<const ipt_entry*>(entry)->next_offset
                                          : static_cast<const ip6t_entry*>(entry)->next_offset;
  std::size_t target_offset = family == Family::V4 ? static_cast<const ipt_entry*>(entry)->target_offset
                                                   : static_cast<const ip6t_entry*>(entry)->target_offset;
  std::string blob(static_cast<const char*>(entry), size);
  // The kernel copies only strlen(name)+1 bytes of each name: zero the rest (docs/libiptc.md, section 7).
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

// ---- the extensions of an entry, as nf_tables' compat expressions carry them ---------------------

namespace {

template <typename Entry>
std::optional<EntryExtensions> extensions_of(const std::string& blob) {
  if (blob.size() < sizeof(Entry)) return std::nullopt;
  Entry e;
  std::memcpy(&e, blob.data(), sizeof e);
  const std::size_t target_offset = e.target_offset, next_offset = e.next_offset;
  if (target_offset < sizeof(Entry) || next_offset > blob.size() ||
      target_offset + sizeof(xt_entry_target) > next_offset)
    return std::nullopt;
  auto name_of = [](const char* name, std::size_t size) { return std::string(name, strnlen(name, size)); };
  EntryExtensions out;
  for (std::size_t off = sizeof(Entry); off < target_offset;) {
    if (off + sizeof(xt_entry_match) > target_offset) return std::nullopt;
    xt_entry_match m;
    std::memcpy(&m, blob.data() + off, sizeof m);
    const std::size_t size = m.u.match_size;
    if (size < align(sizeof(xt_entry_match)) || off + size > target_offset) return std::nullopt;
    out.matches.push_back(
        XtExtension{name_of(m.u.user.name, sizeof m.u.user.name), m.u.user.revision,
                    blob.substr(off + align(sizeof(xt_entry_match)), size - align(sizeof(xt_entry_match)))});
    off += size;
  }
  xt_entry_target t;
  std::memcpy(&t, blob.data() + target_offset, sizeof t);
  const std::size_t size = t.u.target_size;
  if (size < align(sizeof(xt_entry_target)) || target_offset + size > next_offset) return std::nullopt;
  std::string name = name_of(t.u.user.name, sizeof t.u.user.name);
  if (!name.empty())
    out.target =
        XtExtension{name, t.u.user.revision,
                    blob.substr(target_offset + align(sizeof(xt_entry_target)), size - align(sizeof(xt_entry_target)))};
  return out;
}

// An entry holding only `match` (after the protocol `-p`) or only `target` (else a RETURN), for
// the legacy decoder to read.
template <typename F>
std::string entry_with(std::optional<Protocol> protocol, const XtExtension* match, const XtExtension* target) {
  using Entry = typename F::Entry;
  Entry header{};
  if (protocol) F::set_proto(header, *protocol == Protocol::Tcp ? IPPROTO_TCP : IPPROTO_UDP);
  std::string bytes(sizeof(Entry), '\0');
  auto append = [&](const auto& head, const std::string& info) {
    std::string h(align(sizeof head), '\0');
    std::memcpy(h.data(), &head, sizeof head);
    bytes += h + info;
  };
  if (match) {
    xt_entry_match m{};
    m.u.user.match_size = static_cast<std::uint16_t>(align(sizeof m) + match->info.size());
    std::strncpy(m.u.user.name, match->name.c_str(), sizeof m.u.user.name - 1);
    m.u.user.revision = static_cast<std::uint8_t>(match->revision);
    append(m, match->info);
  }
  header.target_offset = static_cast<std::uint16_t>(bytes.size());
  std::string label;
  if (target) {
    xt_entry_target t{};
    t.u.user.target_size = static_cast<std::uint16_t>(align(sizeof t) + target->info.size());
    std::strncpy(t.u.user.name, target->name.c_str(), sizeof t.u.user.name - 1);
    t.u.user.revision = static_cast<std::uint8_t>(target->revision);
    append(t, target->info);
  } else {
    xt_standard_target t{};
    t.target.u.user.target_size = static_cast<std::uint16_t>(align(sizeof t));
    std::string s(align(sizeof t), '\0');
    std::memcpy(s.data(), &t, sizeof t);
    bytes += s;
    label = "RETURN";
  }
  header.next_offset = static_cast<std::uint16_t>(bytes.size());
  std::memcpy(bytes.data(), &header, sizeof header);
  return bytes + label;
}

}  // namespace

std::optional<EntryExtensions> entry_extensions(Family family, const std::string& blob) {
  return family == Family::V4 ? extensions_of<ipt_entry>(blob) : extensions_of<ip6t_entry>(blob);
}

std::optional<Match> decode_xt_match(Family family, std::optional<Protocol> protocol, const XtExtension& match) {
  if (match.revision > 0xff || match.info.size() % align(1) != 0 || match.info.size() > 0xff00) return std::nullopt;
  const std::string entry =
      family == Family::V4 ? entry_with<V4>(protocol, &match, nullptr) : entry_with<V6>(protocol, &match, nullptr);
  auto rule = decode_entry(family, entry);
  if (!rule || rule->matches.size() != (protocol ? 2U : 1U)) return std::nullopt;
  return rule->matches.back();
}

std::optional<Target> decode_xt_target(Family family, const XtExtension& target) {
  if (target.revision > 0xff || target.info.size() % align(1) != 0 || target.info.size() > 0xff00 ||
      target.name.empty())
    return std::nullopt;
  const std::string entry = family == Family::V4 ? entry_with<V4>(std::nullopt, nullptr, &target)
                                                 : entry_with<V6>(std::nullopt, nullptr, &target);
  auto rule = decode_entry(family, entry);
  if (!rule || !rule->matches.empty()) return std::nullopt;
  return rule->target;
}

}  // namespace istio_iptables
