// explain: flows walked through the reference listing, our plans and hand-made rules.
//
// The expected verdicts come from reading the rules, not from running the simulator: the
// reference listing (../shared/conformance/seed, Istio 1.24's nat table of an injected sidecar,
// whose packet counters say which rule the kubelet's probes and the proxy's own traffic took),
// Istio's rule layout as docs/istio-behaviour.md describes it, and the kernel's semantics of
// each match (xt_owner, xt_CT, nft's skuid). Each case names the rule it expects to decide.
#include <catch2/catch.hpp>

#include <regex>

#include "core/explain.h"
#include "core/nft_planner.h"
#include "core/planner.h"
#include "core/rule_text.h"
#include "fixtures.h"
#include "support.h"

using namespace istio_iptables;
using namespace istio_iptables::testing;

namespace {

const std::string kSeed = std::string(ISTIO_IPTABLES_SOURCE_DIR) + "/../shared/conformance/seed/";

// The v4 tables of a stored iptables-restore text, as a store would read them back.
IptablesView view_of_text(const std::string& path) {
  auto parsed = parse_ruleset_text(read_text(path));
  REQUIRE(parsed);
  IptablesView view;
  auto no_lookup = [](const std::string&) -> std::optional<std::uint32_t> { return std::nullopt; };
  for (const auto& t : parsed.value().v4) view.tables.push_back(view_of_snapshot(snapshot_of(t, no_lookup)));
  return view;
}

Packet flow(const std::string& text) {
  auto p = parse_flow(text);
  INFO(text);
  REQUIRE(p);
  return p.value();
}

// The trail's last step as "table chain #index".
std::string last_step(const Explanation& e) {
  REQUIRE_FALSE(e.trail.empty());
  const auto& s = e.trail.back();
  return s.table + " " + s.chain + " #" + std::to_string(s.index);
}

// Settings as the CLI builds them from a catalogue-style argument line and environment.
Config config_of(const std::string& args, const std::map<std::string, std::string>& env = {}) {
  std::map<std::string, std::string> command_line;
  auto words = shell_words(args);
  // Only the long "--name value" and "-x value" forms the tests use.
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string name = words[i];
    for (const auto& spec : setting_specs()) {
      if (name == std::string("--") + spec.name || (*spec.short_name && name == std::string("-") + spec.short_name)) {
        if (spec.kind == SettingKind::Bool) {
          command_line[spec.name] = "true";
        } else {
          command_line[spec.name] = words.at(i + 1);
          ++i;
        }
      }
    }
  }
  FakeFacts facts;
  auto built = build_settings(resolve_settings(command_line, env), env, facts);
  REQUIRE(std::holds_alternative<Settings>(built));
  return std::get<Settings>(built).config;
}

const char* kInjected = "-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020";

}  // namespace

TEST_CASE("explain: a flow is read with its defaults: new, leaving by lo only to a loopback address", "[explain]") {
  auto p = flow("out tcp 10.244.0.5:40000 -> 127.0.0.1:15000 uid 1337");
  CHECK(p.direction == FlowDirection::Out);
  CHECK(p.state == ConntrackState::New);
  CHECK(p.out_interface.name == std::optional<std::string>("lo"));
  CHECK(p.in_interface.name == std::optional<std::string>(""));  // OUTPUT has no input interface
  CHECK(p.source_port == std::optional<std::uint16_t>(40000));
  CHECK(p.uid == std::optional<std::uint32_t>(1337));
  CHECK_FALSE(p.gid);

  auto q = flow("out udp 10.244.0.5 -> 10.96.0.10:53");
  CHECK_FALSE(q.out_interface.name);  // the pod's interface, name unknown
  CHECK_FALSE(q.source_port);

  auto r = flow("in tcp [2001:db8::1]:5555 -> [2001:db8::2]:8080 state established mark 0x539");
  CHECK(r.family() == Family::V6);
  CHECK(r.destination_port == std::optional<std::uint16_t>(8080));
  CHECK(r.state == ConntrackState::Established);
  CHECK(r.mark == 1337);
  CHECK(r.out_interface.name == std::optional<std::string>(""));
}

TEST_CASE("explain: a bad flow is refused naming the offending word", "[explain]") {
  const std::pair<const char*, const char*> cases[] = {
      {"sideways tcp 10.0.0.1 -> 10.0.0.2:80", "\"sideways\""},
      {"out icmp 10.0.0.1 -> 10.0.0.2:80", "\"icmp\""},
      {"out tcp 10.0.0.1 -> 10.0.0.300:80", "\"10.0.0.300:80\""},
      {"out tcp 10.0.0.1 => 10.0.0.2:80", "\"=>\""},
      {"out tcp 10.0.0.1 -> 10.0.0.2:65536", "\"10.0.0.2:65536\""},
      {"out tcp 10.0.0.1 -> 2001:db8::1", "different families"},
      {"out tcp 10.0.0.1 -> 10.0.0.2:80 uid -1", "\"-1\""},
      {"out tcp 10.0.0.1 -> 10.0.0.2:80 state sleepy", "\"sleepy\""},
      {"out tcp 10.0.0.1 -> 10.0.0.2:80 colour red", "\"colour\""},
      {"out tcp 10.0.0.1 -> 10.0.0.2:80 uid 1 uid 2", "given twice"},
      {"out tcp 10.0.0.1 -> 10.0.0.2:80 iif eth0", "\"iif\""},
      {"in tcp 10.0.0.1 -> 10.0.0.2:80 uid 1337", "\"uid\""},
      {"out tcp 10.0.0.1 -> 10.0.0.2:80 mark", "\"mark\""},
  };
  for (const auto& [text, named] : cases) {
    INFO(text);
    auto p = parse_flow(text);
    REQUIRE_FALSE(p);
    CHECK(p.error().message.find(named) != std::string::npos);
  }
}

TEST_CASE("explain: in the reference listing the kubelet's probes to 15021 pass by the RETURN its counter shows",
          "[explain]") {
  // 39 packets on `RETURN tcp dpt:15021` of ISTIO_INBOUND, the third rule of the chain.
  auto view = view_of_text(kSeed + "seed-without-dns.rules");
  auto e = explain_iptables(flow("in tcp 10.244.0.1:43210 -> 10.244.0.5:15021"), view);
  CHECK(e.outcome == Outcome::Accept);
  CHECK(last_step(e) == "nat ISTIO_INBOUND #3");
  CHECK(e.trail.size() == 2);  // PREROUTING #1 (-j ISTIO_INBOUND), then the RETURN
  CHECK(e.reason.find("RETURN") != std::string::npos);
  // Any other port goes to 15006 through ISTIO_INBOUND's last rule and ISTIO_IN_REDIRECT.
  auto app = explain_iptables(flow("in tcp 10.244.0.1:43210 -> 10.244.0.5:9080"), view);
  CHECK(app.outcome == Outcome::Redirect);
  CHECK(app.port == std::optional<std::uint16_t>(15006));
  CHECK(last_step(app) == "nat ISTIO_IN_REDIRECT #1");
}

TEST_CASE("explain: in the reference listing the proxy's own connections leave by the UID 1337 RETURN", "[explain]") {
  // 8 packets on `RETURN all owner UID match 1337`, the fourth rule of ISTIO_OUTPUT.
  auto view = view_of_text(kSeed + "seed-without-dns.rules");
  auto e = explain_iptables(flow("out tcp 10.244.0.5:38000 -> 10.96.0.1:443 uid 1337 gid 1337"), view);
  CHECK(e.outcome == Outcome::Accept);
  CHECK(last_step(e) == "nat ISTIO_OUTPUT #4");
  // The application's go to 15001 by the chain's last rule.
  auto app = explain_iptables(flow("out tcp 10.244.0.5:38000 -> 10.96.0.1:443 uid 1000 gid 1000"), view);
  CHECK(app.outcome == Outcome::Redirect);
  CHECK(app.port == std::optional<std::uint16_t>(15001));
  REQUIRE(app.trail.size() == 3);
  CHECK(app.trail[1].chain == "ISTIO_OUTPUT");
  CHECK(app.trail[1].index == 9);
  // Without DNS capture nothing touches UDP: the query reaches kube-dns.
  auto dns = explain_iptables(flow("out udp 10.244.0.5:38000 -> 10.96.0.10:53 uid 1000 gid 1000"), view);
  CHECK(dns.outcome == Outcome::Accept);
  CHECK(dns.trail.empty());
}

TEST_CASE("explain: with DNS capture the application's queries go to the agent and the proxy's to kube-dns",
          "[explain]") {
  auto view = view_of_text(kSeed + "seed-with-dns.rules");
  auto udp = explain_iptables(flow("out udp 10.244.0.5:38000 -> 10.96.0.10:53 uid 1000 gid 1000"), view);
  CHECK(udp.outcome == Outcome::Redirect);
  CHECK(udp.port == std::optional<std::uint16_t>(15053));
  CHECK(last_step(udp) == "nat ISTIO_OUTPUT #13");  // the UDP REDIRECT, last of the chain
  auto tcp = explain_iptables(flow("out tcp 10.244.0.5:38000 -> 10.96.0.10:53 uid 1000 gid 1000"), view);
  CHECK(tcp.outcome == Outcome::Redirect);
  CHECK(tcp.port == std::optional<std::uint16_t>(15053));
  CHECK(last_step(tcp) == "nat ISTIO_OUTPUT #8");
  // The proxy's query meets the UID 1337 RETURN before any DNS rule.
  auto proxy = explain_iptables(flow("out udp 10.244.0.5:38000 -> 10.96.0.10:53 uid 1337 gid 1337"), view);
  CHECK(proxy.outcome == Outcome::Accept);
  CHECK(last_step(proxy) == "nat ISTIO_OUTPUT #4");
  // A server that is not the nameserver is not captured.
  auto other = explain_iptables(flow("out udp 10.244.0.5:38000 -> 8.8.8.8:53 uid 1000 gid 1000"), view);
  CHECK(other.outcome == Outcome::Accept);
}

TEST_CASE("explain: the 1.24 plan and the reference listing give every flow the same verdict", "[explain]") {
  Config config = config_of(std::string(kInjected) + " --compat 1.24 --ipv6 off --dns-servers 10.96.0.10",
                            {{"ISTIO_META_DNS_CAPTURE", "true"}});
  auto planned = view_of_ruleset(plan(config).v4);
  auto reference = view_of_text(kSeed + "seed-with-dns.rules");
  int compared = 0;
  for (const char* direction : {"out", "in"})
    for (const char* proto : {"tcp", "udp"})
      for (const char* dst : {"10.96.0.10", "127.0.0.1", "10.244.0.5", "10.0.0.7"})
        for (int port : {53, 80, 15008, 15020, 15021, 15090})
          for (const char* owner : {" uid 1337 gid 1337", " uid 1000 gid 1337", " uid 1000 gid 1000"})
            for (const char* oif : {"", " oif lo"}) {
              std::string text =
                  std::string(direction) + " " + proto + " 10.244.0.5:40000 -> " + dst + ":" + std::to_string(port);
              if (std::string(direction) == "out")
                text += std::string(owner) + oif;
              else if (std::string(owner) != " uid 1337 gid 1337" || *oif)
                continue;  // an arriving packet has no owner and no oif: once per destination
              auto p = flow(text);
              auto a = explain_iptables(p, planned);
              auto b = explain_iptables(p, reference);
              INFO(text);
              // The nat verdict (the listing has no raw table, so zones are not compared).
              CHECK(outcome_name(a.outcome) == std::string(outcome_name(b.outcome)));
              CHECK(a.port == b.port);
              ++compared;
            }
  CHECK(compared > 200);
}

TEST_CASE("explain: DNS conntrack zones: the first CT target a packet meets decides", "[explain]") {
  // Istio's raw rules put the proxy's queries (UID 1337, dport 53) in zone 1 and application
  // queries to the nameserver in zone 2; the nameserver rule comes last but xt_CT leaves a
  // packet that already has a conntrack template alone.
  Config config = config_of(std::string(kInjected) + " --ipv6 off --redirect-dns --dns-servers 10.96.0.10");
  auto view = view_of_ruleset(plan(config).v4);
  auto app = explain_iptables(flow("out udp 10.244.0.5:40000 -> 10.96.0.10:53 uid 1000 gid 1000"), view);
  CHECK(app.outcome == Outcome::Redirect);
  CHECK(app.port == std::optional<std::uint16_t>(15053));
  CHECK(app.zone == 2);
  auto proxy = explain_iptables(flow("out udp 10.244.0.5:40000 -> 10.96.0.10:53 uid 1337 gid 1337"), view);
  CHECK(proxy.outcome == Outcome::Accept);
  CHECK(proxy.zone == 1);
  auto agent_reply = explain_iptables(flow("out udp 127.0.0.1:15053 -> 127.0.0.1:40000 uid 1337 gid 1337"), view);
  CHECK(agent_reply.zone == 2);
  auto upstream_reply = explain_iptables(flow("in udp 10.96.0.10:53 -> 10.244.0.5:40000"), view);
  CHECK(upstream_reply.outcome == Outcome::Accept);
  CHECK(upstream_reply.zone == 1);

  // The same in native nftables mode.
  auto nft = view_of_nft_plan(plan_nft(config));
  auto nft_app = explain_nft(flow("out udp 10.244.0.5:40000 -> 10.96.0.10:53 uid 1000 gid 1000"), nft);
  CHECK(nft_app.outcome == Outcome::Redirect);
  CHECK(nft_app.port == std::optional<std::uint16_t>(15053));
  CHECK(nft_app.zone == 2);
  CHECK(nft_app.trail.back().family == "inet");
  CHECK(explain_nft(flow("out udp 10.244.0.5:40000 -> 10.96.0.10:53 uid 1337 gid 1337"), nft).zone == 1);
}

TEST_CASE("explain: TPROXY mode: inbound is TPROXY'd with mark 1337, the proxy's loopback calls come back round",
          "[explain]") {
  Config config = config_of("-p 15001 -z 15006 -u 1337 -m TPROXY -i '*' -b '*' -d 15020 --ipv6 on");
  Plan p = plan(config);
  auto v4 = view_of_ruleset(p.v4);
  REQUIRE(p.v6);
  auto v6 = view_of_ruleset(*p.v6);
  auto in = explain_iptables(flow("in tcp 192.0.2.1:40000 -> 192.0.2.2:8080"), v4);
  CHECK(in.outcome == Outcome::Tproxy);
  CHECK(in.port == std::optional<std::uint16_t>(15006));
  CHECK(in.tproxy_mark == std::optional<std::uint32_t>(1337));
  CHECK(last_step(in) == "mangle ISTIO_TPROXY #1");
  auto in6 = explain_iptables(flow("in tcp [2001:db8::1]:40000 -> [2001:db8::2]:8080"), v6);
  CHECK(in6.outcome == Outcome::Tproxy);
  // -d 15020: returned before ISTIO_TPROXY.
  CHECK(explain_iptables(flow("in tcp 192.0.2.1:40000 -> 192.0.2.2:15020"), v4).outcome == Outcome::Accept);
  // A packet of an established connection is marked and accepted by ISTIO_DIVERT.
  auto est = explain_iptables(flow("in tcp 192.0.2.1:40000 -> 192.0.2.2:8080 state established"), v4);
  CHECK(est.outcome == Outcome::Accept);
  CHECK(last_step(est) == "mangle ISTIO_DIVERT #2");
  // The proxy calling the pod's address on 15008: not redirected in nat (15008 is excluded), but
  // marked 1338 in mangle OUTPUT, so back in PREROUTING from lo it is not returned as loopback
  // traffic and ISTIO_TPROXY takes it.
  auto tunnel = explain_iptables(flow("out tcp 192.0.2.2:40000 -> 192.0.2.2:15008 uid 1337 gid 1337 oif lo"), v4);
  CHECK(tunnel.outcome == Outcome::Tproxy);
  // The application calling its own address: RETURN in nat, RETURN in mangle (mark not 1338).
  auto self = explain_iptables(flow("out tcp 192.0.2.2:40000 -> 192.0.2.2:8080 uid 1000 gid 1000 oif lo"), v4);
  CHECK(self.outcome == Outcome::Accept);
  CHECK(last_step(self) == "mangle ISTIO_INBOUND #3");
  // The same in native nftables mode.
  auto nft = view_of_nft_plan(plan_nft(config));
  CHECK(explain_nft(flow("in tcp 192.0.2.1:40000 -> 192.0.2.2:8080"), nft).outcome == Outcome::Tproxy);
  CHECK(explain_nft(flow("in tcp [2001:db8::1]:40000 -> [2001:db8::2]:8080"), nft).outcome == Outcome::Tproxy);
  CHECK(explain_nft(flow("out tcp 192.0.2.2:40000 -> 192.0.2.2:15008 uid 1337 gid 1337 oif lo"), nft).outcome ==
        Outcome::Tproxy);
}

TEST_CASE("explain: what the flow leaves open and the rules do not model make the verdict uncertain", "[explain]") {
  Config config = config_of(std::string(kInjected) + " --ipv6 off -c eth9");
  auto view = view_of_ruleset(plan(config).v4);
  // No owner given: the first owner match cannot be evaluated.
  auto no_uid = explain_iptables(flow("out tcp 192.0.2.2:40000 -> 192.0.2.1:8080 oif eth0"), view);
  CHECK(no_uid.outcome == Outcome::Uncertain);
  CHECK_FALSE(no_uid.trail.back().modelled);
  CHECK(no_uid.reason.find("uid") != std::string::npos);
  // `-o eth9 -j RETURN` cannot be told for "the pod's interface" without its name.
  auto no_oif = explain_iptables(flow("out tcp 192.0.2.2:40000 -> 192.0.2.1:8080 uid 1000 gid 1000"), view);
  CHECK(no_oif.outcome == Outcome::Uncertain);
  CHECK(no_oif.trail.back().rule == "-A OUTPUT -o eth9 -j RETURN");
  auto named = explain_iptables(flow("out tcp 192.0.2.2:40000 -> 192.0.2.1:8080 uid 1000 gid 1000 oif eth9"), view);
  CHECK(named.outcome == Outcome::Accept);
  // A rule read back outside the model.
  Snapshot snap;
  snap.table = Table::Nat;
  snap.chains.push_back(InstalledChain{"PREROUTING", true, {}});
  snap.chains[0].rules.push_back(InstalledRule{"-p sctp -j DNAT --to-destination 10.0.0.1", "", std::nullopt});
  IptablesView foreign;
  foreign.tables.push_back(view_of_snapshot(snap));
  auto e = explain_iptables(flow("in tcp 192.0.2.1:40000 -> 192.0.2.2:8080"), foreign);
  CHECK(e.outcome == Outcome::Uncertain);
  REQUIRE(e.trail.size() == 1);
  CHECK(e.trail[0].rule == "-A PREROUTING -p sctp -j DNAT --to-destination 10.0.0.1");
  CHECK_FALSE(e.trail[0].modelled);
}

TEST_CASE("explain: owner matches follow the kernel: --gid-owner is the socket's group, nft skuid needs a socket",
          "[explain]") {
  auto view = view_of_text(kSeed + "seed-without-dns.rules");
  // GID 1337 with another UID: ISTIO_OUTPUT #7 (`--gid-owner 1337 -j RETURN`).
  auto group = explain_iptables(flow("out tcp 10.244.0.5:40000 -> 10.0.0.7:80 uid 2000 gid 1337"), view);
  CHECK(group.outcome == Outcome::Accept);
  CHECK(last_step(group) == "nat ISTIO_OUTPUT #7");
  // xt_owner: `! --uid-owner` matches a packet that has no socket. No flow has one in OUTPUT,
  // so this is shown with a hand-made nft rule instead: nft's `skuid != 1337` never matches
  // without a socket (PREROUTING).
  nft::Rule r;
  r.statements = {nft::SocketOwnerMatch{false, OwnerId{1337, ""}, true, false}, nft::CounterStatement{},
                  nft::VerdictStatement{nft::VerdictKind::Drop, ""}};
  NftView nv;
  nv.tables.push_back(NftViewTable{"t",
                                   {NftViewChain{"pre",
                                                 nft::BaseChain{nft::ChainType::Filter, nft::Hook::Prerouting, -150},
                                                 "",
                                                 {NftViewRule{r, "skuid != 1337 counter drop"}}}}});
  CHECK(explain_nft(flow("in tcp 192.0.2.1:40000 -> 192.0.2.2:8080"), nv).outcome == Outcome::Accept);
}

TEST_CASE("explain: a deleted rule changes the path the installed rules give", "[explain]") {
  Config config = config_of(std::string(kInjected) + " --ipv6 off");
  auto view = view_of_ruleset(plan(config).v4);
  const auto proxy = flow("out tcp 192.0.2.2:40000 -> 192.0.2.1:8080 uid 1337 gid 1000");
  CHECK(explain_iptables(proxy, view).outcome == Outcome::Accept);
  // Tampering: the `-m owner --uid-owner 1337 -j RETURN` of ISTIO_OUTPUT removed.
  for (auto& t : view.tables)
    for (auto& c : t.chains)
      if (c.name == "ISTIO_OUTPUT")
        c.rules.erase(std::remove_if(c.rules.begin(), c.rules.end(),
                                     [](const ViewRule& r) {
                                       return r.text == "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN";
                                     }),
                      c.rules.end());
  auto after = explain_iptables(proxy, view);
  CHECK(after.outcome == Outcome::Redirect);
  CHECK(after.port == std::optional<std::uint16_t>(15001));
}

TEST_CASE("explain: the CLI prints a verdict line and the trail, or one JSON object a line, and bad flows exit 2",
          "[explain]") {
  FakeFacts facts;
  std::vector<std::string> args = shell_words(std::string("explain ") + kInjected + " --ipv6 off");
  auto text_args = args;
  text_args.insert(text_args.end(), {"--flow", "out tcp 192.0.2.2 -> 192.0.2.1:8080 uid 1000 gid 1000"});
  auto text = run(text_args, {}, facts);
  CHECK(text.code == 0);
  CHECK(text.out.find("captured: REDIRECT to port 15001") != std::string::npos);
  CHECK(text.out.find("IPv4 nat ISTIO_REDIRECT #1: -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001") !=
        std::string::npos);

  auto json_args = args;
  json_args.insert(json_args.end(), {"--json", "--flow", "out tcp 192.0.2.2 -> 192.0.2.1:8080 uid 1337", "--flow",
                                     "in tcp 192.0.2.1 -> 192.0.2.2:8080"});
  auto json = run(json_args, {}, facts);
  CHECK(json.code == 0);
  std::regex line(R"re(\{"flow":"[^"]*","verdict":"(\w+)","port":(null|\d+),[^\n]*"trail":\[[^\n]*\]\}\n)re");
  std::smatch m;
  std::string rest = json.out;
  std::vector<std::string> verdicts;
  while (std::regex_search(rest, m, line)) {
    verdicts.push_back(m[1].str() + " " + m[2].str());
    rest = m.suffix();
  }
  CHECK(verdicts == std::vector<std::string>{"accept null", "redirect 15006"});
  CHECK(
      json.out.find(
          R"({"family":"IPv4","table":"nat","chain":"PREROUTING","index":1,"rule":"-A PREROUTING -p tcp -j ISTIO_INBOUND")") !=
      std::string::npos);

  auto bad_args = args;
  bad_args.insert(bad_args.end(), {"--flow", "out tcp 192.0.2.2 -> 192.0.2.1:8080 uid 1000", "--flow",
                                   "out tcp 192.0.2.2 -> 192.0.2.1:http"});
  auto bad = run(bad_args, {}, facts);
  CHECK(bad.code == 2);
  CHECK(bad.out.empty());
  CHECK(bad.err.find("\"192.0.2.1:http\"") != std::string::npos);
}
