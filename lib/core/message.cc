#include "core/message.h"

#include <cstdint>

namespace istio_iptables {
namespace {

// The length of the well-formed UTF-8 sequence starting at `s[i]` (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
std::size_t utf8_length(std::string_view s, std::size_t i, std::uint32_t& code_point) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  std::size_t n;
  std::uint32_t cp;
  std::uint32_t min;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2, cp = b0 & 0x1fU, min = 0x80;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3, cp = b0 & 0x0fU, min = 0x800;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4, cp = b0 & 0x07U, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    unsigned char b = byte(i + k);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3fU);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  code_point = cp;
  return n;
}

// C1 controls (a terminal may read U+009B as CSI), line and paragraph separators, and the
// direction marks, embeddings, overrides and isolates ("Trojan Source").
bool invisible_control(std::uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

void hex_escape(std::string& out, unsigned char c) {
  static const char* digits = "0123456789abcdef";
  out += "\\x";
  out += digits[c >> 4];
  out += digits[c & 0xf];
}

}  // namespace

std::string quoted_for_message(std::string_view value, std::size_t limit) {
  std::string out = "\"";
  std::size_t i = 0;
  while (i < value.size()) {
    auto c = static_cast<unsigned char>(value[i]);
    std::size_t n = 1;
    if (c >= 0x80) {
      std::uint32_t cp = 0;
      n = utf8_length(value, i, cp);
      if (n == 0) n = 1;
    }
    if (i + n > limit) break;  // never cut a character in two
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      hex_escape(out, c);
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      std::uint32_t cp = 0;
      bool well_formed = utf8_length(value, i, cp) == n;
      if (well_formed && !invisible_control(cp))
        out.append(value.substr(i, n));
      else
        for (std::size_t k = 0; k < n; ++k) hex_escape(out, static_cast<unsigned char>(value[i + k]));
    }
    i += n;
  }
  out += '"';
  if (i < value.size()) out += "\xe2\x80\xa6 (" + std::to_string(value.size() - i) + " more bytes)";
  return out;
}

}  // namespace istio_iptables
