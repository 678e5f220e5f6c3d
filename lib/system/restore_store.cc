// The restore backend reads with `X-save -c` and writes one table per `X-restore --noflush -c`
// run: the built-in chains it must change are flushed and written again in full (with the
// foreign rules' counters), our chains are flushed or created and filled, stale chains of ours
// are flushed and deleted. iptables-restore applies the whole table in one commit (legacy) or one
// transaction (nft). Rules are compared in their canonical text form (rule_text.h), which is how
// iptables-save prints them.
#include "system/restore_store.h"

#include <fmt/format.h>

#include "core/restore_text.h"
#include "core/rule_text.h"
#include "system/process.h"

namespace istio_iptables {

Result<std::unique_ptr<RestoreStore>> RestoreStore::open(const std::string& variant, const std::string& path,
                                                         GroupResolver& groups, std::uint32_t wait_seconds) {
  if (variant != "legacy" && variant != "nft") return Error{fmt::format("unknown iptables variant {}", variant)};
  return std::unique_ptr<RestoreStore>(new RestoreStore(variant, path, groups, wait_seconds));
}

std::string RestoreStore::binary(Family family, const char* kind) const {
  return fmt::format("{}-{}-{}", family == Family::V4 ? "iptables" : "ip6tables", variant_, kind);
}

Result<std::string> RestoreStore::save(Family family) {
  auto& cached = saved_[family == Family::V4 ? 0 : 1];
  if (cached) return *cached;
  // Without -t: only tables that exist are listed, and none is created by asking.
  auto r = run_process({binary(family, "save"), "-c"}, "", {{"PATH", path_}}, path_);
  if (!r) return Error{r.error().message};
  if (r.value().exit_code != 0)
    return Error{fmt::format("{} failed (exit {}): {}", binary(family, "save"), r.value().exit_code, r.value().err)};
  cached = std::move(r).value().out;
  return *cached;
}

Result<bool> RestoreStore::table_exists(Family family, Table table) {
  auto text = save(family);
  if (!text) return Error{text.error().message};
  auto parsed = parse_ruleset_text(text.value());
  if (!parsed) return Error{fmt::format("cannot read {} output: {}", binary(family, "save"), parsed.error().message)};
  for (const auto& t : parsed.value().v4)
    if (t.table == table) return true;
  return false;
}

Result<InstalledRule> RestoreStore::encode(Family, Table, const Rule& rule) {
  InstalledRule r;
  r.blob = rule_spec(rule);
  r.identity = rule_spec(canonical(rule, [&](const std::string& name) { return groups_.gid(name); }));
  r.rule = rule;
  return r;
}

Result<Snapshot> RestoreStore::read(Family family, Table table) {
  auto text = save(family);
  if (!text) return Error{text.error().message};
  auto parsed = parse_ruleset_text(text.value());  // a save output is one family: it parses as "v4"
  if (!parsed) return Error{fmt::format("cannot read {} output: {}", binary(family, "save"), parsed.error().message)};
  auto gid = [&](const std::string& name) { return groups_.gid(name); };
  for (const auto& t : parsed.value().v4)
    if (t.table == table) return snapshot_of(t, gid);
  Snapshot empty;
  empty.table = table;
  for (const auto& name : builtin_chains(table)) empty.chains.push_back(InstalledChain{name, true, {}});
  return empty;
}

Result<bool> RestoreStore::transact(Family family, Table table,
                                    const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) {
  auto now = read(family, table);
  if (!now) return Error{now.error().message};
  auto write = decide(now.value());
  if (!write) return Error{write.error().message};
  if (!write.value()) return false;
  const TableWrite& w = *write.value();
  std::string text = fmt::format("*{}\n", table_name(table));
  for (const auto& c : w.chains) {
    bool exists = now.value().find(c.name) != nullptr;
    text += fmt::format("{} {}\n", exists || is_builtin_chain(c.name) ? "-F" : "-N", c.name);
  }
  for (const auto& name : w.delete_chains) text += fmt::format("-F {}\n", name);
  for (const auto& c : w.chains)
    for (const auto* blob_ptr : c.blobs) {
      const std::string& blob = *blob_ptr;
      if (!blob.empty() && blob[0] == '[') {
        auto close = blob.find(']');
        text += fmt::format("{} -A {} {}\n", blob.substr(0, close + 1), c.name, blob.substr(close + 2));
      } else {
        text += fmt::format("-A {} {}\n", c.name, blob);
      }
    }
  for (const auto& name : w.delete_chains) text += fmt::format("-X {}\n", name);
  text += "COMMIT\n";
  std::vector<std::string> argv = {binary(family, "restore"), "--noflush", "--counters"};
  if (variant_ == "legacy") argv.push_back(fmt::format("--wait={}", wait_));
  auto r = run_process(argv, text, {{"PATH", path_}}, path_);
  saved_[family == Family::V4 ? 0 : 1].reset();  // the table changed (or may have): read afresh
  if (!r) return Error{r.error().message};
  if (r.value().exit_code == 0) return true;
  // The state is unknown: read again; if the table is as wanted, the run went through.
  auto again = read(family, table);
  if (again) {
    auto check = decide(again.value());
    if (check && !check.value()) return true;
  }
  return Error{fmt::format("cannot commit table {} ({}): {} exited {}: {}", table_name(table), family_name(family),
                           binary(family, "restore"), r.value().exit_code, r.value().err)};
}

}  // namespace istio_iptables
