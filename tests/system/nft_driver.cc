// Drives the nf_tables store without the CLI, for the system tests and the benchmark:
//
//   nft_driver script CONFIG     print the nft script of CONFIG's plan (what `nft -f` would load)
//   nft_driver apply CONFIG      apply CONFIG's plan; prints "committed" or "unchanged"
//   nft_driver check CONFIG      print the differences, exit 1 when there are any
//   nft_driver cleanup           delete our tables
//
// CONFIG names a fixed configuration built in code, as tests/fixtures.h does: `sidecar` (the
// injected sidecar, IPv4), `sidecar-dns` (with DNS capture, both families), `tproxy` (TPROXY,
// both families, DNS, drop-invalid, excluded and kube-virt interfaces, port and CIDR lists).
// Exit codes: 0 success, 1 failure or differences, 2 usage.
#include <cstdio>
#include <cstring>
#include <string>

#include "core/nft_apply.h"
#include "core/nft_planner.h"
#include "core/nft_script.h"
#include "fixtures.h"
#include "system/nft_netlink_store.h"

namespace {

using namespace istio_iptables;

bool make_config(const std::string& name, Config& c) {
  c = testing::injected_sidecar();
  if (name == "sidecar") return true;
  c.redirect_dns = true;
  c.enable_ipv6 = true;
  c.dns_servers_v4 = {*parse_address("192.0.2.53")};
  c.dns_servers_v6 = {*parse_address("2001:db8::53")};
  if (name == "sidecar-dns") return true;
  if (name == "tproxy") {
    c.mode = InterceptionMode::Tproxy;
    c.drop_invalid = true;
    c.exclude_interfaces = {"eth2"};
    c.kube_virt_interfaces = {"eth1"};
    c.outbound_include.wildcard = false;
    c.outbound_include.prefixes = {*parse_prefix("198.51.100.0/24"), *parse_prefix("2001:db8:1::/48"),
                                   *parse_prefix("203.0.113.7/20")};
    c.outbound_exclude = {*parse_prefix("192.0.2.0/24"), *parse_prefix("2001:db8:2::/49")};
    c.outbound_ports_exclude = {3306};
    c.outbound_ports_include = {8080};
    return true;
  }
  return false;
}

int usage() {
  std::fprintf(stderr, "usage: nft_driver script|apply|check CONFIG | cleanup\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string command = argv[1];
  Config config;
  if (command != "cleanup" && (argc != 3 || !make_config(argv[2], config))) return usage();
  if (command == "script") {
    std::fputs(nft_script(plan_nft(config)).c_str(), stdout);
    return 0;
  }
  auto store = nft::NetlinkStore::open();
  if (!store) {
    std::fprintf(stderr, "error: %s\n", store.error().message.c_str());
    return 1;
  }
  if (command == "apply" || command == "cleanup") {
    auto outcome =
        command == "apply" ? nft::apply_nft(*store.value(), plan_nft(config)) : nft::cleanup_nft(*store.value());
    if (!outcome) {
      std::fprintf(stderr, "error: %s\n", outcome.error().message.c_str());
      return 1;
    }
    std::printf("%s (attempts %u)\n", outcome.value().committed ? "committed" : "unchanged", outcome.value().attempts);
    return 0;
  }
  if (command == "check") {
    auto diffs = nft::check_nft(*store.value(), plan_nft(config));
    if (!diffs) {
      std::fprintf(stderr, "error: %s\n", diffs.error().message.c_str());
      return 1;
    }
    for (const auto& d : diffs.value()) std::printf("%s\n", d.c_str());
    return diffs.value().empty() ? 0 : 1;
  }
  return usage();
}
