// pflag's parser, cobra's subcommand search and pflag's usage table; see flags.h for why.
//
// The value checks reproduce the Go functions pflag calls (strconv.ParseBool, ParseUint, ParseInt,
// time.ParseDuration, encoding/csv's Reader.Read) branch for branch, because the error text names
// which check failed ("invalid syntax" or "value out of range", "missing unit" or "invalid
// duration") and the first failing check decides it: ParseUint reports an overflow as soon as the
// digits read so far overflow, even when a bad character follows. The messages quote the input as
// Go's %q does (strconv.Quote), except time.ParseDuration's, which has its own simpler quoting.
#include "core/flags.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/settings.h"

namespace istio_iptables {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char32_t kRuneError = 0xFFFD;

void append_hex(std::string& out, std::uint32_t value, int digits) {
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(value >> shift) & 0xF];
}

// Go's utf8.DecodeRuneInString: the rune and its width, (U+FFFD, 1) for anything invalid
// (truncated, overlong, surrogate, beyond U+10FFFF).
std::pair<char32_t, std::size_t> decode_rune(std::string_view s) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return {b0, 1};
  std::size_t width = 0;
  char32_t r = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    width = 2;
    r = b0 & 0x1FU;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    width = 3;
    r = b0 & 0x0FU;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    width = 4;
    r = b0 & 0x07U;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {kRuneError, 1};
  }
  if (s.size() < width) return {kRuneError, 1};
  for (std::size_t k = 1; k < width; ++k) {
    const unsigned char b = byte(k);
    const unsigned char min = k == 1 ? lo : 0x80;
    const unsigned char max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) return {kRuneError, 1};
    r = (r << 6) | (b & 0x3FU);
  }
  return {r, width};
}

void append_utf8(std::string& out, char32_t r) {
  if (r < 0x80) {
    out += static_cast<char>(r);
  } else if (r < 0x800) {
    out += static_cast<char>(0xC0 | (r >> 6));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else if (r < 0x10000) {
    out += static_cast<char>(0xE0 | (r >> 12));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (r >> 18));
    out += static_cast<char>(0x80 | ((r >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  }
}

// Go's unicode.IsPrint: exact for ASCII and Latin-1; beyond, the assigned unprintable classes
// (format characters, separators, private use, noncharacters) without Go's full tables, so an
// unassigned code point is taken as printable.
bool go_is_print(char32_t r) {
  if (r < 0x80) return r >= 0x20 && r < 0x7F;
  if (r <= 0xA0 || r == 0xAD) return false;
  if ((r & 0xFFFE) == 0xFFFE) return false;  // U+xFFFE and U+xFFFF of every plane
  struct Range {
    char32_t first, last;
  };
  static constexpr Range kUnprintable[] = {
      {0x0600, 0x0605},   {0x061C, 0x061C},   {0x06DD, 0x06DD},    {0x070F, 0x070F},   {0x0890, 0x0891},
      {0x08E2, 0x08E2},   {0x1680, 0x1680},   {0x180E, 0x180E},    {0x2000, 0x200F},   {0x2028, 0x202F},
      {0x205F, 0x206F},   {0x3000, 0x3000},   {0xD800, 0xF8FF},    {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},
      {0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x1343F},  {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A},
      {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF},
  };
  return std::none_of(std::begin(kUnprintable), std::end(kUnprintable),
                      [r](const Range& range) { return r >= range.first && r <= range.last; });
}

// strconv's appendEscapedRune: one rune of a literal quoted with `quote`.
void append_escaped_rune(std::string& out, char32_t r, char quote) {
  if (r == static_cast<char32_t>(quote) || r == '\\') {
    out += '\\';
    out += static_cast<char>(r);
    return;
  }
  if (go_is_print(r)) {
    append_utf8(out, r);
    return;
  }
  switch (r) {
  case '\a': out += "\\a"; return;
  case '\b': out += "\\b"; return;
  case '\f': out += "\\f"; return;
  case '\n': out += "\\n"; return;
  case '\r': out += "\\r"; return;
  case '\t': out += "\\t"; return;
  case '\v': out += "\\v"; return;
  default: break;
  }
  if (r < ' ' || r == 0x7F) {
    out += "\\x";
    append_hex(out, r, 2);
  } else if (r < 0x10000) {
    out += "\\u";
    append_hex(out, r, 4);
  } else {
    out += "\\U";
    append_hex(out, r, 8);
  }
}

// What fmt's %q prints for a byte: the rune with that code point, single-quoted (strconv.QuoteRune).
std::string quote_byte(char c) {
  std::string out = "'";
  append_escaped_rune(out, static_cast<unsigned char>(c), '\'');
  out += '\'';
  return out;
}

// time.ParseDuration's own quote: `"` and `\` escaped, every byte below ' ' or above 0x7F as \xNN.
std::string time_quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto b = static_cast<unsigned char>(ch);
    if (b < 0x20 || b >= 0x80) {
      out += "\\x";
      append_hex(out, b, 2);
      continue;
    }
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
  return out;
}

enum class NumError { None, Syntax, Range };

struct Parsed {
  std::uint64_t value = 0;
  NumError error = NumError::None;
};

char lower(char c) { return static_cast<char>(c | ('x' - 'X')); }

// strconv's underscoreOK: underscores only between digits (a base prefix counts as a digit).
bool underscore_ok(std::string_view s) {
  char saw = '^';
  std::size_t i = 0;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  bool hex = false;
  if (s.size() >= 2 && s[0] == '0' && (lower(s[1]) == 'b' || lower(s[1]) == 'o' || lower(s[1]) == 'x')) {
    i = 2;
    saw = '0';
    hex = lower(s[1]) == 'x';
  }
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if ((c >= '0' && c <= '9') || (hex && lower(c) >= 'a' && lower(c) <= 'f')) {
      saw = '0';
      continue;
    }
    if (c == '_') {
      if (saw != '0') return false;
      saw = '_';
      continue;
    }
    if (saw == '_') return false;
    saw = '!';
  }
  return saw != '_';
}

// strconv.ParseUint(s, base, bits) with base 0 (prefixes 0x, 0o, 0b, 0 and underscores) or 10.
Parsed go_parse_uint(std::string_view s, int base, int bits) {
  if (s.empty()) return {0, NumError::Syntax};
  const std::string_view s0 = s;
  const bool base0 = base == 0;
  if (base0) {
    base = 10;
    if (s[0] == '0') {
      if (s.size() >= 3 && lower(s[1]) == 'b') {
        base = 2;
        s.remove_prefix(2);
      } else if (s.size() >= 3 && lower(s[1]) == 'o') {
        base = 8;
        s.remove_prefix(2);
      } else if (s.size() >= 3 && lower(s[1]) == 'x') {
        base = 16;
        s.remove_prefix(2);
      } else {
        base = 8;
        s.remove_prefix(1);
      }
    }
  }
  const auto ubase = static_cast<std::uint64_t>(base);
  const std::uint64_t cutoff = UINT64_MAX / ubase + 1;
  const std::uint64_t max_value = bits == 64 ? UINT64_MAX : (std::uint64_t{1} << bits) - 1;
  bool underscores = false;
  std::uint64_t n = 0;
  for (char c : s) {
    std::uint64_t digit = 0;
    if (c == '_' && base0) {
      underscores = true;
      continue;
    }
    if (c >= '0' && c <= '9') {
      digit = static_cast<std::uint64_t>(c - '0');
    } else if (lower(c) >= 'a' && lower(c) <= 'z') {
      digit = static_cast<std::uint64_t>(lower(c) - 'a') + 10;
    } else {
      return {0, NumError::Syntax};
    }
    if (digit >= ubase) return {0, NumError::Syntax};
    if (n >= cutoff) return {max_value, NumError::Range};
    n *= ubase;
    const std::uint64_t next = n + digit;
    if (next < n || next > max_value) return {max_value, NumError::Range};
    n = next;
  }
  if (underscores && !underscore_ok(s0)) return {0, NumError::Syntax};
  return {n, NumError::None};
}

// strconv.ParseInt(s, 10, bits); the value is returned as its two's complement.
Parsed go_parse_int(std::string_view s, int bits) {
  if (s.empty()) return {0, NumError::Syntax};
  bool negative = false;
  if (s[0] == '+' || s[0] == '-') {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  const Parsed un = go_parse_uint(s, 10, bits);
  if (un.error == NumError::Syntax) return un;
  const std::uint64_t cutoff = std::uint64_t{1} << (bits - 1);
  if (!negative && un.value >= cutoff) return {0, NumError::Range};
  if (negative && un.value > cutoff) return {0, NumError::Range};
  return {negative ? ~un.value + 1 : un.value, NumError::None};
}

std::string num_error(std::string_view func, std::string_view text, NumError error) {
  std::string out = "strconv.";
  out += func;
  out += ": parsing ";
  out += go_quote(text);
  out += error == NumError::Range ? ": value out of range" : ": invalid syntax";
  return out;
}

}  // namespace

GoDuration parse_go_duration(std::string_view s) {
  const std::string_view orig = s;
  const auto invalid = [&] { return GoDuration{"time: invalid duration " + time_quote(orig), false, 0}; };
  constexpr std::uint64_t kLimit = std::uint64_t{1} << 63;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return GoDuration{};
  if (s.empty()) return invalid();
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  std::uint64_t total = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || is_digit(s[0]))) return invalid();
    // leadingInt: more than 2^63 is an overflow.
    std::uint64_t v = 0;
    std::size_t i = 0;
    for (; i < s.size() && is_digit(s[i]); ++i) {
      if (v > kLimit / 10) return invalid();
      v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
      if (v > kLimit) return invalid();
    }
    const bool pre = i > 0;
    s.remove_prefix(i);
    // leadingFraction: digits past an overflow are consumed and ignored.
    std::uint64_t f = 0;
    double scale = 1;
    bool post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      bool overflow = false;
      std::size_t k = 0;
      for (; k < s.size() && is_digit(s[k]); ++k) {
        if (overflow) continue;
        if (f > (kLimit - 1) / 10) {
          overflow = true;
          continue;
        }
        const std::uint64_t y = f * 10 + static_cast<std::uint64_t>(s[k] - '0');
        if (y > kLimit) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      post = k > 0;
      s.remove_prefix(k);
    }
    if (!pre && !post) return invalid();
    std::size_t u = 0;
    while (u < s.size() && !(s[u] == '.' || is_digit(s[u]))) ++u;
    if (u == 0) return GoDuration{"time: missing unit in duration " + time_quote(orig), false, 0};
    const std::string_view unit_text = s.substr(0, u);
    s.remove_prefix(u);
    std::uint64_t unit = 0;
    if (unit_text == "ns")
      unit = 1;
    else if (unit_text == "us" || unit_text == "\xC2\xB5s" || unit_text == "\xCE\xBCs")
      unit = 1000;
    else if (unit_text == "ms")
      unit = 1000000;
    else if (unit_text == "s")
      unit = 1000000000;
    else if (unit_text == "m")
      unit = 60000000000;
    else if (unit_text == "h")
      unit = 3600000000000;
    else
      return GoDuration{"time: unknown unit " + time_quote(unit_text) + " in duration " + time_quote(orig), false, 0};
    if (v > kLimit / unit) return invalid();
    v *= unit;
    if (f > 0) {
      v += static_cast<std::uint64_t>(static_cast<double>(f) * (static_cast<double>(unit) / scale));
      if (v > kLimit) return invalid();
    }
    total += v;
    if (total > kLimit) return invalid();
  }
  if (!negative && total > kLimit - 1) return invalid();
  return GoDuration{{}, negative && total > 0, total};
}

namespace {

// encoding/csv's Reader.Read of one record with the default settings (comma ',', strict quotes),
// as pflag's readAsCSV calls it. Fills `fields` or returns the error text.
class CsvRecordReader {
 public:
  explicit CsvRecordReader(std::string_view input) : rest_(input) {}

  std::string read(std::vector<std::string>& fields) {
    // Skip empty lines; running out of input is io.EOF.
    std::string_view line;
    bool at_eof = false;
    for (;;) {
      at_eof = !read_line(line);
      if (!at_eof && line.size() == nl_length(line)) continue;
      break;
    }
    if (at_eof) return "EOF";
    const int record_line = line_number_;
    int pos_line = line_number_;
    std::size_t col = 1;
    for (;;) {
      if (line.empty() || line[0] != '"') {
        // A non-quoted field: up to the comma or the end of the line, without a quote in it.
        const std::size_t comma = line.find(',');
        std::string_view field =
            comma != std::string_view::npos ? line.substr(0, comma) : line.substr(0, line.size() - nl_length(line));
        const std::size_t quote = field.find('"');
        if (quote != std::string_view::npos)
          return parse_error(record_line, pos_line, col + quote, "bare \" in non-quoted-field");
        fields.emplace_back(field);
        if (comma == std::string_view::npos) return {};
        line.remove_prefix(comma + 1);
        col += comma + 1;
        continue;
      }
      // A quoted field, possibly over several lines; "" is a quote.
      std::string field;
      line.remove_prefix(1);
      col += 1;
      for (;;) {
        const std::size_t quote = line.find('"');
        if (quote != std::string_view::npos) {
          field.append(line.substr(0, quote));
          line.remove_prefix(quote + 1);
          col += quote + 1;
          if (!line.empty() && line[0] == '"') {
            field += '"';
            line.remove_prefix(1);
            col += 1;
          } else if (!line.empty() && line[0] == ',') {
            line.remove_prefix(1);
            col += 1;
            fields.push_back(std::move(field));
            break;
          } else if (line.size() == nl_length(line)) {
            fields.push_back(std::move(field));
            return {};
          } else {
            return parse_error(record_line, line_number_, col - 1, "extraneous or missing \" in quoted-field");
          }
        } else if (!line.empty()) {
          field.append(line);
          col += line.size();
          read_line(line);
          if (!line.empty()) {
            ++pos_line;
            col = 1;
          }
        } else {
          return parse_error(record_line, pos_line, col, "extraneous or missing \" in quoted-field");
        }
      }
    }
  }

 private:
  static std::size_t nl_length(std::string_view line) { return !line.empty() && line.back() == '\n' ? 1 : 0; }

  // Reader.readLine: the next line with its "\n" ("\r\n" normalised to "\n", a "\r" before the
  // end of input dropped); false at the end of the input.
  bool read_line(std::string_view& line) {
    if (rest_.empty()) {
      line = {};
      return false;
    }
    const std::size_t nl = rest_.find('\n');
    const std::size_t size = nl == std::string_view::npos ? rest_.size() : nl + 1;
    std::string_view raw = rest_.substr(0, size);
    rest_.remove_prefix(size);
    ++line_number_;
    if (nl == std::string_view::npos && raw.back() == '\r') raw.remove_suffix(1);
    if (raw.size() >= 2 && raw[raw.size() - 2] == '\r' && raw.back() == '\n') {
      // "\r\n" reads as "\n": the view then points into a copy.
      normalised_ = std::string(raw.substr(0, raw.size() - 2)) + "\n";
      line = normalised_;
      return true;
    }
    line = raw;
    return true;
  }

  static std::string parse_error(int start_line, int line, std::size_t col, const char* what) {
    std::string out;
    if (start_line != line) out += "record on line " + std::to_string(start_line) + "; ";
    out += "parse error on line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what;
    return out;
  }

  std::string_view rest_;
  std::string normalised_;
  int line_number_ = 0;
};

// How pflag names a flag in "invalid argument" errors.
std::string display_name(const FlagSpec& spec) {
  std::string out;
  if (!spec.shorthand.empty()) {
    out += '-';
    out += spec.shorthand;
    out += ", ";
  }
  out += "--";
  out += spec.name;
  return out;
}

// pflag's Value.Set for the spec's type: the cause of a refusal (Go's error text), or "" with
// `stored` set to the value to report.
std::string check_value(const FlagSpec& spec, std::string_view given, std::string& stored) {
  switch (spec.type) {
  case FlagType::Bool: {
    const auto b = parse_go_bool(std::string(given));
    if (!b) return "strconv.ParseBool: parsing " + go_quote(given) + ": invalid syntax";
    stored = *b ? "true" : "false";
    return {};
  }
  case FlagType::Uint16: {
    const Parsed n = go_parse_uint(given, 0, 16);
    if (n.error != NumError::None) return num_error("ParseUint", given, n.error);
    stored = std::to_string(n.value);
    return {};
  }
  case FlagType::Int32: {
    const Parsed n = go_parse_int(given, 32);
    if (n.error != NumError::None) return num_error("ParseInt", given, n.error);
    stored = std::to_string(static_cast<std::int64_t>(n.value));
    return {};
  }
  case FlagType::Duration: {
    std::string error = parse_go_duration(given).error;
    if (!error.empty()) return error;
    break;
  }
  case FlagType::StringSlice: {
    if (given.empty()) break;
    std::vector<std::string> fields;
    std::string error = CsvRecordReader(given).read(fields);
    if (!error.empty()) return error;
    break;
  }
  case FlagType::String:
  case FlagType::StringArray: break;
  }
  stored = given;
  return {};
}

const FlagSpec* find_long(const std::vector<FlagSpec>& specs, std::string_view name) {
  for (const auto& spec : specs)
    if (spec.name == name) return &spec;
  return nullptr;
}

const FlagSpec* find_short(const std::vector<FlagSpec>& specs, char c) {
  for (const auto& spec : specs)
    if (spec.shorthand.size() == 1 && spec.shorthand[0] == c) return &spec;
  return nullptr;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// The state of one FlagSet.Parse: the words and the result so far.
class Parser {
 public:
  Parser(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs) : args_(args), specs_(specs) {
    out_.values.reserve(args.size());
  }

  Result<ParsedArgs> run() {
    while (next_ < args_.size()) {
      const std::string& s = args_[next_++];
      if (s.size() < 2 || s[0] != '-') {
        out_.positionals.push_back(s);
        continue;
      }
      if (s == "--") {
        out_.positionals.insert(out_.positionals.end(), args_.begin() + static_cast<std::ptrdiff_t>(next_),
                                args_.end());
        break;
      }
      std::string error = s[1] == '-' ? long_arg(s) : short_arg(s);
      if (!error.empty()) return Error{std::move(error)};
      if (stopped_) break;
    }
    return std::move(out_);
  }

 private:
  // parseLongArg: "--name=value", "--name" (bools), "--name value".
  std::string long_arg(const std::string& s) {
    std::string_view name = std::string_view(s).substr(2);
    if (name[0] == '-' || name[0] == '=') return "bad flag syntax: " + s;
    const std::size_t eq = name.find('=');
    const std::string_view key = name.substr(0, eq);
    const FlagSpec* spec = find_long(specs_, key);
    if (!spec) {
      if (key == "help") return help_requested();
      return "unknown flag: --" + std::string(key);
    }
    std::string_view value;
    if (eq != std::string_view::npos)
      value = name.substr(eq + 1);
    else if (spec->type == FlagType::Bool)
      value = "true";
    else if (next_ < args_.size())
      value = args_[next_++];
    else
      return "flag needs an argument: " + s;
    return set(*spec, value);
  }

  // parseShortArg: each letter of "-abc" in turn (parseSingleShortArg).
  std::string short_arg(const std::string& s) {
    std::string_view shorts = std::string_view(s).substr(1);
    while (!shorts.empty()) {
      if (starts_with(shorts, "test.")) break;  // Go's test flags (-test.v) pass silently
      const char c = shorts[0];
      std::string_view rest = shorts.substr(1);
      const FlagSpec* spec = find_short(specs_, c);
      if (!spec) {
        if (c == 'h') return help_requested();
        return "unknown shorthand flag: " + quote_byte(c) + " in -" + std::string(shorts);
      }
      std::string_view value;
      if (shorts.size() > 2 && shorts[1] == '=') {
        value = shorts.substr(2);  // -f=arg
        rest = {};
      } else if (spec->type == FlagType::Bool) {
        value = "true";  // -f, letters after it are more flags
      } else if (shorts.size() > 1) {
        value = rest;  // -farg
        rest = {};
      } else if (next_ < args_.size()) {
        value = args_[next_++];  // -f arg
      } else {
        return "flag needs an argument: " + quote_byte(c) + " in -" + std::string(shorts);
      }
      std::string error = set(*spec, value);
      if (!error.empty()) return error;
      shorts = rest;
    }
    return {};
  }

  // FlagSet.Set: the value's check, then the occurrence.
  std::string set(const FlagSpec& spec, std::string_view given) {
    std::string stored;
    std::string cause = check_value(spec, given, stored);
    if (!cause.empty())
      return "invalid argument " + go_quote(given) + " for " + go_quote(display_name(spec)) + " flag: " + cause;
    if (spec.name == "help" && spec.type == FlagType::Bool) out_.help = stored == "true";
    out_.values.push_back(FlagValue{spec.name, std::move(stored)});
    return {};
  }

  // pflag's ErrHelp for an undefined --help or -h: parsing stops without an error.
  std::string help_requested() {
    out_.help = true;
    stopped_ = true;
    return {};
  }

  const std::vector<std::string>& args_;
  const std::vector<FlagSpec>& specs_;
  std::size_t next_ = 0;
  bool stopped_ = false;
  ParsedArgs out_;
};

}  // namespace

std::string go_quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  std::size_t i = 0;
  while (i < text.size()) {
    const auto [r, width] = decode_rune(text.substr(i));
    if (width == 1 && r == kRuneError) {
      out += "\\x";
      append_hex(out, static_cast<unsigned char>(text[i]), 2);
    } else {
      append_escaped_rune(out, r, '"');
    }
    i += width;
  }
  out += '"';
  return out;
}

Result<ParsedArgs> parse_args(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs) {
  return Parser(args, specs).run();
}

std::string flag_usages(const std::vector<FlagSpec>& specs) {
  std::vector<const FlagSpec*> sorted;
  sorted.reserve(specs.size());
  for (const auto& spec : specs) sorted.push_back(&spec);
  std::sort(sorted.begin(), sorted.end(), [](const FlagSpec* a, const FlagSpec* b) { return a->name < b->name; });

  // Each line is "<names and type>\0<usage and default>"; the usage column starts two spaces
  // after the longest left part (pflag's maxlen counts the \0).
  std::vector<std::pair<std::string, std::string>> lines;
  lines.reserve(sorted.size());
  std::size_t maxlen = 0;
  for (const FlagSpec* spec : sorted) {
    std::string left = spec->shorthand.empty() ? "      --" : "  -" + std::string(spec->shorthand) + ", --";
    left += spec->name;
    // UnquoteUsage: a `name` in back quotes names the value and loses its quotes.
    std::string usage(spec->usage);
    std::string_view var_name = spec->type_name;
    const std::size_t open = usage.find('`');
    const std::size_t close = open == std::string::npos ? open : usage.find('`', open + 1);
    std::string quoted;
    if (close != std::string::npos) {
      quoted = usage.substr(open + 1, close - open - 1);
      usage = usage.substr(0, open) + quoted + usage.substr(close + 1);
      var_name = quoted;
    }
    if (!var_name.empty()) {
      left += ' ';
      left += var_name;
    }
    maxlen = std::max(maxlen, left.size() + 1);
    if (!spec->default_text.empty()) {
      usage += " (default ";
      usage += spec->default_text;
      usage += ')';
    }
    lines.emplace_back(std::move(left), std::move(usage));
  }

  std::string out;
  for (const auto& [left, usage] : lines) {
    out += left;
    out += ' ';
    out.append(maxlen - left.size(), ' ');
    out += ' ';
    // wrap(maxlen+2, 0, usage): no wrapping, continuation lines indented to the usage column.
    for (char c : usage) {
      out += c;
      if (c == '\n') out.append(maxlen + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

std::vector<std::string> string_slice_items(std::string_view value) {
  std::vector<std::string> fields;
  if (value.empty()) return fields;
  const std::string error = CsvRecordReader(value).read(fields);
  if (!error.empty()) fields.clear();
  return fields;
}

SubcommandSearch locate_subcommand(const std::vector<std::string>& args, const std::vector<FlagSpec>& root_specs,
                                   const std::vector<std::string_view>& subcommands) {
  // hasNoOptDefVal / shortHasNoOptDefVal: only known booleans take no value; unknown flags do.
  const auto is_bool = [](const FlagSpec* spec) { return spec && spec->type == FlagType::Bool; };
  SubcommandSearch found;
  std::size_t i = 0;
  while (i < args.size()) {
    const std::string& s = args[i++];
    if (s == "--") break;
    const bool has_eq = s.find('=') != std::string::npos;
    const bool takes_value =
        !has_eq && ((starts_with(s, "--") && !is_bool(find_long(root_specs, std::string_view(s).substr(2)))) ||
                    (s.size() == 2 && s[0] == '-' && !is_bool(find_short(root_specs, s[1]))));
    if (takes_value) {
      if (args.size() - i <= 1) break;  // stripFlags stops at a value flag in the last two words
      ++i;
      continue;
    }
    if (!s.empty() && s[0] != '-') {
      const bool known = std::find(subcommands.begin(), subcommands.end(), s) != subcommands.end();
      (known ? found.subcommand : found.unknown) = i - 1;
      break;
    }
  }
  return found;
}

}  // namespace istio_iptables
