#include <catch2/catch.hpp>

#include "core/address.h"

using namespace istio_iptables;

TEST_CASE("address: IPv4 and IPv6 print as Go's netip does") {
  CHECK(format_address(*parse_address("192.0.2.1")) == "192.0.2.1");
  CHECK(format_address(*parse_address("2001:DB8:0:0:0:0:0:1")) == "2001:db8::1");
  CHECK(format_address(*parse_address("2001:db8:0:0:1:0:0:1")) == "2001:db8::1:0:0:1");  // first run on a tie
  CHECK(format_address(*parse_address("::")) == "::");
  CHECK(format_address(*parse_address("::1")) == "::1");
  CHECK(format_address(*parse_address("fe80::")) == "fe80::");
  CHECK(format_address(*parse_address("2001:db8:1:2:3:4:5:6")) == "2001:db8:1:2:3:4:5:6");
  CHECK(format_address(*parse_address("2001:0:1:1:1:1:1:1")) ==
        "2001:0:1:1:1:1:1:1");  // a single zero group is not compressed
  // Istio's dns-uid-gid case passes "::127.0.0.53"; netip prints it as ::7f00:35.
  CHECK(format_address(*parse_address("::127.0.0.53")) == "::7f00:35");
  CHECK(format_address(*parse_address("::ffff:198.51.100.7")) == "::ffff:198.51.100.7");
}

TEST_CASE("address: text that is not an address in netip's syntax is refused") {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "010.0.0.1", "1.2.3.4 ", " 1.2.3.4", "1..2.3",
                          "::1::", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", ":1", "1:", "1:2:3:4:5:6:7::8:9",
                          "fe80::1%eth0", "1.2.3.4/24", "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4"})
    CHECK_FALSE(parse_address(bad).has_value());
}

TEST_CASE("address: prefixes keep the address as written and need a length") {
  auto p = parse_prefix("10.1.2.3/8");
  REQUIRE(p);
  CHECK(format_prefix(*p) == "10.1.2.3/8");
  CHECK(format_address(masked(*p)) == "10.0.0.0");
  CHECK(format_address(masked(*parse_prefix("2001:db8:ffff::1/36"))) == "2001:db8:f000::");
  CHECK(format_prefix(*parse_prefix("2001:DB8::/32")) == "2001:db8::/32");
  for (const char* bad :
       {"10.0.0.1", "10.0.0.0/33", "10.0.0.0/08", "::/129", "10.0.0.0/", "/8", "10.0.0.0/-1", "10.0.0.0/8/8"})
    CHECK_FALSE(parse_prefix(bad).has_value());
}

TEST_CASE("address: loopback is 127/8 and ::1, not IPv4-mapped loopback") {
  CHECK(is_loopback(*parse_address("127.1.2.3")));
  CHECK(is_loopback(*parse_address("::1")));
  CHECK_FALSE(is_loopback(*parse_address("::ffff:127.0.0.1")));
  CHECK_FALSE(is_loopback(*parse_address("128.0.0.1")));
}

TEST_CASE("address: numbers too large for any field are refused, not wrapped") {
  for (const char* bad : {"99999999999999999999.0.0.1", "1.2.3.4294967297", "4294967296.0.0.0", "1.2.3.+4", "1.2.3. 4",
                          "10000::", "1:2:3:4:5:6:7:-8", "1:2:3:4:5:6:7:+8"})
    CHECK_FALSE(parse_address(bad).has_value());
  for (const char* bad : {"10.0.0.0/99999999999999999999", "10.0.0.0/4294967304", "::/4294967424", "10.0.0.0/+8",
                          "10.0.0.0/ 8", "10.0.0.0/255.0.255.0", "2001:db8::/ffff:0:ffff::"})
    CHECK_FALSE(parse_prefix(bad).has_value());
}
