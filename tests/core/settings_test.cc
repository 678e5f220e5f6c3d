// Flags and environment: precedence, defaults and every refusal of bad input.
#include <catch2/catch.hpp>

#include "support.h"

using namespace istio_iptables;
using namespace istio_iptables::testing;

namespace {

std::variant<Settings, SettingsError> settings(const std::map<std::string, std::string>& flags,
                                               const std::map<std::string, std::string>& env, FakeFacts& facts) {
  return build_settings(resolve_settings(flags, env), env, facts);
}

Config config(const std::map<std::string, std::string>& flags, const std::map<std::string, std::string>& env = {}) {
  FakeFacts facts;
  auto flags_with_facts = flags;
  flags_with_facts.emplace("ipv6", "off");
  auto r = settings(flags_with_facts, env, facts);
  if (auto* e = std::get_if<SettingsError>(&r)) FAIL(e->messages.front());
  return std::get<Settings>(r).config;
}

std::vector<std::string> refusal(const std::map<std::string, std::string>& flags,
                                 const std::map<std::string, std::string>& env = {}) {
  FakeFacts facts;
  facts.ipv6 = false;
  auto r = settings(flags, env, facts);
  REQUIRE(std::holds_alternative<SettingsError>(r));
  CHECK(std::get<SettingsError>(r).usage);
  return std::get<SettingsError>(r).messages;
}

}  // namespace

TEST_CASE("settings: Istio's defaults") {
  FakeFacts facts;
  facts.ipv6 = false;
  auto r = settings({}, {}, facts);
  REQUIRE(std::holds_alternative<Settings>(r));
  const auto& c = std::get<Settings>(r).config;
  CHECK(c.proxy_port == 15001);
  CHECK(c.inbound_capture_port == 15006);
  CHECK(c.inbound_tunnel_port == 15008);
  CHECK(c.proxy_uids == std::vector<std::uint32_t>{1337});  // no istio-proxy user here
  CHECK(c.proxy_gids == std::vector<std::uint32_t>{1337});
  CHECK(c.tproxy_mark == 1337);
  CHECK(c.tproxy_route_table == 133);
  CHECK(c.mode == InterceptionMode::Redirect);
  CHECK(c.owner_groups.include_all);
  CHECK(format_prefix(c.ipv4_loopback_cidr) == "127.0.0.1/32");
  CHECK(c.layout == Layout::Current);
}

TEST_CASE("settings: the proxy UID defaults to ENVOY_USER's UID, and the GID to the UID list") {
  FakeFacts facts;
  facts.ipv6 = false;
  facts.users["envoy"] = 101;
  auto r = settings({}, {{"ENVOY_USER", "envoy"}}, facts);
  CHECK(std::get<Settings>(r).config.proxy_uids == std::vector<std::uint32_t>{101});
  CHECK(std::get<Settings>(r).config.proxy_gids == std::vector<std::uint32_t>{101});
  CHECK(config({{"proxy-uid", "3,4"}}).proxy_gids == std::vector<std::uint32_t>{3, 4});
}

TEST_CASE("settings: flag over alias variable over primary variable over default") {
  CHECK(config({}, {{"INBOUND_CAPTURE_PORT", "16006"}}).inbound_capture_port == 16006);
  CHECK(config({{"inbound-capture-port", "17006"}}, {{"INBOUND_CAPTURE_PORT", "16006"}}).inbound_capture_port == 17006);
  // Istio applies ISTIO_META_DNS_CAPTURE after REDIRECT_DNS: the alias wins.
  CHECK(config({}, {{"REDIRECT_DNS", "false"}, {"ISTIO_META_DNS_CAPTURE", "true"}, {"CAPTURE_ALL_DNS", "1"}})
            .redirect_dns);
  CHECK_FALSE(config({}, {{"REDIRECT_DNS", "true"}, {"ISTIO_META_DNS_CAPTURE", "false"}}).redirect_dns);
  CHECK_FALSE(config({{"redirect-dns", "false"}}, {{"ISTIO_META_DNS_CAPTURE", "true"}}).redirect_dns);
  CHECK(config({}, {{"INVALID_DROP", "T"}}).drop_invalid);
  // --envoy-port has no variable: ENVOY_PORT is only logged by Istio.
  CHECK(config({}, {{"ENVOY_PORT", "9999"}}).proxy_port == 15001);
}

TEST_CASE("settings: owner groups, present-but-empty include and exclude") {
  auto all = config({}, {{"ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", "888,ftp"}});
  CHECK(all.owner_groups.include_all);
  REQUIRE(all.owner_groups.exclude.size() == 2);
  CHECK(all.owner_groups.exclude[0].number == 888U);
  CHECK(all.owner_groups.exclude[1].name == "ftp");
  auto empty = config({}, {{"ISTIO_OUTBOUND_OWNER_GROUPS", ""}});
  CHECK_FALSE(empty.owner_groups.include_all);
  CHECK(empty.owner_groups.include.empty());
  // The exclude list only counts when the include list is "*".
  CHECK(config({}, {{"ISTIO_OUTBOUND_OWNER_GROUPS", "java"}, {"ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", "888"}})
            .owner_groups.exclude.empty());
}

TEST_CASE("settings: --compat maps releases to layouts") {
  CHECK(config({{"compat", "1.23"}}).layout == Layout::V1_24);
  CHECK(config({{"compat", "1.24.6"}}).layout == Layout::V1_24);
  CHECK(config({{"compat", "1.25"}}).layout == Layout::Current);
  CHECK(config({{"compat", "1.31.0-rc.0"}}).layout == Layout::Current);
  CHECK(config({{"compat", "current"}}).layout == Layout::Current);
}

TEST_CASE("settings: nameservers come from --dns-servers, else from resolv.conf") {
  FakeFacts facts;
  facts.files["/etc/resolv.conf"] = "search default.svc.cluster.local\nnameserver 10.96.0.10\n# nameserver "
                                    "1.1.1.1\nnameserver fd00::a\nnameserver bogus\noptions ndots:5\n";
  auto r = settings({{"ipv6", "off"}, {"redirect-dns", "true"}}, {}, facts);
  const auto& s = std::get<Settings>(r);
  REQUIRE(s.config.dns_servers_v4.size() == 1);
  CHECK(format_address(s.config.dns_servers_v4[0]) == "10.96.0.10");
  REQUIRE(s.config.dns_servers_v6.size() == 1);
  CHECK(s.warnings.size() == 1);  // the unparsable "bogus" is dropped, as Istio does, with a warning
  auto flagged = config({{"redirect-dns", "true"}, {"dns-servers", "192.0.2.53,::ffff:192.0.2.54"}});
  CHECK(flagged.dns_servers_v4.size() == 1);
  CHECK(flagged.dns_servers_v6.size() == 1);  // IPv4-mapped stays in the IPv6 list, as in Istio
}

TEST_CASE("settings: the machine is only asked what the flags leave open") {
  FakeFacts facts;
  auto r = settings({{"ipv6", "on"}, {"proxy-uid", "1337"}, {"redirect-dns", "true"}, {"dns-servers", ""}}, {}, facts);
  CHECK(std::holds_alternative<Settings>(r));
  CHECK(facts.questions == 0);
}

TEST_CASE("settings: a machine that cannot answer is a failure (exit 1), not a usage error") {
  FakeFacts facts;  // no address, no resolv.conf
  auto r = settings({{"redirect-dns", "true"}}, {}, facts);
  REQUIRE(std::holds_alternative<SettingsError>(r));
  const auto& e = std::get<SettingsError>(r);
  CHECK_FALSE(e.usage);
  CHECK_THAT(e.messages.front(), Catch::Contains("no valid local IP address found"));
  auto r2 = settings({{"redirect-dns", "true"}, {"ipv6", "off"}}, {}, facts);
  CHECK_THAT(std::get<SettingsError>(r2).messages.front(), Catch::Contains("/etc/resolv.conf"));
}

TEST_CASE("settings: bad input is refused, naming the flag or variable and the value") {
  struct Case {
    std::map<std::string, std::string> flags;
    std::map<std::string, std::string> env;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {{{"envoy-port", "0"}}, {}, "--envoy-port: invalid value \"0\": not a port number"},
      {{{"envoy-port", "65536"}}, {}, "--envoy-port: invalid value \"65536\""},
      {{{"inbound-capture-port", "15006x"}}, {}, "--inbound-capture-port: invalid value \"15006x\""},
      {{}, {{"INBOUND_TUNNEL_PORT", "-1"}}, "environment variable INBOUND_TUNNEL_PORT: invalid value \"-1\""},
      {{{"istio-inbound-ports", "80,http"}}, {}, "--istio-inbound-ports: invalid item \"http\" in \"80,http\""},
      {{{"istio-inbound-ports", "80,*"}}, {}, "'*' stands alone"},
      {{{"istio-local-exclude-ports", "70000"}}, {}, "--istio-local-exclude-ports: invalid item \"70000\""},
      {{{"istio-outbound-ports", "1:100"}}, {}, "--istio-outbound-ports: invalid item \"1:100\""},
      {{{"istio-local-outbound-ports-exclude", " 53"}},
       {},
       "--istio-local-outbound-ports-exclude: invalid item \" 53\""},
      {{{"istio-service-cidr", "10.0.0.0"}},
       {},
       "--istio-service-cidr: invalid item \"10.0.0.0\" in \"10.0.0.0\": not a CIDR"},
      {{{"istio-service-cidr", "*,10.0.0.0/8"}}, {}, "--istio-service-cidr: invalid item \"*\""},
      {{{"istio-service-exclude-cidr", "10.0.0.0/33"}},
       {},
       "--istio-service-exclude-cidr: invalid item \"10.0.0.0/33\""},
      {{{"istio-service-exclude-cidr", "*"}}, {}, "--istio-service-exclude-cidr: invalid value \"*\""},
      {{}, {{"ISTIO_EXCLUDE_INTERFACES", "eth0/1"}}, "invalid item \"eth0/1\""},
      {{{"istio-exclude-interfaces", "abcdefghijklmnop"}}, {}, "invalid item \"abcdefghijklmnop\""},
      {{{"istio-exclude-interfaces", "eth 0"}}, {}, "invalid item \"eth 0\""},
      {{{"kube-virt-interfaces", "eth0\n-A OUTPUT -j DROP"}},
       {},
       "--kube-virt-interfaces: invalid item \"eth0\\x0a-A OUTPUT -j DROP\""},
      {{{"kube-virt-interfaces", "eth\t0"}}, {}, "invalid item \"eth\\x090\""},
      {{{"kube-virt-interfaces", "-j"}}, {}, "invalid item \"-j\""},
      {{{"kube-virt-interfaces", "e+th"}}, {}, "invalid item \"e+th\""},
      {{{"proxy-uid", "root"}}, {}, "--proxy-uid: invalid item \"root\" in \"root\": not a numeric UID"},
      {{{"proxy-uid", "4294967295"}}, {}, "--proxy-uid: invalid item \"4294967295\""},
      {{{"proxy-gid", "1337,-1"}}, {}, "--proxy-gid: invalid item \"-1\""},
      {{{"istio-inbound-tproxy-mark", "0x539"}}, {}, "--istio-inbound-tproxy-mark: invalid value \"0x539\""},
      {{{"istio-inbound-tproxy-mark", "4294967296"}}, {}, "--istio-inbound-tproxy-mark: invalid value \"4294967296\""},
      {{{"istio-inbound-tproxy-route-table", "254"}}, {}, "--istio-inbound-tproxy-route-table: invalid value \"254\""},
      {{{"istio-inbound-tproxy-route-table", "0"}}, {}, "--istio-inbound-tproxy-route-table: invalid value \"0\""},
      {{{"istio-inbound-interception-mode", "tproxy"}},
       {},
       "--istio-inbound-interception-mode: invalid value \"tproxy\""},
      {{{"compat", "1.22"}}, {}, "--compat: invalid value \"1.22\": releases before 1.23"},
      {{{"compat", "2.0"}}, {}, "--compat: invalid value \"2.0\""},
      {{{"compat", "latest-ish"}}, {}, "--compat: invalid value \"latest-ish\""},
      {{{"ipv6", "maybe"}}, {}, "--ipv6: invalid value \"maybe\""},
      {{{"dry-run", "yes"}}, {}, "--dry-run: invalid value \"yes\": not a boolean"},
      {{},
       {{"ISTIO_META_DNS_CAPTURE", "enabled"}},
       "environment variable ISTIO_META_DNS_CAPTURE: invalid value \"enabled\""},
      {{{"probe-timeout", "5"}}, {}, "--probe-timeout: invalid value \"5\""},
      {{{"iptables-probe-port", "0"}}, {}, "--iptables-probe-port: invalid value \"0\""},
      {{{"force-iptables-binary", "nf_tables"}}, {}, "--force-iptables-binary: invalid value \"nf_tables\""},
      {{{"native-nftables", "true"}}, {}, "--native-nftables: the nftables backend is not implemented"},
      {{{"redirect-dns", "true"}, {"dns-servers", "10.96.0.10,dns.local"}},
       {},
       "--dns-servers: invalid item \"dns.local\""},
      {{},
       {{"ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR", "10.0.0.1/32"}},
       "environment variable ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: invalid value \"10.0.0.1/32\""},
      {{},
       {{"ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR", "127.0.0.1/7"}},
       "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: invalid value \"127.0.0.1/7\""},
      {{},
       {{"ISTIO_OUTBOUND_OWNER_GROUPS", "java,bad group"}},
       "ISTIO_OUTBOUND_OWNER_GROUPS: invalid item \"bad group\""},
      {{}, {{"ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", "-x"}}, "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: invalid item \"-x\""},
  };
  for (const auto& c : cases) {
    auto flags = c.flags;
    flags.emplace("ipv6", "off");
    INFO("expected: " << c.expected);
    auto messages = refusal(flags, c.env);
    REQUIRE(messages.size() == 1);
    CHECK_THAT(messages.front(), Catch::Contains(c.expected));
  }
}

TEST_CASE("settings: more than 64 owner groups are refused") {
  std::string groups;
  for (int i = 0; i < 65; ++i) groups += (i ? "," : "") + std::to_string(1000 + i);
  auto m = refusal({{"ipv6", "off"}}, {{"ISTIO_OUTBOUND_OWNER_GROUPS", groups}});
  CHECK_THAT(m.front(), Catch::Contains("65 groups given; at most 64"));
  groups = groups.substr(0, groups.rfind(','));
  CHECK(config({}, {{"ISTIO_OUTBOUND_OWNER_GROUPS", groups}}).owner_groups.include.size() == 64);
}

TEST_CASE("settings: every problem is reported at once") {
  auto m = refusal({{"ipv6", "off"}, {"envoy-port", "x"}, {"proxy-uid", "y"}, {"istio-service-cidr", "z"}});
  CHECK(m.size() == 3);
}

TEST_CASE("settings: Go durations") {
  CHECK(parse_go_duration_ms("5s") == 5000U);
  CHECK(parse_go_duration_ms("1m30s") == 90000U);
  CHECK(parse_go_duration_ms("1.5s") == 1500U);
  CHECK(parse_go_duration_ms("250ms") == 250U);
  CHECK_FALSE(parse_go_duration_ms("5").has_value());
  CHECK_FALSE(parse_go_duration_ms("s").has_value());
  CHECK_FALSE(parse_go_duration_ms("5 s").has_value());
}
