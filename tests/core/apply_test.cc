// The apply sequence (read, decide, commit, roll back) against an in-memory store.
#include <catch2/catch.hpp>

#include "core/apply.h"
#include "core/istio_state.h"
#include "core/planner.h"
#include "fixtures.h"
#include "memory_store.h"

using namespace istio_iptables;
using namespace istio_iptables::testing;

namespace {
Config sidecar(bool ipv6, bool dns) {
  Config c = injected_sidecar();
  c.enable_ipv6 = ipv6;
  c.redirect_dns = dns;
  c.dns_servers_v4 = {*parse_address("10.96.0.10")};
  return c;
}

std::map<std::pair<Family, Table>, std::vector<std::string>> everything(MemoryStore& s) {
  std::map<std::pair<Family, Table>, std::vector<std::string>> out;
  for (auto& [key, snap] : s.tables)
    for (auto& c : snap.chains) {
      out[key].push_back(":" + c.name);
      for (auto& r : c.rules) out[key].push_back(r.blob);
    }
  return out;
}
}  // namespace

TEST_CASE("apply: a fresh namespace gets every table of the plan, in one commit each") {
  MemoryStore store;
  auto r = apply_plan(store, plan(sidecar(true, true)));
  REQUIRE(r);
  // raw is used by both families: the proxy's DNS conntrack zones are family-independent.
  CHECK(r.value().committed == std::vector<std::string>{"IPv4 nat", "IPv4 raw", "IPv6 nat", "IPv6 raw"});
  CHECK(store.commits == 4);
  CHECK(store.chain(Family::V4, Table::Nat, "OUTPUT") == std::vector<std::string>{"-j ISTIO_OUTPUT"});
}

TEST_CASE("apply: applying the same plan again commits nothing") {
  MemoryStore store;
  REQUIRE(apply_plan(store, plan(sidecar(true, true))));
  int commits = store.commits;
  auto again = apply_plan(store, plan(sidecar(true, true)));
  REQUIRE(again);
  CHECK(again.value().committed.empty());
  CHECK(store.commits == commits);
}

TEST_CASE("apply: foreign rules keep their places, ours go where iptables-restore --noflush puts them") {
  MemoryStore store;
  store.add_foreign(Family::V4, Table::Nat, "PREROUTING", "-s 198.51.100.0/24 -j ACCEPT");
  store.add_foreign(Family::V4, Table::Nat, "OUTPUT", "-j KUBE-SERVICES");
  Config c = sidecar(false, false);
  c.kube_virt_interfaces = {"vnet0"};
  REQUIRE(apply_plan(store, plan(c)));
  // -I PREROUTING 1 goes first, the -A PREROUTING jump last; the foreign rule stays between.
  CHECK(store.chain(Family::V4, Table::Nat, "PREROUTING") ==
        std::vector<std::string>{"-i vnet0 -j ISTIO_REDIRECT", "-i vnet0 -j RETURN", "-s 198.51.100.0/24 -j ACCEPT",
                                 "-p tcp -j ISTIO_INBOUND"});
  CHECK(store.chain(Family::V4, Table::Nat, "OUTPUT") ==
        std::vector<std::string>{"-j KUBE-SERVICES", "-j ISTIO_OUTPUT"});
}

TEST_CASE("apply: a new configuration replaces ours, chains of the old one included") {
  MemoryStore store;
  Config a = sidecar(false, true);
  a.mode = InterceptionMode::Tproxy;
  a.exclude_interfaces = {"eth9"};
  REQUIRE(apply_plan(store, plan(a)));
  REQUIRE_FALSE(store.chain(Family::V4, Table::Mangle, "ISTIO_TPROXY").empty());
  MemoryStore fresh;
  REQUIRE(apply_plan(store, plan(sidecar(false, false))));
  REQUIRE(apply_plan(fresh, plan(sidecar(false, false))));
  auto got = everything(store);
  // The mangle and raw tables are left with empty built-in chains only.
  for (Table t : {Table::Mangle, Table::Raw})
    for (const auto& line : got[{Family::V4, t}]) CHECK(line[0] == ':');
  CHECK(got[{Family::V4, Table::Nat}] == everything(fresh)[{Family::V4, Table::Nat}]);
}

TEST_CASE("apply: when a later commit fails, the tables already committed are put back") {
  MemoryStore store;
  store.add_foreign(Family::V4, Table::Nat, "POSTROUTING", "-o eth0 -j ACCEPT");
  REQUIRE(apply_plan(store, plan(sidecar(true, false))));
  auto before = everything(store);
  store.fail_commits.insert({Family::V6, Table::Nat});
  auto r = apply_plan(store, plan(sidecar(true, true)));  // would write IPv4 nat, IPv4 raw, then fail on IPv6 nat
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("injected failure"));
  CHECK_THAT(r.error().message, Catch::Contains("put back as they were"));
  auto after = everything(store);
  // IPv4 raw did not exist before; it is left with empty built-in chains.
  after.erase({Family::V4, Table::Raw});
  CHECK(after == before);
}

TEST_CASE("apply: when the first commit fails, nothing was changed") {
  MemoryStore store;
  store.fail_commits.insert({Family::V4, Table::Nat});
  auto r = apply_plan(store, plan(sidecar(false, false)));
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("nothing had been changed"));
  CHECK(store.commits == 0);
}

TEST_CASE("cleanup: removes our chains and rules of any configuration and keeps the foreign ones") {
  MemoryStore store;
  store.add_foreign(Family::V4, Table::Nat, "OUTPUT", "-j KUBE-SERVICES");
  store.add_foreign(Family::V4, Table::Mangle, "OUTPUT", "-p tcp -o lo -m mark --mark 7 -j ACCEPT");
  Config c = sidecar(true, true);
  c.mode = InterceptionMode::Tproxy;
  c.drop_invalid = true;
  c.exclude_interfaces = {"eth9"};
  REQUIRE(apply_plan(store, plan(c)));
  REQUIRE(cleanup(store));
  for (auto& [key, lines] : everything(store))
    for (const auto& line : lines) CHECK(line.find("ISTIO") == std::string::npos);
  CHECK(store.chain(Family::V4, Table::Nat, "OUTPUT") == std::vector<std::string>{"-j KUBE-SERVICES"});
  CHECK(store.chain(Family::V4, Table::Mangle, "OUTPUT") ==
        std::vector<std::string>{"-p tcp -o lo -m mark --mark 7 -j ACCEPT"});
  CHECK(store.chain(Family::V4, Table::Mangle, "PREROUTING").empty());  // CONNMARK and -i eth9 RETURN gone
}

TEST_CASE("check: reports missing and extra rules by family, table and chain") {
  MemoryStore store;
  REQUIRE(apply_plan(store, plan(sidecar(false, false))));
  auto same = check(store, plan(sidecar(false, false)));
  REQUIRE(same);
  CHECK(same.value().empty());
  auto& out = store.tables[{Family::V4, Table::Nat}];
  for (auto& c : out.chains)
    if (c.name == "ISTIO_OUTPUT") {
      c.rules.pop_back();  // "-j ISTIO_REDIRECT"
      c.rules.push_back(InstalledRule{"-p tcp --dport 7 -j RETURN", "-p tcp --dport 7 -j RETURN",
                                      parse_rule_spec("-p tcp --dport 7 -j RETURN")});
    }
  auto diff = check(store, plan(sidecar(false, false)));
  REQUIRE(diff);
  auto text = format_differences(diff.value());
  CHECK_THAT(text, Catch::Contains("IPv4 nat ISTIO_OUTPUT: missing: -j ISTIO_REDIRECT"));
  CHECK_THAT(text, Catch::Contains("IPv4 nat ISTIO_OUTPUT: extra: -p tcp --dport 7 -j RETURN"));
}

namespace {
// A store that commits every table in one transaction, as the nf_tables store does: it answers
// transact_all itself and counts its calls; per-table transact must not be used.
class OneTransactionStore final : public MemoryStore {
 public:
  int transactions = 0;
  int per_table = 0;
  std::vector<TableKey> last;
  Result<bool> transact(Family f, Table t,
                        const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) override {
    ++per_table;
    return MemoryStore::transact(f, t, decide);
  }
  Result<std::vector<bool>> transact_all(const std::vector<TableKey>& keys, const TableDecision& decide) override {
    ++transactions;
    last = keys;
    std::vector<bool> out;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto done =
          MemoryStore::transact(keys[i].family, keys[i].table, [&](const Snapshot& now) { return decide(i, now); });
      if (!done) return Error{done.error().message};
      out.push_back(done.value());
    }
    return out;
  }
};
}  // namespace

TEST_CASE("apply: a store that commits all tables at once is asked once, for every table of both families") {
  OneTransactionStore store;
  auto r = apply_plan(store, plan(sidecar(true, true)));
  REQUIRE(r);
  CHECK(store.transactions == 1);
  CHECK(store.per_table == 0);
  REQUIRE(store.last.size() == 4);  // the tables the plan uses; none exists yet
  CHECK(store.last[0].family == Family::V4);
  CHECK(store.last[3].family == Family::V6);
  CHECK(r.value().committed == std::vector<std::string>{"IPv4 nat", "IPv4 raw", "IPv6 nat", "IPv6 raw"});
  auto cleaned = cleanup(store);
  REQUIRE(cleaned);
  CHECK(store.transactions == 2);
  CHECK(store.chain(Family::V4, Table::Nat, "OUTPUT").empty());
}

// Istio's VerifyIptablesState (../shared/docs/istio-operator-behaviour.md §7.1), over the memory
// store: the verdicts of §7.1's table for each situation it describes.
TEST_CASE("istio state: clean, compatible, drift and ignored residues as §7.1 decides them") {
  const Plan p = plan(injected_sidecar());  // IPv4 only: IPv6 has no plan
  auto verdict_of = [&](MemoryStore& store) {
    auto v = istio_state_verdict(store, p, read_family_states(store));
    REQUIRE(v);
    return v.value();
  };
  SECTION("nothing installed: clean, and Istio applies") {
    MemoryStore store;
    auto v = verdict_of(store);
    CHECK(v.verdict == StateVerdict::Clean);
    CHECK(v.drift);
  }
  SECTION("the plan installed: compatible residues, nothing to apply") {
    MemoryStore store;
    REQUIRE(apply_plan(store, p));
    auto v = verdict_of(store);
    CHECK(v.verdict == StateVerdict::ResiduesCompatible);
    CHECK_FALSE(v.drift);
  }
  SECTION("an ISTIO_* chain with one rule more: drift") {
    MemoryStore store;
    REQUIRE(apply_plan(store, p));
    store.add_foreign(Family::V4, Table::Nat, "ISTIO_OUTPUT", "-d 192.0.2.1/32 -j RETURN");
    CHECK(verdict_of(store).verdict == StateVerdict::ResiduesDrift);
  }
  SECTION("an ISTIO_* chain the plan lacks: drift") {
    MemoryStore store;
    REQUIRE(apply_plan(store, p));
    store.add_foreign(Family::V4, Table::Mangle, "ISTIO_OLD", "-j RETURN");
    CHECK(verdict_of(store).verdict == StateVerdict::ResiduesDrift);
  }
  SECTION("a foreign rule in a built-in chain alone counts as residue, and its chains are then missing") {
    MemoryStore store;
    store.add_foreign(Family::V4, Table::Nat, "POSTROUTING", "-s 198.51.100.0/24 -j RETURN");
    CHECK(verdict_of(store).verdict == StateVerdict::ResiduesDrift);
  }
  SECTION("residue in a family with no plan is ignored: clean, with the family named") {
    MemoryStore store;
    store.add_foreign(Family::V6, Table::Nat, "OUTPUT", "-d 2001:db8::1/128 -j RETURN");
    auto v = verdict_of(store);
    CHECK(v.verdict == StateVerdict::Clean);
    CHECK(v.ignored == std::vector<Family>{Family::V6});
  }
}
