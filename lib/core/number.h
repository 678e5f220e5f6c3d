// Numbers and lists in input text, parsed without exceptions.
//
// Every number a user or a file gives us (ports, UIDs, marks, rule numbers, prefix lengths,
// address octets) goes through parse_unsigned, built on std::from_chars: it never throws, never
// wraps on overflow and accepts exactly the syntax asked for. There are no signs, no whitespace
// and no locale. Marks printed by iptables-save are hexadecimal ("0x539"), so a caller may allow
// a 0x prefix; a leading zero before other digits is then refused, because iptables (strtoul with
// base 0) would read it as octal and we would read it as something else.
//
// Comma lists go through split_list, so that every flag and every rule field splits one way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace istio_iptables {

/// The spellings a number may take.
enum class NumberSyntax {
  Decimal,       ///< "0", "15001", "007" (leading zeros allowed, as Go's strconv.ParseUint)
  Hex,           ///< bare hexadecimal digits, either case: "db8", "FFFF"
  DecimalOrHex,  ///< "1337" or "0x539"/"0X539"; "0" alone, but not "010" (octal to iptables)
};

/// The value of `text` if it is an unsigned integer in `syntax` no greater than `max`; nullopt for
/// anything else: empty text, a sign, whitespace, other characters, overflow.
std::optional<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t max,
                                            NumberSyntax syntax = NumberSyntax::Decimal);

/// Whether empty items of a list are kept or dropped.
enum class EmptyItems {
  Drop,  ///< Istio's config.Split: "80,,443," is {"80", "443"}
  Keep,  ///< iptables' lists: "80,,443" is {"80", "", "443"} (and the empty item is then refused)
};

/// Splits `text` at every `separator`. An empty text has no items.
std::vector<std::string> split_list(std::string_view text, EmptyItems empty, char separator = ',');

}  // namespace istio_iptables
