// The planner's behaviours a user relies on, checked against the specification
// (docs/planner.md, taken from Istio's golden files) rather than against our own output.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/planner.h"
#include "core/restore_text.h"
#include "fixtures.h"

using namespace istio_iptables;
using istio_iptables::testing::injected_sidecar;

namespace {

// The chain as iptables-restore leaves it: the ops on it in order, "-I N" at position N.
std::vector<std::string> chain_rules(const Ruleset& rs, Table table, const std::string& chain) {
  std::vector<std::string> out;
  for (const auto& op : rs.ops) {
    if (op.table != table || op.chain != chain) continue;
    if (op.insert_position)
      out.insert(out.begin() + static_cast<std::ptrdiff_t>(*op.insert_position - 1), rule_spec(op.rule));
    else
      out.push_back(rule_spec(op.rule));
  }
  return out;
}

bool has_table(const Ruleset& rs, Table t) { return rs.uses_table(t); }

}  // namespace

TEST_CASE("planner: the worked example of docs/planner.md, to the byte") {
  Config c = injected_sidecar();
  c.redirect_dns = true;
  c.dns_servers_v4 = {*parse_address("10.96.0.10")};
  const std::string expected =
      "* nat\n-N ISTIO_INBOUND\n-N ISTIO_REDIRECT\n-N ISTIO_IN_REDIRECT\n-N ISTIO_OUTPUT\n-N ISTIO_OUTPUT_DNS\n"
      "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN\n"
      "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
      "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n"
      "-A PREROUTING -p tcp -j ISTIO_INBOUND\n"
      "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN\n"
      "-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN\n"
      "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN\n"
      "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT\n"
      "-A OUTPUT -j ISTIO_OUTPUT\n"
      "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN\n"
      "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 1337 -j "
      "ISTIO_IN_REDIRECT\n"
      "-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --uid-owner 1337 -j RETURN\n"
      "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
      "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT\n"
      "-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --gid-owner 1337 -j RETURN\n"
      "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
      "-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS\n"
      "-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -d 10.96.0.10/32 -j REDIRECT --to-ports 15053\n"
      "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d 10.96.0.10/32 -j REDIRECT --to-port 15053\n"
      "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
      "-A ISTIO_OUTPUT -j ISTIO_REDIRECT\n"
      "COMMIT\n"
      "* raw\n-N ISTIO_OUTPUT_DNS\n-N ISTIO_INBOUND\n"
      "-A OUTPUT -j ISTIO_OUTPUT_DNS\n"
      "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 1337 -j CT --zone 1\n"
      "-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --uid-owner 1337 -j CT --zone 2\n"
      "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --gid-owner 1337 -j CT --zone 1\n"
      "-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --gid-owner 1337 -j CT --zone 2\n"
      "-A PREROUTING -j ISTIO_INBOUND\n"
      "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d 10.96.0.10/32 -j CT --zone 2\n"
      "-A ISTIO_INBOUND -p udp --sport 53 -s 10.96.0.10/32 -j CT --zone 1\n"
      "COMMIT\n";
  CHECK(dry_run_text(plan(c)) == expected);
}

TEST_CASE("planner: no IPv6 rules unless the pod has IPv6") {
  Config c = injected_sidecar();
  c.outbound_exclude = {*parse_prefix("2001:db8::/32")};
  CHECK_FALSE(plan(c).v6.has_value());
  c.enable_ipv6 = true;
  auto p = plan(c);
  REQUIRE(p.v6);
  CHECK(chain_rules(*p.v6, Table::Nat, "ISTIO_OUTPUT")[0] == "-o lo -s ::6/128 -j RETURN");
  // An IPv6 exclude lands in the IPv6 list only.
  auto v4 = chain_rules(p.v4, Table::Nat, "ISTIO_OUTPUT");
  auto v6 = chain_rules(*p.v6, Table::Nat, "ISTIO_OUTPUT");
  CHECK(std::count(v4.begin(), v4.end(), "-d 2001:db8::/32 -j RETURN") == 0);
  CHECK(std::count(v6.begin(), v6.end(), "-d 2001:db8::/32 -j RETURN") == 1);
}

TEST_CASE("planner: DNS capture without a nameserver is dropped in the current layout, kept in 1.24") {
  Config c = injected_sidecar();
  c.redirect_dns = true;
  auto current = plan(c);
  CHECK_FALSE(current.dns_capture_active);
  CHECK_FALSE(has_table(current.v4, Table::Raw));
  CHECK(chain_rules(current.v4, Table::Nat, "ISTIO_OUTPUT")[1].find("multiport") == std::string::npos);
  c.layout = Layout::V1_24;
  auto legacy = plan(c);
  CHECK(has_table(legacy.v4, Table::Raw));
  CHECK(chain_rules(legacy.v4, Table::Nat, "ISTIO_OUTPUT")[1].find("multiport ! --dports 53,15008") !=
        std::string::npos);
  CHECK(chain_rules(legacy.v4, Table::Nat, "OUTPUT") ==
        std::vector<std::string>{"-p tcp -j ISTIO_OUTPUT", "-p udp -j ISTIO_OUTPUT"});
}

TEST_CASE("planner: a loopback include CIDR drops the lo RETURN rules of both families") {
  Config c = injected_sidecar();
  c.enable_ipv6 = true;
  c.outbound_include = CidrList{false, {*parse_prefix("127.1.2.3/32")}};
  auto p = plan(c);
  for (const Ruleset* rs : {&p.v4, &*p.v6}) {
    auto rules = chain_rules(*rs, Table::Nat, "ISTIO_OUTPUT");
    CHECK(std::none_of(rules.begin(), rules.end(),
                       [](const std::string& r) { return r.find("! --uid-owner") != std::string::npos; }));
  }
}

TEST_CASE("planner: kube-virt rules are inserted at the head of PREROUTING, last listed first") {
  Config c = injected_sidecar();
  c.inbound_ports = {};
  c.exclude_interfaces = {"eth9"};
  c.kube_virt_interfaces = {"eth1", "eth2"};
  auto pre = chain_rules(plan(c).v4, Table::Nat, "PREROUTING");
  // Wildcard include: the ISTIO_REDIRECT inserts come after (so before, in the chain) the RETURNs.
  CHECK(pre == std::vector<std::string>{"-i eth2 -j ISTIO_REDIRECT", "-i eth1 -j ISTIO_REDIRECT", "-i eth2 -j RETURN",
                                        "-i eth1 -j RETURN", "-i eth9 -j RETURN"});
}

TEST_CASE("planner: TPROXY marks are set even without inbound ports, and ISTIO_INBOUND starts with the three guards") {
  Config c = injected_sidecar();
  c.mode = InterceptionMode::Tproxy;
  c.inbound_ports = {};
  auto p = plan(c);
  CHECK(chain_rules(p.v4, Table::Mangle, "PREROUTING") ==
        std::vector<std::string>{"-p tcp -m mark --mark 1337 -j CONNMARK --save-mark"});
  CHECK(chain_rules(p.v4, Table::Mangle, "ISTIO_INBOUND") ==
        std::vector<std::string>{"-p tcp -m mark --mark 1337 -j RETURN", "-p tcp -s 127.0.0.6/32 -i lo -j RETURN",
                                 "-p tcp -i lo -m mark ! --mark 1338 -j RETURN"});
  c.inbound_ports.ports = {8080};
  auto inbound = chain_rules(plan(c).v4, Table::Mangle, "ISTIO_INBOUND");
  REQUIRE(inbound.size() == 5);
  CHECK(inbound[3] == "-p tcp --dport 8080 -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT");
  CHECK(inbound[4] == "-p tcp --dport 8080 -j ISTIO_TPROXY");
}

TEST_CASE("planner: -d only counts with -b '*'") {
  Config c = injected_sidecar();
  c.inbound_ports = PortList{false, {8080}};
  auto inbound = chain_rules(plan(c).v4, Table::Nat, "ISTIO_INBOUND");
  CHECK(inbound ==
        std::vector<std::string>{"-p tcp --dport 15008 -j RETURN", "-p tcp --dport 8080 -j ISTIO_IN_REDIRECT"});
}

TEST_CASE("planner: owner groups, include list versus exclude list") {
  Config c = injected_sidecar();
  c.owner_groups = OwnerGroups{false, {OwnerId{std::nullopt, "java"}, OwnerId{202U, {}}}, {}};
  auto rules = chain_rules(plan(c).v4, Table::Nat, "ISTIO_OUTPUT");
  CHECK(std::count(rules.begin(), rules.end(), "-m owner ! --gid-owner java -m owner ! --gid-owner 202 -j RETURN") ==
        1);
  c.owner_groups = OwnerGroups{false, {}, {}};
  rules = chain_rules(plan(c).v4, Table::Nat, "ISTIO_OUTPUT");
  CHECK(std::count(rules.begin(), rules.end(), "-j RETURN") == 1);  // nothing is captured
}

TEST_CASE("planner: the same configuration always gives the same plan") {
  Config c = injected_sidecar();
  c.enable_ipv6 = true;
  c.redirect_dns = true;
  c.capture_all_dns = true;
  CHECK(dry_run_text(plan(c)) == dry_run_text(plan(c)));
}

// ---- releases 1.22 to 1.24 (docs/releases.md; Istio's goldens in capture-1.22/, capture-1.23/) ---

TEST_CASE("planner: 1.22 puts the UDP DNS rules into nat and raw OUTPUT, with no UDP jump") {
  // Istio 1.22.0's dns-uid-gid golden (-u 3,4 -g 1,2 --redirect-dns, nameserver 127.0.0.53).
  Config c;
  c.layout = Layout::V1_22;
  c.proxy_uids = {3, 4};
  c.proxy_gids = {1, 2};
  c.redirect_dns = true;
  c.dns_servers_v4 = {*parse_address("127.0.0.53")};
  auto p = plan(c);
  CHECK(chain_rules(p.v4, Table::Nat, "OUTPUT") == std::vector<std::string>{
                                                       "-p tcp -j ISTIO_OUTPUT",
                                                       "-p udp --dport 53 -m owner --uid-owner 3 -j RETURN",
                                                       "-p udp --dport 53 -m owner --uid-owner 4 -j RETURN",
                                                       "-p udp --dport 53 -m owner --gid-owner 1 -j RETURN",
                                                       "-p udp --dport 53 -m owner --gid-owner 2 -j RETURN",
                                                       "-p udp --dport 53 -d 127.0.0.53/32 -j REDIRECT --to-port 15053",
                                                   });
  CHECK(chain_rules(p.v4, Table::Raw, "OUTPUT") == std::vector<std::string>{
                                                       "-p udp --dport 53 -m owner --uid-owner 3 -j CT --zone 1",
                                                       "-p udp --sport 15053 -m owner --uid-owner 3 -j CT --zone 2",
                                                       "-p udp --dport 53 -m owner --uid-owner 4 -j CT --zone 1",
                                                       "-p udp --sport 15053 -m owner --uid-owner 4 -j CT --zone 2",
                                                       "-p udp --dport 53 -m owner --gid-owner 1 -j CT --zone 1",
                                                       "-p udp --sport 15053 -m owner --gid-owner 1 -j CT --zone 2",
                                                       "-p udp --dport 53 -m owner --gid-owner 2 -j CT --zone 1",
                                                       "-p udp --sport 15053 -m owner --gid-owner 2 -j CT --zone 2",
                                                       "-p udp --dport 53 -d 127.0.0.53/32 -j CT --zone 2",
                                                   });
  CHECK(chain_rules(p.v4, Table::Raw, "PREROUTING") ==
        std::vector<std::string>{"-p udp --sport 53 -s 127.0.0.53/32 -j CT --zone 1"});
  CHECK(chain_rules(p.v4, Table::Raw, "ISTIO_OUTPUT").empty());  // no raw chain of ours in 1.22
  // The TCP part is 1.23's: the redirect inline in ISTIO_OUTPUT, before the loopback RETURN.
  auto out = chain_rules(p.v4, Table::Nat, "ISTIO_OUTPUT");
  REQUIRE(out.size() >= 2);
  CHECK(out[out.size() - 2] == "-p tcp --dport 53 -d 127.0.0.53/32 -j REDIRECT --to-ports 15053");
  CHECK(out.back() == "-d 127.0.0.1/32 -j RETURN");
  // 1.23 moves the same rules behind UDP jumps into ISTIO_OUTPUT (nat and raw).
  c.layout = Layout::V1_23;
  auto p23 = plan(c);
  CHECK(chain_rules(p23.v4, Table::Nat, "OUTPUT") ==
        std::vector<std::string>{"-p tcp -j ISTIO_OUTPUT", "-p udp -j ISTIO_OUTPUT"});
  CHECK(chain_rules(p23.v4, Table::Raw, "OUTPUT") == std::vector<std::string>{"-p udp -j ISTIO_OUTPUT"});
  CHECK(chain_rules(p23.v4, Table::Raw, "ISTIO_OUTPUT").size() == 9);
}

TEST_CASE("planner: 1.22 ends ISTIO_OUTPUT with RETURN after each family's CIDR includes") {
  // Goldens ipnets (-i 10.0.0.0/8) and ipv6-ipnets (-i 2001:db8::/32: the IPv6 list only).
  Config c;
  c.layout = Layout::V1_22;
  c.proxy_uids = {1337};
  c.proxy_gids = {1337};
  c.enable_ipv6 = true;
  c.outbound_include = CidrList{false, {*parse_prefix("2001:db8::/32")}};
  auto p = plan(c);
  auto v4 = chain_rules(p.v4, Table::Nat, "ISTIO_OUTPUT");
  auto v6 = chain_rules(*p.v6, Table::Nat, "ISTIO_OUTPUT");
  CHECK(v4.back() == "-d 127.0.0.1/32 -j RETURN");
  REQUIRE(v6.size() >= 2);
  CHECK(v6[v6.size() - 2] == "-d 2001:db8::/32 -j ISTIO_REDIRECT");
  CHECK(v6.back() == "-j RETURN");
  // Not with '*', and not from 1.23 on.
  c.outbound_include = CidrList{true, {}};
  CHECK(chain_rules(plan(c).v4, Table::Nat, "ISTIO_OUTPUT").back() == "-j ISTIO_REDIRECT");
  c.outbound_include = CidrList{false, {*parse_prefix("10.0.0.0/8")}};
  CHECK(chain_rules(plan(c).v4, Table::Nat, "ISTIO_OUTPUT").back() == "-j RETURN");
  c.layout = Layout::V1_23;
  CHECK(chain_rules(plan(c).v4, Table::Nat, "ISTIO_OUTPUT").back() == "-d 10.0.0.0/8 -j ISTIO_REDIRECT");
}

TEST_CASE("planner: --drop-invalid drops in mangle PREROUTING up to 1.23, through ISTIO_DROP from 1.24") {
  Config c = injected_sidecar();
  c.drop_invalid = true;
  for (Layout old : {Layout::V1_22, Layout::V1_23}) {
    c.layout = old;
    auto p = plan(c);
    CHECK(chain_rules(p.v4, Table::Mangle, "PREROUTING") ==
          std::vector<std::string>{"-m conntrack --ctstate INVALID -j DROP"});
    CHECK(chain_rules(p.v4, Table::Mangle, "ISTIO_DROP").empty());
  }
  for (Layout later : {Layout::V1_24, Layout::Current}) {
    c.layout = later;
    auto p = plan(c);
    CHECK(chain_rules(p.v4, Table::Mangle, "PREROUTING") ==
          std::vector<std::string>{"-m conntrack --ctstate INVALID -j ISTIO_DROP"});
    CHECK(chain_rules(p.v4, Table::Mangle, "ISTIO_DROP") == std::vector<std::string>{"-j DROP"});
  }
}

namespace {
// The twin §6 of istio-operator-behaviour.md describes: the rule's matches, then NFLOG.
std::string twin(const std::string& matches, const std::string& id, bool quoted) {
  std::string prefix = quoted ? "\"" + id + "\"" : id;
  return (matches.empty() ? "" : matches + " ") + "-j NFLOG --nflog-prefix " + prefix +
         " --nflog-group 1337 --nflog-size 20";
}
}  // namespace

TEST_CASE("planner: trace logging puts an NFLOG twin in front of every tagged rule, 1.22 to 1.24") {
  Config c = injected_sidecar();
  c.trace_logging = true;
  c.exclude_interfaces = {"eth9"};
  c.kube_virt_interfaces = {"eth1"};
  for (Layout layout : {Layout::V1_22, Layout::V1_23, Layout::V1_24}) {
    c.layout = layout;
    const bool quoted = layout != Layout::V1_24;  // Go-quoted in 1.22/1.23 (%q), bare in 1.24
    INFO("quoted: " << quoted);
    auto p = plan(c);
    // Appends: the twin just before; inserts at 1: the twin lands in front (KubevirtCommand).
    CHECK(chain_rules(p.v4, Table::Nat, "PREROUTING") ==
          std::vector<std::string>{twin("-i eth1", "KubevirtCommand", quoted), "-i eth1 -j ISTIO_REDIRECT",
                                   twin("-i eth1", "KubevirtCommand", quoted), "-i eth1 -j RETURN",
                                   twin("-i eth9", "ExcludeInterfaceCommand", quoted), "-i eth9 -j RETURN",
                                   twin("-p tcp", "JumpInbound", quoted), "-p tcp -j ISTIO_INBOUND"});
    CHECK(chain_rules(p.v4, Table::Nat, "OUTPUT") ==
          std::vector<std::string>{twin("-o eth9", "ExcludeInterfaceCommand", quoted), "-o eth9 -j RETURN",
                                   twin("-p tcp", "JumpOutbound", quoted), "-p tcp -j ISTIO_OUTPUT"});
    CHECK(chain_rules(p.v4, Table::Nat, "ISTIO_INBOUND") ==
          std::vector<std::string>{
              "-p tcp --dport 15008 -j RETURN", twin("-p tcp --dport 15090", "ExcludeInboundPort", quoted),
              "-p tcp --dport 15090 -j RETURN", twin("-p tcp --dport 15021", "ExcludeInboundPort", quoted),
              "-p tcp --dport 15021 -j RETURN", twin("-p tcp --dport 15020", "ExcludeInboundPort", quoted),
              "-p tcp --dport 15020 -j RETURN", "-p tcp -j ISTIO_IN_REDIRECT"});
    CHECK(chain_rules(p.v4, Table::Nat, "ISTIO_IN_REDIRECT") ==
          std::vector<std::string>{twin("-p tcp", "InboundCapture", quoted), "-p tcp -j REDIRECT --to-ports 15006"});
    // ISTIO_OUTPUT's rules carry no tag.
    auto out = chain_rules(p.v4, Table::Nat, "ISTIO_OUTPUT");
    CHECK(std::none_of(out.begin(), out.end(),
                       [](const std::string& r) { return r.find("NFLOG") != std::string::npos; }));
  }
  // 1.25 still accepts the flag, but its builder generates no twin.
  c.layout = Layout::Current;
  c.trace_logging = true;
  Config plain = c;
  plain.trace_logging = false;
  CHECK(dry_run_text(plan(c)) == dry_run_text(plan(plain)));
}

TEST_CASE("planner: trace twins of the per-port inbound rules and the DNS UDP jumps") {
  Config c;
  c.layout = Layout::V1_24;
  c.trace_logging = true;
  c.proxy_uids = {1337};
  c.proxy_gids = {1337};
  c.mode = InterceptionMode::Tproxy;
  c.inbound_ports = PortList{false, {8080}};
  c.redirect_dns = true;
  c.capture_all_dns = true;
  auto p = plan(c);
  CHECK(chain_rules(p.v4, Table::Mangle, "PREROUTING")[0] == twin("-p tcp", "JumpInbound", false));
  auto inbound = chain_rules(p.v4, Table::Mangle, "ISTIO_INBOUND");
  REQUIRE(inbound.size() == 7);  // three guards inserted at 1-3, then two tagged rules with twins
  CHECK(inbound[3] ==
        twin("-p tcp --dport 8080 -m conntrack --ctstate RELATED,ESTABLISHED", "IncludeInboundPort", false));
  CHECK(inbound[5] == twin("-p tcp --dport 8080", "IncludeInboundPort", false));
  // The UDP jumps of 1.23/1.24's DNS capture are JumpOutbound too, in nat and in raw.
  CHECK(chain_rules(p.v4, Table::Nat, "OUTPUT") ==
        std::vector<std::string>{twin("-p tcp", "JumpOutbound", false), "-p tcp -j ISTIO_OUTPUT",
                                 twin("-p udp", "JumpOutbound", false), "-p udp -j ISTIO_OUTPUT"});
  CHECK(chain_rules(p.v4, Table::Raw, "OUTPUT") ==
        std::vector<std::string>{twin("-p udp", "JumpOutbound", false), "-p udp -j ISTIO_OUTPUT"});
}
