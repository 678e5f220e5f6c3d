// istio-iptables: passes the real arguments, environment and machine to run_cli.
#include <exception>
#include <iostream>
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
  try {
    return istio_iptables::run_cli(args, context, std::cout, std::cerr);
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << std::string("error: internal error: ") + e.what() + "\n";
  } catch (...) {
    std::cerr << "error: internal error: unknown exception\n";
  }
  return istio_iptables::exit_code::kFailure;
}
