// IP addresses and prefixes, parsed and printed exactly as Istio (Go's net/netip) does.
//
// Istio keeps a prefix as written, unmasked ("10.1.2.3/8" stays so) and prints IPv6 in the
// RFC 5952 form Go uses, with IPv4-mapped addresses as "::ffff:a.b.c.d". The parser is as strict
// as netip: no leading zeros in IPv4 octets or prefix lengths, no zones, a prefix length is
// mandatory for a prefix. It is our own code rather than inet_pton so that the core stays free of
// OS headers and so that the accepted syntax is exactly the documented one.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/family.h"

namespace istio_iptables {

/// An IPv4 or IPv6 address; IPv4 uses the first 4 bytes.
struct Address {
  Family family = Family::V4;
  std::array<std::uint8_t, 16> bytes{};

  friend bool operator==(const Address& a, const Address& b) { return a.family == b.family && a.bytes == b.bytes; }
  friend bool operator!=(const Address& a, const Address& b) { return !(a == b); }
};

/// An address and a prefix length, kept unmasked as written.
struct Prefix {
  Address address;
  unsigned length = 0;

  friend bool operator==(const Prefix& a, const Prefix& b) { return a.address == b.address && a.length == b.length; }
  friend bool operator!=(const Prefix& a, const Prefix& b) { return !(a == b); }
};

/// Parses "192.0.2.1" or "2001:db8::1"; nullopt when it is not an address in netip's syntax.
std::optional<Address> parse_address(std::string_view text);

/// Parses "192.0.2.0/24"; the length is mandatory and must fit the family.
std::optional<Prefix> parse_prefix(std::string_view text);

/// Go netip's String(): dotted quad, or RFC 5952 with "::ffff:a.b.c.d" for IPv4-mapped.
std::string format_address(const Address& address);

/// "address/length", the address as format_address prints it (unmasked).
std::string format_prefix(const Prefix& prefix);

/// "address/length" as glibc's inet_ntop writes the address, which is what iptables prints: as
/// format_prefix, except that an IPv4-compatible address (first 96 bits zero, not :: or ::N) is
/// written "::a.b.c.d".
std::string format_prefix_as_inet_ntop(const Prefix& prefix);

/// A host prefix for an address: /32 or /128.
Prefix host_prefix(const Address& address);

/// 127.0.0.0/8 for IPv4, ::1 for IPv6 (netip's IsLoopback; IPv4-mapped is not loopback).
bool is_loopback(const Address& address);

/// True for an IPv6 address of the form ::ffff:a.b.c.d.
bool is_ipv4_mapped(const Address& address);

/// The prefix's address with the host bits cleared (what the kernel stores).
Address masked(const Prefix& prefix);

}  // namespace istio_iptables
