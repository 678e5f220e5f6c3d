// Plans the sidecar Istio injects, through the installed core library, and prints its
// iptables-restore text: exactly what
//
//   istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' \
//     -d 15090,15021,15020 --ipv6 off --dry-run
//
// prints. An agent of your own (a CNI plugin, a node daemon) takes the same three steps: resolve
// the flags and environment into settings, plan, render (or hand the plan to its own backend).
// The library asks the machine nothing by itself: what it needs to know (interface addresses for
// IPv6 detection, resolv.conf for DNS capture, passwd for ENVOY_USER) it asks a MachineFacts the
// caller gives. This run settles all three by its flags, so its MachineFacts answers nothing.
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <variant>

#include <core/planner.h>
#include <core/restore_text.h>
#include <core/settings.h>

namespace {

// A machine that knows nothing: every question is an error, and no user exists.
class NoMachine : public istio_iptables::MachineFacts {
 public:
  istio_iptables::Result<bool> ipv6_enabled(bool /*dual_stack*/) override {
    return istio_iptables::Error{"this program reads no interface address"};
  }
  istio_iptables::Result<std::string> read_file(const std::string& path, std::size_t /*max_bytes*/) override {
    return istio_iptables::Error{"this program reads no file: " + path};
  }
  istio_iptables::Result<std::optional<std::uint32_t>> user_id(const std::string& /*user*/) override {
    return std::optional<std::uint32_t>{};
  }
};

}  // namespace

int main() {
  // The command line by long flag name, as the CLI would have parsed it.
  const std::map<std::string, std::string> flags = {
      {"envoy-port", "15001"},
      {"inbound-capture-port", "15006"},
      {"proxy-uid", "1337"},
      {"istio-inbound-interception-mode", "REDIRECT"},
      {"istio-service-cidr", "*"},
      {"istio-service-exclude-cidr", ""},
      {"istio-inbound-ports", "*"},
      {"istio-local-exclude-ports", "15090,15021,15020"},
      {"ipv6", "off"},
  };
  const std::map<std::string, std::string> environment;  // none: the flags say it all
  NoMachine machine;
  auto built =
      istio_iptables::build_settings(istio_iptables::resolve_settings(flags, environment), environment, machine);
  if (auto* problems = std::get_if<istio_iptables::SettingsError>(&built)) {
    for (const auto& message : problems->messages) std::cerr << "error: " << message << "\n";
    return 2;
  }
  const auto& settings = std::get<istio_iptables::Settings>(built);
  std::cout << istio_iptables::dry_run_text(istio_iptables::plan(settings.config));
  return 0;
}
