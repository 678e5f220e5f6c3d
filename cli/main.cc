// istio-iptables: passes the real arguments, environment and machine to run_cli.
//
// Standard output and error are file descriptors 1 and 2 written with write(2), one call per
// piece of text (FdLogSink), not std::cout and std::cerr: no translation unit of the executable
// includes <iostream>, so the process never sets up the C++ streams and their locales, which
// cost every start about 84 000 instructions and 22 page faults (docs/performance.md).
#include <exception>
#include <new>
#include <string>

#include "app.h"
#include "system/dry_run_file.h"
#include "system/host_facts.h"
#include "system/real_platform.h"

extern char** environ;

int main(int argc, char** argv) {
  istio_iptables::HostFacts facts;
  istio_iptables::CliContext context;
  context.facts = &facts;
  if (argc > 0 && argv[0] != nullptr) {
    std::string program(argv[0]);
    context.program_name = program.substr(program.find_last_of('/') + 1);
  }
  context.write_file_from_start = istio_iptables::write_from_start;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) context.environment[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  istio_iptables::RealPlatform platform(context.environment);
  context.platform = &platform;
  std::vector<std::string> args(argv + 1, argv + argc);
  // The last resort: expected failures are values, so anything thrown is a bug; it must still
  // end as a message and exit 1, never as an abort (exit 134) in a pod's init container.
  istio_iptables::FdLogSink out(1, /*owned=*/false);
  istio_iptables::FdLogSink err(2, /*owned=*/false);
  try {
    return istio_iptables::run_cli(args, context, out, err);
  } catch (const std::bad_alloc&) {
    err.write("error: out of memory\n");
  } catch (const std::exception& e) {
    err.write(std::string("error: internal error: ") + e.what() + "\n");
  } catch (...) {
    err.write("error: internal error: unknown exception\n");
  }
  return istio_iptables::exit_code::kFailure;
}
