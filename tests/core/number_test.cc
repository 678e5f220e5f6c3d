// The one number parser and the one list splitter every input goes through.
#include <catch2/catch.hpp>

#include <limits>

#include "core/number.h"

using namespace istio_iptables;

TEST_CASE("number: decimal values up to the caller's maximum") {
  CHECK(parse_unsigned("0", 10) == 0U);
  CHECK(parse_unsigned("15001", 65535) == 15001U);
  CHECK(parse_unsigned("65535", 65535) == 65535U);
  CHECK(parse_unsigned("007", 10) == 7U);  // Go's ParseUint accepts leading zeros in base 10
  CHECK(parse_unsigned("18446744073709551615", std::numeric_limits<std::uint64_t>::max()) ==
        std::numeric_limits<std::uint64_t>::max());
  CHECK_FALSE(parse_unsigned("65536", 65535).has_value());
}

TEST_CASE("number: overflow is an error, never a wrapped value or an exception") {
  CHECK_FALSE(parse_unsigned("18446744073709551616", std::numeric_limits<std::uint64_t>::max()).has_value());
  CHECK_FALSE(parse_unsigned("99999999999999999999999", 0xffffffffULL).has_value());
  CHECK_FALSE(parse_unsigned(std::string(400, '9'), 0xffffffffULL).has_value());
  CHECK_FALSE(parse_unsigned("4294967296", 0xffffffffULL).has_value());  // 2^32 is not 0
}

TEST_CASE("number: empty text, signs, whitespace and other characters are refused") {
  for (const char* bad : {"", "-1", "+1", "-0", " 1", "1 ", "\t1", "1\n", "1.0", "1e3", "0x10", "1_000", "１"})
    CHECK_FALSE(parse_unsigned(bad, 1000000).has_value());
}

TEST_CASE("number: 0x hexadecimal only where the caller asks, and never octal") {
  CHECK(parse_unsigned("0x539", 0xffffffffULL, NumberSyntax::DecimalOrHex) == 1337U);
  CHECK(parse_unsigned("0XFFFFFFFF", 0xffffffffULL, NumberSyntax::DecimalOrHex) == 0xffffffffU);
  CHECK(parse_unsigned("1337", 0xffffffffULL, NumberSyntax::DecimalOrHex) == 1337U);
  CHECK(parse_unsigned("0", 0xffffffffULL, NumberSyntax::DecimalOrHex) == 0U);
  // iptables reads "010" as octal 8: refused rather than read as 10.
  for (const char* bad : {"010", "0x", "0x-1", "0x+1", "0x 1", "0x100000000", "-0x1", "+0x1", "x1", "00x1"})
    CHECK_FALSE(parse_unsigned(bad, 0xffffffffULL, NumberSyntax::DecimalOrHex).has_value());
  CHECK(parse_unsigned("db8", 0xffff, NumberSyntax::Hex) == 0xdb8U);
  CHECK(parse_unsigned("FFFF", 0xffff, NumberSyntax::Hex) == 0xffffU);
  CHECK_FALSE(parse_unsigned("10000", 0xffff, NumberSyntax::Hex).has_value());
  CHECK_FALSE(parse_unsigned("0xdb8", 0xffff, NumberSyntax::Hex).has_value());
  CHECK_FALSE(parse_unsigned("g", 0xffff, NumberSyntax::Hex).has_value());
}

TEST_CASE("list: Istio's lists drop empty items, iptables' lists keep them") {
  using V = std::vector<std::string>;
  CHECK(split_list("", EmptyItems::Drop).empty());
  CHECK(split_list("", EmptyItems::Keep).empty());
  CHECK(split_list("80", EmptyItems::Drop) == V{"80"});
  CHECK(split_list("80,,443,", EmptyItems::Drop) == V{"80", "443"});
  CHECK(split_list(",", EmptyItems::Drop).empty());
  CHECK(split_list("80,,443,", EmptyItems::Keep) == V{"80", "", "443", ""});
  CHECK(split_list(" 80, 443", EmptyItems::Drop) == V{" 80", " 443"});  // no trimming, as Istio's config.Split
  CHECK(split_list("1.24.6", EmptyItems::Keep, '.') == V{"1", "24", "6"});
}
