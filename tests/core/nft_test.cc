// Native nftables mode: the planner and the script renderer against Istio's own golden files.
//
// The expected texts come from outside this code: Istio's nftables golden files
// (../shared/conformance/istio/nftables, one per case of cases.tsv), and the worked examples and
// quirks Q1-Q15 of docs/nftables.md, whose texts are those golden files' and the kernel's
// listings, not this code's output. Each golden case is configured the way our CLI would
// configure it: the flags of rules/istio-<case>/args (the same cases, in our CLI's syntax) and its
// env file go through resolve_settings and build_settings with facts that answer nothing.
//
// With NFT_OUT set to a directory, the golden-case test also writes our script for each case
// (<case>.nft), and a few scenarios of our own that have no golden file (own-<name>.nft), for
// tests/conformance/nft_conformance.py to load into the kernel.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/nft_planner.h"
#include "core/nft_script.h"
#include "support.h"
#include "system/nft_netlink_store.h"

namespace fs = std::filesystem;
using namespace istio_iptables;
using namespace istio_iptables::testing;

namespace {

const fs::path kShared = fs::path(ISTIO_IPTABLES_SOURCE_DIR) / ".." / "shared" / "conformance" / "istio";

// The case names of cases.tsv, in file order.
std::vector<std::string> case_names() {
  std::vector<std::string> names;
  std::istringstream lines(read_text((kShared / "cases.tsv").string()));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    names.push_back(line.substr(0, line.find('\t')));
  }
  return names;
}

// Our CLI's arguments as resolve_settings takes them: long name -> value, the last one winning,
// bool flags "true" unless given "--flag=value".
std::map<std::string, std::string> command_line(const std::vector<std::string>& words) {
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    REQUIRE(w.size() >= 2);
    REQUIRE(w[0] == '-');
    std::string name = w[1] == '-' ? w.substr(2) : w.substr(1);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const SettingSpec* spec = nullptr;
    for (const auto& s : setting_specs())
      if ((w[1] == '-' && name == s.name) || (w[1] != '-' && name == s.short_name)) spec = &s;
    INFO("flag " << w);
    REQUIRE(spec != nullptr);
    if (inline_value)
      out[spec->name] = *inline_value;
    else if (spec->kind == SettingKind::Bool)
      out[spec->name] = "true";
    else {
      REQUIRE(i + 1 < words.size());
      out[spec->name] = words[++i];
    }
  }
  return out;
}

// The Config our CLI builds for a catalogue scenario (rules/NAME: args, optional env).
Config scenario_config(const std::string& name) {
  const fs::path dir = fs::path(ISTIO_IPTABLES_SOURCE_DIR) / "rules" / name;
  REQUIRE(fs::exists(dir / "args"));
  std::map<std::string, std::string> env;
  if (fs::exists(dir / "env")) {
    std::istringstream lines(read_text((dir / "env").string()));
    std::string line;
    while (std::getline(lines, line))
      if (auto eq = line.find('='); eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  FakeFacts facts;  // answers nothing: the scenario gives --ipv6 and --dns-servers
  auto built =
      build_settings(resolve_settings(command_line(shell_words(read_text((dir / "args").string()))), env), env, facts);
  if (auto* problems = std::get_if<SettingsError>(&built)) {
    for (const auto& m : problems->messages) UNSCOPED_INFO(m);
    FAIL("settings refused rules/" << name);
  }
  return std::get<Settings>(built).config;
}

// Istio's golden test harness base: -p 15001 -z 15006 -e 15008 -u 1337 -g 1337 -t 1337 -r 133,
// REDIRECT, IPv4 only, no DNS servers.
Config base_config() {
  Config c;
  c.proxy_uids = {1337};
  c.proxy_gids = {1337};
  return c;
}

Address addr(const char* text) {
  auto a = parse_address(text);
  REQUIRE(a);
  return *a;
}

Prefix prefix(const char* text) {
  auto p = parse_prefix(text);
  REQUIRE(p);
  return *p;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

bool has_line(const std::string& script, const std::string& line) {
  auto all = lines_of(script);
  return std::find(all.begin(), all.end(), line) != all.end();
}

// The rules `chain` of `table` holds after the transaction, as text.
std::vector<std::string> final_chain(const NftRuleset& rs, const char* table, const char* chain) {
  const nft::Table* t = rs.find(table);
  REQUIRE(t != nullptr);
  std::vector<std::string> out;
  for (const auto& r : nft::chain_rules(*t, chain)) out.push_back(nft_rule_text(r));
  return out;
}

// Scenarios of our own for the kernel check: no golden file, but nft must accept each of them.
std::map<std::string, Config> own_scenarios() {
  std::map<std::string, Config> out;
  {  // Q6: an IPv4-only pod whose only nameserver is IPv6 (Istio's transaction fails here)
    Config c = base_config();
    c.redirect_dns = true;
    c.dns_servers_v6 = {addr("2001:db8::53")};
    out["own-ipv4-pod-ipv6-nameserver"] = c;
  }
  {  // TPROXY, dual stack, every list: excluded and kube-virt NICs, ports, CIDRs of both families
    Config c = base_config();
    c.mode = InterceptionMode::Tproxy;
    c.enable_ipv6 = true;
    c.inbound_ports.wildcard = true;
    c.inbound_ports_exclude = {15090, 15021};
    c.exclude_interfaces = {"eth9"};
    c.kube_virt_interfaces = {"eth1", "eth2"};
    c.outbound_include.prefixes = {prefix("192.0.2.0/24"), prefix("2001:db8::/32")};
    c.outbound_exclude = {prefix("198.51.100.7/32"), prefix("2001:db8:1::/48")};
    c.outbound_ports_exclude = {8080};
    c.outbound_ports_include = {9090};
    c.drop_invalid = true;
    c.redirect_dns = true;
    c.dns_servers_v4 = {addr("192.0.2.53")};
    c.dns_servers_v6 = {addr("2001:db8::53")};
    out["own-tproxy-dual-stack-everything"] = c;
  }
  {  // capture-all DNS, dual stack, wildcard include with kube-virt NICs
    Config c = base_config();
    c.enable_ipv6 = true;
    c.redirect_dns = true;
    c.capture_all_dns = true;
    c.outbound_include.wildcard = true;
    c.kube_virt_interfaces = {"eth1", "eth2"};
    c.inbound_ports.wildcard = true;
    c.inbound_ports_exclude = {15090};
    out["own-capture-all-dns-dual-stack"] = c;
  }
  {  // TPROXY with no inbound ports: the head inserts of istio-inbound become appends (#58135)
    Config c = base_config();
    c.mode = InterceptionMode::Tproxy;
    c.enable_ipv6 = true;
    out["own-tproxy-no-inbound-ports"] = c;
  }
  return out;
}

}  // namespace

TEST_CASE("nft: every golden case of cases.tsv is Istio's script byte for byte") {
  const auto names = case_names();
  REQUIRE(names.size() == 20);
  // Every golden file is a case of cases.tsv, so none is silently skipped.
  std::size_t goldens = 0;
  for (const auto& entry : fs::directory_iterator(kShared / "nftables"))
    if (entry.path().extension() == ".golden") {
      ++goldens;
      CHECK(std::count(names.begin(), names.end(), entry.path().stem().string()) == 1);
    }
  CHECK(goldens == names.size());

  const char* out_dir = std::getenv("NFT_OUT");
  if (out_dir != nullptr) fs::create_directories(out_dir);
  for (const auto& name : names) {
    SECTION(name) {
      const std::string script = nft_script(plan_nft(scenario_config("istio-" + name)));
      std::string golden = read_text((kShared / "nftables" / (name + ".golden")).string());
      REQUIRE(!golden.empty());
      if (name == "dns-uid-gid") {
        // Q14: Istio's test injects the nameserver string "::127.0.0.53" verbatim; a real run
        // (and ours) prints the address as Go's netip does, "::7f00:35". Same address.
        std::string from = "::127.0.0.53/", to = "::7f00:35/";
        for (auto pos = golden.find(from); pos != std::string::npos; pos = golden.find(from, pos + to.size()))
          golden.replace(pos, from.size(), to);
      }
      if (out_dir != nullptr) std::ofstream(fs::path(out_dir) / (name + ".nft"), std::ios::binary) << script;
      CHECK(script == golden);
    }
  }
  if (out_dir != nullptr)
    for (const auto& [name, config] : own_scenarios())
      std::ofstream(fs::path(out_dir) / (name + ".nft"), std::ios::binary) << nft_script(plan_nft(config));
}

// ---- the worked examples of docs/nftables.md (Istio's golden cases) -----------------------------

TEST_CASE("nft: the empty case is the nineteen lines of Istio's golden file") {
  const std::string expected =
      "add table inet istio-proxy-nat\n"
      "flush table inet istio-proxy-nat\n"
      "add chain inet istio-proxy-nat output { type nat hook output priority -100 ; }\n"
      "add chain inet istio-proxy-nat istio-inbound\n"
      "add chain inet istio-proxy-nat istio-redirect\n"
      "add chain inet istio-proxy-nat istio-in-redirect\n"
      "add chain inet istio-proxy-nat istio-output\n"
      "add rule inet istio-proxy-nat istio-inbound meta l4proto tcp tcp dport 15008 counter return\n"
      "add rule inet istio-proxy-nat istio-redirect meta l4proto tcp counter redirect to :15001\n"
      "add rule inet istio-proxy-nat istio-in-redirect meta l4proto tcp counter redirect to :15006\n"
      "add rule inet istio-proxy-nat output counter jump istio-output\n"
      "add rule inet istio-proxy-nat istio-output oifname lo ip saddr 127.0.0.6/32 counter return\n"
      "add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != "
      "15008 skuid 1337 counter jump istio-in-redirect\n"
      "add rule inet istio-proxy-nat istio-output oifname lo skuid != 1337 counter return\n"
      "add rule inet istio-proxy-nat istio-output skuid 1337 counter return\n"
      "add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != "
      "15008 skgid 1337 counter jump istio-in-redirect\n"
      "add rule inet istio-proxy-nat istio-output oifname lo skgid != 1337 counter return\n"
      "add rule inet istio-proxy-nat istio-output skgid 1337 counter return\n"
      "add rule inet istio-proxy-nat istio-output ip daddr 127.0.0.1/32 counter return\n";
  CHECK(nft_script(plan_nft(base_config())) == expected);
}

TEST_CASE("nft: dns-uid-gid uses the port set for UIDs only, one DNS jump and raw zones after nat") {
  Config c = base_config();
  c.redirect_dns = true;
  c.proxy_uids = {3, 4};
  c.proxy_gids = {1, 2};
  c.enable_ipv6 = true;
  c.dns_servers_v4 = {addr("127.0.0.53")};
  c.dns_servers_v6 = {addr("2001:db8::53")};
  const auto script = nft_script(plan_nft(c));
  const auto lines = lines_of(script);
  REQUIRE(lines.size() == 57);
  CHECK(lines[14] ==
        "add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != "
        "{ 53, 15008 } skuid 3 counter jump istio-in-redirect");
  CHECK(lines[16] ==
        "add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp tcp dport != 53 skuid != 3 counter "
        "return");
  CHECK(lines[22] ==
        "add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != "
        "15008 skgid 1 counter jump istio-in-redirect");
  CHECK(lines[30] == "add rule inet istio-proxy-nat istio-output counter jump istio-output-dns");
  CHECK(std::count(lines.begin(), lines.end(), lines[30]) == 1);  // one family-neutral jump
  CHECK(lines[32] ==
        "add rule inet istio-proxy-nat istio-output-dns ip6 daddr 2001:db8::53/128 tcp dport 53 counter redirect to "
        ":15053");
  CHECK(lines[37] == "add table inet istio-proxy-raw");
  CHECK(lines[39] == "add chain inet istio-proxy-raw prerouting { type filter hook prerouting priority -300 ; }");
  CHECK(lines[43] == "add rule inet istio-proxy-raw output counter jump istio-output-dns");
  CHECK(lines[52] == "add rule inet istio-proxy-raw prerouting counter jump istio-inbound");
  CHECK(lines[53] ==
        "add rule inet istio-proxy-raw istio-output-dns udp dport 53 ip daddr 127.0.0.53/32 counter ct zone set 2");
  CHECK(lines[56] ==
        "add rule inet istio-proxy-raw istio-inbound udp sport 53 ip6 saddr 2001:db8::53/128 counter ct zone set 1");
}

TEST_CASE("nft: inbound-ports-tproxy puts the marks in mangle and the kernel order is R19's head, then R7") {
  Config c = base_config();
  c.mode = InterceptionMode::Tproxy;
  c.inbound_ports.ports = {32000, 31000};
  const auto rs = plan_nft(c);
  const auto script = nft_script(rs);
  CHECK(has_line(script, "add chain inet istio-proxy-mangle output { type route hook output priority -150 ; }"));
  CHECK(has_line(script,
                 "add rule inet istio-proxy-mangle istio-tproxy meta l4proto tcp ip daddr != 127.0.0.1/32 tproxy ip to "
                 ":15006 meta mark set 1337 counter accept"));
  CHECK(has_line(script,
                 "add rule inet istio-proxy-mangle prerouting meta l4proto tcp mark 1337 counter ct mark set mark"));
  CHECK(has_line(
      script, "add rule inet istio-proxy-mangle output meta l4proto tcp ct mark 1337 counter meta mark set ct mark"));
  CHECK(has_line(script,
                 "insert rule inet istio-proxy-mangle istio-inbound index 2 iifname lo meta l4proto tcp mark != "
                 "1338 counter return"));
  // What the kernel holds in istio-inbound (docs/nftables.md, worked example inbound-ports-tproxy),
  // in Istio's spelling.
  CHECK(final_chain(rs, nft::kMangleTable, nft::kInboundChain) ==
        std::vector<std::string>{
            "meta l4proto tcp mark 1337 counter return",
            "iifname lo meta l4proto tcp ip saddr 127.0.0.6/32 counter return",
            "iifname lo meta l4proto tcp mark != 1338 counter return",
            "meta l4proto tcp ct state related,established tcp dport 32000 counter jump istio-divert",
            "meta l4proto tcp tcp dport 32000 counter jump istio-tproxy",
            "meta l4proto tcp ct state related,established tcp dport 31000 counter jump istio-divert",
            "meta l4proto tcp tcp dport 31000 counter jump istio-tproxy",
        });
  // nat is untouched by TPROXY: no prerouting declared (nothing to capture there).
  CHECK_FALSE(
      has_line(script, "add chain inet istio-proxy-nat prerouting { type nat hook prerouting priority -100 ; }"));
}

TEST_CASE("nft: ipv6-dns-uid-gid: --redirect-dns without nameservers leaves no trace of DNS") {
  Config c = base_config();
  c.proxy_uids = {3, 4};
  c.proxy_gids = {1, 2};
  c.enable_ipv6 = true;
  Config dns = c;
  dns.redirect_dns = true;
  const auto script = nft_script(plan_nft(dns));
  CHECK(script == nft_script(plan_nft(c)));
  CHECK(script.find("istio-output-dns") == std::string::npos);
  CHECK(script.find("istio-proxy-raw") == std::string::npos);
  CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output oifname lo skuid != 3 counter return"));
}

TEST_CASE("nft: outbound-owner-groups: an include list of owner groups is one rule of negated skgid matches") {
  Config c = base_config();
  c.owner_groups.include_all = false;
  c.owner_groups.include = {OwnerId{std::nullopt, "java"}, OwnerId{202, {}}};
  const auto lines = lines_of(nft_script(plan_nft(c)));
  REQUIRE(lines.size() == 20);
  CHECK(lines[18] == "add rule inet istio-proxy-nat istio-output skgid != java skgid != 202 counter return");
  CHECK(lines[19] == "add rule inet istio-proxy-nat istio-output ip daddr 127.0.0.1/32 counter return");
}

TEST_CASE("nft: drop-invalid is TCP only, in a mangle table written after nat") {
  Config c = base_config();
  c.drop_invalid = true;
  const auto lines = lines_of(nft_script(plan_nft(c)));
  REQUIRE(lines.size() == 25);
  CHECK(std::vector<std::string>(lines.begin() + 19, lines.end()) ==
        std::vector<std::string>{
            "add table inet istio-proxy-mangle",
            "flush table inet istio-proxy-mangle",
            "add chain inet istio-proxy-mangle prerouting { type filter hook prerouting priority -150 ; }",
            "add chain inet istio-proxy-mangle istio-drop",
            "add rule inet istio-proxy-mangle prerouting meta l4proto tcp ct state invalid counter jump istio-drop",
            "add rule inet istio-proxy-mangle istio-drop counter drop",
        });
}

// ---- the quirks of docs/nftables.md -------------------------------------------------------------

TEST_CASE("nft: Q2 a table without rules is not in the transaction at all") {
  const auto rs = plan_nft(base_config());
  REQUIRE(rs.tables.size() == 1);
  CHECK(rs.tables[0].name == "istio-proxy-nat");
  CHECK(rs.find(nft::kMangleTable) == nullptr);
  CHECK(rs.find(nft::kRawTable) == nullptr);
}

TEST_CASE("nft: Q3 tables are written nat, mangle, raw whatever the generation order") {
  Config c = base_config();
  c.drop_invalid = true;  // N3 is generated before N4
  c.redirect_dns = true;  // N14's raw rules are generated between nat rules
  c.dns_servers_v4 = {addr("192.0.2.53")};
  const auto rs = plan_nft(c);
  REQUIRE(rs.tables.size() == 3);
  CHECK(rs.tables[0].name == "istio-proxy-nat");
  CHECK(rs.tables[1].name == "istio-proxy-mangle");
  CHECK(rs.tables[2].name == "istio-proxy-raw");
}

TEST_CASE("nft: Q4 kube-virt inserts end in reverse order at the head of nat prerouting") {
  Config c = base_config();
  c.kube_virt_interfaces = {"eth1", "eth2"};
  c.outbound_include.prefixes = {prefix("10.0.0.0/8")};
  const auto rs = plan_nft(c);
  const auto script = nft_script(rs);
  // The first insert into the empty chain is an append.
  CHECK(has_line(script, "add rule inet istio-proxy-nat prerouting iifname eth1 counter return"));
  CHECK(has_line(script, "insert rule inet istio-proxy-nat prerouting index 0 iifname eth2 counter return"));
  // The kernel lists eth2-redirect, eth1-redirect, eth2-return, eth1-return.
  CHECK(final_chain(rs, nft::kNatTable, nft::kPrerouting) ==
        std::vector<std::string>{
            "iifname eth2 ip daddr 10.0.0.0/8 counter jump istio-redirect",
            "iifname eth1 ip daddr 10.0.0.0/8 counter jump istio-redirect",
            "iifname eth2 counter return",
            "iifname eth1 counter return",
        });
}

TEST_CASE("nft: Q4 inserts past the end of a chain become appends (TPROXY without inbound ports, #58135)") {
  Config c = base_config();
  c.mode = InterceptionMode::Tproxy;
  const auto script = nft_script(plan_nft(c));
  CHECK(script.find("insert rule") == std::string::npos);
  CHECK(has_line(script, "add rule inet istio-proxy-mangle istio-inbound meta l4proto tcp mark 1337 counter return"));
  CHECK(has_line(script, "add rule inet istio-proxy-mangle istio-inbound iifname lo meta l4proto tcp ip saddr "
                         "127.0.0.6/32 counter return"));
  CHECK(has_line(script, "add rule inet istio-proxy-mangle istio-inbound iifname lo meta l4proto tcp mark != 1338 "
                         "counter return"));
  // Nothing jumps to mangle istio-inbound, yet it is declared (it has rules); no prerouting jump.
  CHECK(has_line(script, "add chain inet istio-proxy-mangle istio-inbound"));
  CHECK_FALSE(
      has_line(script, "add rule inet istio-proxy-mangle prerouting meta l4proto tcp counter jump istio-inbound"));
}

TEST_CASE("nft: Q5 twins inserted at one index end up IPv6 first with the next insert between them") {
  Config c = base_config();
  c.mode = InterceptionMode::Tproxy;
  c.enable_ipv6 = true;
  c.inbound_ports.ports = {8080};
  const auto rs = plan_nft(c);
  // docs/nftables.md, "The transaction": A B, insert 0 X, insert 1 Y4, insert 1 Y6, insert 2 Z
  // -> X Y6 Z Y4 A B.
  CHECK(final_chain(rs, nft::kMangleTable, nft::kInboundChain) ==
        std::vector<std::string>{
            "meta l4proto tcp mark 1337 counter return",
            "iifname lo meta l4proto tcp ip6 saddr ::6/128 counter return",
            "iifname lo meta l4proto tcp mark != 1338 counter return",
            "iifname lo meta l4proto tcp ip saddr 127.0.0.6/32 counter return",
            "meta l4proto tcp ct state related,established tcp dport 8080 counter jump istio-divert",
            "meta l4proto tcp tcp dport 8080 counter jump istio-tproxy",
        });
  // Appended twins are adjacent, IPv4 first.
  CHECK(final_chain(rs, nft::kMangleTable, nft::kTproxyChain) ==
        std::vector<std::string>{
            "meta l4proto tcp ip daddr != 127.0.0.1/32 tproxy ip to :15006 meta mark set 1337 counter accept",
            "meta l4proto tcp ip6 daddr != ::1/128 tproxy ip6 to :15006 meta mark set 1337 counter accept",
        });
}

TEST_CASE("nft: Q6 an IPv4-only pod with only IPv6 nameservers never jumps to an undeclared chain") {
  Config c = base_config();
  c.redirect_dns = true;
  c.dns_servers_v6 = {addr("2001:db8::53")};
  const auto rs = plan_nft(c);
  for (const auto& table : rs.tables)
    for (const auto& op : table.ops)
      if (auto target = nft::verdict_chain(op.rule)) {
        INFO(table.name << " " << op.chain << " jumps to " << *target);
        CHECK(std::any_of(table.chains.begin(), table.chains.end(),
                          [&](const nft::Chain& ch) { return ch.name == *target; }));
      }
  const auto script = nft_script(rs);
  // Istio's jumps are kept; their targets are declared and stay empty (the jumps are no-ops).
  CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output counter jump istio-output-dns"));
  CHECK(has_line(script, "add chain inet istio-proxy-nat istio-output-dns"));
  CHECK(final_chain(rs, nft::kNatTable, nft::kOutputDnsChain).empty());
  CHECK(has_line(script, "add chain inet istio-proxy-raw istio-inbound"));
  CHECK(final_chain(rs, nft::kRawTable, nft::kInboundChain).empty());
  // Istio's DNS variants stay on (P3 counts both server lists).
  CHECK(script.find("tcp dport != { 53, 15008 } skuid 1337") != std::string::npos);
}

TEST_CASE("nft: Q8 the raw zone rules spell meta skuid, nat and mangle spell skuid") {
  Config c = base_config();
  c.redirect_dns = true;
  c.capture_all_dns = true;
  c.mode = InterceptionMode::Tproxy;
  const auto script = nft_script(plan_nft(c));
  CHECK(has_line(script,
                 "add rule inet istio-proxy-raw istio-output-dns udp dport 53 meta skuid 1337 counter ct zone set 1"));
  CHECK(has_line(
      script, "add rule inet istio-proxy-raw istio-output-dns udp sport 15053 meta skgid 1337 counter ct zone set 2"));
  CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output skuid 1337 counter return"));
  CHECK(has_line(script, "add rule inet istio-proxy-mangle output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 "
                         "skuid 1337 counter meta mark set 1338"));
}

TEST_CASE("nft: Q9 capture-all DNS has meta l4proto tcp on its TCP rule, per-server rules do not") {
  Config c = base_config();
  c.redirect_dns = true;
  c.capture_all_dns = true;
  auto script = nft_script(plan_nft(c));
  CHECK(has_line(
      script,
      "add rule inet istio-proxy-nat istio-output-dns meta l4proto tcp tcp dport 53 counter redirect to :15053"));
  CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output-dns udp dport 53 counter redirect to :15053"));
  CHECK(has_line(script, "add rule inet istio-proxy-raw prerouting counter jump istio-inbound"));
  CHECK(has_line(script, "add rule inet istio-proxy-raw istio-output-dns udp dport 53 counter ct zone set 2"));
  CHECK(has_line(script, "add rule inet istio-proxy-raw istio-inbound udp sport 53 counter ct zone set 1"));
  c.capture_all_dns = false;
  c.dns_servers_v4 = {addr("192.0.2.53")};
  script = nft_script(plan_nft(c));
  CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output-dns ip daddr 192.0.2.53/32 tcp dport 53 counter "
                         "redirect to :15053"));
}

TEST_CASE("nft: Q10 family-neutral rules carry no address match even when the pod has no IPv6") {
  Config c = base_config();
  c.inbound_ports.wildcard = true;
  c.outbound_include.wildcard = true;
  const auto script = nft_script(plan_nft(c));
  CHECK(has_line(script, "add rule inet istio-proxy-nat prerouting meta l4proto tcp counter jump istio-inbound"));
  CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output counter jump istio-redirect"));
  CHECK(script.find("ip6 ") == std::string::npos);  // and no IPv6 rule at all
}

TEST_CASE("nft: Q12 every rule has exactly one counter") {
  for (const auto& [name, config] : own_scenarios()) {
    INFO(name);
    for (const auto& table : plan_nft(config).tables)
      for (const auto& op : table.ops)
        CHECK(std::count_if(op.rule.statements.begin(), op.rule.statements.end(), [](const nft::Statement& s) {
                return std::holds_alternative<nft::CounterStatement>(s);
              }) == 1);
  }
}

TEST_CASE("nft: Q13 nat istio-inbound holds the tunnel rule even when nothing jumps to it") {
  const auto rs = plan_nft(base_config());
  CHECK(final_chain(rs, nft::kNatTable, nft::kInboundChain) ==
        std::vector<std::string>{"meta l4proto tcp tcp dport 15008 counter return"});
}

TEST_CASE("nft: Q14 nameservers are printed as Go prints them") {
  Config c = base_config();
  c.enable_ipv6 = true;
  c.redirect_dns = true;
  c.dns_servers_v6 = {addr("::127.0.0.53"), addr("::ffff:192.0.2.53")};
  const auto script = nft_script(plan_nft(c));
  CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output-dns ip6 daddr ::7f00:35/128 udp dport 53 counter "
                         "redirect to :15053"));
  CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output-dns ip6 daddr ::ffff:192.0.2.53/128 udp dport 53 "
                         "counter redirect to :15053"));
}

TEST_CASE("nft: Q15 repeated values give repeated rules") {
  Config c = base_config();
  c.outbound_ports_exclude = {80, 80};
  const auto script = nft_script(plan_nft(c));
  const auto lines = lines_of(script);
  CHECK(std::count(lines.begin(), lines.end(),
                   "add rule inet istio-proxy-nat istio-output tcp dport 80 counter return") == 2);
  CHECK(std::count(lines.begin(), lines.end(),
                   "add rule inet istio-proxy-nat istio-output udp dport 80 counter return") == 2);
}

TEST_CASE("nft: Q11 the cleanup transaction adds and deletes all three tables") {
  CHECK(nft_cleanup_script() == "add table inet istio-proxy-nat\n"
                                "delete table inet istio-proxy-nat\n"
                                "add table inet istio-proxy-mangle\n"
                                "delete table inet istio-proxy-mangle\n"
                                "add table inet istio-proxy-raw\n"
                                "delete table inet istio-proxy-raw\n");
}

// ---- steps whose golden cases do not show every branch ------------------------------------------

TEST_CASE("nft: a loopback include CIDR drops the lo returns of N11b and N12b, IPv4-mapped included") {
  for (const char* include : {"127.0.0.0/8", "::ffff:127.0.0.1/128"}) {
    INFO(include);
    Config c = base_config();
    c.enable_ipv6 = true;
    c.outbound_include.prefixes = {prefix(include)};
    const auto script = nft_script(plan_nft(c));
    CHECK_FALSE(has_line(script, "add rule inet istio-proxy-nat istio-output oifname lo skuid != 1337 counter return"));
    CHECK_FALSE(has_line(script, "add rule inet istio-proxy-nat istio-output oifname lo skgid != 1337 counter return"));
    CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output skuid 1337 counter return"));
  }
}

TEST_CASE("nft: excluded interfaces return in nat, and in mangle too with TPROXY") {
  Config c = base_config();
  c.exclude_interfaces = {"eth9"};
  c.mode = InterceptionMode::Tproxy;
  const auto script = nft_script(plan_nft(c));
  for (const char* table : {"istio-proxy-nat", "istio-proxy-mangle"}) {
    CHECK(has_line(script, std::string("add rule inet ") + table + " prerouting iifname eth9 counter return"));
    CHECK(has_line(script, std::string("add rule inet ") + table + " output oifname eth9 counter return"));
  }
}

TEST_CASE("nft: IPv6 excluded and included CIDRs come only with IPv6, after the IPv4 ones") {
  Config c = base_config();
  c.outbound_exclude = {prefix("2001:db8:1::/48"), prefix("198.51.100.0/24")};
  c.outbound_include.prefixes = {prefix("2001:db8::/32"), prefix("192.0.2.0/24")};
  auto rs = plan_nft(c);
  auto output = final_chain(rs, nft::kNatTable, nft::kOutputChain);
  CHECK(std::vector<std::string>(output.end() - 3, output.end()) ==
        std::vector<std::string>{"ip daddr 127.0.0.1/32 counter return", "ip daddr 198.51.100.0/24 counter return",
                                 "ip daddr 192.0.2.0/24 counter jump istio-redirect"});
  c.enable_ipv6 = true;
  rs = plan_nft(c);
  output = final_chain(rs, nft::kNatTable, nft::kOutputChain);
  CHECK(std::vector<std::string>(output.end() - 6, output.end()) ==
        std::vector<std::string>{"ip daddr 127.0.0.1/32 counter return", "ip6 daddr ::1/128 counter return",
                                 "ip daddr 198.51.100.0/24 counter return", "ip6 daddr 2001:db8:1::/48 counter return",
                                 "ip daddr 192.0.2.0/24 counter jump istio-redirect",
                                 "ip6 daddr 2001:db8::/32 counter jump istio-redirect"});
}

TEST_CASE("nft: the loopback CIDR is used verbatim, host bits and all") {
  Config c = base_config();
  c.ipv4_loopback_cidr = prefix("127.0.0.1/8");
  const auto script = nft_script(plan_nft(c));
  CHECK(has_line(script, "add rule inet istio-proxy-nat istio-output ip daddr 127.0.0.1/8 counter return"));
}

TEST_CASE("nft: TPROXY with a wildcard returns the excluded inbound ports in mangle") {
  Config c = base_config();
  c.mode = InterceptionMode::Tproxy;
  c.inbound_ports.wildcard = true;
  c.inbound_ports_exclude = {15090, 15021};
  const auto rs = plan_nft(c);
  const auto inbound = final_chain(rs, nft::kMangleTable, nft::kInboundChain);
  REQUIRE(inbound.size() == 7);
  CHECK(inbound[3] == "meta l4proto tcp tcp dport 15090 counter return");
  CHECK(inbound[4] == "meta l4proto tcp tcp dport 15021 counter return");
  CHECK(inbound[5] == "meta l4proto tcp ct state related,established counter jump istio-divert");
  CHECK(inbound[6] == "meta l4proto tcp counter jump istio-tproxy");
}

// ---- the commit's encoding ----------------------------------------------------------------------

// The store commits rules written as netlink attributes by its own writer; libnftnl, nft's own
// encoder, writes them from expression objects. Every rule of every case, ours and Istio's, must
// be the same bytes both ways (the kernel's acceptance of libnftnl's encoding is tested against
// `nft -f` in the system tests).
TEST_CASE("nft: every planned rule is committed as the bytes libnftnl writes for it") {
  auto resolve = [](const OwnerId& id, bool group) -> Result<std::uint32_t> {
    if (id.number) return *id.number;
    return group ? 50001U : 1337U;  // a name resolves to some id; the encoding is what is compared
  };
  std::vector<std::pair<std::string, Config>> configs;
  for (const auto& name : case_names()) configs.emplace_back(name, scenario_config("istio-" + name));
  for (const auto& [name, config] : own_scenarios()) configs.emplace_back(name, config);
  std::size_t rules = 0;
  std::set<std::string> distinct;
  for (const auto& [name, config] : configs) {
    const auto plan = plan_nft(config);
    for (const auto& table : plan.tables)
      for (const auto& op : table.ops) {
        INFO(name << ": " << table.name << " " << op.chain << " " << nft_rule_text(op.rule));
        auto bytes = nft::rule_encodings(table.name, op.chain, op.rule, resolve);
        REQUIRE(bytes);
        CHECK(bytes.value().ours.size() > 40);
        CHECK(bytes.value().ours == bytes.value().libnftnl);
        distinct.insert(nft_rule_text(op.rule));
        ++rules;
      }
  }
  // Every kind of statement the model has is among them (counted by the rules' own words).
  std::string all;
  for (const auto& text : distinct) all += text + "\n";
  for (const char* word : {"tproxy", "redirect", "ct zone set", "meta mark set", "ct mark set", "ip6 daddr", "ip saddr",
                           "skgid", "skuid", "ct state", "iifname", "oifname", "jump", "return", "accept", "{", "!="})
    CHECK(all.find(word) != std::string::npos);
  CHECK(rules > 300);
}
