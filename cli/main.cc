// istio-iptables: passes the real arguments, environment and machine to run_cli.
#include <iostream>

#include "app.h"
#include "system/host_facts.h"
#include "system/real_platform.h"

extern char** environ;

int main(int argc, char** argv) {
  istio_iptables::HostFacts facts;
  istio_iptables::CliContext context;
  context.facts = &facts;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) context.environment[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  istio_iptables::RealPlatform platform(context.environment);
  context.platform = &platform;
  std::vector<std::string> args(argv + 1, argv + argc);
  return istio_iptables::run_cli(std::move(args), context, std::cout, std::cerr);
}
