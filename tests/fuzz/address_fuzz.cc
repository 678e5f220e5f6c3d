// Fuzz target: addresses and prefixes (parse_address, parse_prefix) as flags and texts give them.
//
// Three properties beyond "no crash": what the parser accepts prints (format_*) to a text that
// parses back to the same value; masking clears exactly the host bits; and the parser agrees with
// an independent one, glibc's inet_pton, on which texts are addresses and on their bytes.
// inet_pton and Go's netip (which ours follows) both reject zones, IPv4 leading zeros and
// shorthand such as "1.2.3"; where a text contains no '/' they must agree.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/address.h"
#include "fuzz_check.h"

namespace {

using namespace istio_iptables;

std::string hex(const Address& a) {
  static const char* digits = "0123456789abcdef";
  std::string out = a.family == Family::V4 ? "v4 " : "v6 ";
  for (auto b : a.bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

void check_address(const std::string& text) {
  auto a = parse_address(text);
  // The independent parser: inet_pton for each family (a text with a NUL byte is no address).
  unsigned char buf[16] = {};
  const bool has_nul = text.find('\0') != std::string::npos;
  const bool v4 = !has_nul && inet_pton(AF_INET, text.c_str(), buf) == 1;
  unsigned char buf6[16] = {};
  const bool v6 = !has_nul && !v4 && inet_pton(AF_INET6, text.c_str(), buf6) == 1;
  FUZZ_CHECK(a.has_value() == (v4 || v6), "text: \"" + text + "\" ours " + (a ? "accepts" : "rejects") +
                                              ", inet_pton " + (v4 || v6 ? "accepts" : "rejects"));
  if (!a) return;
  FUZZ_CHECK(a->family == (v4 ? Family::V4 : Family::V6), "family differs for \"" + text + "\"");
  FUZZ_CHECK(std::memcmp(a->bytes.data(), v4 ? buf : buf6, v4 ? 4 : 16) == 0,
             "bytes differ for \"" + text + "\": ours " + hex(*a));
  const std::string printed = format_address(*a);
  auto again = parse_address(printed);
  FUZZ_CHECK(again && *again == *a, "text: \"" + text + "\" printed: \"" + printed + "\"");
  FUZZ_CHECK(format_address(*again) == printed, "printing is not stable for \"" + text + "\"");
  FUZZ_CHECK(!is_ipv4_mapped(*a) || a->family == Family::V6, "an IPv4 address reads as IPv4-mapped");
  (void)is_loopback(*a);
  const Prefix host = host_prefix(*a);
  FUZZ_CHECK(host.length == (a->family == Family::V4 ? 32U : 128U), "host prefix length for \"" + text + "\"");
  FUZZ_CHECK(masked(host) == *a, "a host prefix masks bits away for \"" + text + "\"");
}

void check_prefix(const std::string& text) {
  auto p = parse_prefix(text);
  if (!p) return;
  const unsigned bits = p->address.family == Family::V4 ? 32U : 128U;
  FUZZ_CHECK(p->length <= bits, "length " + std::to_string(p->length) + " accepted in \"" + text + "\"");
  // The address part alone is an address of the same family.
  auto slash = text.rfind('/');
  FUZZ_CHECK(slash != std::string::npos, "a prefix without '/': \"" + text + "\"");
  auto address = parse_address(text.substr(0, slash));
  FUZZ_CHECK(address && *address == p->address, "address part differs in \"" + text + "\"");
  const std::string printed = format_prefix(*p);
  auto again = parse_prefix(printed);
  FUZZ_CHECK(again && *again == *p, "text: \"" + text + "\" printed: \"" + printed + "\"");
  const Address m = masked(*p);
  FUZZ_CHECK(m.family == p->address.family, "masking changed the family of \"" + text + "\"");
  for (unsigned bit = 0; bit < 128; ++bit) {
    const unsigned byte = bit / 8;
    const auto mask = static_cast<std::uint8_t>(0x80U >> (bit % 8));
    const bool kept = bit < p->length && bit < bits;
    const bool expected = kept && (p->address.bytes[byte] & mask) != 0;
    FUZZ_CHECK(((m.bytes[byte] & mask) != 0) == expected,
               "bit " + std::to_string(bit) + " after masking \"" + text + "\": " + hex(m));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (text.find('/') == std::string::npos) check_address(text);
  check_prefix(text);
  return 0;
}
