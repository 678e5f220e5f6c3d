// Flags and environment: precedence, defaults and every refusal of bad input.
#include <catch2/catch.hpp>

#include "core/message.h"
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

TEST_CASE("settings: --compat maps every release from 1.22 on to its layout (docs/releases.md)") {
  CHECK(config({{"compat", "1.22"}}).layout == Layout::V1_22);
  CHECK(config({{"compat", "1.22.0"}}).layout == Layout::V1_22);
  CHECK(config({{"compat", "1.23"}}).layout == Layout::V1_23);
  CHECK(config({{"compat", "1.23.6"}}).layout == Layout::V1_23);
  CHECK(config({{"compat", "1.24"}}).layout == Layout::V1_24);
  CHECK(config({{"compat", "1.24.6"}}).layout == Layout::V1_24);
  CHECK(config({{"compat", "1.25"}}).layout == Layout::Current);
  CHECK(config({{"compat", "1.31.0-rc.0"}}).layout == Layout::Current);
  CHECK(config({{"compat", "current"}}).layout == Layout::Current);
}

namespace {
Settings settings_ok(const std::map<std::string, std::string>& flags, const std::map<std::string, std::string>& env) {
  FakeFacts facts;
  auto with_facts = flags;
  with_facts.emplace("ipv6", "off");
  auto r = settings(with_facts, env, facts);
  if (auto* e = std::get_if<SettingsError>(&r)) FAIL(e->messages.front());
  return std::get<Settings>(r);
}
}  // namespace

TEST_CASE("settings: --restore-format exists in 1.22 and 1.23 only, default true, with RESTORE_FORMAT") {
  // Istio 1.22/1.23: `-f, --restore-format` (default true), bound to RESTORE_FORMAT.
  CHECK(settings_ok({{"compat", "1.22"}}, {}).run.restore_format);
  CHECK_FALSE(settings_ok({{"compat", "1.23"}, {"restore-format", "false"}}, {}).run.restore_format);
  CHECK_FALSE(settings_ok({{"compat", "1.22.3"}}, {{"RESTORE_FORMAT", "false"}}).run.restore_format);
  // 1.24 removed it: an unknown flag there and later; the variable is then not read at all.
  for (const char* release : {"1.24", "1.25", "current"}) {
    INFO(release);
    auto messages = refusal({{"compat", release}, {"restore-format", "false"}, {"ipv6", "off"}});
    REQUIRE(messages.size() == 1);
    CHECK_THAT(messages.front(), Catch::Contains("--restore-format: unknown flag in"));
    CHECK(settings_ok({{"compat", release}}, {{"RESTORE_FORMAT", "not even a boolean"}}).run.restore_format);
  }
  CHECK_THAT(refusal({{"restore-format", "true"}, {"ipv6", "off"}}).front(),
             Catch::Contains("unknown flag in the current Istio release (removed in Istio 1.24; --compat 1.23"));
}

TEST_CASE("settings: the flags 1.24 and 1.28 added are unknown to earlier releases, their variables unread") {
  // §6: --reconcile, --cleanup-only, --force-apply are new in 1.24; --force-iptables-binary in 1.28.
  for (const char* flag : {"reconcile", "cleanup-only", "force-apply"}) {
    INFO(flag);
    auto messages = refusal({{"compat", "1.23"}, {flag, "true"}, {"ipv6", "off"}});
    REQUIRE(messages.size() == 1);
    CHECK_THAT(messages.front(), Catch::Contains(": unknown flag in Istio 1.23 (added in Istio 1.24)"));
    settings_ok({{"compat", "1.24"}, {flag, "true"}}, {});
  }
  CHECK_FALSE(settings_ok({{"compat", "1.22"}}, {{"CLEANUP_ONLY", "true"}}).run.cleanup_only);
  CHECK(settings_ok({{"compat", "1.24"}}, {{"CLEANUP_ONLY", "true"}}).run.cleanup_only);
  CHECK_THAT(refusal({{"compat", "1.27"}, {"force-iptables-binary", "nft"}, {"ipv6", "off"}}).front(),
             Catch::Contains("--force-iptables-binary: unknown flag in Istio 1.27 (added in Istio 1.28)"));
  CHECK(settings_ok({{"compat", "1.27"}}, {{"FORCE_IPTABLES_BINARY", "nft"}}).run.force_iptables_binary.empty());
  CHECK(settings_ok({{"compat", "1.28"}}, {{"FORCE_IPTABLES_BINARY", "nft"}}).run.force_iptables_binary == "nft");
  CHECK(settings_ok({}, {{"FORCE_IPTABLES_BINARY", "nft"}}).run.force_iptables_binary == "nft");
}

TEST_CASE("settings: --iptables-trace-logging exists up to 1.25, with IPTABLES_TRACE_LOGGING") {
  CHECK(settings_ok({{"compat", "1.22"}, {"iptables-trace-logging", "true"}}, {}).config.trace_logging);
  CHECK(settings_ok({{"compat", "1.24.6"}}, {{"IPTABLES_TRACE_LOGGING", "true"}}).config.trace_logging);
  CHECK_FALSE(settings_ok({{"compat", "1.23"}}, {}).config.trace_logging);
  // 1.25 still accepts it (the planner then generates nothing); 1.26 removed it.
  CHECK(settings_ok({{"compat", "1.25"}, {"iptables-trace-logging", "true"}}, {}).config.layout == Layout::Current);
  for (const char* release : {"1.26", "current"}) {
    INFO(release);
    auto messages = refusal({{"compat", release}, {"iptables-trace-logging", "true"}, {"ipv6", "off"}});
    REQUIRE(messages.size() == 1);
    CHECK_THAT(messages.front(), Catch::Contains("--iptables-trace-logging: unknown flag in"));
    CHECK_FALSE(settings_ok({{"compat", release}}, {{"IPTABLES_TRACE_LOGGING", "true"}}).config.trace_logging);
  }
  // Per-command application kept the Go quotes in the kernel's prefix; we say that we do not.
  auto s = settings_ok({{"compat", "1.23"}, {"restore-format", "false"}, {"iptables-trace-logging", "true"}}, {});
  REQUIRE(s.warnings.size() == 1);
  CHECK_THAT(s.warnings.front(), Catch::Contains("Go quotes"));
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
       "--kube-virt-interfaces: invalid item \"eth0\\n-A OUTPUT -j DROP\""},
      {{{"kube-virt-interfaces", "eth\t0"}}, {}, "invalid item \"eth\\t0\""},
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
      {{{"compat", "1.21"}}, {}, "--compat: invalid value \"1.21\": releases before 1.22 are not modeled"},
      {{{"compat", "1.9.8"}}, {}, "--compat: invalid value \"1.9.8\": releases before 1.22 are not modeled"},
      {{{"compat", "1.24"}, {"restore-format", "yes"}}, {}, "--restore-format: unknown flag in Istio 1.24"},
      {{{"compat", "1.23"}, {"restore-format", "yes"}}, {}, "--restore-format: invalid value \"yes\": not a boolean"},
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
      {{{"native-nftables", "true"}, {"compat", "1.26"}},
       {},
       "--compat: invalid value \"1.26\": Istio's native nftables mode exists from release 1.27 on"},
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

TEST_CASE("settings: a 400-digit or overflowing duration is a usage error naming the flag, not an abort") {
  auto m = refusal({{"ipv6", "off"}, {"probe-timeout", std::string(400, '9') + "s"}});
  REQUIRE(m.size() == 1);
  CHECK_THAT(m.front(), Catch::StartsWith("--probe-timeout: invalid value"));
  CHECK_THAT(m.front(), Catch::Contains("(201 more bytes)"));  // the value is cut, not echoed whole
  CHECK_FALSE(parse_go_duration_ms(std::string(400, '9') + "s").has_value());
  CHECK_FALSE(parse_go_duration_ms("9223372036854775808ns").has_value());  // 2^63 ns: Go's overflow
  CHECK_FALSE(parse_go_duration_ms("2562048h").has_value());
  CHECK(parse_go_duration_ms("9223372036854775807ns") == 9223372036854U);  // Go's largest duration
  CHECK(parse_go_duration_ms("2562047h") == 2562047ULL * 3600 * 1000);
  // Extra fraction digits are ignored, and Go's float64 step rounds 0.999999999999999999s up to 1s.
  CHECK(parse_go_duration_ms("0." + std::string(400, '9') + "s") == 1000U);
  CHECK(parse_go_duration_ms("0.9999s") == 999U);
}

TEST_CASE("settings: Go durations as time.ParseDuration reads them") {
  CHECK(parse_go_duration_ms("+5s") == 5000U);
  CHECK(parse_go_duration_ms(".5s") == 500U);
  CHECK(parse_go_duration_ms("5.s") == 5000U);
  CHECK(parse_go_duration_ms("1h2m3s4ms") == 3723004U);
  CHECK(parse_go_duration_ms("1500us") == 1U);
  CHECK(parse_go_duration_ms("1500\xc2\xb5s") == 1U);  // U+00B5
  CHECK(parse_go_duration_ms("1500\xce\xbcs") == 1U);  // U+03BC
  CHECK(parse_go_duration_ms("0") == 0U);
  CHECK(parse_go_duration_ms("-0") == 0U);
  for (const char* bad : {"", "-5s", ".s", "5..5s", "1.2.3s", "5d", "s5", "+", "5 s", "0x5s"})
    CHECK_FALSE(parse_go_duration_ms(bad).has_value());
}

TEST_CASE("settings: values are validated whether or not other settings make them matter") {
  // DNS capture off: --dns-servers is still an IP address list.
  auto m = refusal({{"ipv6", "off"}, {"dns-servers", "10.96.0.300"}});
  REQUIRE(m.size() == 1);
  CHECK_THAT(m.front(), Catch::Contains("--dns-servers: invalid item \"10.96.0.300\""));
  // Capture-all DNS: the servers are not used, and still validated.
  CHECK(
      refusal({{"ipv6", "off"}, {"redirect-dns", "true"}, {"capture-all-dns", "true"}, {"dns-servers", "x"}}).size() ==
      1);
  // The exclude list of owner groups counts only with include "*", and is validated anyway.
  auto g = refusal({{"ipv6", "off"}},
                   {{"ISTIO_OUTBOUND_OWNER_GROUPS", "java"}, {"ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", "bad group"}});
  REQUIRE(g.size() == 1);
  CHECK_THAT(g.front(), Catch::Contains("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: invalid item \"bad group\""));
  // --ipv6 is refused together with the other problems, not after them.
  CHECK(refusal({{"ipv6", "maybe"}, {"envoy-port", "x"}}).size() == 2);
  // resolv.conf is a file: standard input is not accepted for it, with or without DNS capture.
  auto r = refusal({{"ipv6", "off"}, {"resolv-conf", "-"}});
  REQUIRE(r.size() == 1);
  CHECK_THAT(r.front(), Catch::Contains("--resolv-conf: invalid value \"-\""));
}

TEST_CASE("settings: without IPv6 detection the machine is not asked about addresses") {
  FakeFacts facts;  // would answer "no valid local IP address found"
  auto r = build_settings(resolve_settings({}, {}), {}, facts, /*detect_ipv6=*/false);
  REQUIRE(std::holds_alternative<Settings>(r));
  CHECK(facts.ipv6_questions == 0);
  CHECK_FALSE(std::get<Settings>(r).config.enable_ipv6);  // --ipv6 auto without detection: off
  auto on = build_settings(resolve_settings({{"ipv6", "on"}}, {}), {}, facts, false);
  REQUIRE(std::holds_alternative<Settings>(on));
  CHECK(std::get<Settings>(on).config.enable_ipv6);  // as the flag says
  auto detected = build_settings(resolve_settings({}, {}), {}, facts);
  REQUIRE(std::holds_alternative<SettingsError>(detected));  // the default still detects
  CHECK(facts.ipv6_questions == 1);
}

TEST_CASE("settings: an unreadable resolv.conf is a machine failure, not DNS capture off") {
  FakeFacts facts;  // "/tmp" is no file of it: its read_file fails as the real one does for a directory
  auto r = settings({{"ipv6", "off"}, {"redirect-dns", "true"}, {"resolv-conf", "/tmp"}}, {}, facts);
  REQUIRE(std::holds_alternative<SettingsError>(r));
  const auto& e = std::get<SettingsError>(r);
  CHECK_FALSE(e.usage);
  CHECK_THAT(e.messages.front(), Catch::Contains("cannot read nameservers") && Catch::Contains("/tmp"));
  // resolv.conf is read with its own limit, 1 MiB.
  facts.files["/etc/resolv.conf"] = "nameserver 192.0.2.53\n";
  auto ok = settings({{"ipv6", "off"}, {"redirect-dns", "true"}}, {}, facts);
  REQUIRE(std::holds_alternative<Settings>(ok));
  CHECK(facts.last_max_bytes == std::size_t{1} << 20);
  facts.files["/etc/resolv.conf"] = std::string((std::size_t{1} << 20) + 1, '#');
  auto big = settings({{"ipv6", "off"}, {"redirect-dns", "true"}}, {}, facts);
  REQUIRE(std::holds_alternative<SettingsError>(big));
  CHECK_FALSE(std::get<SettingsError>(big).usage);
}

TEST_CASE("settings: bad nameserver lines give a few warnings, escaped, then a count") {
  FakeFacts facts;
  std::string text = "nameserver 192.0.2.53\nnameserver \x1b[31mred\x07\n";
  for (int i = 0; i < 2000000; ++i) text += "nameserver bogus\n";
  facts.files["/etc/resolv.conf"] = text;
  auto r = settings({{"ipv6", "off"}, {"redirect-dns", "true"}}, {}, facts);
  REQUIRE(std::holds_alternative<SettingsError>(r));  // 34 MB: over the 1 MiB limit
  text.resize(1000000);
  text = text.substr(0, text.rfind('\n') + 1);
  facts.files["/etc/resolv.conf"] = text;
  auto s = std::get<Settings>(settings({{"ipv6", "off"}, {"redirect-dns", "true"}}, {}, facts));
  REQUIRE(s.warnings.size() == 4);
  CHECK_THAT(s.warnings[0], Catch::Contains("\\x1b[31mred\\x07"));
  CHECK(s.warnings[0].find('\x1b') == std::string::npos);
  const std::size_t bad_lines = 1 + (text.size() - 43) / 17;  // the red one, then "nameserver bogus" lines
  CHECK_THAT(s.warnings[3], Catch::Contains("ignoring " + std::to_string(bad_lines - 3) + " more nameserver lines"));
  CHECK(s.config.dns_servers_v4.size() == 1);
}

TEST_CASE("settings: an unreadable passwd file is a failure, not \"no such user\"") {
  FakeFacts facts;
  facts.ipv6 = false;
  facts.passwd_error = "cannot read \"/etc/passwd\": Permission denied";
  auto r = settings({}, {}, facts);
  REQUIRE(std::holds_alternative<SettingsError>(r));
  CHECK_FALSE(std::get<SettingsError>(r).usage);
  CHECK_THAT(std::get<SettingsError>(r).messages.front(),
             Catch::Contains("istio-proxy") && Catch::Contains("Permission denied"));
  // A -u given needs no passwd file.
  CHECK(std::holds_alternative<Settings>(settings({{"proxy-uid", "1337"}}, {}, facts)));
}

TEST_CASE("messages: control bytes, broken UTF-8 and direction overrides are escaped, long values are cut") {
  CHECK(quoted_for_message("eth0") == "\"eth0\"");
  CHECK(quoted_for_message("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quoted_for_message("\n\t\r\x1b\x07\x7f") == "\"\\n\\t\\r\\x1b\\x07\\x7f\"");
  CHECK(quoted_for_message("caf\xc3\xa9") == "\"caf\xc3\xa9\"");       // well-formed UTF-8 stays
  CHECK(quoted_for_message("\xff\xc3") == "\"\\xff\\xc3\"");           // not UTF-8
  CHECK(quoted_for_message("\xc0\xaf") == "\"\\xc0\\xaf\"");           // overlong '/'
  CHECK(quoted_for_message("\xed\xa0\x80") == "\"\\xed\\xa0\\x80\"");  // a surrogate
  CHECK(quoted_for_message("\xc2\x9b") == "\"\\xc2\\x9b\"");           // C1 CSI
  CHECK(quoted_for_message("a\xe2\x80\xae"
                           "b") == "\"a\\xe2\\x80\\xaeb\"");  // right-to-left override
  const std::string big(1048576 + 200, 'x');
  CHECK(quoted_for_message(big) == "\"" + std::string(200, 'x') + "\"\xe2\x80\xa6 (1048576 more bytes)");
  // A cut never splits a character.
  CHECK(quoted_for_message("ab\xc3\xa9", 3) == "\"ab\"\xe2\x80\xa6 (2 more bytes)");
}
