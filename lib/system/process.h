// Running a program with a text on its standard input, collecting what it prints.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/result.h"

namespace istio_iptables {

struct ProcessResult {
  int exit_code = -1;  ///< -1 when it did not exit normally
  std::string out;
  std::string err;
};

/// Runs `argv` (argv[0] looked up in `path`) with `input` on stdin; the child's environment is
/// `environment` only. An error when it cannot be started at all.
Result<ProcessResult> run_process(const std::vector<std::string>& argv, const std::string& input,
                                  const std::map<std::string, std::string>& environment, const std::string& path);

}  // namespace istio_iptables
