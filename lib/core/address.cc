#include "core/address.h"

#include <algorithm>
#include <cstddef>

#include "core/number.h"

namespace istio_iptables {
namespace {

// Dotted quad, four decimal octets, no leading zeros (netip refuses "010.0.0.1").
std::optional<std::array<std::uint8_t, 4>> parse_ipv4(std::string_view s) {
  std::array<std::uint8_t, 4> out{};
  std::size_t count = 0;
  for (const auto& octet : split_list(s, EmptyItems::Keep, '.')) {
    if (count == 4 || (octet.size() > 1 && octet[0] == '0')) return std::nullopt;
    auto value = parse_unsigned(octet, 255);
    if (!value) return std::nullopt;
    out[count++] = static_cast<std::uint8_t>(*value);
  }
  if (count != 4) return std::nullopt;
  return out;
}

std::optional<std::array<std::uint8_t, 16>> parse_ipv6(std::string_view s) {
  std::array<std::uint16_t, 8> groups{};
  int count = 0;
  int ellipsis = -1;  // index in groups where "::" stands
  std::size_t pos = 0;
  if (s.size() >= 2 && s[0] == ':' && s[1] == ':') {
    ellipsis = 0;
    pos = 2;
    if (pos == s.size()) return std::array<std::uint8_t, 16>{};
  }
  while (pos < s.size()) {
    if (count == 8) return std::nullopt;
    // An embedded IPv4 address may end the text, taking two groups.
    std::size_t end = s.find(':', pos);
    std::string_view item = s.substr(pos, end == std::string_view::npos ? s.size() - pos : end - pos);
    if (end == std::string_view::npos && item.find('.') != std::string_view::npos) {
      if (count > 6) return std::nullopt;
      auto v4 = parse_ipv4(item);
      if (!v4) return std::nullopt;
      groups[static_cast<std::size_t>(count++)] = static_cast<std::uint16_t>(((*v4)[0] << 8) | (*v4)[1]);
      groups[static_cast<std::size_t>(count++)] = static_cast<std::uint16_t>(((*v4)[2] << 8) | (*v4)[3]);
      pos = s.size();
      break;
    }
    auto value = item.size() <= 4 ? parse_unsigned(item, 0xffff, NumberSyntax::Hex) : std::nullopt;
    if (!value) return std::nullopt;
    groups[static_cast<std::size_t>(count++)] = static_cast<std::uint16_t>(*value);
    pos += item.size();
    if (pos == s.size()) break;
    ++pos;  // the ':'
    if (pos < s.size() && s[pos] == ':') {
      if (ellipsis >= 0) return std::nullopt;
      ellipsis = count;
      ++pos;
      if (pos == s.size()) break;
    } else if (pos == s.size()) {
      return std::nullopt;  // trailing single ':'
    }
  }
  if (ellipsis < 0 && count != 8) return std::nullopt;
  if (ellipsis >= 0 && count == 8) return std::nullopt;  // "::" must stand for at least one group
  std::array<std::uint16_t, 8> full{};
  if (ellipsis < 0) {
    full = groups;
  } else {
    int tail = count - ellipsis;
    for (int i = 0; i < ellipsis; ++i) full[static_cast<std::size_t>(i)] = groups[static_cast<std::size_t>(i)];
    for (int i = 0; i < tail; ++i)
      full[static_cast<std::size_t>(8 - tail + i)] = groups[static_cast<std::size_t>(ellipsis + i)];
  }
  std::array<std::uint8_t, 16> out{};
  for (std::size_t i = 0; i < 8; ++i) {
    out[2 * i] = static_cast<std::uint8_t>(full[i] >> 8);
    out[2 * i + 1] = static_cast<std::uint8_t>(full[i] & 0xff);
  }
  return out;
}

std::string format_ipv4(const std::uint8_t* b) {
  return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." + std::to_string(b[3]);
}

}  // namespace

std::optional<Address> parse_address(std::string_view text) {
  Address a;
  if (text.find(':') == std::string_view::npos) {
    auto v4 = parse_ipv4(text);
    if (!v4) return std::nullopt;
    a.family = Family::V4;
    for (std::size_t i = 0; i < 4; ++i) a.bytes[i] = (*v4)[i];
    return a;
  }
  auto v6 = parse_ipv6(text);
  if (!v6) return std::nullopt;
  a.family = Family::V6;
  a.bytes = *v6;
  return a;
}

std::optional<Prefix> parse_prefix(std::string_view text) {
  std::size_t slash = text.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto address = parse_address(text.substr(0, slash));
  if (!address) return std::nullopt;
  std::string_view bits = text.substr(slash + 1);
  if (bits.size() > 1 && bits[0] == '0') return std::nullopt;  // netip: no leading zeros
  auto length = parse_unsigned(bits, address->family == Family::V4 ? 32U : 128U);
  if (!length) return std::nullopt;
  return Prefix{*address, static_cast<unsigned>(*length)};
}

bool is_ipv4_mapped(const Address& a) {
  if (a.family != Family::V6) return false;
  for (std::size_t i = 0; i < 10; ++i)
    if (a.bytes[i] != 0) return false;
  return a.bytes[10] == 0xff && a.bytes[11] == 0xff;
}

std::string format_address(const Address& a) {
  if (a.family == Family::V4) return format_ipv4(a.bytes.data());
  if (is_ipv4_mapped(a)) return "::ffff:" + format_ipv4(a.bytes.data() + 12);
  std::array<unsigned, 8> g{};
  for (std::size_t i = 0; i < 8; ++i) g[i] = (unsigned{a.bytes[2 * i]} << 8) | a.bytes[2 * i + 1];
  // RFC 5952: compress the longest run of two or more zero groups, the first one on a tie.
  int best_start = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[static_cast<std::size_t>(i)] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[static_cast<std::size_t>(j)] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    unsigned v = g[static_cast<std::size_t>(i)];
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      unsigned d = (v >> shift) & 0xf;
      if (d != 0 || started || shift == 0) {
        out += digits[d];
        started = true;
      }
    }
  }
  return out;
}

std::string format_prefix(const Prefix& p) { return format_address(p.address) + "/" + std::to_string(p.length); }

std::string format_prefix_as_inet_ntop(const Prefix& p) {
  const Address& a = p.address;
  // glibc's inet_ntop writes the last 32 bits dotted when the first six groups are zero and the
  // seventh is not (an IPv4-compatible address), as it does for ::ffff:a.b.c.d.
  if (a.family == Family::V6 &&
      std::all_of(a.bytes.begin(), a.bytes.begin() + 12, [](std::uint8_t b) { return b == 0; }) &&
      (a.bytes[12] != 0 || a.bytes[13] != 0))
    return "::" + format_ipv4(a.bytes.data() + 12) + "/" + std::to_string(p.length);
  return format_prefix(p);
}

Prefix host_prefix(const Address& address) { return Prefix{address, address.family == Family::V4 ? 32U : 128U}; }

bool is_loopback(const Address& a) {
  if (a.family == Family::V4) return a.bytes[0] == 127;
  for (std::size_t i = 0; i < 15; ++i)
    if (a.bytes[i] != 0) return false;
  return a.bytes[15] == 1;
}

Address masked(const Prefix& p) {
  Address out = p.address;
  std::size_t total = p.address.family == Family::V4 ? 4 : 16;
  for (std::size_t i = 0; i < total; ++i) {
    unsigned bit = static_cast<unsigned>(i) * 8;
    if (bit >= p.length) {
      out.bytes[i] = 0;
    } else if (bit + 8 > p.length) {
      unsigned keep = p.length - bit;
      out.bytes[i] = static_cast<std::uint8_t>(out.bytes[i] & (0xffU << (8 - keep)));
    }
  }
  return out;
}

}  // namespace istio_iptables
