// libiptc, one family at a time, behind one interface.
//
// libiptc's IPv4 and IPv6 libraries share one C handle type, so passing an IPv4 handle to an
// ip6tc_ function compiles. Api binds each family's functions once; the rest of the file is
// written once for both.
//
// The two libraries are loaded with dlopen when a legacy table is first opened, not linked: most
// runs (native nftables, iptables-nft) open no legacy table, since only a namespace that holds
// one can hold legacy rules of ours to remove, and linking them cost every run's start about
// 0.05 ms of mapping and ~100 symbol bindings (docs/performance.md). Each function is bound by
// name and typed as the header declares it (checked at compile time); a missing library or
// function is an error naming it, returned by the first open, from whichever run needed it.
//
// Every read-modify-commit uses a fresh handle (a handle is stale after a
// commit), retries on EAGAIN (another writer committed since our read; after a growing pause) and on EEXIST at init
// (two processes creating a table lazily at once), and after any other failed commit reads the
// table again before deciding: the commit can fail after the rules went live
// (docs/libiptc.md, section 6).
#include "system/libiptc_store.h"

#include <libiptc/libiptc.h>
extern "C" {
#include <libiptc/libip6tc.h>
}

#include <dlfcn.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>
#include <tuple>
#include <type_traits>

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

// One family's library as dlopen found it: the functions the store calls, typed as the
// library's header declares them (the static_asserts below hold each to its declaration).
template <class Entry>
struct Library {
  xtc_handle* (*init)(const char*) = nullptr;
  void (*free)(xtc_handle*) = nullptr;
  const char* (*first_chain)(xtc_handle*) = nullptr;
  const char* (*next_chain)(xtc_handle*) = nullptr;
  const Entry* (*first_rule)(const char*, xtc_handle*) = nullptr;
  const Entry* (*next_rule)(const Entry*, xtc_handle*) = nullptr;
  const char* (*get_target)(const Entry*, xtc_handle*) = nullptr;
  int (*builtin)(const char*, xtc_handle*) = nullptr;
  const char* (*get_policy)(const char*, xt_counters*, xtc_handle*) = nullptr;
  int (*is_chain)(const char*, xtc_handle*) = nullptr;
  int (*create_chain)(const char*, xtc_handle*) = nullptr;
  int (*flush)(const char*, xtc_handle*) = nullptr;
  int (*delete_chain)(const char*, xtc_handle*) = nullptr;
  int (*append)(const char*, const Entry*, xtc_handle*) = nullptr;
  int (*commit)(xtc_handle*) = nullptr;
  std::string error;  // empty when the library and every function were found

  using Signatures =
      std::tuple<decltype(init), decltype(free), decltype(first_chain), decltype(next_chain), decltype(first_rule),
                 decltype(next_rule), decltype(get_target), decltype(builtin), decltype(get_policy), decltype(is_chain),
                 decltype(create_chain), decltype(flush), decltype(delete_chain), decltype(append), decltype(commit)>;
};
// decltype names a function without referring to it: these bind no symbol.
static_assert(
    std::is_same_v<Library<ipt_entry>::Signatures,
                   std::tuple<decltype(&iptc_init), decltype(&iptc_free), decltype(&iptc_first_chain),
                              decltype(&iptc_next_chain), decltype(&iptc_first_rule), decltype(&iptc_next_rule),
                              decltype(&iptc_get_target), decltype(&iptc_builtin), decltype(&iptc_get_policy),
                              decltype(&iptc_is_chain), decltype(&iptc_create_chain), decltype(&iptc_flush_entries),
                              decltype(&iptc_delete_chain), decltype(&iptc_append_entry), decltype(&iptc_commit)>>);
static_assert(
    std::is_same_v<Library<ip6t_entry>::Signatures,
                   std::tuple<decltype(&ip6tc_init), decltype(&ip6tc_free), decltype(&ip6tc_first_chain),
                              decltype(&ip6tc_next_chain), decltype(&ip6tc_first_rule), decltype(&ip6tc_next_rule),
                              decltype(&ip6tc_get_target), decltype(&ip6tc_builtin), decltype(&ip6tc_get_policy),
                              decltype(&ip6tc_is_chain), decltype(&ip6tc_create_chain), decltype(&ip6tc_flush_entries),
                              decltype(&ip6tc_delete_chain), decltype(&ip6tc_append_entry), decltype(&ip6tc_commit)>>);

// Loads libip4tc or libip6tc (soname, Debian package) and binds its functions, named prefix +
// the libiptc name ("iptc_" or "ip6tc_"). The library stays loaded for the life of the process.
template <class Entry>
Library<Entry> load(const char* soname, const char* package, const std::string& prefix) {
  Library<Entry> l;
  // RTLD_NOW: a library that lacks a function it needs fails here, whole, not in a commit.
  void* lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    l.error = fmt::format("cannot load {} (libiptc, which the legacy backend uses; Debian package {}): {}", soname,
                          package, why ? why : "unknown error");
    return l;
  }
  auto bind = [&](const char* name, auto* slot) {
    if (!l.error.empty()) return;
    const std::string symbol = prefix + name;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): dlsym's result, typed by the static_asserts
    *slot = reinterpret_cast<std::remove_pointer_t<decltype(slot)>>(dlsym(lib, symbol.c_str()));
    if (*slot == nullptr) l.error = fmt::format("cannot load {}: it has no function {}", soname, symbol);
  };
  bind("init", &l.init);
  bind("free", &l.free);
  bind("first_chain", &l.first_chain);
  bind("next_chain", &l.next_chain);
  bind("first_rule", &l.first_rule);
  bind("next_rule", &l.next_rule);
  bind("get_target", &l.get_target);
  bind("builtin", &l.builtin);
  bind("get_policy", &l.get_policy);
  bind("is_chain", &l.is_chain);
  bind("create_chain", &l.create_chain);
  bind("flush_entries", &l.flush);
  bind("delete_chain", &l.delete_chain);
  bind("append_entry", &l.append);
  bind("commit", &l.commit);
  return l;
}

const Library<ipt_entry>& ip4() {
  static const Library<ipt_entry> l = load<ipt_entry>("libip4tc.so.2", "libip4tc2", "iptc_");
  return l;
}

const Library<ip6t_entry>& ip6() {
  static const Library<ip6t_entry> l = load<ip6t_entry>("libip6tc.so.2", "libip6tc2", "ip6tc_");
  return l;
}

// A family's functions with entries as const void*, so that the rest of the file is written once
// for both.
template <class Entry, const Library<Entry>& (*lib)()>
Api api_of() {
  return Api{
      [](const char* t) { return lib().init(t); },
      [](xtc_handle* h) { lib().free(h); },
      [](xtc_handle* h) { return lib().first_chain(h); },
      [](xtc_handle* h) { return lib().next_chain(h); },
      [](const char* c, xtc_handle* h) -> const void* { return lib().first_rule(c, h); },
      [](const void* p, xtc_handle* h) -> const void* { return lib().next_rule(static_cast<const Entry*>(p), h); },
      [](const void* e, xtc_handle* h) { return lib().get_target(static_cast<const Entry*>(e), h); },
      [](const char* c, xtc_handle* h) { return lib().builtin(c, h); },
      [](const char* c, xt_counters* n, xtc_handle* h) { return lib().get_policy(c, n, h); },
      [](const char* c, xtc_handle* h) { return lib().is_chain(c, h); },
      [](const char* c, xtc_handle* h) { return lib().create_chain(c, h); },
      [](const char* c, xtc_handle* h) { return lib().flush(c, h); },
      [](const char* c, xtc_handle* h) { return lib().delete_chain(c, h); },
      [](const char* c, const void* e, xtc_handle* h) { return lib().append(c, static_cast<const Entry*>(e), h); },
      [](xtc_handle* h) { return lib().commit(h); },
  };
}

// The family's functions; loads its library on first use. The error names the library.
Result<const Api*> load_api(Family f) {
  static const Api v4 = api_of<ipt_entry, ip4>();
  static const Api v6 = api_of<ip6t_entry, ip6>();
  const std::string& error = f == Family::V4 ? ip4().error : ip6().error;
  if (!error.empty()) return Error{error};
  return f == Family::V4 ? &v4 : &v6;
}

// After load_api succeeded for the family (every handle comes from open_handle, which loads it).
const Api& api(Family f) {
  auto a = load_api(f);
  assert(a);
  return *a.value();
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
    auto a = load_api(f);
    if (!a) return Error{a.error().message};
    errno = 0;  // iptc_init can fail without setting errno
    xtc_handle* h = a.value()->init(table_name(t));
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

Result<std::vector<std::string>> legacy_table_names(Family family) {
  // The kernel lists the tables that exist (and only to root). Read with read(2), not a stream:
  // a stream would set up the C++ locale machinery in every apply (docs/performance.md).
  const char* path = family == Family::V4 ? "/proc/net/ip_tables_names" : "/proc/net/ip6_tables_names";
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return std::vector<std::string>{};
    if (e == EACCES || e == EPERM)
      return Error{fmt::format(
          "cannot read {}: permission denied (needs root or CAP_NET_ADMIN in the network namespace)", path)};
    return Error{fmt::format("cannot read {}: {}", path, std::strerror(e))};
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return Error{fmt::format("cannot read {}: {}", path, std::strerror(e))};
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::vector<std::string> names;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    names.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return names;
}

Result<const std::vector<std::string>*> LibiptcStore::table_names(Family family) {
  auto& cached = names_[family == Family::V4 ? 0 : 1];
  if (cached) return &*cached;
  auto names = legacy_table_names(family);
  if (!names) return Error{names.error().message};
  cached = std::move(names).value();
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
