// Istio's log records and logging flags. Expected texts are quoted from
// ../shared/docs/istio-operator-behaviour.md §1 (section named at each test), not from our output.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "istio_log.h"

using namespace istio_iptables;

namespace {

// 2026-08-22T19:00:53.123456789Z, the spec's example time plus nanoseconds to be truncated.
std::chrono::system_clock::time_point example_time() {
  using namespace std::chrono;
  return system_clock::time_point(duration_cast<system_clock::duration>(seconds(1787425253) + nanoseconds(123456789)));
}

LogClock fixed_clock() {
  return [] { return example_time(); };
}

using Flags = std::vector<std::pair<std::string, std::string>>;

LogOptions options_of(const Flags& flags, int minor = kCurrentReleaseMinor) {
  auto r = parse_log_options(flags, minor);
  REQUIRE(r.ok());
  return r.value();
}

std::string parse_error(const Flags& flags, int minor = kCurrentReleaseMinor) {
  auto r = parse_log_options(flags, minor);
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}

// A logger writing to one string.
struct StringLog {
  std::shared_ptr<StringLogSink> out = std::make_shared<StringLogSink>();  // before log: its sink
  IstioLog log;
  explicit StringLog(LogOptions options) : log(std::move(options), {out}, fixed_clock()) {}
};

}  // namespace

TEST_CASE("istio log: the time is UTC, 27 characters, microseconds truncated (§1.2)", "[istio_log]") {
  CHECK(istio_log_time(example_time()) == "2026-08-22T19:00:53.123456Z");
  CHECK(istio_log_time(std::chrono::system_clock::time_point()) == "1970-01-01T00:00:00.000000Z");
  using namespace std::chrono;
  // 2024-02-29T23:59:59.999999Z: a leap day, and 999999.9 microseconds stays 999999.
  auto leap =
      system_clock::time_point(duration_cast<system_clock::duration>(seconds(1709251199) + nanoseconds(999999900)));
  CHECK(istio_log_time(leap) == "2024-02-29T23:59:59.999999Z");
}

TEST_CASE("istio log: a console record is time TAB level TAB message (§1.2)", "[istio_log]") {
  StringLog s(LogOptions{});
  s.log.info("Clean-state detected, new iptables are needed");
  s.log.warn("w");
  s.log.error("e");
  CHECK(s.out->text() == "2026-08-22T19:00:53.123456Z\tinfo\tClean-state detected, new iptables are needed\n"
                         "2026-08-22T19:00:53.123456Z\twarn\tw\n"
                         "2026-08-22T19:00:53.123456Z\terror\te\n");
}

TEST_CASE("istio log: a message ending in a newline is followed by an empty line (§1.2, §1.6)", "[istio_log]") {
  StringLog s(LogOptions{});
  s.log.info("Istio iptables environment:\nENVOY_PORT=\nINVALID_DROP=\n");
  s.log.info("Applying iptables chains and rules");
  CHECK(s.out->text() ==
        "2026-08-22T19:00:53.123456Z\tinfo\tIstio iptables environment:\nENVOY_PORT=\nINVALID_DROP=\n\n"
        "2026-08-22T19:00:53.123456Z\tinfo\tApplying iptables chains and rules\n");
}

TEST_CASE("istio log: labels follow the message as TAB k=v pairs joined by spaces (§1.2)", "[istio_log]") {
  StringLog s(LogOptions{});
  s.log.warn("found iptables binary iptables-legacy-save, but it does not appear to support the '--version' flag, "
             "assuming very old legacy version",
             {{"binary", "iptables-legacy"}});
  s.log.info("m", {{"a", "1"}, {"b", "2"}});
  CHECK(s.out->text() ==
        "2026-08-22T19:00:53.123456Z\twarn\tfound iptables binary iptables-legacy-save, but it does not appear to "
        "support the '--version' flag, assuming very old legacy version\tbinary=iptables-legacy\n"
        "2026-08-22T19:00:53.123456Z\tinfo\tm\ta=1 b=2\n");
}

TEST_CASE("istio log: --log_as_json writes zap's keys in zap's order, the message escaped (§1.3)", "[istio_log]") {
  StringLog s(options_of({{"log_as_json", "true"}}));
  s.log.info("Final iptables state (IPv4):\n*nat\n");
  s.log.warn("x", {{"binary", "iptables-legacy"}});
  CHECK(s.out->text() ==
        "{\"level\":\"info\",\"time\":\"2026-08-22T19:00:53.123456Z\",\"msg\":\"Final iptables state "
        "(IPv4):\\n*nat\\n\"}\n"
        "{\"level\":\"warn\",\"time\":\"2026-08-22T19:00:53.123456Z\",\"msg\":\"x\",\"binary\":\"iptables-legacy\"}\n");
}

TEST_CASE("istio log: JSON strings are escaped as zap escapes them", "[istio_log]") {
  CHECK(zap_json_escape("a\"b\\c\td\re") == "a\\\"b\\\\c\\td\\re");
  CHECK(zap_json_escape(std::string("\x01\x1f\x7f", 3)) == "\\u0001\\u001f\x7f");
  CHECK(zap_json_escape("caf\xc3\xa9") == "caf\xc3\xa9");  // valid UTF-8 kept
  CHECK(zap_json_escape("\xff"
                        "a") == "\\ufffda");                          // an invalid byte is U+FFFD
  CHECK(zap_json_escape("\xed\xa0\x80") == "\\ufffd\\ufffd\\ufffd");  // a surrogate is not valid UTF-8
}

TEST_CASE("istio log: --log_caller adds our file:line after the level, in both encodings (§1.2, §1.3)", "[istio_log]") {
  StringLog s(options_of({{"log_caller", "default"}}));
  const int line = __LINE__ + 1;
  s.log.info("m");
  CHECK(s.out->text() == "2026-08-22T19:00:53.123456Z\tinfo\tcli/istio_log_test.cc:" + std::to_string(line) + "\tm\n");

  StringLog j(options_of({{"log_caller", "all"}, {"log_as_json", "true"}}));
  const int json_line = __LINE__ + 1;
  j.log.info("m");
  CHECK(j.out->text() ==
        "{\"level\":\"info\",\"time\":\"2026-08-22T19:00:53.123456Z\",\"caller\":\"cli/istio_log_test.cc:" +
            std::to_string(json_line) + "\",\"msg\":\"m\"}\n");
  // Unknown scope names are ignored (§1.4).
  CHECK_FALSE(options_of({{"log_caller", "grpc,klog"}}).caller);
}

TEST_CASE("istio log: --log_output_level filters by the default scope, later items winning (§1.4)", "[istio_log]") {
  CHECK(options_of({}).level == LogLevel::Info);  // default:info
  CHECK(options_of({{"log_output_level", "default:info"}}).level == LogLevel::Info);
  CHECK(options_of({{"log_output_level", "debug"}}).level == LogLevel::Debug);  // a bare level: default scope
  CHECK(options_of({{"log_output_level", "default:debug,default:warn"}}).level == LogLevel::Warn);
  CHECK(options_of({{"log_output_level", "all:error"}}).level == LogLevel::Error);
  CHECK(options_of({{"log_output_level", "klog:debug,nosuchscope:none"}}).level == LogLevel::Info);  // ignored
  CHECK(options_of({{"log_output_level", ""}}).level == LogLevel::Info);  // the defaults alone
  CHECK(options_of({{"log_output_level", "debug"}, {"log_output_level", "warn"}}).level == LogLevel::Warn);

  StringLog warn_only(options_of({{"log_output_level", "warn"}}));
  warn_only.log.debug("d");
  warn_only.log.info("i");
  warn_only.log.warn("w");
  warn_only.log.error("e");
  CHECK(warn_only.out->text() == "2026-08-22T19:00:53.123456Z\twarn\tw\n2026-08-22T19:00:53.123456Z\terror\te\n");

  StringLog none(options_of({{"log_output_level", "none"}}));
  none.log.error("e");
  CHECK(none.out->text().empty());

  StringLog debug(options_of({{"log_output_level", "default:debug"}}));
  debug.log.debug("Running command (without lock): iptables-nft-save ");
  CHECK(debug.out->text() ==
        "2026-08-22T19:00:53.123456Z\tdebug\tRunning command (without lock): iptables-nft-save \n");
}

TEST_CASE("istio log: bad levels are refused with Istio's texts, per release (§1.4)", "[istio_log]") {
  CHECK(parse_error({{"log_output_level", "default:info:x"}}) == "invalid output level format 'default:info:x'");
  CHECK(parse_error({{"log_output_level", "default:verbose"}}) == "invalid output level 'verbose'");
  CHECK(parse_error({{"log_output_level", "default:verbose"}}, 24) == "invalid output level 'default:verbose'");
  CHECK(parse_error({{"log_output_level", "info,"}}) == "invalid output level ''");
  CHECK(parse_error({{"log_output_level", "warning"}}) == "invalid output level 'warning'");
  // --log_stacktrace_level: the same syntax and texts; its default is default:none.
  CHECK(options_of({}).stacktrace_level == LogLevel::None);
  CHECK(options_of({{"log_stacktrace_level", "default:error"}}).stacktrace_level == LogLevel::Error);
  CHECK(parse_error({{"log_stacktrace_level", "default:bogus"}}) == "invalid output level 'bogus'");
  CHECK(parse_error({{"log_stacktrace_level", ""}}) == "invalid output level ''");
}

TEST_CASE("istio log: a stack trace level adds nothing to the record (no Go stacks)", "[istio_log]") {
  StringLog s(options_of({{"log_stacktrace_level", "default:debug"}}));
  s.log.error("e");
  CHECK(s.out->text() == "2026-08-22T19:00:53.123456Z\terror\te\n");
}

TEST_CASE("istio log: --log_rotate exists at 1.22 and 1.23 only (§1.4)", "[istio_log]") {
  CHECK(is_log_flag("log_rotate", 23));
  CHECK(is_log_flag("log_rotate_max_backups", 22));
  CHECK_FALSE(is_log_flag("log_rotate", 24));
  CHECK_FALSE(is_log_flag("log_rotate_max_size", kCurrentReleaseMinor));
  CHECK(is_log_flag("vklog", 24));
  CHECK(is_log_flag("log_target", 22));
  CHECK(parse_error({{"log_rotate", "/tmp/x"}}, 24) == "unknown flag: --log_rotate");
  auto at23 = options_of({{"log_rotate", "/var/log/x.log"}, {"log_rotate_max_age", "7"}}, 23);
  CHECK(at23.rotate_path == "/var/log/x.log");
  CHECK(at23.rotate_max_age == 7);
  CHECK(at23.rotate_max_size == 100LL * 1024 * 1024);  // defaults: options.go:33-35@1.23.0
  CHECK(at23.rotate_max_backups == 1000);
}

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char buffer[] = "/tmp/istio_log_test_XXXXXX";
    REQUIRE(::mkdtemp(buffer) != nullptr);
    path = buffer;
  }
  ~TempDir() {
    std::string command = "rm -rf '" + path + "'";
    (void)std::system(command.c_str());
  }
};

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("istio log: the first --log_target replaces stdout, later ones add, every record goes to all (§1.4)",
          "[istio_log]") {
  TempDir dir;
  const std::string a = dir.path + "/a.log";
  const std::string b = dir.path + "/b.log";
  auto out_sink = std::make_shared<StringLogSink>();
  auto err_sink = std::make_shared<StringLogSink>();
  auto options = options_of({{"log_target", a}, {"log_target", "file://" + b}, {"log_target", "stderr"}});
  REQUIRE(options.targets.size() == 3);
  auto sinks = open_log_sinks(options, out_sink, err_sink);
  REQUIRE(sinks.ok());
  {
    IstioLog log(options, sinks.value(), fixed_clock());
    log.info("one");
  }
  const std::string record = "2026-08-22T19:00:53.123456Z\tinfo\tone\n";
  CHECK(out_sink->text().empty());
  CHECK(err_sink->text() == record);
  CHECK(read_all(a) == record);
  CHECK(read_all(b) == record);

  // Appended, never truncated (O_APPEND).
  auto again = open_log_sinks(options_of({{"log_target", a}}), out_sink, err_sink);
  REQUIRE(again.ok());
  IstioLog(options_of({{"log_target", a}}), again.value(), fixed_clock()).info("two");
  CHECK(read_all(a) == record + "2026-08-22T19:00:53.123456Z\tinfo\ttwo\n");
}

TEST_CASE("istio log: a new log file is created with mode 0666 before umask (§1.4)", "[istio_log]") {
  TempDir dir;
  const std::string path = dir.path + "/new.log";
  const mode_t old = ::umask(022);
  auto sinks = open_log_sinks(options_of({{"log_target", path}}), nullptr, nullptr);
  ::umask(old);
  REQUIRE(sinks.ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
}

TEST_CASE("istio log: a target that cannot be opened fails with zap's open sink text (§1.4)", "[istio_log]") {
  auto error_of = [](const Flags& flags) {
    auto sinks = open_log_sinks(options_of(flags), nullptr, nullptr);
    REQUIRE_FALSE(sinks.ok());
    return sinks.error().message;
  };
  CHECK(error_of({{"log_target", "/nonexistent-dir/x.log"}}) ==
        "open sink \"/nonexistent-dir/x.log\": open /nonexistent-dir/x.log: no such file or directory");
  CHECK(error_of({{"log_target", "file:///nonexistent-dir/x.log"}}) ==
        "open sink \"file:///nonexistent-dir/x.log\": open /nonexistent-dir/x.log: no such file or directory");
  CHECK(error_of({{"log_target", "file://host/x.log"}}) ==
        "open sink \"file://host/x.log\": file URLs must leave host empty or use localhost: got file://host/x.log");
  CHECK(error_of({{"log_target", "file:///x.log?a=b"}}) ==
        "open sink \"file:///x.log?a=b\": query parameters not allowed with file URLs: got file:///x.log?a=b");
  CHECK(error_of({{"log_target", "http://example.com/x"}}) ==
        "open sink \"http://example.com/x\": no sink found for scheme \"http\"");
  // Every target is tried; the failures are joined as multierr joins them.
  CHECK(error_of(
            {{"log_target", "/nonexistent-dir/a"}, {"log_target", "stdout"}, {"log_target", "/nonexistent-dir/b"}}) ==
        "open sink \"/nonexistent-dir/a\": open /nonexistent-dir/a: no such file or directory; "
        "open sink \"/nonexistent-dir/b\": open /nonexistent-dir/b: no such file or directory");
}

TEST_CASE("istio log: stdout and stderr targets are the caller's sinks", "[istio_log]") {
  auto out_sink = std::make_shared<StringLogSink>();
  auto err_sink = std::make_shared<StringLogSink>();
  auto options = options_of({{"log_target", "stdout"}, {"log_target", "stdout"}});
  auto sinks = open_log_sinks(options, out_sink, err_sink);
  REQUIRE(sinks.ok());
  IstioLog(options, sinks.value(), fixed_clock()).info("x");
  CHECK(out_sink->text() ==
        "2026-08-22T19:00:53.123456Z\tinfo\tx\n2026-08-22T19:00:53.123456Z\tinfo\tx\n");  // once per target
  CHECK(err_sink->text().empty());
  // The default target is stdout.
  auto defaults = open_log_sinks(options_of({}), out_sink, err_sink);
  REQUIRE(defaults.ok());
  REQUIRE(defaults.value().size() == 1);
  CHECK(defaults.value()[0] == out_sink);
}

namespace {

// Counts write calls: a record must reach a sink in one call.
struct CountingSink : LogSink {
  std::vector<std::string> writes;
  void write(std::string_view record) override { writes.emplace_back(record); }
};

}  // namespace

TEST_CASE("istio log: each record reaches each sink in one write, dumps included", "[istio_log]") {
  auto sink = std::make_shared<CountingSink>();
  IstioLog log(LogOptions{}, {sink}, fixed_clock());
  log.info("Istio config:\nPROXY_PORT=15001\n", {{"k", "v"}});
  REQUIRE(sink->writes.size() == 1);
  CHECK(sink->writes[0] == "2026-08-22T19:00:53.123456Z\tinfo\tIstio config:\nPROXY_PORT=15001\n\tk=v\n");
}

TEST_CASE("istio log: configure_istio_log opens the targets before it checks the levels, as log.Configure does",
          "[istio_log]") {
  auto out_sink = std::make_shared<StringLogSink>();
  auto both_bad = configure_istio_log({{"log_output_level", "bogus"}, {"log_target", "/nonexistent-dir/x"}},
                                      kCurrentReleaseMinor, out_sink, out_sink);
  REQUIRE_FALSE(both_bad.ok());
  CHECK(both_bad.error().message ==
        "open sink \"/nonexistent-dir/x\": open /nonexistent-dir/x: no such file or directory");
  auto level_bad = configure_istio_log({{"log_output_level", "bogus"}}, kCurrentReleaseMinor, out_sink, out_sink);
  REQUIRE_FALSE(level_bad.ok());
  CHECK(level_bad.error().message == "invalid output level 'bogus'");

  auto log =
      configure_istio_log({{"log_output_level", "warn"}}, kCurrentReleaseMinor, out_sink, out_sink, fixed_clock());
  REQUIRE(log.ok());
  log.value()->info("i");
  log.value()->warn("w");
  CHECK(out_sink->text() == "2026-08-22T19:00:53.123456Z\twarn\tw\n");
}

TEST_CASE("istio log: a descriptor sink writes the record whole and leaves a borrowed descriptor open", "[istio_log]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  {
    FdLogSink sink(fds[1], /*owned=*/false);
    IstioLog(LogOptions{}, {std::shared_ptr<LogSink>(&sink, [](LogSink*) {})}, fixed_clock()).info("a\nb\n");
  }
  const std::string record = "2026-08-22T19:00:53.123456Z\tinfo\ta\nb\n\n";
  std::string got(record.size() + 16, '\0');
  const ssize_t n = ::read(fds[0], &got[0], got.size());  // the whole record, as written
  REQUIRE(n > 0);
  got.resize(static_cast<std::size_t>(n));
  CHECK(got == record);
  CHECK(::write(fds[1], "x", 1) == 1);  // still open
  ::close(fds[0]);
  ::close(fds[1]);
}
