// `istio-iptables explain`: where given packets go, and which rules sent them there.
//
// The CLI parses the configuration flags exactly as for apply and hands the flows here with the
// settings they produced; this file evaluates them against the plan or, with --installed,
// against the rules read back through the (read-only) platform.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/settings.h"
#include "istio_log.h"
#include "system/platform.h"

namespace istio_iptables {

/// The explain command's own flags.
struct ExplainRequest {
  std::vector<std::string> flows;  ///< each --flow, in the order given
  bool installed = false;          ///< evaluate against the rules in the namespace, not the plan
  bool json = false;               ///< one JSON object per flow per line
};

/// Runs explain; returns the exit code (0, 1 when the machine could not be read, 2 for a bad
/// flow). `platform` cannot write (the CLI passes a RecordingPlatform) and is null when the run
/// has no machine; `error` receives one message per problem.
int run_explain(const ExplainRequest& request, const Settings& settings, Platform* platform, LogSink& out,
                const std::function<void(const std::string&)>& error);

}  // namespace istio_iptables
