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

TEST_CASE("rule text: a rule number too large for any chain is an error naming the line, not an abort") {
  auto parsed = parse_ruleset_text("*nat\n-I OUTPUT 99999999999999999999999 -j RETURN\nCOMMIT\n");
  REQUIRE_FALSE(parsed);
  CHECK_THAT(parsed.error().message, Catch::StartsWith("line 2: not a rule number"));
  CHECK_FALSE(parse_ruleset_text("*nat\n-I OUTPUT 0 -j RETURN\nCOMMIT\n"));  // iptables counts from 1
  CHECK_FALSE(parse_ruleset_text("*nat\n-I OUTPUT 2147483648 -j RETURN\nCOMMIT\n"));
  CHECK(parse_ruleset_text("*nat\n-I OUTPUT 2147483647 -j RETURN\nCOMMIT\n"));
}

TEST_CASE("rule text: an error echoes the line escaped and cut") {
  auto parsed = parse_ruleset_text("*nat\n-Z OUTPUT \x1b]0;owned\x07\nCOMMIT\n");
  REQUIRE_FALSE(parsed);
  const auto& m = parsed.error().message;
  CHECK(m.find('\x1b') == std::string::npos);
  CHECK(m.find('\x07') == std::string::npos);
  CHECK_THAT(m, Catch::Contains("\\x1b]0;owned\\x07"));
  const std::string huge(100 * 1024 * 1024, 'x');  // one bad line of 100 MB
  auto big = parse_ruleset_text("*nat\n" + huge + "\n");
  REQUIRE_FALSE(big);
  CHECK(big.error().message.size() < 400);
  CHECK_THAT(big.error().message, Catch::EndsWith("(104857400 more bytes)"));
}

TEST_CASE("rule text: inserts land where iptables-restore puts them, whatever the order of -I and -A") {
  // The oracle: iptables-restore's effect, one vector insert at a time.
  std::uint32_t seed = 12345;
  auto next = [&]() { return seed = seed * 1103515245U + 12345U; };
  std::string text = "*filter\n";
  std::vector<std::string> expected;
  for (int i = 0; i < 500; ++i) {
    const std::string spec = "-j C" + std::to_string(i);  // distinct specs
    switch (next() % 4) {
    case 0:
      text += "-A OUTPUT " + spec + "\n";
      expected.push_back(spec);
      break;
    case 1: {
      std::size_t pos = (next() >> 8) % (expected.size() + 1) + 1;  // 1 .. size+1
      text += "-I OUTPUT " + std::to_string(pos) + " " + spec + "\n";
      expected.insert(expected.begin() + static_cast<std::ptrdiff_t>(pos - 1), spec);
      break;
    }
    case 2:
      text += "-I OUTPUT " + spec + "\n";  // no number: at the head
      expected.insert(expected.begin(), spec);
      break;
    default:
      if (next() % 16 == 0) {
        text += "-F OUTPUT\n";
        expected.clear();
      } else {
        text += "-I OUTPUT 1 " + spec + "\n";
        expected.insert(expected.begin(), spec);
      }
    }
  }
  auto parsed = parse_ruleset_text(text + "COMMIT\n");
  REQUIRE(parsed);
  const TextChain* output = nullptr;
  for (const auto& c : parsed.value().v4[0].chains)
    if (c.name == "OUTPUT") output = &c;
  REQUIRE(output);
  std::vector<std::string> got;
  for (const auto& r : output->rules) got.push_back(r.spec);
  CHECK(got == expected);
}

TEST_CASE("rule text: 50 000 inserted rules and 50 000 chains parse (in about a second, not minutes)") {
  // Not a timed assertion: before, this took 31 s and 24 s; a regression shows as a slow suite.
  std::string inserts = "*nat\n";
  for (int i = 0; i < 50000; ++i) inserts += "-I OUTPUT 1 -d 192.0.2." + std::to_string(i % 250) + "/32 -j RETURN\n";
  auto a = parse_ruleset_text(inserts + "COMMIT\n");
  REQUIRE(a);
  REQUIRE(a.value().v4[0].chains.size() == 1);
  CHECK(a.value().v4[0].chains[0].rules.size() == 50000);
  CHECK(a.value().v4[0].chains[0].rules.front().spec == "-d 192.0.2.249/32 -j RETURN");  // the last inserted
  std::string chains = "*filter\n";
  for (int i = 0; i < 50000; ++i) chains += "-N C" + std::to_string(i) + "\n-A C" + std::to_string(i) + " -j RETURN\n";
  auto b = parse_ruleset_text(chains + "COMMIT\n");
  REQUIRE(b);
  CHECK(b.value().v4[0].chains.size() == 50000);
  CHECK(b.value().v4[0].chains[49999].name == "C49999");
}

TEST_CASE("rule text: a mask no prefix length says stays text, never another rule") {
  // iptables-save prints a non-contiguous mask in dotted form.
  auto parsed = parse_ruleset_text("*nat\n-A OUTPUT -d 10.0.0.0/255.0.255.0 -j RETURN\n"
                                   "-A OUTPUT -d 2001:db8::/ffff:0:ffff:: -j RETURN\nCOMMIT\n");
  REQUIRE(parsed);
  const auto& rules = parsed.value().v4[0].chains[0].rules;
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].spec == "-d 10.0.0.0/255.0.255.0 -j RETURN");
  CHECK_FALSE(rules[0].rule.has_value());
  CHECK_FALSE(rules[1].rule.has_value());
}

TEST_CASE("rule text: numbers are read as iptables reads them, or not at all") {
  CHECK(canon("-m mark --mark 0x539 -j RETURN") == canon("-m mark --mark 1337 -j RETURN"));
  CHECK(canon("-p tcp --dport 0x35 -j RETURN") == canon("-p tcp --dport 53 -j RETURN"));  // strtoul base 0
  // Octal to iptables, overflow, signs: not decoded rather than decoded as another number.
  for (const char* spec :
       {"-m mark --mark 010 -j RETURN", "-p tcp --dport 010 -j RETURN", "-m mark --mark 4294967296 -j RETURN",
        "-p tcp --dport 99999999999999999999 -j RETURN", "-m owner --uid-owner 99999999999999999999 -j RETURN",
        "-p tcp --dport +53 -j RETURN", "-p tcp -m multiport --dports 53,,80 -j RETURN", "-j CT --zone 65536"})
    CHECK_FALSE(parse_rule_spec(spec).has_value());
}

TEST_CASE("rule text: conntrack states are a set, in iptables-save's order") {
  CHECK(canon("-m conntrack --ctstate ESTABLISHED,RELATED -j RETURN") ==
        "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN");
}
