// Reading rules back from text: both iptables-save's spelling and Istio's.
#include <catch2/catch.hpp>

#include "core/restore_text.h"
#include "core/rule_text.h"

using namespace istio_iptables;

namespace {
std::optional<std::uint32_t> no_groups(const std::string&) { return std::nullopt; }
std::string canon(const std::string& spec) {
  auto r = parse_rule_spec(spec);
  REQUIRE(r);
  return rule_spec(canonical(*r, no_groups));
}
}  // namespace

TEST_CASE("rule text: iptables-save's and Istio's spellings of one rule have one canonical form") {
  CHECK(canon("-o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 1337 -j "
              "ISTIO_IN_REDIRECT") == canon("! -d 127.0.0.1/32 -o lo -p tcp -m multiport ! --dports 53,15008 -m owner "
                                            "--uid-owner 1337 -j ISTIO_IN_REDIRECT"));
  CHECK(canon("-p udp --dport 53 -d 10.96.0.10/32 -j REDIRECT --to-port 15053") ==
        canon("-d 10.96.0.10/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053"));
  CHECK(canon("-j MARK --set-mark 1338") == canon("-j MARK --set-xmark 0x53a/0xffffffff"));
  CHECK(canon("-p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006") ==
        canon("-p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff"));
  CHECK(canon("-p tcp -m mark --mark 1337 -j CONNMARK --save-mark") ==
        canon("-p tcp -m mark --mark 0x539 -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff"));
  CHECK(canon("-d 10.1.2.3/8 -j RETURN") == "-d 10.0.0.0/8 -j RETURN");  // the kernel stores it masked
}

TEST_CASE("rule text: anything outside the model is not decoded") {
  for (const char* spec :
       {"-j DNAT --to-destination 192.0.2.20:8080", "-p tcp -m comment --comment x -j ACCEPT", "-j CT --notrack",
        "-j MARK --set-xmark 0x1/0xff", "-p sctp -j ACCEPT", "-j CONNMARK --set-mark 1",
        "-p tcp --dport 1:100 -j RETURN", "! ! -p tcp -j RETURN", "-m owner --uid-owner root -j RETURN"})
    CHECK_FALSE(parse_rule_spec(spec).has_value());
}

TEST_CASE("rule text: a ruleset text splits into families and applies -N, -A and -I as iptables-restore does") {
  auto parsed = parse_ruleset_text(
      "* nat\n-N ISTIO_X\n-A PREROUTING -j ISTIO_X\n-I PREROUTING 1 -i eth1 -j RETURN\n"
      "COMMIT\n# ip6tables-restore\n*nat\n:OUTPUT ACCEPT [0:0]\n[3:180] -A OUTPUT -j RETURN\nCOMMIT\n");
  REQUIRE(parsed);
  REQUIRE(parsed.value().v4.size() == 1);
  const auto& chains = parsed.value().v4[0].chains;
  REQUIRE(chains.size() == 2);
  CHECK(chains[0].name == "ISTIO_X");  // in order of appearance
  const auto& pre = chains[1];
  CHECK(pre.name == "PREROUTING");
  REQUIRE(pre.rules.size() == 2);
  CHECK(pre.rules[0].spec == "-i eth1 -j RETURN");
  REQUIRE(parsed.value().v6.size() == 1);
  CHECK(parsed.value().v6[0].chains[0].rules[0].counters == "[3:180]");
  CHECK_FALSE(parse_ruleset_text("* bogus\nCOMMIT\n"));
}
