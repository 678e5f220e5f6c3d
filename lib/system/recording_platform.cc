// What a write would have done, worked out while the snapshot it points into is alive: a
// TableWrite's rules are pointers into the snapshot (rules that stay) and into the encoded plan
// (rules of ours), so a rule of the snapshot whose blob is not among the chain's new pointers is
// one the write removes.
#include "system/recording_platform.h"

#include <unordered_set>

#include <fmt/format.h>

#include "core/nft_script.h"
#include "core/restore_text.h"

namespace istio_iptables {

Result<bool> RecordingStore::transact(Family family, Table table,
                                      const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) {
  auto now = real_->read(family, table);
  if (!now) return Error{now.error().message};
  auto write = decide(now.value());
  if (!write) return Error{write.error().message};
  if (!write.value()) return false;
  const TableWrite& w = *write.value();
  RecordedWrite rec;
  rec.family = family;
  rec.table = table;
  for (const auto& c : w.chains) {
    rec.written.push_back(c.name);
    rec.rules_written += c.blobs.size();
    const InstalledChain* before = now.value().find(c.name);
    if (!before) continue;
    std::unordered_set<const std::string*> kept(c.blobs.begin(), c.blobs.end());
    for (const auto& r : before->rules)
      if (!kept.count(&r.blob)) rec.removed.push_back(RecordedWrite::Removal{c.name, r.rule});
  }
  rec.flushed = w.delete_chains;
  recording_.writes.push_back(std::move(rec));
  return true;
}

Result<OpenedStore> RecordingPlatform::open_store(const BackendRequest& request) {
  auto opened = real_.open_store(request);
  if (!opened) return Error{opened.error().message};
  OpenedStore out = std::move(opened).value();
  out.store = std::make_unique<RecordingStore>(std::move(out.store), recording_);
  out.needs_xtables_lock = false;
  return out;
}

Result<std::unique_ptr<nft::NftStore>> RecordingPlatform::open_nft_store() {
  auto opened = real_.open_nft_store();
  if (!opened) return Error{opened.error().message};
  return std::unique_ptr<nft::NftStore>(std::make_unique<RecordingNftStore>(std::move(opened).value(), recording_));
}

Status RecordingPlatform::configure_routes(const RouteRequest& request) {
  recording_.routes_configured.push_back(request);
  return ok_status();
}

Status RecordingPlatform::remove_routes(const RouteRequest& request) {
  recording_.routes_removed.push_back(request);
  return ok_status();
}

}  // namespace istio_iptables

namespace istio_iptables {

namespace {
void route_lines(const RouteRequest& r, const char* verb, std::string& out) {
  if (r.tproxy_routes)
    for (Family f : {Family::V4, Family::V6}) {
      const char* v = f == Family::V4 ? "-4" : "-6";
      out += fmt::format("# ip {} rule {} fwmark {:#x} lookup {}\n", v, verb, r.mark, r.table);
      out += fmt::format("# ip {} route {} local default dev lo table {}\n", v, verb, r.table);
    }
  if (r.ipv6) out += fmt::format("# ip -6 addr {} ::6/128 dev lo\n", verb);
}
}  // namespace

std::string recording_text(const Recording& recording) {
  std::string out;
  for (Family f : {Family::V4, Family::V6}) {
    bool header = false;
    for (const auto& w : recording.writes) {
      if (w.family != f) continue;
      if (f == Family::V6 && !header) out += "# ip6tables-restore\n";
      header = true;
      out += fmt::format("* {}\n", table_name(w.table));
      for (const auto& r : w.removed)
        out += r.rule ? fmt::format("-D {} {}\n", r.chain, rule_spec(*r.rule))
                      : fmt::format("# a rule in {} this tool cannot print would be removed\n", r.chain);
      for (const auto& c : w.flushed) out += fmt::format("-F {}\n", c);
      for (const auto& c : w.flushed) out += fmt::format("-X {}\n", c);
      out += "COMMIT\n";
    }
  }
  for (const auto& tx : recording.nft_transactions)
    for (const auto& op : tx.operations) {
      switch (op.kind) {
      case nft::Operation::Kind::AddTable: out += fmt::format("add table inet {}\n", op.table); break;
      case nft::Operation::Kind::DeleteTable: out += fmt::format("delete table inet {}\n", op.table); break;
      case nft::Operation::Kind::FlushTable: out += fmt::format("flush table inet {}\n", op.table); break;
      case nft::Operation::Kind::AddChain:
        out += op.chain.base ? fmt::format("add chain inet {} {} {{ type {} hook {} priority {} ; }}\n", op.table,
                                           op.chain.name, nft::chain_type_name(op.chain.base->type),
                                           nft::hook_name(op.chain.base->hook), op.chain.base->priority)
                             : fmt::format("add chain inet {} {}\n", op.table, op.chain.name);
        break;
      case nft::Operation::Kind::AddRule:
        out += fmt::format("add rule inet {} {} {}\n", op.table, op.chain.name, nft_rule_text(op.rule));
        break;
      }
    }
  // Routes are not read back: what a cleanup would remove is each of these where it exists.
  if (!recording.routes_removed.empty()) out += "# policy routing of ours, removed where present:\n";
  for (const auto& r : recording.routes_removed) route_lines(r, "del", out);
  for (const auto& r : recording.routes_configured) route_lines(r, "add", out);
  return out;
}

}  // namespace istio_iptables
