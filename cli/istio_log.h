// Log records exactly as Istio's pilot-agent writes them (docs/logging.md).
//
// An operator's first look at a swapped init image is `kubectl logs -c istio-init`, so the records
// must read as Istio's: zap's console encoder with Istio's settings (a 27-character UTC
// microsecond time, a lower-case level, the message verbatim, TABs between) or, with
// --log_as_json, zap's JSON encoder with Istio's keys in zap's fixed order. The logging flags are
// pilot-agent's (pkg/log/options.go), validated with Istio's own error texts and in Istio's order
// (the sinks are opened before the levels are checked, as log.Configure does).
//
// Every record is formatted whole and handed to each target in one write, under a mutex: the
// records of concurrent runs sharing a terminal, a pipe or an O_APPEND file never interleave
// mid-record (a pipe guarantees it up to PIPE_BUF bytes, a file opened O_APPEND for any size).
//
// What we do not copy (docs/logging.md says why): Go stack traces (--log_stacktrace_level is
// validated but adds nothing), and the caller column names our own source file and line, not
// Istio's Go file.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/flags.h"
#include "core/result.h"

namespace istio_iptables {

/// Istio's levels in its order: a record is written when the scope's level >= the record's.
enum class LogLevel { None = 0, Fatal = 1, Error = 2, Warn = 3, Info = 4, Debug = 5 };

/// The minor of the Istio release whose logging flags apply, for `--compat current`.
inline constexpr int kCurrentReleaseMinor = 999;

/// Where records go, as --log_target names them.
struct LogTarget {
  enum class Kind { Stdout, Stderr, File };
  Kind kind = Kind::Stdout;
  std::string path;     ///< File only: the path opened (a file:// URL's path)
  std::string spelled;  ///< as given on the command line (named in error messages)
};

/// The logging flags, parsed and validated.
struct LogOptions {
  LogLevel level = LogLevel::Info;             ///< the default scope's output level
  LogLevel stacktrace_level = LogLevel::None;  ///< the default scope's stack level (no stack is printed)
  bool caller = false;                         ///< --log_caller names default (or all)
  bool json = false;                           ///< --log_as_json
  std::int32_t vklog = 0;                      ///< --vklog (klog's scope only: no visible effect)
  std::vector<LogTarget> targets{LogTarget{LogTarget::Kind::Stdout, "", "stdout"}};
  // 1.22/1.23's --log_rotate*: a file written in addition to the targets (no rotation is done).
  std::string rotate_path;
  std::int64_t rotate_max_age = 30;
  std::int64_t rotate_max_size = 100LL * 1024 * 1024;
  std::int64_t rotate_max_backups = 1000;
};

/// pilot-agent's logging flags at a release (1.22 and 1.23 add --log_rotate*), for the caller's
/// pflag table. Static storage; values are checked by parse_log_options, not by the parser.
const std::vector<FlagSpec>& log_flag_specs(int release_minor);

/// True when `name` (without "--") is one of log_flag_specs(release_minor).
bool is_log_flag(std::string_view name, int release_minor);

/// Builds the options from the logging flags' occurrences in command-line order (name without
/// "--", value; other names are ignored), validating as Istio's log.Configure does: the first
/// problem is returned with Istio's text, e.g. `invalid output level 'verbose'` or
/// `open sink "/nonexistent/x.log": open /nonexistent/x.log: no such file or directory`
/// (the second is reported by open_log_sinks, which opens the files).
Result<LogOptions> parse_log_options(const std::vector<std::pair<std::string, std::string>>& flags, int release_minor);

/// Where text is written: log records, and the CLI's standard output and error. Implementations
/// write each piece whole, at once. Not std::ostream: a stream sets up the C++ locale machinery
/// (about 84 000 instructions and 22 page faults) in a process that never needs it
/// (docs/performance.md).
class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void write(std::string_view record) = 0;
};

/// Writes `text` to the sink: `out << a << b`.
inline LogSink& operator<<(LogSink& sink, std::string_view text) {
  sink.write(text);
  return sink;
}

/// A sink that keeps what it is given (tests, and run_cli's callers that want the text).
class StringLogSink : public LogSink {
 public:
  void write(std::string_view record) override { text_.append(record); }
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string text_;
};

/// A sink over a file descriptor: one write(2) per record (looping only on a short write). For
/// the real process's stdout and stderr (fd 1 and 2, not closed) and for --log_target files.
class FdLogSink : public LogSink {
 public:
  FdLogSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~FdLogSink() override;
  FdLogSink(const FdLogSink&) = delete;
  FdLogSink& operator=(const FdLogSink&) = delete;
  void write(std::string_view record) override;

 private:
  int fd_;
  bool owned_;
};

/// Opens the targets of `options` in order: "stdout" and "stderr" are the caller's sinks, files
/// are opened O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, mode 0666 (before umask). Like zap, every
/// target is tried and the failures are joined with "; ", each `open sink "<as given>": <cause>`.
Result<std::vector<std::shared_ptr<LogSink>>> open_log_sinks(const LogOptions& options,
                                                             const std::shared_ptr<LogSink>& stdout_sink,
                                                             const std::shared_ptr<LogSink>& stderr_sink);

/// Where a log call is made, for the caller column (--log_caller). The defaults are evaluated at
/// the call site (GCC and Clang builtins), so `log.info("x")` records its own file and line.
struct LogCaller {
  const char* file = nullptr;
  int line = 0;
  static LogCaller here(const char* file = __builtin_FILE(), int line = __builtin_LINE()) { return {file, line}; }
};

/// Labels Istio adds with WithLabels: console `\tk=v k2=v2` after the message, JSON fields.
using LogLabels = std::vector<std::pair<std::string, std::string>>;

/// The clock; tests pass a fixed time.
using LogClock = std::function<std::chrono::system_clock::time_point()>;

/// Istio's `formatDate`: `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC, microseconds truncated.
std::string istio_log_time(std::chrono::system_clock::time_point time);

/// zap's JSON string escaping (without the quotes): `\\`, `\"`, `\n`, `\r`, `\t`, other bytes
/// below 0x20 as `\u00xx`, invalid UTF-8 as `\ufffd`, everything else as is.
std::string zap_json_escape(std::string_view text);

/// One record as Istio's encoder prints it, line ending included.
std::string format_log_record(const LogOptions& options, std::chrono::system_clock::time_point time, LogLevel level,
                              std::string_view message, const LogLabels& labels, const LogCaller& caller);

/// The logger: filters by the default scope's level, formats, writes to every sink.
class IstioLog {
 public:
  IstioLog(LogOptions options, std::vector<std::shared_ptr<LogSink>> sinks, LogClock clock = {});

  void debug(std::string_view message, const LogLabels& labels = {}, LogCaller caller = LogCaller::here()) {
    log(LogLevel::Debug, message, labels, caller);
  }
  void info(std::string_view message, const LogLabels& labels = {}, LogCaller caller = LogCaller::here()) {
    log(LogLevel::Info, message, labels, caller);
  }
  void warn(std::string_view message, const LogLabels& labels = {}, LogCaller caller = LogCaller::here()) {
    log(LogLevel::Warn, message, labels, caller);
  }
  void error(std::string_view message, const LogLabels& labels = {}, LogCaller caller = LogCaller::here()) {
    log(LogLevel::Error, message, labels, caller);
  }
  void log(LogLevel level, std::string_view message, const LogLabels& labels = {},
           LogCaller caller = LogCaller::here());

  /// Would a record at `level` be written? (Skip building expensive messages.)
  bool enabled(LogLevel level) const { return level != LogLevel::None && options_.level >= level; }
  const LogOptions& options() const { return options_; }

 private:
  LogOptions options_;
  std::vector<std::shared_ptr<LogSink>> sinks_;
  LogClock clock_;
  std::mutex mutex_;
};

/// The whole of pilot-agent's PreRunE log.Configure, in its order: the flags read, the targets
/// opened (an `open sink` error first), then the levels checked. The result is the logger for the
/// rest of the run; on failure the caller logs the error with a default IstioLog (console, stdout).
Result<std::unique_ptr<IstioLog>> configure_istio_log(const std::vector<std::pair<std::string, std::string>>& flags,
                                                      int release_minor, const std::shared_ptr<LogSink>& stdout_sink,
                                                      const std::shared_ptr<LogSink>& stderr_sink, LogClock clock = {});

}  // namespace istio_iptables
