// Placement of our rules among foreign ones, and the diff that check reports, on hand-built
// snapshots: every rule is its iptables-save text, its identity that text.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "core/apply.h"
#include "core/planner.h"
#include "core/reconcile.h"
#include "core/rule_text.h"
#include "fixtures.h"
#include "memory_store.h"

using namespace istio_iptables;
using namespace istio_iptables::testing;

namespace {

InstalledRule installed(const std::string& text) {
  auto rule = parse_rule_spec(text);
  REQUIRE(rule);
  return InstalledRule{text, text, rule};
}

InstalledChain chain(const std::string& name, const std::vector<std::string>& rules) {
  InstalledChain c{name, name.rfind("ISTIO_", 0) != 0, {}};
  for (const auto& r : rules) c.rules.push_back(installed(r));
  return c;
}

// A nat table: the built-in chains (empty unless given), then the given user chains.
Snapshot nat(const std::vector<InstalledChain>& given) {
  Snapshot s;
  s.table = Table::Nat;
  for (const auto& name : builtin_chains(Table::Nat)) {
    InstalledChain c{name, true, {}};
    for (const auto& g : given)
      if (g.name == name) c = g;
    s.chains.push_back(c);
  }
  for (const auto& g : given)
    if (!g.builtin) s.chains.push_back(g);
  return s;
}

EncodedOp append(const std::string& chain, const std::string& text) {
  return EncodedOp{chain, std::nullopt, installed(text)};
}
EncodedOp insert(const std::string& chain, unsigned position, const std::string& text) {
  return EncodedOp{chain, position, installed(text)};
}

std::vector<std::string> texts(const DesiredTable& d, const std::string& name) {
  for (const auto& c : d.chains)
    if (c.name == name) {
      std::vector<std::string> out;
      for (const auto* r : c.rules) out.push_back(r->blob);
      return out;
    }
  FAIL("no chain " << name << " in the desired table");
  return {};
}

std::vector<std::string> lines(const std::vector<Difference>& diffs) {
  std::vector<std::string> out;
  for (const auto& d : diffs)
    out.push_back(d.chain + ": " + (d.kind == Difference::Missing ? "missing" : "extra") + ": " + d.rule);
  return out;
}

const std::string kJump = "-j ISTIO_OUTPUT";
const std::string kForeign = "-d 203.0.113.1/32 -j RETURN";
const std::vector<std::string> kIstioOutput = {"-o lo -s 127.0.0.6/32 -j RETURN", "-m owner --uid-owner 1337 -j RETURN",
                                               "-d 127.0.0.1/32 -j RETURN", "-j ISTIO_REDIRECT"};

// The plan's ops for nat OUTPUT's jump and ISTIO_OUTPUT.
std::vector<EncodedOp> output_ops(const std::vector<std::string>& istio_output = kIstioOutput) {
  std::vector<EncodedOp> ops{append("OUTPUT", kJump)};
  for (const auto& r : istio_output) ops.push_back(append("ISTIO_OUTPUT", r));
  ops.push_back(append("ISTIO_REDIRECT", "-p tcp -j REDIRECT --to-ports 15001"));
  return ops;
}

Snapshot installed_output(const std::vector<std::string>& output_chain,
                          const std::vector<std::string>& istio_output = kIstioOutput) {
  return nat({chain("OUTPUT", output_chain), chain("ISTIO_OUTPUT", istio_output),
              chain("ISTIO_REDIRECT", {"-p tcp -j REDIRECT --to-ports 15001"})});
}

}  // namespace

TEST_CASE("reconcile: a table that holds the plan has no difference and needs no write") {
  auto now = installed_output({kJump});
  auto ops = output_ops();
  auto desired = desired_table(now, ops);
  CHECK(differences(now, desired).empty());
  CHECK_FALSE(write_for(now, desired));
  CHECK(placement_notes(now).empty());
}

TEST_CASE("reconcile: a rule missing from our chain and one too many are both named") {
  auto now = installed_output({kJump}, {"-o lo -s 127.0.0.6/32 -j RETURN", "-m owner --uid-owner 1337 -j RETURN",
                                        "-p tcp --dport 7 -j RETURN", "-j ISTIO_REDIRECT"});
  auto ops = output_ops();
  auto diffs = lines(differences(now, desired_table(now, ops)));
  CHECK(diffs == std::vector<std::string>{"ISTIO_OUTPUT: missing: -d 127.0.0.1/32 -j RETURN",
                                          "ISTIO_OUTPUT: extra: -p tcp --dport 7 -j RETURN"});
}

TEST_CASE("reconcile: two of our rules swapped are one rule out of place, missing at one end and extra at the other") {
  auto swapped = kIstioOutput;
  std::swap(swapped[1], swapped[2]);
  auto now = installed_output({kJump}, swapped);
  auto ops = output_ops();
  auto diffs = differences(now, desired_table(now, ops));
  REQUIRE(diffs.size() == 2);
  CHECK(diffs[0].kind != diffs[1].kind);
  CHECK(diffs[0].rule == diffs[1].rule);
  CHECK((diffs[0].rule == kIstioOutput[1] || diffs[0].rule == kIstioOutput[2]));
  // Rewriting puts them in the plan's order.
  auto write = write_for(now, desired_table(now, ops));
  REQUIRE(write);
  REQUIRE(write->chains.size() == 1);
  CHECK(write->chains[0].name == "ISTIO_OUTPUT");
  std::vector<std::string> written;
  for (const auto* b : write->chains[0].blobs) written.push_back(*b);
  CHECK(written == kIstioOutput);
}

TEST_CASE("reconcile: a foreign rule appended after our jump is no difference and nothing is rewritten") {
  // iptables -t nat -A OUTPUT -d 203.0.113.1/32 -j RETURN after an apply.
  auto now = installed_output({kJump, kForeign});
  auto ops = output_ops();
  auto desired = desired_table(now, ops);
  CHECK(differences(now, desired).empty());
  CHECK_FALSE(write_for(now, desired));
  CHECK(texts(desired, "OUTPUT") == std::vector<std::string>{kJump, kForeign});
  CHECK(placement_notes(now).empty());  // after our jump it bypasses nothing
}

TEST_CASE("reconcile: a foreign rule before our jump is a note, not a difference") {
  auto now = installed_output({kForeign, "-j MARK --set-xmark 0x7/0xffffffff", kJump});
  auto ops = output_ops();
  auto desired = desired_table(now, ops);
  CHECK(differences(now, desired).empty());
  CHECK_FALSE(write_for(now, desired));
  auto notes = placement_notes(now);
  REQUIRE(notes.size() == 1);  // the MARK rule lets every packet go on to our jump
  CHECK(notes[0].chain == "OUTPUT");
  CHECK(notes[0].rule == kForeign);
  CHECK(notes[0].jump == kJump);
}

TEST_CASE("reconcile: a chain holding none of ours gets them where iptables-restore --noflush puts them") {
  auto now = nat({chain("OUTPUT", {kForeign}), chain("PREROUTING", {"-s 198.51.100.0/24 -j ACCEPT"})});
  std::vector<EncodedOp> ops = output_ops();
  ops.push_back(insert("PREROUTING", 1, "-i vnet0 -j ISTIO_REDIRECT"));
  auto desired = desired_table(now, ops);
  CHECK(texts(desired, "OUTPUT") == std::vector<std::string>{kForeign, kJump});
  CHECK(texts(desired, "PREROUTING") ==
        std::vector<std::string>{"-i vnet0 -j ISTIO_REDIRECT", "-s 198.51.100.0/24 -j ACCEPT"});
}

TEST_CASE("reconcile: a replaced jump of ours takes the place of the one it replaces") {
  auto now = installed_output({kJump, kForeign});
  auto ops = output_ops();
  ops[0] = append("OUTPUT", "-p tcp -j ISTIO_OUTPUT");
  auto desired = desired_table(now, ops);
  CHECK(texts(desired, "OUTPUT") == std::vector<std::string>{"-p tcp -j ISTIO_OUTPUT", kForeign});
  CHECK(lines(differences(now, desired)) ==
        std::vector<std::string>{"OUTPUT: missing: -p tcp -j ISTIO_OUTPUT", "OUTPUT: extra: -j ISTIO_OUTPUT"});
}

TEST_CASE("reconcile: a new rule goes where restore puts it, but no further than our rules that stay") {
  // Ours: the inbound jump, between two foreign rules. The new configuration adds an
  // "-I PREROUTING 1" jump (restore: first) and keeps the inbound jump where it stands.
  auto now = nat({chain("PREROUTING", {"-s 198.51.100.0/24 -j ACCEPT", "-p tcp -j ISTIO_INBOUND", kForeign}),
                  chain("ISTIO_INBOUND", {}), chain("ISTIO_REDIRECT", {})});
  std::vector<EncodedOp> ops{insert("PREROUTING", 1, "-i vnet0 -j ISTIO_REDIRECT"),
                             append("PREROUTING", "-p tcp -j ISTIO_INBOUND")};
  auto desired = desired_table(now, ops);
  CHECK(texts(desired, "PREROUTING") == std::vector<std::string>{"-i vnet0 -j ISTIO_REDIRECT",
                                                                 "-s 198.51.100.0/24 -j ACCEPT",
                                                                 "-p tcp -j ISTIO_INBOUND", kForeign});
  // Restore would put "-I PREROUTING 2" after the first foreign rule; the plan wants it before
  // the inbound jump, which stays before both foreign rules here: so it goes right before it.
  auto first = nat({chain("PREROUTING", {"-p tcp -j ISTIO_INBOUND", "-s 198.51.100.0/24 -j ACCEPT", kForeign}),
                    chain("ISTIO_INBOUND", {}), chain("ISTIO_REDIRECT", {})});
  std::vector<EncodedOp> second{append("PREROUTING", "-p tcp -j ISTIO_INBOUND"),
                                insert("PREROUTING", 2, "-i vnet0 -j ISTIO_REDIRECT")};
  CHECK(texts(desired_table(first, second), "PREROUTING") ==
        std::vector<std::string>{"-i vnet0 -j ISTIO_REDIRECT", "-p tcp -j ISTIO_INBOUND",
                                 "-s 198.51.100.0/24 -j ACCEPT", kForeign});
}

TEST_CASE("reconcile: re-applying after a foreign rule was appended commits nothing and moves nothing") {
  MemoryStore store;
  Config c = injected_sidecar();
  REQUIRE(apply_plan(store, plan(c)));
  store.add_foreign(Family::V4, Table::Nat, "OUTPUT", kForeign);
  int commits = store.commits;
  auto again = apply_plan(store, plan(c));
  REQUIRE(again);
  CHECK(again.value().committed.empty());
  CHECK(store.commits == commits);
  CHECK(store.chain(Family::V4, Table::Nat, "OUTPUT") == std::vector<std::string>{kJump, kForeign});
  auto diff = check(store, plan(c));
  REQUIRE(diff);
  CHECK(diff.value().empty());
}

TEST_CASE("reconcile: a 10 000-rule chain with one rule changed differs by exactly that rule") {
  std::vector<std::string> have, want;
  for (int i = 0; i < 10000; ++i) have.push_back("-p tcp --dport " + std::to_string(20000 + i) + " -j RETURN");
  want = have;
  want[5000] = "-p tcp --dport 65000 -j RETURN";
  auto now = installed_output({kJump}, have);
  auto ops = output_ops(want);
  auto desired = desired_table(now, ops);
  CHECK(lines(differences(now, desired)) ==
        std::vector<std::string>{"ISTIO_OUTPUT: missing: -p tcp --dport 65000 -j RETURN",
                                 "ISTIO_OUTPUT: extra: -p tcp --dport 25000 -j RETURN"});
  // Every rule different: each one missing and each one extra.
  std::vector<std::string> other;
  for (int i = 0; i < 10000; ++i) other.push_back("-p udp --dport " + std::to_string(20000 + i) + " -j RETURN");
  auto all = differences(now, desired_table(now, output_ops(other)));
  CHECK(all.size() == 20000);
  // Reversed: 9 999 rules out of place (one can stay), twice.
  std::vector<std::string> reversed(have.rbegin(), have.rend());
  auto moved = differences(now, desired_table(now, output_ops(reversed)));
  CHECK(moved.size() == 2 * 9999);
}

TEST_CASE("reconcile: the differences are as few as a longest common subsequence allows") {
  // Against the textbook dynamic programme, on random short chains over a small alphabet.
  std::mt19937 random(8);
  for (int round = 0; round < 400; ++round) {
    auto draw = [&] {
      std::vector<std::string> v(random() % 25);
      for (auto& r : v) r = "-p tcp --dport " + std::to_string(1 + random() % 5) + " -j RETURN";
      return v;
    };
    auto have = draw(), want = draw();
    std::vector<std::vector<std::size_t>> lcs(have.size() + 1, std::vector<std::size_t>(want.size() + 1, 0));
    for (std::size_t i = have.size(); i-- > 0;)
      for (std::size_t j = want.size(); j-- > 0;)
        lcs[i][j] = have[i] == want[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    auto now = installed_output({kJump}, have);
    auto ops = output_ops(want);
    auto diffs = differences(now, desired_table(now, ops));
    INFO("round " << round);
    CHECK(diffs.size() == have.size() + want.size() - 2 * lcs[0][0]);
    // What stays is the same on both sides.
    std::map<std::string, int> count;
    for (const auto& r : have) ++count[r];
    for (const auto& r : want) --count[r];
    for (const auto& d : diffs) count[d.rule] += d.kind == Difference::Missing ? 1 : -1;
    for (const auto& [rule, n] : count) CHECK(n == 0);
  }
}
