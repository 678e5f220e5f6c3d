#include "core/apply.h"

#include <algorithm>

#include <fmt/format.h>

namespace istio_iptables {
namespace {

struct Job {
  Family family;
  Table table;
  std::vector<EncodedOp> ops;
};

std::string where(Family f, Table t) { return fmt::format("{} {}", family_name(f), table_name(t)); }

// Every (family, table) to visit, with the plan's operations encoded; nothing is written yet.
Result<std::vector<Job>> prepare(NetfilterStore& store, const Plan* plan) {
  std::vector<Job> jobs;
  for (Family f : {Family::V4, Family::V6}) {
    const Ruleset* rs = nullptr;
    if (plan) rs = f == Family::V4 ? &plan->v4 : (plan->v6 ? &*plan->v6 : nullptr);
    for (Table t : kAllTables) {
      bool used = rs && rs->uses_table(t);
      if (!used) {
        auto exists = store.table_exists(f, t);
        if (!exists) return Error{exists.error().message};
        if (!exists.value()) continue;
      }
      Job job{f, t, {}};
      if (used) job.ops.reserve(rs->ops.size());
      if (used)
        for (const auto& op : rs->ops) {
          if (op.table != t) continue;
          auto encoded = store.encode(f, t, op.rule);
          if (!encoded) return Error{encoded.error().message};
          job.ops.push_back(EncodedOp{op.chain, op.insert_position, std::move(encoded).value()});
        }
      jobs.push_back(std::move(job));
    }
  }
  return jobs;
}

Result<ApplyOutcome> run_jobs(NetfilterStore& store, const std::vector<Job>& jobs) {
  std::vector<TableKey> keys;
  keys.reserve(jobs.size());
  for (const auto& job : jobs) keys.push_back(TableKey{job.family, job.table});
  auto committed = store.transact_all(keys, [&](std::size_t i, const Snapshot& now) {
    return Result<std::optional<TableWrite>>(write_for(now, desired_table(now, jobs[i].ops)));
  });
  if (!committed) return Error{committed.error().message};
  ApplyOutcome outcome;
  for (std::size_t i = 0; i < jobs.size() && i < committed.value().size(); ++i)
    if (committed.value()[i]) outcome.committed.push_back(where(jobs[i].family, jobs[i].table));
  return outcome;
}

}  // namespace

// The default for stores that commit one table at a time (libiptc, iptables-restore, memory):
// each table in its own commit, and the tables already committed written back, newest first,
// when a later commit fails. Here rather than in store.h because it needs reconcile's
// restore_write.
Result<std::vector<bool>> NetfilterStore::transact_all(const std::vector<TableKey>& tables,
                                                       const TableDecision& decide) {
  struct Committed {
    std::size_t index;
    Snapshot before;
  };
  std::vector<Committed> done;
  std::vector<bool> out(tables.size(), false);
  for (std::size_t i = 0; i < tables.size(); ++i) {
    Snapshot before;
    auto r = transact(tables[i].family, tables[i].table, [&](const Snapshot& now) -> Result<std::optional<TableWrite>> {
      auto write = decide(i, now);
      if (write && write.value()) before = now;  // the state this write replaces: what a rollback puts back
      return write;
    });
    if (!r) {
      std::vector<std::string> not_restored;
      for (auto it = done.rbegin(); it != done.rend(); ++it) {
        const TableKey& key = tables[it->index];
        auto back = transact(key.family, key.table, [&](const Snapshot& now) -> Result<std::optional<TableWrite>> {
          return restore_write(now, it->before);
        });
        if (!back) not_restored.push_back(fmt::format("{} ({})", where(key.family, key.table), back.error().message));
      }
      std::string state = done.empty()           ? "nothing had been changed"
                          : not_restored.empty() ? "the tables already written were put back as they were"
                                                 : fmt::format("could not put back: {}", fmt::join(not_restored, "; "));
      return Error{fmt::format("{}; {}", r.error().message, state)};
    }
    if (r.value()) {
      done.push_back(Committed{i, std::move(before)});
      out[i] = true;
    }
  }
  return out;
}

Result<ApplyOutcome> apply_plan(NetfilterStore& store, const Plan& plan) {
  auto jobs = prepare(store, &plan);
  if (!jobs) return Error{jobs.error().message};
  return run_jobs(store, jobs.value());
}

Result<ApplyOutcome> cleanup(NetfilterStore& store) {
  auto jobs = prepare(store, nullptr);
  if (!jobs) return Error{jobs.error().message};
  return run_jobs(store, jobs.value());
}

Result<std::vector<Table>> NetfilterStore::existing_tables(Family family) {
  std::vector<Table> out;
  for (Table t : kAllTables) {
    auto exists = table_exists(family, t);
    if (!exists) return Error{exists.error().message};
    if (exists.value()) out.push_back(t);
  }
  return out;
}

Result<bool> holds_any_table(NetfilterStore& store) {
  for (Family f : {Family::V4, Family::V6})
    for (Table t : kAllTables) {
      auto exists = store.table_exists(f, t);
      if (!exists) return Error{exists.error().message};
      if (exists.value()) return true;
    }
  return false;
}

Result<std::vector<TableDifferences>> check(NetfilterStore& store, const Plan& plan) {
  auto jobs = prepare(store, &plan);
  if (!jobs) return Error{jobs.error().message};
  std::vector<TableDifferences> out;
  for (const auto& job : jobs.value()) {
    Snapshot now;
    now.table = job.table;
    auto exists = store.table_exists(job.family, job.table);
    if (!exists) return Error{exists.error().message};
    if (exists.value()) {
      auto snap = store.read(job.family, job.table);
      if (!snap) return Error{snap.error().message};
      now = std::move(snap).value();
    } else {
      for (const auto& name : builtin_chains(job.table))  // a missing table: empty built-in chains
        now.chains.push_back(InstalledChain{name, true, {}});
    }
    auto diffs = differences(now, desired_table(now, job.ops));
    auto notes = placement_notes(now);
    if (!diffs.empty() || !notes.empty())
      out.push_back(TableDifferences{job.family, job.table, std::move(diffs), std::move(notes)});
  }
  return out;
}

bool any_differences(const std::vector<TableDifferences>& tables) {
  return std::any_of(tables.begin(), tables.end(), [](const TableDifferences& t) { return !t.differences.empty(); });
}

std::string format_differences(const std::vector<TableDifferences>& diffs) {
  std::string out;
  for (const auto& t : diffs)
    for (const auto& d : t.differences)
      out += fmt::format("{} {} {}: {}: {}\n", family_name(t.family), table_name(t.table), d.chain,
                         d.kind == Difference::Missing ? "missing" : "extra", d.rule);
  for (const auto& t : diffs)
    for (const auto& n : t.notes)
      out += fmt::format("{} {} {}: note: foreign rule {} stands before our jump {}; it can bypass capture\n",
                         family_name(t.family), table_name(t.table), n.chain, n.rule, n.jump);
  return out;
}

}  // namespace istio_iptables
