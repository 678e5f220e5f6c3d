#include "app.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "core/apply.h"
#include "core/planner.h"
#include "core/restore_text.h"
#include "core/rule_text.h"

namespace istio_iptables {
namespace {

struct Parsed {
  std::map<std::string, std::string> command_line;  // long name -> value, only flags given
  std::string log_level = "info";
};

// Builds the CLI11 app over `storage` (one string per setting). Every setting is a string so
// that values are validated by settings.cc, in one place, with Istio's rules.
void make_app(CLI::App& app, std::map<std::string, std::string>& storage, std::map<std::string, CLI::Option*>& options,
              Parsed& parsed, std::vector<std::string>& log_targets) {
  app.allow_windows_style_options(false);
  app.allow_extras(true);  // unknown flags are reported with every other problem, below
  for (const auto& spec : setting_specs()) {
    std::string names = fmt::format("--{}", spec.name);
    if (*spec.short_name != '\0') names += fmt::format(",-{}", spec.short_name);
    std::string help = spec.help;
    if (*spec.env != '\0')
      help += fmt::format(" [env {}{}]", spec.env, *spec.env_alias ? fmt::format(", {}", spec.env_alias) : "");
    auto& slot = storage[spec.name];
    auto* option = spec.kind == SettingKind::Bool ? app.add_flag(names, slot, help) : app.add_option(names, slot, help);
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // pflag: the last one given wins
    options[spec.name] = option;
  }
  // pilot-agent's logging flags: the injector always passes --log_output_level.
  app.add_option("--log_output_level", parsed.log_level, "log level, e.g. default:info");
  app.add_option("--log_stacktrace_level", "accepted for pilot-agent compatibility; ignored");
  app.add_option("--log_target", log_targets, "accepted for pilot-agent compatibility; logs go to stderr");
  app.add_flag("--log_as_json", "accepted for pilot-agent compatibility; ignored");
  app.add_flag("--log_caller", "accepted for pilot-agent compatibility; ignored");
}

// pilot-agent's --log_output_level: "level" or "scope:level,...", the default scope counting.
// Returns 0 for debug/info, 1 for warn, 2 for error/fatal/none.
int log_threshold(const std::string& spec) {
  std::string level = spec;
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    std::size_t end = spec.find(',', pos);
    std::string item = spec.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    std::size_t colon = item.find(':');
    if (colon == std::string::npos || item.compare(0, colon, "default") == 0)
      level = colon == std::string::npos ? item : item.substr(colon + 1);
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (level == "warn" || level == "warning") return 1;
  if (level == "error" || level == "fatal" || level == "none") return 2;
  return 0;
}

// A stream that drops what is written to it (for log levels below the threshold).
struct NullStream : std::ostream {
  NullStream() : std::ostream(nullptr) {}
};

// pflag accepts "--name=" for an empty value; CLI11 wants the value as its own argument.
std::vector<std::string> normalise(std::vector<std::string> args) {
  std::vector<std::string> out;
  for (auto& a : args) {
    if (a.size() > 3 && a.compare(0, 2, "--") == 0 && a.back() == '=' && a.find('=') == a.size() - 1) {
      out.push_back(a.substr(0, a.size() - 1));
      out.emplace_back();
    } else {
      out.push_back(std::move(a));
    }
  }
  return out;
}

// Compares the plan with a stored iptables-restore text (a golden file), without the kernel.
int check_against_file(const Plan& p, const std::string& path, MachineFacts& facts, std::ostream& out,
                       std::ostream& err) {
  auto text = facts.read_file(path);
  if (!text) {
    err << "error: --against: " << text.error().message << "\n";
    return exit_code::kUsage;
  }
  auto parsed = parse_ruleset_text(text.value());
  if (!parsed) {
    err << "error: --against " << path << ": " << parsed.error().message << "\n";
    return exit_code::kUsage;
  }
  // Group names stay names on both sides: compare them as written.
  auto no_lookup = [](const std::string&) -> std::optional<std::uint32_t> { return std::nullopt; };
  std::vector<TableDifferences> all;
  for (Family f : {Family::V4, Family::V6}) {
    const auto& tables = f == Family::V4 ? parsed.value().v4 : parsed.value().v6;
    const Ruleset* rs = f == Family::V4 ? &p.v4 : (p.v6 ? &*p.v6 : nullptr);
    for (Table t : kAllTables) {
      const TextTable* stored = nullptr;
      for (const auto& tt : tables)
        if (tt.table == t) stored = &tt;
      bool used = rs && rs->uses_table(t);
      if (!stored && !used) continue;
      Snapshot snap;
      snap.table = t;
      if (stored) snap = snapshot_of(*stored, no_lookup);
      for (const auto& name : builtin_chains(t))
        if (!snap.find(name)) snap.chains.insert(snap.chains.begin(), InstalledChain{name, true, {}});
      std::vector<EncodedOp> ops;
      if (used)
        for (const auto& op : rs->ops)
          if (op.table == t)
            ops.push_back(
                EncodedOp{op.chain, op.insert_position,
                          InstalledRule{rule_spec(op.rule), rule_spec(canonical(op.rule, no_lookup)), op.rule}});
      auto diffs = differences(snap, desired_table(snap, ops));
      if (!diffs.empty()) all.push_back(TableDifferences{f, t, std::move(diffs)});
    }
  }
  if (all.empty()) {
    out << "the plan matches " << path << "\n";
    return exit_code::kOk;
  }
  out << format_differences(all);
  return exit_code::kFailure;
}

// Apply, cleanup or check against the kernel of the current (or the given) network namespace.
int run_on_machine(const std::string& command, const Settings& settings, const Plan& p, Platform& platform,
                   std::ostream& out, std::ostream& err, std::ostream& info) {
  const RunOptions& run = settings.run;
  if (!run.network_namespace.empty()) {
    auto entered = platform.enter_network_namespace(run.network_namespace);
    if (!entered) {
      err << "error: " << entered.error().message << "\n";
      return exit_code::kFailure;
    }
  }
  BackendRequest request;
  request.backend = run.backend == "libiptc"   ? Backend::Libiptc
                    : run.backend == "restore" ? Backend::Restore
                                               : Backend::Auto;
  request.force_binary = run.force_iptables_binary;
  request.wait_seconds = run.wait_seconds;
  auto opened = platform.open_store(request);
  if (!opened) {
    err << "error: " << opened.error().message << "\n";
    return exit_code::kFailure;
  }
  info << "info\tbackend: " << opened.value().description << "\n";
  NetfilterStore& store = *opened.value().store;
  // One lock around the whole run, as iptables takes it around each change: concurrent
  // iptables processes wait for us, and we for them. The restore backend's binaries lock for
  // themselves (holding it here would deadlock them).
  std::shared_ptr<void> lock;
  if (opened.value().needs_xtables_lock && command != "check") {
    auto l = platform.lock(run.wait_seconds);
    if (!l) {
      err << "error: " << l.error().message << "\nnothing was changed\n";
      return exit_code::kFailure;
    }
    lock = std::move(l).value();
  }
  if (command == "check") {
    auto diffs = check(store, p);
    if (!diffs) {
      err << "error: " << diffs.error().message << "\n";
      return exit_code::kFailure;
    }
    if (diffs.value().empty()) {
      out << "the installed rules match the plan\n";
      return exit_code::kOk;
    }
    out << format_differences(diffs.value());
    return exit_code::kFailure;
  }
  auto result = command == "cleanup" ? cleanup(store) : apply_plan(store, p);
  if (!result) {
    err << "error: " << result.error().message << "\n";
    return exit_code::kFailure;
  }
  if (result.value().committed.empty())
    info << "info\tnothing to change: the tables already hold "
         << (command == "cleanup" ? "none of our rules" : "the plan") << "\n";
  else
    info << "info\t" << (command == "cleanup" ? "cleaned up" : "applied") << ": "
         << fmt::format("{}", fmt::join(result.value().committed, ", ")) << "\n";
  if (command == "apply") {
    RouteRequest routes;
    routes.ipv6 = settings.config.enable_ipv6;
    routes.tproxy_routes = settings.config.mode == InterceptionMode::Tproxy &&
                           (settings.config.inbound_ports.wildcard || !settings.config.inbound_ports.ports.empty());
    routes.mark = settings.config.tproxy_mark;
    routes.table = settings.config.tproxy_route_table;
    if (routes.ipv6 || routes.tproxy_routes) {
      auto r = platform.configure_routes(routes);
      if (!r) {
        err << "error: " << r.error().message << " (the rules are in place)\n";
        return exit_code::kFailure;
      }
    }
  }
  return exit_code::kOk;
}

// Istio's validation probe: exit 126 when the capture does not work.
int validate(const Settings& settings, Platform& platform, std::ostream& err, std::ostream& info) {
  if (!settings.run.network_namespace.empty() && settings.run.skip_rule_apply) {
    auto entered = platform.enter_network_namespace(settings.run.network_namespace);
    if (!entered) {
      err << "error: " << entered.error().message << "\n";
      return exit_code::kValidationFailed;
    }
  }
  ValidationRequest request;
  // Istio probes over IPv6 when the pod's first address (HostIP) is IPv6: with IPv6 on and not
  // dual stack (a dual-stack pod's first address is its IPv4 one).
  request.ipv6 = settings.config.enable_ipv6 && !settings.dual_stack;
  request.outbound_port = settings.config.proxy_port;
  request.inbound_port = settings.config.inbound_capture_port;
  request.probe_port = settings.run.probe_port;
  request.timeout_ms = settings.run.probe_timeout_ms;
  std::string log;
  auto r = platform.validate(request, log);
  info << log;
  if (!r) {
    err << "error: iptables validation failed; workload is not ready for Istio.\n"
        << "When using Istio CNI, this can occur if a pod is scheduled before the node is ready.\n"
        << "If installed with 'cni.repair.deletePods=true', this pod should automatically be deleted "
           "and retry.\nOtherwise, this pod will need to be manually removed so that it is scheduled on "
           "a node with istio-cni running, allowing iptables rules to be established.\n"
        << "cause: " << r.error().message << "\n";
    return exit_code::kValidationFailed;
  }
  info << "info\tValidation passed, iptables rules established\n";
  return exit_code::kOk;
}

}  // namespace

int run_cli(std::vector<std::string> args, CliContext& context, std::ostream& out, std::ostream& err) {
  // The injector runs `pilot-agent istio-iptables ...`; accept the subcommand name as a no-op.
  if (!args.empty() && args.front() == "istio-iptables") args.erase(args.begin());
  std::string command = "apply";
  if (!args.empty() && (args.front() == "apply" || args.front() == "check" || args.front() == "cleanup")) {
    command = args.front();
    args.erase(args.begin());
  }
  args = normalise(std::move(args));

  CLI::App app{"istio-iptables: sets up a pod's traffic capture for the Istio sidecar", "istio-iptables"};
  std::map<std::string, std::string> storage;
  std::map<std::string, CLI::Option*> options;
  Parsed parsed;
  std::vector<std::string> log_targets;
  make_app(app, storage, options, parsed, log_targets);

  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return exit_code::kOk;
  } catch (const CLI::ParseError& e) {
    err << "error: " << e.what() << "\n";
    return exit_code::kUsage;
  }
  for (const auto& [name, option] : options)
    if (option->count() > 0) parsed.command_line[name] = storage[name];
  std::vector<std::string> unknown;
  for (const auto& extra : app.remaining())
    unknown.push_back(extra.size() > 1 && extra[0] == '-' ? fmt::format("unknown flag {}", extra)
                                                          : fmt::format("unexpected argument \"{}\"", extra));

  auto resolved = resolve_settings(parsed.command_line, context.environment);
  auto built = build_settings(resolved, context.environment, *context.facts);
  if (!unknown.empty()) {
    for (const auto& m : unknown) err << "error: " << m << "\n";
    if (auto* problems = std::get_if<SettingsError>(&built))
      for (const auto& m : problems->messages) err << "error: " << m << "\n";
    err << "nothing was changed\n";
    return exit_code::kUsage;
  }
  if (auto* problems = std::get_if<SettingsError>(&built)) {
    for (const auto& m : problems->messages) err << "error: " << m << "\n";
    if (problems->usage) err << "nothing was changed\n";
    return problems->usage ? exit_code::kUsage : exit_code::kFailure;
  }
  const auto& settings = std::get<Settings>(built);
  const int threshold = log_threshold(parsed.log_level);
  NullStream dropped;
  std::ostream& info = threshold == 0 ? err : dropped;
  if (threshold <= 1)
    for (const auto& w : settings.warnings) err << "warn\t" << w << "\n";

  if (!settings.run.against.empty() && command != "check") {
    err << "error: --against only goes with the check command\nnothing was changed\n";
    return exit_code::kUsage;
  }
  const Plan p = plan(settings.config);
  if (command == "apply" && settings.run.dry_run) {
    out << dry_run_text(p);
    return exit_code::kOk;
  }
  if (command == "check" && !settings.run.against.empty())
    return check_against_file(p, settings.run.against, *context.facts, out, err);
  if (command == "cleanup" || settings.run.cleanup_only) command = "cleanup";
  if (!(command == "apply" && settings.run.skip_rule_apply)) {
    int code = run_on_machine(command, settings, p, *context.platform, out, err, info);
    if (code != exit_code::kOk || command != "apply") return code;
  }
  if (command == "apply" && settings.run.run_validation) return validate(settings, *context.platform, err, info);
  return exit_code::kOk;
}

}  // namespace istio_iptables
