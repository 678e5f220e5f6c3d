#include "core/number.h"

#include <charconv>

namespace istio_iptables {

std::optional<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t max, NumberSyntax syntax) {
  int base = syntax == NumberSyntax::Hex ? 16 : 10;
  if (syntax == NumberSyntax::DecimalOrHex && text.size() >= 2 && text[0] == '0') {
    if (text[1] != 'x' && text[1] != 'X') return std::nullopt;  // "010": octal to iptables
    text.remove_prefix(2);
    base = 16;
  }
  // from_chars accepts a '-' for signed types only, but it would skip nothing else: still refuse
  // every character that is not a digit of the base, so that "+1" and "0x" cannot slip through.
  if (text.empty()) return std::nullopt;
  char first = text.front();
  if (first == '+' || first == '-') return std::nullopt;
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value, base);
  if (ec != std::errc() || ptr != end || value > max) return std::nullopt;
  return value;
}

std::vector<std::string> split_list(std::string_view text, EmptyItems empty, char separator) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::size_t pos = 0;
  while (true) {
    std::size_t end = text.find(separator, pos);
    std::string_view item = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (!item.empty() || empty == EmptyItems::Keep) out.emplace_back(item);
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return out;
}

}  // namespace istio_iptables
