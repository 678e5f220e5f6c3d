// `istio-iptables explain`: the flows parsed, the rules gathered, each flow walked.
//
// Every flow is parsed before anything is read, so a typo costs no kernel round trip and all bad
// flows are reported at once (exit 2). The rules come from the plan of the flags, or with
// --installed from the namespace through the read-only platform the CLI handed in: the iptables
// backend `check` uses (raw, mangle and nat of each family a flow needs), or in native nftables
// mode our inet tables. The walk itself (lib/core/explain.h) does not know where they came from.
#include "backend_request.h"
#include "explain.h"

#include <map>
#include <set>

#include "app.h"
#include "core/explain.h"
#include "core/nft_planner.h"
#include "core/planner.h"

namespace istio_iptables {
namespace {

Result<IptablesView> installed_iptables(Platform& platform, const RunOptions& run, Family family) {
  auto opened = platform.open_store(backend_request(run));
  if (!opened) return Error{opened.error().message};
  NetfilterStore& store = *opened.value().store;
  IptablesView view;
  view.family = family;
  for (Table t : {Table::Raw, Table::Mangle, Table::Nat}) {
    auto exists = store.table_exists(family, t);
    if (!exists) return Error{exists.error().message};
    if (!exists.value()) continue;
    auto snapshot = store.read(family, t);
    if (!snapshot) return Error{snapshot.error().message};
    view.tables.push_back(view_of_snapshot(snapshot.value()));
  }
  return view;
}

}  // namespace

int run_explain(const ExplainRequest& request, const Settings& settings, Platform* platform, LogSink& out,
                const std::function<void(const std::string&)>& error) {
  if (request.flows.empty()) {
    error("explain needs at least one --flow, e.g. --flow 'out tcp 192.0.2.2 -> 192.0.2.1:8080 uid 1000'");
    return exit_code::kUsage;
  }
  std::vector<Packet> packets;
  bool bad = false;
  for (const auto& flow : request.flows) {
    auto packet = parse_flow(flow);
    if (!packet) {
      error(packet.error().message);
      bad = true;
      continue;
    }
    packets.push_back(packet.value());
  }
  if (bad) return exit_code::kUsage;
  if (request.installed && platform == nullptr) {
    error("--installed needs the machine, and this run has none");
    return exit_code::kFailure;
  }

  std::vector<Explanation> explanations;
  if (settings.run.native_nftables) {
    const NftRuleset planned = plan_nft(settings.config);
    NftView view;
    if (request.installed) {
      auto store = platform->open_nft_store();
      if (!store) {
        error(store.error().message);
        return exit_code::kFailure;
      }
      auto state = store.value()->read();
      if (!state) {
        error(state.error().message);
        return exit_code::kFailure;
      }
      // An installed rule is one of ours when the kernel's fingerprint of it is that of a
      // planned rule: the kernel's own encoding compared, not text.
      std::map<std::string, const nft::Rule*> ours;
      for (const auto& t : planned.tables)
        for (const auto& op : t.ops) {
          auto fingerprint = store.value()->fingerprint(t.name, op.rule);
          if (fingerprint) ours.emplace(t.name + "\n" + fingerprint.value(), &op.rule);
        }
      view = view_of_nft_state(state.value(), [&ours](const std::string& table, const nft::InstalledRule& rule) {
        auto it = ours.find(table + "\n" + rule.fingerprint);
        return it == ours.end() ? nullptr : it->second;
      });
    } else {
      view = view_of_nft_plan(planned);
    }
    for (const auto& p : packets) explanations.push_back(explain_nft(p, view));
  } else {
    IptablesView views[2];
    views[0].family = Family::V4;
    views[1].family = Family::V6;
    std::set<Family> needed;
    for (const auto& p : packets) needed.insert(p.family());
    if (request.installed) {
      for (Family f : needed) {
        auto view = installed_iptables(*platform, settings.run, f);
        if (!view) {
          error(view.error().message);
          return exit_code::kFailure;
        }
        views[f == Family::V4 ? 0 : 1] = std::move(view).value();
      }
    } else {
      const Plan p = plan(settings.config);
      views[0] = view_of_ruleset(p.v4);
      if (p.v6) views[1] = view_of_ruleset(*p.v6);  // without IPv6 rules, IPv6 flows meet none
    }
    for (const auto& p : packets) explanations.push_back(explain_iptables(p, views[p.family() == Family::V4 ? 0 : 1]));
  }
  for (std::size_t i = 0; i < packets.size(); ++i)
    out << (request.json ? json_explanation(request.flows[i], explanations[i]) + "\n"
                         : format_explanation(request.flows[i], explanations[i]));
  return exit_code::kOk;
}

}  // namespace istio_iptables
