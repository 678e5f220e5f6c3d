// The native nftables apply logic against an in-memory nf_tables: one transaction, no churn,
// foreign tables untouched, stale views retried, check in nft's words, cleanup.
//
// The fake keeps our tables as the kernel would (chains in creation order, rules with handles)
// and a foreign table beside them; a commit applies the operations in order exactly as nf_tables
// does (adding an existing table is a no-op, deleting a missing one fails the whole batch) and is
// refused when the generation moved on. Fingerprints are the rule text: the fake has no
// encoding of its own to get wrong.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>

#include "core/nft_apply.h"
#include "core/nft_planner.h"
#include "core/nft_script.h"
#include "fixtures.h"
#include "memory_nft_store.h"

namespace istio_iptables::nft {
namespace {

using testing::MemoryNftStore;

/// The listing a fresh kernel would show for `plan`, played out from the plan's own operations.
std::vector<std::string> expected_listing(const Ruleset& plan) {
  std::vector<std::string> out;
  for (const auto& t : plan.tables)
    for (const auto& c : t.chains)
      for (const auto& r : chain_rules(t, c.name)) out.push_back(t.name + " " + c.name + ": " + nft_rule_text(r));
  return out;
}

Config sidecar_with_dns() {
  Config c = testing::injected_sidecar();
  c.redirect_dns = true;
  c.enable_ipv6 = true;
  c.dns_servers_v4 = {*parse_address("192.0.2.53")};
  c.dns_servers_v6 = {*parse_address("2001:db8::53")};
  return c;
}

bool names_only_our_tables(const Transaction& tx) {
  return std::all_of(tx.operations.begin(), tx.operations.end(),
                     [](const Operation& op) { return is_our_table(op.table); });
}

}  // namespace

TEST_CASE("nft apply: a fresh namespace gets the whole plan in one transaction", "[nft_apply]") {
  MemoryNftStore store;
  const Ruleset plan = plan_nft(sidecar_with_dns());
  auto outcome = apply_nft(store, plan);
  REQUIRE(outcome.ok());
  CHECK(outcome.value().committed);
  CHECK(store.commits.size() == 1);
  CHECK(store.listing() == expected_listing(plan));
  CHECK(outcome.value().written == std::vector<std::string>{"istio-proxy-nat", "istio-proxy-raw"});
}

TEST_CASE("nft apply: re-applying the same plan commits nothing and keeps handles", "[nft_apply]") {
  MemoryNftStore store;
  const Ruleset plan = plan_nft(sidecar_with_dns());
  REQUIRE(apply_nft(store, plan).ok());
  const auto handles = store.handles();
  auto again = apply_nft(store, plan);
  REQUIRE(again.ok());
  CHECK_FALSE(again.value().committed);
  CHECK(again.value().attempts == 0);
  CHECK(store.commits.size() == 1);
  CHECK(store.handles() == handles);
}

TEST_CASE("nft apply: a changed configuration replaces our tables and drops the ones it no longer has", "[nft_apply]") {
  MemoryNftStore store;
  Config first = sidecar_with_dns();
  first.drop_invalid = true;
  REQUIRE(apply_nft(store, plan_nft(first)).ok());
  REQUIRE(store.state.find("istio-proxy-mangle"));

  Config second = testing::injected_sidecar();
  second.outbound_ports_exclude = {3306};
  const Ruleset plan = plan_nft(second);
  auto outcome = apply_nft(store, plan);
  REQUIRE(outcome.ok());
  CHECK(store.commits.size() == 2);  // one transaction for every table
  CHECK(store.listing() == expected_listing(plan));
  CHECK(store.state.find("istio-proxy-mangle") == nullptr);
  CHECK(store.state.find("istio-proxy-raw") == nullptr);
  // The old chain istio-output-dns went with the table: a flush would have kept it.
  CHECK(store.chain("istio-proxy-nat", kOutputDnsChain) == nullptr);
  CHECK(outcome.value().deleted == std::vector<std::string>{"istio-proxy-mangle", "istio-proxy-raw"});
}

TEST_CASE("nft apply: a table already as planned keeps its handles when another table changes", "[nft_apply]") {
  MemoryNftStore store;
  Config c = sidecar_with_dns();
  REQUIRE(apply_nft(store, plan_nft(c)).ok());
  const InstalledChain* raw = store.chain("istio-proxy-raw", kOutput);
  REQUIRE(raw != nullptr);
  REQUIRE_FALSE(raw->rules.empty());
  const auto raw_handle = raw->rules[0].handle;
  c.outbound_ports_exclude = {3306};  // changes nat only
  REQUIRE(apply_nft(store, plan_nft(c)).ok());
  raw = store.chain("istio-proxy-raw", kOutput);
  REQUIRE(raw != nullptr);
  CHECK(raw->rules[0].handle == raw_handle);
  for (const auto& op : store.commits.back().operations) CHECK(op.table == "istio-proxy-nat");
}

TEST_CASE("nft apply: foreign tables are never named in a transaction", "[nft_apply]") {
  MemoryNftStore store;
  // A foreign table with a name close to ours is as foreign as any other.
  store.state.tables.push_back(InstalledTable{"istio-proxy-custom", "", {InstalledChain{"c", std::nullopt, "", {}}}});
  REQUIRE(apply_nft(store, plan_nft(sidecar_with_dns())).ok());
  REQUIRE(apply_nft(store, plan_nft(testing::injected_sidecar())).ok());
  REQUIRE(cleanup_nft(store).ok());
  for (const auto& tx : store.commits) CHECK(names_only_our_tables(tx));
  CHECK(store.state.find("istio-proxy-custom") != nullptr);
}

TEST_CASE("nft apply: a transaction refused for a stale generation is rebuilt from a fresh read", "[nft_apply]") {
  MemoryNftStore store;
  store.races = 2;
  const Ruleset plan = plan_nft(testing::injected_sidecar());
  auto outcome = apply_nft(store, plan);
  REQUIRE(outcome.ok());
  CHECK(outcome.value().attempts == 3);
  CHECK(store.commits.size() == 3);
  CHECK(store.commits[2].generation == 2);  // built on the view after both races
  CHECK(store.listing() == expected_listing(plan));
}

TEST_CASE("nft apply: a ruleset that never stops changing is an error after a bounded number of tries", "[nft_apply]") {
  MemoryNftStore store;
  store.races = 1000;
  auto outcome = apply_nft(store, plan_nft(testing::injected_sidecar()));
  REQUIRE_FALSE(outcome.ok());
  CHECK(outcome.error().message.find("changed during each of 10 attempts") != std::string::npos);
  CHECK(store.commits.size() == kMaxAttempts);
  CHECK(store.state.tables.empty());
}

TEST_CASE("nft apply: a rule the store cannot encode fails the run and leaves the tables as they were", "[nft_apply]") {
  // The netlink store builds the whole batch before it sends anything: a rule it cannot encode
  // (a group name with no entry) makes commit fail with nothing sent.
  struct Refusing : MemoryNftStore {
    Result<CommitOutcome> commit(const Transaction&) override {
      return Error{"cannot resolve group \"java\": no such group"};
    }
  } store;
  const auto before = store.state.tables.size();
  auto outcome = apply_nft(store, plan_nft(testing::injected_sidecar()));
  REQUIRE_FALSE(outcome.ok());
  CHECK(outcome.error().message.find("no such group") != std::string::npos);
  CHECK(store.state.tables.size() == before);
}

TEST_CASE("nft apply: a fresh namespace needs no fingerprints, a table in place is compared by them", "[nft_apply]") {
  struct Counting : MemoryNftStore {
    int asked = 0;
    Result<std::string> fingerprint(const std::string& table, const Rule& rule) override {
      ++asked;
      return MemoryNftStore::fingerprint(table, rule);
    }
  } store;
  const Ruleset plan = plan_nft(testing::injected_sidecar());
  REQUIRE(apply_nft(store, plan).ok());
  CHECK(store.asked == 0);
  auto again = apply_nft(store, plan);
  REQUIRE(again.ok());
  CHECK_FALSE(again.value().committed);
  CHECK(store.asked > 0);
}

TEST_CASE("nft check: a deleted, an extra and a moved rule are named in nft's words", "[nft_apply]") {
  MemoryNftStore store;
  const Ruleset plan = plan_nft(testing::injected_sidecar());
  REQUIRE(apply_nft(store, plan).ok());
  auto clean = check_nft(store, plan);
  REQUIRE(clean.ok());
  CHECK(clean.value().empty());

  auto* output = store.chain("istio-proxy-nat", kOutputChain);
  REQUIRE(output != nullptr);
  REQUIRE(output->rules.size() >= 3);
  // Delete "ip daddr 127.0.0.1/32 counter return" (N15), swap the first two, add a foreign one.
  auto n15 = std::find_if(output->rules.begin(), output->rules.end(),
                          [](const InstalledRule& r) { return r.text == "ip daddr 127.0.0.1/32 counter return"; });
  REQUIRE(n15 != output->rules.end());
  output->rules.erase(n15);
  std::swap(output->rules[0], output->rules[1]);
  output->rules.push_back(InstalledRule{"udp dport 9999 counter drop", "udp dport 9999 counter drop", 999});
  auto diffs = check_nft(store, plan);
  REQUIRE(diffs.ok());
  const std::string where = "table inet istio-proxy-nat chain istio-output: ";
  CHECK(std::count(diffs.value().begin(), diffs.value().end(),
                   where + "missing rule `ip daddr 127.0.0.1/32 counter return`") == 1);
  CHECK(std::count(diffs.value().begin(), diffs.value().end(), where + "extra rule `udp dport 9999 counter drop`") ==
        1);
  CHECK(std::count_if(diffs.value().begin(), diffs.value().end(),
                      [&](const std::string& d) { return d.rfind(where + "misplaced rule `", 0) == 0; }) == 1);
  CHECK(diffs.value().size() == 3);
}

TEST_CASE("nft check: missing tables and chains, and tables of ours the plan does not have", "[nft_apply]") {
  MemoryNftStore store;
  Config c = sidecar_with_dns();
  c.drop_invalid = true;
  REQUIRE(apply_nft(store, plan_nft(c)).ok());
  const Ruleset plan = plan_nft(sidecar_with_dns());  // no mangle table
  auto& nat = *std::find_if(store.state.tables.begin(), store.state.tables.end(),
                            [](const InstalledTable& t) { return t.name == "istio-proxy-nat"; });
  nat.chains.erase(std::find_if(nat.chains.begin(), nat.chains.end(),
                                [](const InstalledChain& ch) { return ch.name == kRedirectChain; }));
  store.state.tables.erase(std::find_if(store.state.tables.begin(), store.state.tables.end(),
                                        [](const InstalledTable& t) { return t.name == "istio-proxy-raw"; }));
  auto diffs = check_nft(store, plan);
  REQUIRE(diffs.ok());
  CHECK(diffs.value() == std::vector<std::string>{"table inet istio-proxy-nat: missing chain istio-redirect",
                                                  "missing table inet istio-proxy-raw",
                                                  "extra table inet istio-proxy-mangle"});
}

TEST_CASE("nft cleanup: our tables go in one transaction, a second cleanup commits nothing", "[nft_apply]") {
  MemoryNftStore store;
  Config c = sidecar_with_dns();
  c.drop_invalid = true;
  REQUIRE(apply_nft(store, plan_nft(c)).ok());
  store.state.tables.push_back(InstalledTable{"istio-proxy-custom", "", {}});
  auto outcome = cleanup_nft(store);
  REQUIRE(outcome.ok());
  CHECK(outcome.value().committed);
  CHECK(store.commits.size() == 2);
  CHECK(store.commits.back().operations.size() == 3);
  REQUIRE(store.state.tables.size() == 1);
  CHECK(store.state.tables[0].name == "istio-proxy-custom");
  auto again = cleanup_nft(store);
  REQUIRE(again.ok());
  CHECK_FALSE(again.value().committed);
  CHECK(store.commits.size() == 2);
}

}  // namespace istio_iptables::nft
