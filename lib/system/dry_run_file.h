// DRY_RUN_FILE_PATH: where Istio's stubbed iptables records what a dry run would have run.
#pragma once

#include <string>

#include "core/result.h"

namespace istio_iptables {

/// Writes `text` at offset 0 of the file at `path` as Istio's stub does: opened
/// O_CREAT|O_WRONLY, mode 0644 before the umask, neither truncated nor appended to (a longer
/// earlier file keeps its tail). An error names the path and the cause.
Status write_from_start(const std::string& path, const std::string& text);

}  // namespace istio_iptables
