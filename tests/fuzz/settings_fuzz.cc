// Fuzz target: settings from flags, environment and resolv.conf (resolve_settings, build_settings,
// resolv_conf_nameservers).
//
// One input holds all three, as text, so that the catalogue's args and env files are seeds:
//
//   one argument a line: --flag, value, -x, --flag=value   (until a line "%env")
//   %env
//   NAME=value                                            (one a line, until "%resolv")
//   %resolv
//   the resolv.conf text that the fake machine returns for any path
//
// Arguments are matched against setting_specs() by long or short name, as the
// CLI does (a boolean flag takes "=value" or nothing). The fake machine answers from the input, so
// the fuzzer also explores its answers: "%no-address" makes IPv6 detection fail, "%ipv6" makes
// it find IPv6, "%no-resolv" makes the file unreadable. Properties: no crash, no undefined
// behaviour; every problem has a message; a built configuration never names a nameserver that
// resolv.conf parsing and --dns-servers did not supply.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "core/address.h"
#include "core/settings.h"
#include "fuzz_check.h"

namespace {

using namespace istio_iptables;

class FakeMachine final : public MachineFacts {
 public:
  bool has_address = true;
  bool ipv6 = false;
  bool readable = true;
  std::string resolv_conf;

  Result<bool> ipv6_enabled(bool) override {
    if (!has_address) return Error{"no valid local IP address found"};
    return ipv6;
  }
  Result<std::string> read_file(const std::string& path, std::size_t max_bytes) override {
    if (!readable) return Error{"cannot read " + path + ": permission denied"};
    if (resolv_conf.size() > max_bytes) return Error{path + " is larger than the limit"};
    return resolv_conf;
  }
  Result<std::optional<std::uint32_t>> user_id(const std::string& user) override {
    if (user == "istio-proxy") return std::optional<std::uint32_t>(1337);
    if (user == "unreadable") return Error{"cannot read /etc/passwd: permission denied"};
    if (user.empty() || user.size() > 16) return std::optional<std::uint32_t>();
    return std::optional<std::uint32_t>(static_cast<std::uint32_t>(user.size()));
  }
};

const SettingSpec* find_spec(const std::string& flag) {
  for (const auto& spec : setting_specs()) {
    if (flag.size() > 2 && flag.compare(0, 2, "--") == 0 && flag.substr(2) == spec.name) return &spec;
    if (flag.size() == 2 && flag[0] == '-' && *spec.short_name != '\0' && flag.substr(1) == spec.short_name)
      return &spec;
  }
  return nullptr;
}

std::map<std::string, std::string> command_line_of(const std::string& text) {
  std::istringstream lines(text);
  std::vector<std::string> tokens;
  for (std::string line; std::getline(lines, line);) tokens.push_back(line);
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    std::string flag = tokens[i];
    std::optional<std::string> value;
    if (auto eq = flag.find('='); eq != std::string::npos && flag.compare(0, 2, "--") == 0) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    const SettingSpec* spec = find_spec(flag);
    if (spec == nullptr) continue;
    if (!value && spec->kind == SettingKind::String && i + 1 < tokens.size()) value = tokens[++i];
    out[spec->name] = value.value_or("true");
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  FakeMachine machine;
  std::string flags = input, env, resolv;
  if (auto e = input.find("%env\n"); e != std::string::npos) {
    flags = input.substr(0, e);
    env = input.substr(e + 5);
  }
  if (auto r = env.find("%resolv\n"); r != std::string::npos) {
    resolv = env.substr(r + 8);
    env.resize(r);
  }
  machine.has_address = input.find("%no-address") == std::string::npos;
  machine.ipv6 = input.find("%ipv6") != std::string::npos;
  machine.readable = input.find("%no-resolv") == std::string::npos;
  machine.resolv_conf = resolv;

  std::map<std::string, std::string> environment;
  std::istringstream lines(env);
  for (std::string line; std::getline(lines, line);)
    if (auto eq = line.find('='); eq != std::string::npos && eq > 0)
      environment[line.substr(0, eq)] = line.substr(eq + 1);

  const auto nameservers = resolv_conf_nameservers(resolv);
  for (const auto& ns : nameservers) FUZZ_CHECK(!ns.empty(), "an empty nameserver from resolv.conf");

  const auto resolved = resolve_settings(command_line_of(flags), environment);
  auto built = build_settings(resolved, environment, machine);
  if (const auto* problems = std::get_if<SettingsError>(&built)) {
    FUZZ_CHECK(!problems->messages.empty(), "a settings error without a message");
    for (const auto& m : problems->messages) FUZZ_CHECK(!m.empty(), "an empty error message");
    return 0;
  }
  // Every nameserver captured came from resolv.conf or from --dns-servers.
  std::vector<Address> offered;
  for (const auto& ns : nameservers)
    if (auto a = parse_address(ns)) offered.push_back(*a);
  if (auto it = resolved.find("dns-servers"); it != resolved.end()) {
    std::istringstream list(it->second.value);
    for (std::string item; std::getline(list, item, ',');) {
      const auto first = item.find_first_not_of(" \t");
      const auto last = item.find_last_not_of(" \t");
      if (first == std::string::npos) continue;
      if (auto a = parse_address(item.substr(first, last - first + 1))) offered.push_back(*a);
    }
  }
  const auto& config = std::get<Settings>(built).config;
  for (const auto* servers : {&config.dns_servers_v4, &config.dns_servers_v6})
    for (const auto& server : *servers) {
      bool found = false;
      for (const auto& a : offered) found = found || a == server;
      FUZZ_CHECK(found, "nameserver " + format_address(server) + " came from nowhere");
    }
  return 0;
}
