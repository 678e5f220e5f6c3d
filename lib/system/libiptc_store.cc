// libiptc, one family at a time, behind one interface.
//
// libiptc's IPv4 and IPv6 libraries share one C handle type, so passing an IPv4 handle to an
// ip6tc_ function compiles. Api<F> binds each family's functions once; the rest of the file is
// written once for both. Every read-modify-commit uses a fresh handle (a handle is stale after a
// commit), retries on EAGAIN (another writer committed since our read; after a growing pause) and on EEXIST at init
// (two processes creating a table lazily at once), and after any other failed commit reads the
// table again before deciding: the commit can fail after the rules went live
// (docs/libiptc.md, section 6).
#include "system/libiptc_store.h"

#include <libiptc/libiptc.h>
extern "C" {
#include <libiptc/libip6tc.h>
}

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>

#include <fmt/format.h>

#include "core/reconcile.h"
#include "system/back_off.h"

namespace istio_iptables {
namespace {

std::mutex& libiptc_mutex() {
  static std::mutex m;
  return m;
}

struct Api {
  xtc_handle* (*init)(const char*);
  void (*free)(xtc_handle*);
  const char* (*first_chain)(xtc_handle*);
  const char* (*next_chain)(xtc_handle*);
  const void* (*first_rule)(const char*, xtc_handle*);
  const void* (*next_rule)(const void*, xtc_handle*);
  const char* (*get_target)(const void*, xtc_handle*);
  int (*builtin)(const char*, xtc_handle*);
  const char* (*get_policy)(const char*, xt_counters*, xtc_handle*);
  int (*is_chain)(const char*, xtc_handle*);
  int (*create_chain)(const char*, xtc_handle*);
  int (*flush)(const char*, xtc_handle*);
  int (*delete_chain)(const char*, xtc_handle*);
  int (*append)(const char*, const void*, xtc_handle*);
  int (*commit)(xtc_handle*);
};

const Api& api(Family f) {
  static const Api v4{
      iptc_init,
      iptc_free,
      iptc_first_chain,
      iptc_next_chain,
      [](const char* c, xtc_handle* h) -> const void* { return iptc_first_rule(c, h); },
      [](const void* p, xtc_handle* h) -> const void* { return iptc_next_rule(static_cast<const ipt_entry*>(p), h); },
      [](const void* e, xtc_handle* h) { return iptc_get_target(static_cast<const ipt_entry*>(e), h); },
      [](const char* c, xtc_handle* h) { return iptc_builtin(c, h); },
      [](const char* c, xt_counters* n, xtc_handle* h) { return iptc_get_policy(c, n, h); },
      [](const char* c, xtc_handle* h) { return iptc_is_chain(c, h); },
      [](const char* c, xtc_handle* h) { return iptc_create_chain(c, h); },
      [](const char* c, xtc_handle* h) { return iptc_flush_entries(c, h); },
      [](const char* c, xtc_handle* h) { return iptc_delete_chain(c, h); },
      [](const char* c, const void* e, xtc_handle* h) {
        return iptc_append_entry(c, static_cast<const ipt_entry*>(e), h);
      },
      iptc_commit,
  };
  static const Api v6{
      ip6tc_init,
      ip6tc_free,
      ip6tc_first_chain,
      ip6tc_next_chain,
      [](const char* c, xtc_handle* h) -> const void* { return ip6tc_first_rule(c, h); },
      [](const void* p, xtc_handle* h) -> const void* { return ip6tc_next_rule(static_cast<const ip6t_entry*>(p), h); },
      [](const void* e, xtc_handle* h) { return ip6tc_get_target(static_cast<const ip6t_entry*>(e), h); },
      [](const char* c, xtc_handle* h) { return ip6tc_builtin(c, h); },
      [](const char* c, xt_counters* n, xtc_handle* h) { return ip6tc_get_policy(c, n, h); },
      [](const char* c, xtc_handle* h) { return ip6tc_is_chain(c, h); },
      [](const char* c, xtc_handle* h) { return ip6tc_create_chain(c, h); },
      [](const char* c, xtc_handle* h) { return ip6tc_flush_entries(c, h); },
      [](const char* c, xtc_handle* h) { return ip6tc_delete_chain(c, h); },
      [](const char* c, const void* e, xtc_handle* h) {
        return ip6tc_append_entry(c, static_cast<const ip6t_entry*>(e), h);
      },
      ip6tc_commit,
  };
  return f == Family::V4 ? v4 : v6;
}

std::string what(Family f, Table t) { return fmt::format("table {} ({})", table_name(t), family_name(f)); }

std::string module_hint(Family f, Table t) {
  return fmt::format("{}table_{}", f == Family::V4 ? "ip" : "ip6", table_name(t));
}

// Our own words for libiptc's errors (iptc_strerror depends on global state; docs/libiptc.md, section 5).
std::string init_error(Family f, Table t, int e) {
  switch (e) {
  case EPERM:
  case EACCES:
    return fmt::format("cannot read {}: permission denied (needs root or CAP_NET_ADMIN in the network namespace)",
                       what(f, t));
  case ENOENT:
    return fmt::format("cannot read {}: the kernel has no such table (load module {})", what(f, t), module_hint(f, t));
  case ENOPROTOOPT:
    return fmt::format("cannot read {}: the kernel has no legacy x_tables (load module {}; or use --backend restore)",
                       what(f, t), f == Family::V4 ? "ip_tables" : "ip6_tables");
  case 0: return fmt::format("cannot read {}: the kernel returned an inconsistent table", what(f, t));
  default: return fmt::format("cannot read {}: {} ({})", what(f, t), std::strerror(e), e);
  }
}

std::string commit_error(Family f, Table t, int e) {
  switch (e) {
  case EPERM:
  case EACCES: return fmt::format("cannot commit {}: permission denied (needs root or CAP_NET_ADMIN)", what(f, t));
  case EINVAL:
    return fmt::format("cannot commit {}: the kernel refused a rule (EINVAL; see dmesg for the reason)", what(f, t));
  case ENOENT:
    return fmt::format(
        "cannot commit {}: the kernel lacks a match or target the rules use (ENOENT; load the xt_ modules: "
        "xt_owner xt_multiport xt_tcpudp xt_REDIRECT xt_conntrack xt_mark xt_connmark xt_MARK xt_CONNMARK xt_TPROXY "
        "xt_CT)",
        what(f, t));
  default: return fmt::format("cannot commit {}: {} ({})", what(f, t), std::strerror(e), e);
  }
}

// Commits refused because the table changed under us are retried, each after back_off
// (system/back_off.h).
constexpr int kMaxCommitAttempts = kRetryAttempts;

struct HandleDeleter {
  Family family;
  void operator()(xtc_handle* h) const { api(family).free(h); }
};
using Handle = std::unique_ptr<xtc_handle, HandleDeleter>;

Result<Handle> open_handle(Family f, Table t, int& retries) {
  for (int attempt = 0;; ++attempt) {
    errno = 0;  // iptc_init can fail without setting errno
    xtc_handle* h = api(f).init(table_name(t));
    if (h) return Handle(h, HandleDeleter{f});
    int e = errno;
    if ((e == EEXIST || e == EAGAIN) && attempt < 20) {  // lazy table creation race; changing table
      ++retries;
      continue;
    }
    return Error{init_error(f, t, e)};
  }
}

Snapshot read_handle(Family f, Table t, xtc_handle* h) {
  const Api& a = api(f);
  Snapshot s;
  s.table = t;
  std::vector<std::string> names;
  for (const char* c = a.first_chain(h); c; c = a.next_chain(h)) names.emplace_back(c);
  for (const auto& name : names) {
    InstalledChain chain{name, a.builtin(name.c_str(), h) != 0, {}};
    if (chain.builtin) {
      xt_counters counters{};
      if (const char* policy = a.get_policy(name.c_str(), &counters, h)) {
        chain.policy = policy;
        chain.packets = counters.pcnt;
        chain.bytes = counters.bcnt;
      }
    }
    if (!chain.builtin && !is_owned_chain(name)) {
      // A foreign user chain (kube-proxy's thousands of rules): read it only if it jumps to us.
      bool jumps_to_us = false;
      for (const void* e = a.first_rule(name.c_str(), h); e && !jumps_to_us; e = a.next_rule(e, h))
        jumps_to_us = is_owned_chain(a.get_target(e, h));
      if (!jumps_to_us) {
        chain.opaque = true;
        s.chains.push_back(std::move(chain));
        continue;
      }
    }
    for (const void* e = a.first_rule(name.c_str(), h); e; e = a.next_rule(e, h)) {
      InstalledRule r;
      r.blob = blob_from_kernel(f, e, a.get_target(e, h));
      r.identity = entry_identity(f, r.blob);
      r.rule = decode_entry(f, r.blob);
      chain.rules.push_back(std::move(r));
    }
    s.chains.push_back(std::move(chain));
  }
  return s;
}

// Stages a TableWrite in the handle; returns an error naming the chain when libiptc refuses.
Status stage(Family f, Table t, xtc_handle* h, const TableWrite& w) {
  const Api& a = api(f);
  auto fail = [&](const char* op, const std::string& chain) {
    int e = errno;
    return Error{fmt::format("cannot {} chain {} in {}: {} ({})", op, chain, what(f, t), std::strerror(e), e)};
  };
  for (const auto& c : w.chains) {
    if (a.is_chain(c.name.c_str(), h)) {
      if (!a.flush(c.name.c_str(), h)) return fail("flush", c.name);
    } else if (!a.create_chain(c.name.c_str(), h)) {
      return fail("create", c.name);
    }
  }
  for (const auto& name : w.delete_chains)
    if (!a.flush(name.c_str(), h)) return fail("flush", name);
  std::string entry;  // one buffer for every rule: libiptc copies what it is given
  for (const auto& c : w.chains)
    for (const auto* blob : c.blobs) {
      entry_for_append(f, *blob, entry);
      if (!a.append(c.name.c_str(), entry.data(), h)) return fail("append a rule to", c.name);
    }
  for (const auto& name : w.delete_chains)
    if (!a.delete_chain(name.c_str(), h)) return fail("delete", name);
  return ok_status();
}

}  // namespace

bool legacy_xtables_available(Family family) {
  // Its existence, not its content: the file is readable by root only.
  struct stat st {};
  return ::stat(family == Family::V4 ? "/proc/net/ip_tables_names" : "/proc/net/ip6_tables_names", &st) == 0;
}

Result<const std::vector<std::string>*> LibiptcStore::table_names(Family family) {
  auto& cached = names_[family == Family::V4 ? 0 : 1];
  if (cached) return &*cached;
  // The kernel lists the tables that exist (and only to root). No file: no legacy x_tables
  // loaded, so no table exists; any other failure is not an answer.
  const char* path = family == Family::V4 ? "/proc/net/ip_tables_names" : "/proc/net/ip6_tables_names";
  std::vector<std::string> names;
  errno = 0;
  std::ifstream in(path);
  if (!in) {
    int e = errno;
    if (e != ENOENT) {
      if (e == EACCES || e == EPERM)
        return Error{fmt::format(
            "cannot read {}: permission denied (needs root or CAP_NET_ADMIN in the network namespace)", path)};
      return Error{fmt::format("cannot read {}: {}", path, e != 0 ? std::strerror(e) : "unknown error")};
    }
  } else {
    for (std::string name; std::getline(in, name);) names.push_back(std::move(name));
    if (in.bad()) return Error{fmt::format("cannot read {}: read error", path)};
  }
  cached = std::move(names);
  return &*cached;
}

Result<bool> LibiptcStore::table_exists(Family family, Table table) {
  auto names = table_names(family);
  if (!names) return Error{names.error().message};
  const auto& list = *names.value();
  return std::find(list.begin(), list.end(), table_name(table)) != list.end();
}

Result<std::vector<Table>> LibiptcStore::existing_tables(Family family) {
  auto names = table_names(family);
  if (!names) return Error{names.error().message};
  std::vector<Table> out;
  for (const auto& name : *names.value())
    for (Table t : kAllTables)
      if (name == table_name(t)) out.push_back(t);
  return out;
}

Result<InstalledRule> LibiptcStore::encode(Family family, Table, const Rule& rule) {
  auto blob = encode_entry(family, rule, groups_);
  if (!blob) return Error{blob.error().message};
  InstalledRule r;
  r.blob = std::move(blob).value();
  // An encoded entry is already normal (no counters, no padding, no verdict): its identity is
  // the blob itself, left empty to save a copy per rule.
  assert(r.blob == entry_identity(family, r.blob));
  r.rule = rule;
  return r;
}

Result<Snapshot> LibiptcStore::read(Family family, Table table) {
  std::lock_guard<std::mutex> guard(libiptc_mutex());
  names_[family == Family::V4 ? 0 : 1].reset();  // opening a table instantiates it
  auto h = open_handle(family, table, retries_);
  if (!h) return Error{h.error().message};
  return read_handle(family, table, h.value().get());
}

Result<bool> LibiptcStore::transact(Family family, Table table,
                                    const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) {
  std::lock_guard<std::mutex> guard(libiptc_mutex());
  names_[family == Family::V4 ? 0 : 1].reset();  // opening a table instantiates it
  for (int attempt = 0;; ++attempt) {
    auto h = open_handle(family, table, retries_);
    if (!h) return Error{h.error().message};
    const Snapshot snapshot = read_handle(family, table, h.value().get());  // the write points into it
    auto write = decide(snapshot);
    if (!write) return Error{write.error().message};
    if (!write.value()) return attempt > 0;  // nothing to do (after a failed commit: it went live)
    auto staged = stage(family, table, h.value().get(), *write.value());
    if (!staged) return Error{staged.error().message};
    errno = 0;
    if (api(family).commit(h.value().get())) return true;
    int e = errno;
    if (e == EAGAIN && attempt + 1 < kMaxCommitAttempts) {
      // Another writer committed since our read: start again, after a pause that grows, so that
      // a writer in the middle of a burst (one that does not share our lock) gets to finish it.
      ++retries_;
      back_off(attempt);
      continue;
    }
    if (e == EAGAIN)
      return Error{fmt::format("cannot commit {}: another writer kept changing it ({} attempts, EAGAIN each time; "
                               "does it take the xtables lock?)",
                               what(family, table), kMaxCommitAttempts)};
    if (attempt >= 20) return Error{commit_error(family, table, e)};
    ++retries_;
    // Any other failure leaves the state unknown: read again; if the table is as wanted, done.
    auto again = open_handle(family, table, retries_);
    if (!again) return Error{again.error().message};
    const Snapshot reread = read_handle(family, table, again.value().get());
    auto check = decide(reread);
    if (check && !check.value()) return true;
    return Error{commit_error(family, table, e)};
  }
}

}  // namespace istio_iptables
