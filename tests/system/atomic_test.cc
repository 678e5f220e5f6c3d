// Atomicity against the real kernel: a commit that the kernel refuses, after other tables were
// already committed, leaves the namespace exactly as it was. Runs inside `unshare -n` (ctest).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "core/apply.h"
#include "core/planner.h"
#include "system/libiptc_store.h"
#include "system/xt_entry.h"
#include "fixtures.h"

using namespace istio_iptables;

namespace {

// Passes everything to the real store, but makes the kernel refuse the commit of one table by
// adding a rule it does not accept there (TPROXY is only valid in mangle).
class SabotagedStore : public NetfilterStore {
 public:
  SabotagedStore(NetfilterStore& real, Family f, Table t) : real_(real), family_(f), table_(t) {}
  Result<bool> table_exists(Family f, Table t) override { return real_.table_exists(f, t); }
  Result<InstalledRule> encode(Family f, Table t, const Rule& r) override { return real_.encode(f, t, r); }
  Result<Snapshot> read(Family f, Table t) override { return real_.read(f, t); }
  Result<bool> transact(Family f, Table t,
                        const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) override {
    if (f != family_ || t != table_) return real_.transact(f, t, decide);
    return real_.transact(f, t, [&](const Snapshot& s) -> Result<std::optional<TableWrite>> {
      auto w = decide(s);
      if (!w || !w.value()) return w;
      auto poison = real_.encode(f, Table::Mangle, Rule{{ProtocolMatch{Protocol::Tcp, false}}, TproxyTarget{1, 1, 1}});
      REQUIRE(poison);
      poison_ = poison.value().blob;
      bool added = false;
      for (auto& c : w.value()->chains)
        if (c.name == "PREROUTING") {
          c.blobs.push_back(&poison_);
          added = true;
        }
      if (!added) w.value()->chains.push_back(TableWrite::Chain{"PREROUTING", {&poison_}});
      return w;
    });
  }

 private:
  NetfilterStore& real_;
  std::string poison_;
  Family family_;
  Table table_;
};

Config sidecar(bool dns, bool tproxy) {
  Config c = testing::injected_sidecar();
  c.enable_ipv6 = true;
  c.redirect_dns = dns;
  c.dns_servers_v4 = {*parse_address("192.0.2.53")};
  c.dns_servers_v6 = {*parse_address("2001:db8::53")};
  if (tproxy) c.mode = InterceptionMode::Tproxy;
  return c;
}

// Every rule of every existing table, by family, table and chain.
std::map<std::string, std::vector<std::string>> state(NetfilterStore& store) {
  std::map<std::string, std::vector<std::string>> out;
  for (Family f : {Family::V4, Family::V6})
    for (Table t : kAllTables) {
      auto exists = store.table_exists(f, t);
      REQUIRE(exists);
      if (!exists.value()) continue;
      auto snap = store.read(f, t);
      REQUIRE(snap);
      for (const auto& c : snap.value().chains) {
        auto& rules = out[std::string(family_name(f)) + " " + table_name(t) + " " + c.name];
        for (const auto& r : c.rules) rules.push_back(r.id());
      }
    }
  return out;
}

bool only_empty_chains(const std::map<std::string, std::vector<std::string>>& s, const std::string& prefix) {
  for (const auto& [name, rules] : s)
    if (name.rfind(prefix, 0) == 0 && (!rules.empty() || name.find("ISTIO") != std::string::npos)) return false;
  return true;
}

}  // namespace

TEST_CASE("atomic: the kernel refusing the IPv6 nat commit puts the IPv4 tables already written back") {
  EtcGroupResolver groups;
  LibiptcStore real(groups);
  REQUIRE(apply_plan(real, plan(sidecar(false, false))));
  auto before = state(real);
  REQUIRE(before.count("IPv4 nat ISTIO_OUTPUT"));

  // The new plan writes IPv4 mangle, nat and raw, then IPv6 mangle, then fails on IPv6 nat.
  SabotagedStore sabotaged(real, Family::V6, Table::Nat);
  auto r = apply_plan(sabotaged, plan(sidecar(true, true)));
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("cannot commit table nat (IPv6)"));
  CHECK_THAT(r.error().message, Catch::Contains("EINVAL; see dmesg"));
  CHECK_THAT(r.error().message, Catch::Contains("put back as they were"));

  auto after = state(real);
  for (const auto& [chain, rules] : before) {
    INFO(chain);
    CHECK(after[chain] == rules);
  }
  // Tables that did not exist before are left holding nothing.
  for (const char* t : {"IPv4 mangle", "IPv4 raw", "IPv6 mangle", "IPv6 raw"})
    if (!before.count(std::string(t) + " PREROUTING")) CHECK(only_empty_chains(after, t));
}

TEST_CASE("atomic: the same plan applied for real afterwards goes through") {
  EtcGroupResolver groups;
  LibiptcStore real(groups);
  REQUIRE(apply_plan(real, plan(sidecar(true, true))));
  auto diffs = check(real, plan(sidecar(true, true)));
  REQUIRE(diffs);
  CHECK(diffs.value().empty());
}
