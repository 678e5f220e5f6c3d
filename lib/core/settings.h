// Flags and environment -> a validated Config and run options.
//
// Istio's istio-iptables binds most flags to an environment variable (the flag's name, upper case,
// '-' -> '_'), some to a second "alias" variable that wins over the first, and the command line
// wins over both. This file holds that table once (kSettings), resolves each setting to its value
// and where the value came from, and turns the strings into typed values. Every problem is
// collected, each naming the flag or variable and the value, before anything is done.
//
// It is pure: the facts Istio reads from the machine (interface addresses for IPv6, resolv.conf,
// the passwd entry of ENVOY_USER) are asked through MachineFacts, which the system layer
// implements and tests fake.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/result.h"

namespace istio_iptables {

enum class SettingKind { String, Bool };

/// One flag of Istio's CLI (or of ours), with its environment binding.
struct SettingSpec {
  const char* name;        ///< long flag, without "--"
  const char* short_name;  ///< one letter or "" (no short flag)
  const char* env;         ///< primary environment variable or "" (none)
  const char* env_alias;   ///< alias variable that wins over `env`, or ""
  SettingKind kind;
  const char* default_value;
  const char* help;
  /// Istio's flags of older releases only: the last 1.MINOR that has the flag (0: every
  /// release). At later --compat releases (and `current`) the flag is unknown and its variable
  /// is not read (docs/releases.md).
  unsigned last_minor = 0;
  /// Istio's flags added after 1.22: the first 1.MINOR that has the flag (0: every release).
  /// At earlier --compat releases the flag is unknown and its variable is not read.
  unsigned first_minor = 0;
};

/// Every flag: Istio's (including those of older releases, known only at those --compat
/// releases), pilot-agent's logging flags, and ours.
const std::vector<SettingSpec>& setting_specs();

/// A resolved setting: its text and where it came from (for messages).
struct SettingValue {
  std::string value;
  std::string source;  ///< "--proxy-uid", "environment variable PROXY_UID" or "default"
  bool explicitly_set = false;
};

/// The options that steer a run rather than the rules.
struct RunOptions {
  bool dry_run = false;
  bool skip_rule_apply = false;
  bool run_validation = false;
  bool cleanup_only = false;
  bool native_nftables = false;  ///< Istio's native nftables mode (inet tables) instead of iptables
  std::uint16_t probe_port = 15002;
  std::uint32_t probe_timeout_ms = 5000;
  std::string network_namespace;
  std::string force_iptables_binary;  ///< "", "legacy" or "nft"
  std::string backend = "auto";       ///< "auto", "libiptc" or "restore"
  std::uint32_t wait_seconds = 30;    ///< for the xtables lock
  std::string against;                ///< check: a restore text to compare with instead
  /// Istio 1.22/1.23's --restore-format (true elsewhere): false made Istio run one iptables
  /// command a rule instead of iptables-restore. The rules are the same (docs/releases.md).
  bool restore_format = true;
  /// --reconcile and --force-apply (1.24 and later): they only choose Istio's log records here;
  /// every apply brings our rules to the plan in place (docs/differences.md).
  bool reconcile = false;
  bool force_apply = false;
  /// The xtables lock file: in CNI mode with a network namespace, that namespace's path (Istio's
  /// per-pod lock: pods set up at once do not wait on one another); otherwise empty (iptables'
  /// own: XTABLES_LOCKFILE or /run/xtables.lock).
  std::string lock_file;
};

struct Settings {
  Config config;
  RunOptions run;
  bool dual_stack = false;            ///< --dual-stack: IPv6 detection, and which address the probe uses
  std::vector<std::string> warnings;  ///< things a user should know (removed flags, DNS disabled)
};

/// The largest resolv.conf read (glibc's resolver reads a few kilobytes of it at most).
inline constexpr std::size_t kMaxResolvConfBytes = std::size_t{1} << 20;  // 1 MiB
/// The largest iptables-restore text `check --against` reads (the 10 000-port plan is ~1 MiB).
inline constexpr std::size_t kMaxRulesetTextBytes = std::size_t{16} << 20;  // 16 MiB

/// Where the machine's answers come from. The system layer reads the real machine.
class MachineFacts {
 public:
  virtual ~MachineFacts() = default;
  /// Istio's detection from interface addresses: is the pod's first address IPv6 (dual stack:
  /// does it have one at all)? An error when no usable address exists.
  virtual Result<bool> ipv6_enabled(bool dual_stack) = 0;
  /// The whole text of a regular file ("-": standard input), at most `max_bytes` of it. Anything
  /// else is an error naming the path and the cause: a directory, a device, a FIFO, a file larger
  /// than `max_bytes`, a failed read. Never an empty text in place of a failure.
  virtual Result<std::string> read_file(const std::string& path, std::size_t max_bytes) = 0;
  /// The UID of a user in the passwd file; nullopt when there is no such user; an error when the
  /// file exists but cannot be read (a read failure is not "no such user").
  virtual Result<std::optional<std::uint32_t>> user_id(const std::string& user) = 0;
};

/// A problem with the input. `usage` problems (bad values) exit 2; the others (the machine could
/// not answer: no resolv.conf, no address) exit 1.
struct SettingsError {
  std::vector<std::string> messages;
  bool usage = true;
};

/// Resolves every setting from the command line values (by long name; bools as "true"/"false"
/// etc.) and the environment, flag over alias over primary variable over default.
std::map<std::string, SettingValue> resolve_settings(const std::map<std::string, std::string>& command_line,
                                                     const std::map<std::string, std::string>& environment);

/// Validates and types the resolved settings; asks `facts` only what the flags leave open. Every
/// value is validated whether or not the other settings make it matter. With `detect_ipv6`
/// false (commands that do not depend on it, such as cleanup) IPv6 is never detected: `--ipv6
/// auto` then means off.
std::variant<Settings, SettingsError> build_settings(const std::map<std::string, SettingValue>& values,
                                                     const std::map<std::string, std::string>& environment,
                                                     MachineFacts& facts, bool detect_ipv6 = true);

/// The nameserver lines of a resolv.conf text, in order (as miekg/dns reads them).
std::vector<std::string> resolv_conf_nameservers(const std::string& text);

/// Go's strconv.ParseBool.
std::optional<bool> parse_go_bool(const std::string& text);

/// Go's time.ParseDuration, in milliseconds (rounded down); nullopt when not a duration, when
/// negative, or when beyond Go's limit (2^63-1 nanoseconds, about 292 years), as Go refuses it.
std::optional<std::uint64_t> parse_go_duration_ms(const std::string& text);

/// An interface name the kernel would accept and that is safe in every rendering.
bool valid_interface_name(const std::string& name);

}  // namespace istio_iptables
