// The command line: Istio's flags in, a plan out (printed, applied, checked or cleaned up).
//
// The CLI is a thin shell over the library. `run_cli` takes the arguments, the environment and
// the machine's seams as values, so tests drive it in-process with an argument vector and fakes;
// `main` only passes the real ones and returns the exit code.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/command.h"
#include "core/settings.h"
#include "istio_log.h"
#include "system/platform.h"

namespace istio_iptables {

/// Exit codes, in one place. Istio's where callers depend on them.
namespace exit_code {
inline constexpr int kOk = 0;
inline constexpr int kFailure = 1;             ///< the machine refused or could not answer
inline constexpr int kUsage = 2;               ///< bad flags, values or environment; nothing was done
inline constexpr int kStateUnreadable = 3;     ///< check: the installed state could not be read
inline constexpr int kValidationFailed = 126;  ///< Istio's: the validation probe failed
}  // namespace exit_code

/// What the CLI needs from outside: the environment and the machine's seams.
struct CliContext {
  /// argv[0]'s last component: invoked as `istio-clean-iptables`, the command is cleanup.
  std::string program_name = "istio-iptables";
  std::map<std::string, std::string> environment;
  MachineFacts* facts = nullptr;
  Platform* platform = nullptr;
  /// Writes a file from offset 0 without truncating it (DRY_RUN_FILE_PATH); empty: no machine.
  std::function<Status(const std::string& path, const std::string& text)> write_file_from_start;
};

/// Runs one invocation (arguments without argv[0]); writes results to `out`, logs to `err`.
/// The first word may name a command: `apply` (the default), `check` or `cleanup`. With
/// `--dry-run`, and always for `check`, the run gets a platform that records instead of writing.
int run_cli(const std::vector<std::string>& args, CliContext& context, LogSink& out, LogSink& err);

}  // namespace istio_iptables
