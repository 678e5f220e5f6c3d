// Istio's log records: pilot-agent's logging flags, zap's encoders with Istio's settings.
//
// The order of validation is log.Configure's (pkg/log/config.go): prepZap opens the sinks first
// (an `open sink` error wins), then updateScopes applies --log_output_level (after Istio's
// built-in defaults `default:info,grpc:none`) and --log_stacktrace_level item by item, left to
// right, stopping at the first bad item. Only the `default` scope logs during istio-iptables, so
// only its levels are kept; other scope names are accepted and ignored, as Istio ignores the
// names it does not know. --log_target values are read as zap's sink registry reads them
// (zap sink.go: an absolute path, else a URL whose scheme must be `file`), with its error texts.
#include "istio_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace istio_iptables {
namespace {

// ---- levels -----------------------------------------------------------------------------------

std::optional<LogLevel> level_named(std::string_view name) {
  if (name == "debug") return LogLevel::Debug;
  if (name == "info") return LogLevel::Info;
  if (name == "warn") return LogLevel::Warn;
  if (name == "error") return LogLevel::Error;
  if (name == "fatal") return LogLevel::Fatal;
  if (name == "none") return LogLevel::None;
  return std::nullopt;
}

const char* level_text(LogLevel level) {
  switch (level) {
  case LogLevel::Debug: return "debug";
  case LogLevel::Info: return "info";
  case LogLevel::Warn: return "warn";
  case LogLevel::Error: return "error";
  case LogLevel::Fatal: return "fatal";
  case LogLevel::None: break;
  }
  return "none";
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = text.find(separator, start);
    if (end == std::string_view::npos) {
      out.push_back(text.substr(start));
      return out;
    }
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

// Istio's processLevels over one flag value: every item is `[scope:]level`; `all` sets every
// scope, `default` (or no scope) ours; the first bad item fails with convertScopedLevel's text.
// Up to 1.24 the unknown-level message quotes the whole item, from 1.25 only the level
// (options.go:199@1.24.6, options.go:197-200@HEAD).
Status apply_levels(std::string_view value, int release_minor, LogLevel& level) {
  for (std::string_view item : split(value, ',')) {
    std::vector<std::string_view> pieces = split(item, ':');
    std::string_view scope = "default";
    std::string_view name;
    if (pieces.size() == 1) {
      name = pieces[0];
    } else if (pieces.size() == 2) {
      scope = pieces[0];
      name = pieces[1];
    } else {
      return Error{"invalid output level format '" + std::string(item) + "'"};
    }
    auto parsed = level_named(name);
    if (!parsed) return Error{"invalid output level '" + std::string(release_minor <= 24 ? item : name) + "'"};
    if (scope == "default" || scope == "all") level = *parsed;
  }
  return ok_status();
}

// ---- --log_target as zap's sink registry reads it ---------------------------------------------

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go's url.PathUnescape-like decoding of a path; the bad escape on failure.
Result<std::string> unescape_path(std::string_view raw, std::string_view path) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      out += path[i];
      continue;
    }
    if (i + 2 >= path.size() || hex_value(path[i + 1]) < 0 || hex_value(path[i + 2]) < 0) {
      std::string_view bad = path.substr(i, 3);
      return Error{"can't parse " + go_quote(raw) + " as a URL: parse " + go_quote(raw) + ": invalid URL escape " +
                   go_quote(bad)};
    }
    out += static_cast<char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]));
    i += 2;
  }
  return out;
}

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// What a --log_target value names: a stream, a file path, or zap's error (without the
// `open sink "<value>": ` prefix, which open_log_sinks adds).
struct SinkSpec {
  LogTarget::Kind kind = LogTarget::Kind::File;
  std::string path;
  std::string error;
};

SinkSpec path_sink(std::string path) {
  if (path == "stdout") return {LogTarget::Kind::Stdout, "", ""};
  if (path == "stderr") return {LogTarget::Kind::Stderr, "", ""};
  return {LogTarget::Kind::File, std::move(path), ""};
}

SinkSpec fail(std::string message) { return {LogTarget::Kind::File, "", std::move(message)}; }

SinkSpec read_sink(std::string_view raw) {
  if (!raw.empty() && raw[0] == '/') return path_sink(std::string(raw));  // filepath.IsAbs
  // Go's getScheme: letters, then letters, digits, '+', '-', '.', up to a ':'.
  std::string scheme;
  std::string_view rest = raw;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (is_letter(c)) continue;
    if (is_digit(c) || c == '+' || c == '-' || c == '.') {
      if (i == 0) break;
      continue;
    }
    if (c == ':') {
      if (i == 0)
        return fail("can't parse " + go_quote(raw) + " as a URL: parse " + go_quote(raw) + ": missing protocol scheme");
      for (char s : raw.substr(0, i)) scheme += static_cast<char>(s >= 'A' && s <= 'Z' ? s - 'A' + 'a' : s);
      rest = raw.substr(i + 1);
    }
    break;
  }
  std::string fragment;
  if (auto hash = rest.find('#'); hash != std::string_view::npos) {
    fragment = std::string(rest.substr(hash + 1));
    rest = rest.substr(0, hash);
  }
  std::string query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = std::string(rest.substr(q + 1));
    rest = rest.substr(0, q);
  }
  std::string host_port;
  bool user = false;
  bool opaque = false;
  if (rest.substr(0, 2) == "//") {
    rest.remove_prefix(2);
    std::size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
      user = true;
      authority = authority.substr(at + 1);
    }
    host_port = std::string(authority);
  } else if (!scheme.empty() && (rest.empty() || rest[0] != '/')) {
    opaque = true;  // "file:x": Go keeps it as Opaque, the path is empty
  } else if (scheme.empty()) {
    std::string_view first = rest.substr(0, rest.find('/'));
    if (first.find(':') != std::string_view::npos)
      return fail("can't parse " + go_quote(raw) + " as a URL: parse " + go_quote(raw) +
                  ": first path segment in URL cannot contain colon");
  }
  auto path = unescape_path(raw, opaque ? std::string_view() : rest);
  if (!path) return fail(path.error().message);
  if (!scheme.empty() && scheme != "file") return fail("no sink found for scheme " + go_quote(scheme));
  // zap's newFileSinkFromURL checks, in its order; %v of the URL is shown as given.
  const std::string shown(raw);
  if (user) return fail("user and password not allowed with file URLs: got " + shown);
  if (!fragment.empty()) return fail("fragments not allowed with file URLs: got " + shown);
  if (!query.empty()) return fail("query parameters not allowed with file URLs: got " + shown);
  std::string host = host_port;
  if (!host.empty() && host[0] != '[') {
    if (auto colon = host.rfind(':'); colon != std::string::npos) {
      if (colon + 1 < host.size()) return fail("ports not allowed with file URLs: got " + shown);
      host = host.substr(0, colon);
    }
  }
  if (!host.empty() && host != "localhost")
    return fail("file URLs must leave host empty or use localhost: got " + shown);
  return path_sink(std::move(path).value());
}

// Go's syscall error strings are strerror's texts starting in lower case.
std::string go_errno_text(int error) {
  std::string text = std::strerror(error);
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z') text[0] = static_cast<char>(text[0] - 'A' + 'a');
  return text;
}

// ---- time -------------------------------------------------------------------------------------

// Days since 1970-01-01 -> civil date (H. Hinnant's days_from_civil, inverted).
void civil_from_days(std::int64_t z, std::int64_t& year, unsigned& month, unsigned& day) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  day = doy - (153 * mp + 2) / 5 + 1;
  month = mp < 10 ? mp + 3 : mp - 9;
  year = static_cast<std::int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0);
}

void append_digits(std::string& out, std::int64_t value, int width) {
  std::string digits(static_cast<std::size_t>(width), '0');
  for (int i = width - 1; i >= 0; --i) {
    digits[static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out += digits;
}

std::string short_caller(const LogCaller& caller) {
  // zap's ShortCallerEncoder: the last two path elements.
  std::string_view file = caller.file != nullptr ? caller.file : "???";
  std::size_t last = file.rfind('/');
  if (last != std::string_view::npos && last > 0) {
    std::size_t before = file.rfind('/', last - 1);
    if (before != std::string_view::npos) file = file.substr(before + 1);
  }
  return std::string(file) + ":" + std::to_string(caller.line);
}

}  // namespace

// ---- flags ------------------------------------------------------------------------------------

const std::vector<FlagSpec>& log_flag_specs(int release_minor) {
  // Usage texts follow pkg/log/options.go; the scope list in Istio's text depends on the scopes
  // linked into pilot-agent, which we do not know exactly (docs/logging.md).
  static const std::vector<FlagSpec> current = {
      {"log_as_json", "", FlagType::Bool, "", "",
       "Whether to format output as JSON or in plain console-friendly format"},
      {"log_caller", "", FlagType::String, "string", "",
       "Comma-separated list of scopes for which to include caller information, scopes can be any of [default]"},
      {"log_output_level", "", FlagType::String, "string", "",
       "Comma-separated minimum per-scope logging level of messages to output, in the form of "
       "<scope>:<level>,<scope>:<level>,... where scope can be one of [default] and level can be one of [debug, "
       "info, warn, error, fatal, none]"},
      {"log_stacktrace_level", "", FlagType::String, "string", "\"default:none\"",
       "Comma-separated minimum per-scope logging level at which stack traces are captured, in the form of "
       "<scope>:<level>,<scope:level>,... where scope can be one of [default] and level can be one of [debug, "
       "info, warn, error, fatal, none]"},
      {"log_target", "", FlagType::StringArray, "stringArray", "[stdout]",
       "The set of paths where to output the log. This can be any path as well as the special values stdout and "
       "stderr"},
      {"vklog", "", FlagType::Int32, "Level", "", "number for the log level verbosity. Like -v flag. ex: --vklog=9"},
  };
  static const std::vector<FlagSpec> with_rotate = [] {
    std::vector<FlagSpec> specs = current;
    specs.push_back({"log_rotate", "", FlagType::String, "string", "", "The path for the optional rotating log file"});
    specs.push_back({"log_rotate_max_age", "", FlagType::Int32, "int", "30",
                     "The maximum age in days of a log file beyond which the file is rotated (0 indicates no limit)"});
    specs.push_back({"log_rotate_max_backups", "", FlagType::Int32, "int", "1000",
                     "The maximum number of log file backups to keep before older files are deleted (0 indicates no "
                     "limit)"});
    specs.push_back({"log_rotate_max_size", "", FlagType::Int32, "int", "104857600",
                     "The maximum size in megabytes of a log file beyond which the file is rotated"});
    return specs;
  }();
  return release_minor <= 23 ? with_rotate : current;
}

bool is_log_flag(std::string_view name, int release_minor) {
  const auto& specs = log_flag_specs(release_minor);
  return std::any_of(specs.begin(), specs.end(), [name](const FlagSpec& spec) { return spec.name == name; });
}

namespace {

// Everything but the levels, which Istio checks after opening the sinks.
struct RawLogFlags {
  std::string output_level;  // "" = Istio's defaults only
  std::string stacktrace_level = "default:none";
  std::vector<std::string> targets;  // empty: the default [stdout]
};

Result<RawLogFlags> read_flags(const std::vector<std::pair<std::string, std::string>>& flags, int release_minor,
                               LogOptions& options) {
  RawLogFlags raw;
  for (const auto& [name, value] : flags) {
    if (name.rfind("log_rotate", 0) == 0 && release_minor > 23) return Error{"unknown flag: --" + name};
    if (name == "log_output_level") {
      raw.output_level = value;
    } else if (name == "log_stacktrace_level") {
      raw.stacktrace_level = value;
    } else if (name == "log_caller") {
      options.caller = false;
      for (std::string_view scope : split(value, ','))
        if (scope == "default" || scope == "all") options.caller = true;
    } else if (name == "log_target") {
      raw.targets.push_back(value);
    } else if (name == "log_as_json") {
      options.json = value == "true";
    } else if (name == "vklog") {
      options.vklog = static_cast<std::int32_t>(std::strtol(value.c_str(), nullptr, 10));
    } else if (name == "log_rotate") {
      options.rotate_path = value;
    } else if (name == "log_rotate_max_age") {
      options.rotate_max_age = std::strtoll(value.c_str(), nullptr, 10);
    } else if (name == "log_rotate_max_size") {
      options.rotate_max_size = std::strtoll(value.c_str(), nullptr, 10);
    } else if (name == "log_rotate_max_backups") {
      options.rotate_max_backups = std::strtoll(value.c_str(), nullptr, 10);
    }
  }
  if (!raw.targets.empty()) {
    options.targets.clear();
    for (const auto& t : raw.targets) {
      SinkSpec spec = read_sink(t);
      options.targets.push_back(LogTarget{spec.kind, spec.path, t});
    }
  }
  return raw;
}

Status apply_all_levels(const RawLogFlags& raw, int release_minor, LogOptions& options) {
  // pkg/log: the built-in defaults first, then the flag's items (HEAD options.go:112).
  std::string levels = "default:info,grpc:none";
  if (!raw.output_level.empty()) levels += "," + raw.output_level;
  if (auto s = apply_levels(levels, release_minor, options.level); !s) return s;
  return apply_levels(raw.stacktrace_level, release_minor, options.stacktrace_level);
}

}  // namespace

Result<LogOptions> parse_log_options(const std::vector<std::pair<std::string, std::string>>& flags, int release_minor) {
  LogOptions options;
  auto raw = read_flags(flags, release_minor, options);
  if (!raw) return raw.error();
  if (auto s = apply_all_levels(raw.value(), release_minor, options); !s) return s.error();
  return options;
}

Result<std::vector<std::shared_ptr<LogSink>>> open_log_sinks(const LogOptions& options,
                                                             const std::shared_ptr<LogSink>& stdout_sink,
                                                             const std::shared_ptr<LogSink>& stderr_sink) {
  std::vector<std::shared_ptr<LogSink>> sinks;
  std::string errors;
  for (const auto& target : options.targets) {
    auto add_error = [&](const std::string& cause) {
      if (!errors.empty()) errors += "; ";  // multierr's join
      errors += "open sink " + go_quote(target.spelled) + ": " + cause;
    };
    SinkSpec spec = read_sink(target.spelled);
    if (!spec.error.empty()) {
      add_error(spec.error);
      continue;
    }
    if (target.kind == LogTarget::Kind::Stdout) {
      sinks.push_back(stdout_sink);
    } else if (target.kind == LogTarget::Kind::Stderr) {
      sinks.push_back(stderr_sink);
    } else {
      int fd = ::open(target.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) {
        add_error("open " + target.path + ": " + go_errno_text(errno));
        continue;
      }
      sinks.push_back(std::make_shared<FdLogSink>(fd, true));
    }
  }
  if (!errors.empty()) return Error{errors};
  if (!options.rotate_path.empty()) {
    // lumberjack opens its file lazily and reports failures as write errors: never fatal.
    int fd = ::open(options.rotate_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) sinks.push_back(std::make_shared<FdLogSink>(fd, true));
  }
  return sinks;
}

Result<std::unique_ptr<IstioLog>> configure_istio_log(const std::vector<std::pair<std::string, std::string>>& flags,
                                                      int release_minor, const std::shared_ptr<LogSink>& stdout_sink,
                                                      const std::shared_ptr<LogSink>& stderr_sink, LogClock clock) {
  LogOptions options;
  auto raw = read_flags(flags, release_minor, options);
  if (!raw) return raw.error();
  auto sinks = open_log_sinks(options, stdout_sink, stderr_sink);  // prepZap, before updateScopes
  if (!sinks) return sinks.error();
  if (auto s = apply_all_levels(raw.value(), release_minor, options); !s) return s.error();
  return std::make_unique<IstioLog>(std::move(options), std::move(sinks).value(), std::move(clock));
}

FdLogSink::~FdLogSink() {
  if (owned_) ::close(fd_);
}

void FdLogSink::write(std::string_view record) {
  while (!record.empty()) {
    ssize_t n = ::write(fd_, record.data(), record.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // zap reports a write error on stderr; we drop the record (docs/logging.md)
    record.remove_prefix(static_cast<std::size_t>(n));
  }
}

// ---- encoding ---------------------------------------------------------------------------------

std::string istio_log_time(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto micros = duration_cast<microseconds>(time.time_since_epoch()).count();
  std::int64_t seconds = micros / 1000000;
  std::int64_t fraction = micros % 1000000;
  if (fraction < 0) {
    fraction += 1000000;
    seconds -= 1;
  }
  std::int64_t days = seconds / 86400;
  std::int64_t of_day = seconds % 86400;
  if (of_day < 0) {
    of_day += 86400;
    days -= 1;
  }
  std::int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  civil_from_days(days, year, month, day);
  std::string out;
  out.reserve(27);
  append_digits(out, year, 4);
  out += '-';
  append_digits(out, month, 2);
  out += '-';
  append_digits(out, day, 2);
  out += 'T';
  append_digits(out, of_day / 3600, 2);
  out += ':';
  append_digits(out, of_day / 60 % 60, 2);
  out += ':';
  append_digits(out, of_day % 60, 2);
  out += '.';
  append_digits(out, fraction, 6);
  out += 'Z';
  return out;
}

std::string zap_json_escape(std::string_view text) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      switch (b) {
      case '\\':
      case '"':
        out += '\\';
        out += static_cast<char>(b);
        break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (b < 0x20) {
          out += "\\u00";
          out += hex[b >> 4];
          out += hex[b & 0xF];
        } else {
          out += static_cast<char>(b);
        }
      }
      ++i;
      continue;
    }
    // A multi-byte rune: copied when valid UTF-8 (Go's utf8.DecodeRuneInString), else U+FFFD for
    // one byte.
    std::size_t length = 0;
    std::uint32_t rune = 0;
    std::uint32_t minimum = 0;
    if (b >= 0xC2 && b <= 0xDF) {
      length = 2, rune = b & 0x1FU, minimum = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
      length = 3, rune = b & 0x0FU, minimum = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
      length = 4, rune = b & 0x07U, minimum = 0x10000;
    }
    bool valid = length > 0 && i + length <= text.size();
    for (std::size_t k = 1; valid && k < length; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if ((c & 0xC0) != 0x80) valid = false;
      rune = (rune << 6) | (c & 0x3FU);
    }
    if (valid && (rune < minimum || rune > 0x10FFFF || (rune >= 0xD800 && rune <= 0xDFFF))) valid = false;
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  return out;
}

std::string format_log_record(const LogOptions& options, std::chrono::system_clock::time_point time, LogLevel level,
                              std::string_view message, const LogLabels& labels, const LogCaller& caller) {
  std::string out;
  if (options.json) {
    // zap's JSON encoder: level, time, [scope], [caller], msg, fields..., [stack].
    out += R"({"level":")";
    out += level_text(level);
    out += R"(","time":")";
    out += istio_log_time(time);
    out += '"';
    if (options.caller) {
      out += R"(,"caller":")";
      out += zap_json_escape(short_caller(caller));
      out += '"';
    }
    out += R"(,"msg":")";
    out += zap_json_escape(message);
    out += '"';
    for (const auto& [key, value] : labels) {
      out += ",\"";
      out += zap_json_escape(key);
      out += R"(":")";
      out += zap_json_escape(value);
      out += '"';
    }
    out += "}\n";
    return out;
  }
  // zap's console encoder: time, level, [caller], message, TAB-separated; the message verbatim
  // with Istio's labels appended as "\tk=v k2=v2".
  out += istio_log_time(time);
  out += '\t';
  out += level_text(level);
  out += '\t';
  if (options.caller) {
    out += short_caller(caller);
    out += '\t';
  }
  out += message;
  if (!labels.empty()) {
    out += '\t';
    bool space = false;
    for (const auto& [key, value] : labels) {
      if (space) out += ' ';
      out += key;
      out += '=';
      out += value;
      space = true;
    }
  }
  out += '\n';
  return out;
}

IstioLog::IstioLog(LogOptions options, std::vector<std::shared_ptr<LogSink>> sinks, LogClock clock)
    : options_(std::move(options)), sinks_(std::move(sinks)), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
}

void IstioLog::log(LogLevel level, std::string_view message, const LogLabels& labels, LogCaller caller) {
  if (!enabled(level)) return;
  const std::string record = format_log_record(options_, clock_(), level, message, labels, caller);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& sink : sinks_) sink->write(record);
}

}  // namespace istio_iptables
