// The restore backend reads with `X-save -c` and writes one table per `X-restore --noflush`
// run, which applies the whole table in one commit (legacy) or one transaction (nft).
//
// It never writes a rule that is not ours. iptables-save prints a rule in a form iptables-restore
// reads back, but this tool only sees it through a parser that knows Istio's vocabulary: a
// foreign comment or `-m string` value would come back with its spaces changed, and a comment
// holding a newline would not parse at all. So foreign rules never appear in the restore input:
// our own chains (ISTIO_*, everything in them is ours) are flushed and filled, and in any other
// chain our old rules are deleted by their own specification (`-D CHAIN SPEC`, which can only
// match a rule of the same content, i.e. ours) and the new ones inserted where they belong
// (`-I CHAIN N`, counted after the deletions). A foreign rule is never moved, re-added or
// removed, and a foreign writer's rule added to a built-in chain between our save and our
// restore survives (a flush and refill of the chain would have dropped it).
//
// The edit is computed from a save taken before the restore run, without a lock held across
// both. When the run fails and a fresh save shows that another writer changed the table
// meanwhile (a rule we delete is gone, a position no longer exists), the edit is computed again
// from the fresh save.
#include "system/restore_store.h"

#include <algorithm>
#include <functional>
#include <unordered_map>

#include <fmt/format.h>

#include "core/reconcile.h"
#include "core/restore_text.h"
#include "system/process.h"

namespace istio_iptables {
namespace {

constexpr int kMaxAttempts = 20;
constexpr const char* kDefaultPath = "/usr/sbin:/usr/bin:/sbin:/bin";

// iptables-save prints a string value in double quotes with `"`, `'` and `\` escaped
// (xtables_save_string; libxt_string escapes `"` and `\` and prints anything unprintable in
// hex), but a newline inside a comment as it is. This returns the listing one rule per line (a
// newline inside quotes becomes the two characters `\n`), without iptables-save's `#` lines
// and without tables other than iptables' four (a `*security` table is not ours to read).
// Should the quotes not balance (an extension that prints a raw `"`), the lines are taken as
// they are.
std::string logical_lines(const std::string& save) {
  std::string joined;
  joined.reserve(save.size());
  bool quoted = false, escaped = false;
  for (char ch : save) {
    if (escaped) {
      escaped = false;
    } else if (quoted && ch == '\\') {
      escaped = true;
    } else if (ch == '"') {
      quoted = !quoted;
    } else if (ch == '\n' && quoted) {
      joined += "\\n";
      continue;
    }
    joined += ch;
  }
  const std::string& text = quoted ? save : joined;
  std::string out;
  out.reserve(text.size());
  bool skipping_table = false;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (!line.empty() && line[0] == '*') {
      const auto name = line.substr(1);
      skipping_table = name != "filter" && name != "nat" && name != "mangle" && name != "raw";
    }
    const bool comment = !line.empty() && line[0] == '#';
    if (!skipping_table && !comment) {
      out.append(line);
      out += '\n';
    }
    if (line == "COMMIT") skipping_table = false;
  }
  return out;
}

// "[p:b] spec" or "spec".
std::pair<std::string_view, std::string_view> split_counters(const std::string& blob) {
  if (blob.empty() || blob[0] != '[') return {{}, blob};
  auto close = blob.find(']');
  if (close == std::string::npos) return {{}, blob};
  std::string_view all(blob);
  auto spec = all.substr(close + 1);
  spec.remove_prefix(std::min(spec.find_first_not_of(' '), spec.size()));
  return {all.substr(0, close + 1), spec};
}

using GidLookup = std::function<std::optional<std::uint32_t>(const std::string&)>;

// One rule as the edit sees it.
struct EditRule {
  std::string id;
  bool ours = false;
  std::string_view counters, spec;
};

// A wanted rule's identity and ownership: the same as snapshot_of gives a rule read back.
EditRule describe_blob(Table table, const InstalledChain& chain, const std::string& blob, const GidLookup& gid) {
  auto [counters, spec] = split_counters(blob);
  InstalledRule r;
  r.blob = std::string(spec);
  r.rule = parse_rule_spec(r.blob);
  r.identity = r.rule ? rule_spec(canonical(*r.rule, gid)) : "text: " + r.blob;
  return EditRule{r.identity, is_owned_rule(table, chain, r), counters, spec};
}

// The commands that turn chain `have` into `wanted` by deleting and inserting our rules only.
// Appends the deletions to `deletions` and the insertions to `insertions`.
Status edit_chain(Table table, const InstalledChain& have, const std::vector<const std::string*>& wanted,
                  const GidLookup& gid, std::string& deletions, std::string& insertions) {
  const std::string& name = have.name;
  // What is there.
  std::vector<EditRule> current;
  current.reserve(have.rules.size());
  std::unordered_map<const std::string*, std::size_t> index_of_blob;
  for (std::size_t j = 0; j < have.rules.size(); ++j) {
    const auto& r = have.rules[j];
    auto [counters, spec] = split_counters(r.blob);
    current.push_back(EditRule{r.id(), is_owned_rule(table, have, r), counters, spec});
    index_of_blob.emplace(&r.blob, j);
  }
  // What is wanted: each rule either is one of `current` (a foreign rule stays as it is; ours
  // may stay) or is a rule of ours to insert. A foreign rule from elsewhere (a rollback's older
  // snapshot) is the same rule as an equal one still there; one that is gone stays gone.
  constexpr std::size_t kNone = SIZE_MAX;
  struct Want {
    EditRule rule;
    std::size_t current = kNone;  // the foreign rule it is, or (once matched) our rule it keeps
  };
  std::vector<Want> want;
  want.reserve(wanted.size());
  std::size_t last_anchor = 0;  // one past the last foreign rule matched
  for (const std::string* blob : wanted) {
    auto it = index_of_blob.find(blob);
    if (it != index_of_blob.end()) {
      const std::size_t j = it->second;
      if (current[j].ours) {
        want.push_back(Want{current[j], kNone});
        continue;
      }
      if (j < last_anchor)
        return Error{fmt::format("cannot write chain {}: the wanted order moves a foreign rule ({}), and foreign "
                                 "rules are never moved",
                                 name, current[j].spec)};
      want.push_back(Want{current[j], j});
      last_anchor = j + 1;
      continue;
    }
    EditRule r = describe_blob(table, have, *blob, gid);
    if (r.ours) {
      want.push_back(Want{std::move(r), kNone});
      continue;
    }
    for (std::size_t j = last_anchor; j < current.size(); ++j)
      if (!current[j].ours && current[j].id == r.id) {
        want.push_back(Want{current[j], j});
        last_anchor = j + 1;
        break;
      }
  }
  // Between two foreign anchors, keep the longest run of our rules already in the wanted order
  // (a longest common subsequence of a few rules); delete the others, insert the missing ones.
  std::vector<bool> keep(current.size(), false);
  std::size_t c_begin = 0, w_begin = 0;
  auto match_gap = [&](std::size_t c_end, std::size_t w_end) {
    std::vector<std::size_t> have_ours, want_ours;
    for (std::size_t j = c_begin; j < c_end; ++j)
      if (current[j].ours) have_ours.push_back(j);
    for (std::size_t k = w_begin; k < w_end; ++k) want_ours.push_back(k);
    const std::size_t n = have_ours.size(), m = want_ours.size();
    if (n == 0 || m == 0) return;
    std::vector<std::vector<unsigned>> lcs(n + 1, std::vector<unsigned>(m + 1, 0));
    for (std::size_t i = n; i-- > 0;)
      for (std::size_t k = m; k-- > 0;)
        lcs[i][k] = current[have_ours[i]].id == want[want_ours[k]].rule.id ? lcs[i + 1][k + 1] + 1
                                                                           : std::max(lcs[i + 1][k], lcs[i][k + 1]);
    for (std::size_t i = 0, k = 0; i < n && k < m;) {
      if (current[have_ours[i]].id == want[want_ours[k]].rule.id) {
        keep[have_ours[i]] = true;
        want[want_ours[k]].current = have_ours[i];
        ++i;
        ++k;
      } else if (lcs[i + 1][k] >= lcs[i][k + 1]) {
        ++i;
      } else {
        ++k;
      }
    }
  };
  for (std::size_t k = 0; k < want.size(); ++k) {
    if (want[k].current == kNone) continue;  // ours: matched within its gap below
    match_gap(want[k].current, k);
    c_begin = want[k].current + 1;
    w_begin = k + 1;
  }
  match_gap(current.size(), want.size());
  // `-D CHAIN SPEC` removes the first rule of that content: where a rule of ours comes twice and
  // only some copies go, delete every copy and insert the wanted ones again.
  {
    std::unordered_map<std::string, std::pair<bool, bool>> kept_and_deleted;
    for (std::size_t j = 0; j < current.size(); ++j)
      if (current[j].ours)
        (keep[j] ? kept_and_deleted[current[j].id].first : kept_and_deleted[current[j].id].second) = true;
    for (std::size_t j = 0; j < current.size(); ++j) {
      auto it = kept_and_deleted.find(current[j].id);
      if (current[j].ours && it != kept_and_deleted.end() && it->second.first && it->second.second) keep[j] = false;
    }
    for (auto& w : want)
      if (w.rule.ours && w.current != kNone && !keep[w.current]) w.current = kNone;
  }
  // The chain after the deletions, as indices into `current` (kNone: a rule we inserted).
  std::vector<std::size_t> after;
  after.reserve(current.size() + want.size());
  for (std::size_t j = 0; j < current.size(); ++j) {
    if (current[j].ours && !keep[j]) {
      deletions += fmt::format("-D {} {}\n", name, current[j].spec);
      continue;
    }
    after.push_back(j);
  }
  // Insertions in wanted order, each right after the wanted rule before it.
  std::size_t cursor = 0;  // where the next insertion goes, 0-based
  for (const auto& w : want) {
    if (w.current != kNone) {
      while (cursor < after.size() && after[cursor] != w.current) ++cursor;
      ++cursor;
      continue;
    }
    const std::string counters = w.rule.counters.empty() ? "" : std::string(w.rule.counters) + " ";
    if (cursor >= after.size())
      insertions += fmt::format("{}-A {} {}\n", counters, name, w.rule.spec);
    else
      insertions += fmt::format("{}-I {} {} {}\n", counters, name, cursor + 1, w.rule.spec);
    after.insert(after.begin() + static_cast<std::ptrdiff_t>(cursor), kNone);
    ++cursor;
  }
  return ok_status();
}

// Same chains, same rules in the same order (counters aside)?
bool same_table(const Snapshot& a, const Snapshot& b) {
  return std::equal(a.chains.begin(), a.chains.end(), b.chains.begin(), b.chains.end(),
                    [](const InstalledChain& x, const InstalledChain& y) {
                      return x.name == y.name &&
                             std::equal(
                                 x.rules.begin(), x.rules.end(), y.rules.begin(), y.rules.end(),
                                 [](const InstalledRule& r, const InstalledRule& s) { return r.id() == s.id(); });
                    });
}

std::string first_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Result<std::unique_ptr<RestoreStore>> RestoreStore::open(const std::string& variant,
                                                         std::map<std::string, std::string> environment,
                                                         GroupResolver& groups, std::uint32_t wait_seconds) {
  if (variant != "legacy" && variant != "nft") return Error{fmt::format("unknown iptables variant {}", variant)};
  if (!environment.count("PATH")) environment["PATH"] = kDefaultPath;
  return std::unique_ptr<RestoreStore>(new RestoreStore(variant, std::move(environment), groups, wait_seconds));
}

std::string RestoreStore::binary(Family family, const char* kind) const {
  return fmt::format("{}-{}-{}", family == Family::V4 ? "iptables" : "ip6tables", variant_, kind);
}

std::string RestoreStore::path() const { return environment_.at("PATH"); }

Result<const std::vector<TextTable>*> RestoreStore::save(Family family) {
  auto& cached = saved_[family == Family::V4 ? 0 : 1];
  if (cached) return &*cached;
  const std::string program = binary(family, "save");
  auto fail = [&](const std::string& why) {
    return Error{fmt::format("cannot read the {} tables: {}", family_name(family), why)};
  };
  // Without -t: only tables that exist are listed, and none is created by asking.
  auto r = run_process({program, "-c"}, "", environment_, path());
  if (!r) return fail(r.error().message);
  if (r.value().exit_code != 0) {
    std::string err = first_line(r.value().err);
    bool denied = err.find("Permission denied") != std::string::npos;
    return fail(fmt::format(
        "{} {}: {}{}", program,
        r.value().exit_code < 0 ? std::string("was killed") : fmt::format("exited {}", r.value().exit_code),
        err.empty() ? "(no message)" : err, denied ? " (needs root or CAP_NET_ADMIN in the network namespace)" : ""));
  }
  auto parsed = parse_ruleset_text(logical_lines(r.value().out));
  if (!parsed) return fail(fmt::format("cannot parse the output of {}: {}", program, parsed.error().message));
  // A listing of one family: nothing in it says IPv6 and no table comes twice, so every table is
  // filed under v4. A second family would be a listing this parser misunderstood.
  if (!parsed.value().v6.empty())
    return fail(fmt::format("cannot parse the output of {}: a table is listed twice", program));
  cached = std::move(parsed.value().v4);
  return &*cached;
}

Result<bool> RestoreStore::table_exists(Family family, Table table) {
  auto tables = save(family);
  if (!tables) return Error{tables.error().message};
  return std::any_of(tables.value()->begin(), tables.value()->end(),
                     [&](const TextTable& t) { return t.table == table; });
}

namespace {
// Group names resolved through the group database; the first failure to read it is kept, so
// that an unreadable /etc/group is an error and never "no such group".
struct StrictGids {
  GroupResolver& groups;
  std::optional<Error> failure;
  std::optional<std::uint32_t> operator()(const std::string& name) {
    auto r = groups.lookup(name);
    if (r) return r.value();
    if (!failure) failure = r.error();
    return std::nullopt;
  }
};
}  // namespace

Result<InstalledRule> RestoreStore::encode(Family, Table, const Rule& rule) {
  InstalledRule r;
  r.blob = rule_spec(rule);
  StrictGids gids{groups_, std::nullopt};
  r.identity = rule_spec(canonical(rule, std::ref(gids)));
  if (gids.failure) return *gids.failure;
  r.rule = rule;
  return r;
}

Result<Snapshot> RestoreStore::read(Family family, Table table) {
  auto tables = save(family);
  if (!tables) return Error{tables.error().message};
  StrictGids gids{groups_, std::nullopt};
  for (const auto& t : *tables.value())
    if (t.table == table) {
      Snapshot snap = snapshot_of(t, std::ref(gids));
      if (gids.failure) return *gids.failure;
      return snap;
    }
  Snapshot empty;
  empty.table = table;
  for (const auto& name : builtin_chains(table)) empty.chains.push_back(InstalledChain{name, true, {}});
  return empty;
}

Result<std::string> RestoreStore::restore_input(Table table, const Snapshot& now, const TableWrite& w,
                                                const GidLookup& gid) {
  std::string declarations, deletions, insertions, fills, removals;
  for (const auto& c : w.chains) {
    const InstalledChain* have = now.find(c.name);
    if (is_owned_chain(c.name)) {
      declarations += fmt::format("{} {}\n", have ? "-F" : "-N", c.name);
      for (const auto* blob : c.blobs) {
        auto [counters, spec] = split_counters(*blob);
        fills += fmt::format("{}{}-A {} {}\n", counters, counters.empty() ? "" : " ", c.name, spec);
      }
      continue;
    }
    if (!have) continue;  // a foreign chain that is gone (a rollback's older snapshot): not ours to create
    auto edited = edit_chain(table, *have, c.blobs, gid, deletions, insertions);
    if (!edited) return Error{edited.error().message};
  }
  for (const auto& name : w.delete_chains) {
    if (!is_owned_chain(name) || !now.find(name)) continue;  // a foreign chain is never flushed or deleted
    declarations += fmt::format("-F {}\n", name);
    removals += fmt::format("-X {}\n", name);
  }
  std::string body = declarations + deletions + insertions + fills + removals;
  if (body.empty()) return std::string();
  return fmt::format("*{}\n{}COMMIT\n", table_name(table), body);
}

Result<bool> RestoreStore::transact(Family family, Table table,
                                    const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) {
  auto gid = [&](const std::string& name) { return groups_.gid(name); };
  const std::string program = binary(family, "restore");
  for (int attempt = 0;; ++attempt) {
    auto now = read(family, table);
    if (!now) return Error{now.error().message};
    auto write = decide(now.value());
    if (!write) return Error{write.error().message};
    if (!write.value()) return attempt > 0;  // nothing to do (after a failed run: it went live)
    auto text = restore_input(table, now.value(), *write.value(), gid);
    if (!text)
      return Error{
          fmt::format("cannot write table {} ({}): {}", table_name(table), family_name(family), text.error().message)};
    if (text.value().empty()) return false;  // what differs is foreign: nothing for us to write
    std::vector<std::string> argv = {program, "--noflush", "--counters", fmt::format("--wait={}", wait_)};
    auto r = run_process(argv, text.value(), environment_, path());
    saved_[family == Family::V4 ? 0 : 1].reset();  // the table changed (or may have): read afresh
    if (!r)
      return Error{
          fmt::format("cannot write table {} ({}): {}", table_name(table), family_name(family), r.error().message)};
    if (r.value().exit_code == 0) return true;
    // The state is unknown: read again. As wanted: the run went through. Changed by someone else
    // since our save: compute the edit again from the fresh save.
    auto again = read(family, table);
    if (again) {
      auto check = decide(again.value());
      if (check && !check.value()) return true;
      if (attempt + 1 < kMaxAttempts && !same_table(now.value(), again.value())) {
        ++retries_;
        continue;
      }
    }
    return Error{fmt::format("cannot commit table {} ({}): {} exited {}: {}", table_name(table), family_name(family),
                             program, r.value().exit_code, first_line(r.value().err))};
  }
}

}  // namespace istio_iptables
