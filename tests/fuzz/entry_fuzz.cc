// Fuzz target: the x_tables entry decoder (decode_entry), and encode-then-decode round trips.
//
// decode_entry reads what the kernel hands back through libiptc, including rules other programs
// wrote. The kernel checks an entry's layout before it accepts it (offsets inside the entry,
// matches that walk exactly to the target, each known match and target exactly its payload's
// size, multiport's count at most 15), and nothing more: every other byte is the writer's. So the
// target builds entries of that shape with every other byte taken from the input, and asks:
//
//   - no crash and no undefined behaviour;
//   - faithful or opaque: when the decoder returns a rule, encoding that rule gives back the same
//     entry identity (counters and kernel-written fields aside). A rule decoded as something else
//     than what the entry does would be reported, compared and re-applied wrongly.
//
// The first input byte chooses the mode (low bit: the family):
//   0, 1  an entry shaped from the remaining bytes (see shape_entry);
//   4, 5  the remaining bytes as they are: the decoder refuses what is not a well-formed entry
//         (same properties);
//   2, 3  a rule in restore syntax: parse_rule_spec, canonical, encode, decode, encode again; our
//         own encoding must decode, and the two encodings must be identical (the catalogue's
//         rules are the seeds).
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/x_tables.h>
#include <linux/netfilter/xt_CONNMARK.h>
#include <linux/netfilter/xt_CT.h>
#include <linux/netfilter/xt_MARK.h>
#include <linux/netfilter/xt_TPROXY.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_multiport.h>
#include <linux/netfilter/xt_owner.h>
#include <linux/netfilter/xt_tcpudp.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "core/restore_text.h"
#include "core/rule_text.h"
#include "fuzz_check.h"
#include "system/xt_entry.h"

namespace {

using namespace istio_iptables;

class FakeGroups final : public GroupResolver {
 public:
  Result<std::optional<std::uint32_t>> lookup(const std::string& name) override {
    if (name.empty() || name.size() > 8) return std::optional<std::uint32_t>();
    return std::optional<std::uint32_t>(static_cast<std::uint32_t>(name.size() * 1000));
  }
};

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

/// Reads the input front to back; zeros once it runs out.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  void bytes(void* out, std::size_t n) {
    auto* o = static_cast<std::uint8_t*>(out);
    for (std::size_t i = 0; i < n; ++i) o[i] = byte();
  }
  bool empty() const { return pos_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

struct Extension {
  const char* name;
  std::uint8_t revision;
  std::size_t size;  ///< the payload, as the kernel requires it for this name and revision
};

// What our decoder knows, plus neighbours it must refuse (other revisions, other modules).
const Extension kMatches[] = {
    {"tcp", 0, sizeof(xt_tcp)},
    {"udp", 0, sizeof(xt_udp)},
    {"multiport", 1, sizeof(xt_multiport_v1)},
    {"owner", 1, sizeof(xt_owner_match_info)},
    {"conntrack", 3, sizeof(xt_conntrack_mtinfo3)},
    {"mark", 1, sizeof(xt_mark_mtinfo1)},
    {"connmark", 1, sizeof(xt_connmark_mtinfo1)},
    {"multiport", 0, sizeof(xt_multiport)},
    {"conntrack", 2, sizeof(xt_conntrack_mtinfo2)},
    {"comment", 0, 256},
};

const Extension kTargets[] = {
    {"", 0, sizeof(int)},  // the standard target: a verdict or a jump, named by its label
    {"REDIRECT", 0, 0},    // size by family, below
    {"TPROXY", 1, sizeof(xt_tproxy_target_info_v1)},
    {"MARK", 2, sizeof(xt_mark_tginfo2)},
    {"CONNMARK", 2, sizeof(xt_connmark_tginfo2)},
    {"CT", 2, sizeof(xt_ct_target_info_v1)},
    {"MARK", 0, sizeof(xt_mark_tginfo2)},
    {"DNAT", 0, sizeof(nf_nat_ipv4_multi_range_compat)},
};

const char* const kLabels[] = {"ACCEPT", "DROP", "RETURN", "QUEUE", "ERROR", "ISTIO_OUTPUT", "ISTIO_INBOUND", ""};

std::size_t payload_size(const Extension& x, Family family) {
  if (std::strcmp(x.name, "REDIRECT") == 0)
    return family == Family::V4 ? sizeof(nf_nat_ipv4_multi_range_compat) : sizeof(nf_nat_range);
  return x.size;
}

void put_name(char* field, std::size_t field_size, const char* name, Input& in) {
  std::memset(field, 0, field_size);
  std::memcpy(field, name, std::strlen(name));
  // Bytes after the terminating NUL are not the kernel's concern: let the input fill them.
  if (in.byte() & 1) in.bytes(field + std::strlen(name) + 1, field_size - std::strlen(name) - 1);
}

/// An entry of the shape the kernel accepts, every unchecked byte from the input; then the label
/// (the standard target's), as blob_from_kernel lays a blob out.
template <typename Entry>
std::string shape_entry(Family family, Input& in) {
  std::string blob(sizeof(Entry), '\0');
  in.bytes(blob.data(), sizeof(Entry));
  const unsigned matches = in.byte() % 5;
  for (unsigned i = 0; i < matches && !in.empty(); ++i) {
    const Extension& x = kMatches[in.byte() % std::size(kMatches)];
    const std::size_t size = XT_ALIGN(sizeof(xt_entry_match) + x.size);
    std::string m(size, '\0');
    auto* match = reinterpret_cast<xt_entry_match*>(m.data());
    in.bytes(match->data, x.size);
    match->u.user.match_size = static_cast<std::uint16_t>(size);
    put_name(match->u.user.name, sizeof match->u.user.name, x.name, in);
    match->u.user.revision = x.revision;
    if (std::strcmp(x.name, "multiport") == 0) {  // the kernel refuses more than 15 ports
      if (x.revision == 1)
        reinterpret_cast<xt_multiport_v1*>(match->data)->count %= XT_MULTI_PORTS + 1;
      else
        reinterpret_cast<xt_multiport*>(match->data)->count %= XT_MULTI_PORTS + 1;
    }
    blob += m;
  }
  const std::size_t target_offset = blob.size();
  const Extension& x = kTargets[in.byte() % std::size(kTargets)];
  const std::size_t payload = payload_size(x, family);
  const std::size_t size = XT_ALIGN(sizeof(xt_entry_target) + payload);
  std::string t(size, '\0');
  auto* target = reinterpret_cast<xt_entry_target*>(t.data());
  in.bytes(target->data, payload);
  target->u.user.target_size = static_cast<std::uint16_t>(size);
  put_name(target->u.user.name, sizeof target->u.user.name, x.name, in);
  target->u.user.revision = x.revision;
  std::string label;
  if (*x.name == '\0') {
    // blob_from_kernel zeroes the verdict of a standard target and appends libiptc's label.
    std::memset(target->data, 0, sizeof(int));
    std::memset(target->u.user.name, 0, sizeof target->u.user.name);
    label = kLabels[in.byte() % std::size(kLabels)];
    if (label.empty())
      for (unsigned n = in.byte() % 29; n > 0; --n) label += static_cast<char>('A' + in.byte() % 26);
  }
  blob += t;
  auto* e = reinterpret_cast<Entry*>(blob.data());
  e->target_offset = static_cast<std::uint16_t>(target_offset);
  e->next_offset = static_cast<std::uint16_t>(blob.size());
  return blob + label;
}

/// Clears, in an identity, bytes the kernel never looks at: interface name bytes under a zero mask
/// byte, and ip6t_entry's struct padding (after invflags, before the counters). A difference
/// there is no misreading.
template <typename Entry>
void clear_unread_interface_bytes(std::string& identity, std::size_t name, std::size_t mask) {
  for (std::size_t i = 0; i < IFNAMSIZ; ++i)
    if (identity[mask + i] == 0) identity[name + i] = 0;
}

std::string meaningful(Family family, std::string identity) {
  if (family == Family::V4 && identity.size() >= sizeof(ipt_entry)) {
    clear_unread_interface_bytes<ipt_entry>(identity, offsetof(ipt_entry, ip.iniface),
                                            offsetof(ipt_entry, ip.iniface_mask));
    clear_unread_interface_bytes<ipt_entry>(identity, offsetof(ipt_entry, ip.outiface),
                                            offsetof(ipt_entry, ip.outiface_mask));
  }
  if (family == Family::V6 && identity.size() >= sizeof(ip6t_entry)) {
    clear_unread_interface_bytes<ip6t_entry>(identity, offsetof(ip6t_entry, ipv6.iniface),
                                             offsetof(ip6t_entry, ipv6.iniface_mask));
    clear_unread_interface_bytes<ip6t_entry>(identity, offsetof(ip6t_entry, ipv6.outiface),
                                             offsetof(ip6t_entry, ipv6.outiface_mask));
    for (std::size_t i = offsetof(ip6t_entry, ipv6.invflags) + 1; i < sizeof(ip6t_ip6); ++i) identity[i] = 0;
    for (std::size_t i = offsetof(ip6t_entry, comefrom) + sizeof(std::uint32_t); i < offsetof(ip6t_entry, counters);
         ++i)
      identity[i] = 0;
  }
  return identity;
}

void check_faithful(Family family, const std::string& blob) {
  auto rule = decode_entry(family, blob);
  if (!rule) return;
  FakeGroups groups;
  auto again = encode_entry(family, *rule, groups);
  FUZZ_CHECK(again.ok(), "decoded as \"" + rule_spec(*rule) + "\", which does not encode: " +
                             (again.ok() ? std::string() : again.error().message) + "\nblob " + hex(blob));
  FUZZ_CHECK(meaningful(family, entry_identity(family, again.value())) ==
                 meaningful(family, entry_identity(family, blob)),
             "decoded as \"" + rule_spec(*rule) + "\", which encodes differently\nentry   " +
                 hex(entry_identity(family, blob)) + "\nencoded " + hex(entry_identity(family, again.value())));
}

void round_trip(Family family, const std::string& spec) {
  auto parsed = parse_rule_spec(spec);
  if (!parsed) return;
  FakeGroups groups;
  const Rule rule = canonical(*parsed, [&](const std::string& name) { return groups.gid(name); });
  auto blob = encode_entry(family, rule, groups);
  if (!blob) return;  // e.g. an address of the other family: refused, as it should be
  auto decoded = decode_entry(family, blob.value());
  FUZZ_CHECK(decoded.has_value(),
             "our own encoding of \"" + rule_spec(rule) + "\" does not decode\nblob " + hex(blob.value()));
  auto again = encode_entry(family, *decoded, groups);
  FUZZ_CHECK(again.ok() && entry_identity(family, again.value()) == entry_identity(family, blob.value()),
             "\"" + rule_spec(rule) + "\" decodes as \"" + rule_spec(*decoded) + "\", which encodes differently");
  (void)entry_identity(family, blob.value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned mode = data[0] % 6;
  const Family family = mode % 2 == 0 ? Family::V4 : Family::V6;
  if (mode < 2) {
    Input in(data + 1, size - 1);
    const std::string blob =
        family == Family::V4 ? shape_entry<ipt_entry>(family, in) : shape_entry<ip6t_entry>(family, in);
    check_faithful(family, blob);
    (void)entry_identity(family, blob);
  } else if (mode < 4) {
    round_trip(family, std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  } else {
    const std::string blob(reinterpret_cast<const char*>(data) + 1, size - 1);
    check_faithful(family, blob);
    (void)entry_identity(family, blob);
  }
  return 0;
}
