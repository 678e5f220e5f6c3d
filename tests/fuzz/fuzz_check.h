// What every fuzz target shares: a property check that stops the run with a readable message.
//
// libFuzzer counts only crashes, so a broken property (a round trip that does not come back) must
// become one. FUZZ_CHECK prints the property and the values involved before abort(), so the
// regression input and the message together say what went wrong.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace istio_iptables::fuzz {

/// Stops the run: the property `what` does not hold; `detail` shows the values.
[[noreturn]] inline void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz property broken: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace istio_iptables::fuzz

#define FUZZ_CHECK(condition, detail)                                                                                  \
  do {                                                                                                                 \
    if (!(condition)) ::istio_iptables::fuzz::fail(#condition, (detail));                                              \
  } while (false)
