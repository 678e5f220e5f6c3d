// The command line: the command is chosen first, then the machine it runs against.
//
// The order is the design. (1) The first word names the command (an enum from here on; a flag
// never turns one command into another: CLEANUP_ONLY only picks cleanup when no command is
// named). (2) The flags are parsed and, when --network-namespace is given, the namespace is
// entered before any fact is read, so IPv6 detection sees the pod's interfaces. (3) Read-only
// runs (check, and every command with --dry-run) get a RecordingPlatform that reads through to
// the machine and records every write instead of making it; apply, cleanup and check are the
// same code in every mode. Every log line is one write, so concurrent runs never interleave.
#include "app.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "core/apply.h"
#include "explain.h"
#include "core/message.h"
#include "core/nft_apply.h"
#include "core/nft_planner.h"
#include "core/nft_script.h"
#include "core/planner.h"
#include "core/restore_text.h"
#include "core/rule_text.h"
#include "system/recording_platform.h"

namespace istio_iptables {
namespace {

struct Parsed {
  std::map<std::string, std::string> command_line;  // long name -> value, only flags given
  std::string log_level = "info";
  ExplainRequest explain;
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
  // explain's own flags (refused with any other command, below).
  app.add_option("--flow", parsed.explain.flows, "explain: a packet, e.g. 'out tcp 10.0.0.1 -> 192.0.2.1:80 uid 0'");
  app.add_flag("--installed", parsed.explain.installed, "explain: use the rules installed in the namespace");
  app.add_flag("--json", parsed.explain.json, "explain: one JSON object per flow per line");
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

// One record, one write: a line is formatted whole and handed to the stream at once, so the
// lines of concurrent runs sharing a terminal or a log file never interleave mid-line.
class Log {
 public:
  Log(std::ostream& stream, int threshold) : stream_(stream), threshold_(threshold) {}
  void info(const std::string& message) {
    if (threshold_ == 0) line("info\t" + message);
  }
  void warn(const std::string& message) {
    if (threshold_ <= 1) line("warn\t" + message);
  }
  void error(const std::string& message) { line("error: " + message); }
  /// A line as it is ("nothing was changed").
  void line(std::string text) {
    text += '\n';
    stream_.write(text.data(), static_cast<std::streamsize>(text.size()));
    stream_.flush();
  }

 private:
  std::ostream& stream_;
  int threshold_;
};

// Compares the plan with a stored iptables-restore text (a golden file), without the kernel.
int check_against_file(const Plan& p, const std::string& path, MachineFacts& facts, std::ostream& out, Log& log) {
  auto text = facts.read_file(path, kMaxRulesetTextBytes);
  if (!text) {
    log.error("--against: " + text.error().message);
    return exit_code::kUsage;
  }
  auto parsed = parse_ruleset_text(text.value());
  if (!parsed) {
    log.error("--against " + quoted_for_message(path) + ": " + parsed.error().message);
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
      if (!diffs.empty()) all.push_back(TableDifferences{f, t, std::move(diffs), {}});
    }
  }
  if (all.empty()) {
    out << "the plan matches " << quoted_for_message(path) << "\n";
    return exit_code::kOk;
  }
  out << format_differences(all);
  return exit_code::kFailure;
}

// The routes cleanup removes: the shapes configure_routes installs for this configuration's
// mark and table, whatever the mode (an earlier TPROXY run may be cleaned up by a command line
// without -m TPROXY), and ::6 on lo.
RouteRequest routes_to_remove(const Config& config) {
  RouteRequest r;
  r.ipv6 = true;
  r.tproxy_routes = true;
  r.mark = config.tproxy_mark;
  r.table = config.tproxy_route_table;
  return r;
}

RouteRequest routes_to_configure(const Config& config) {
  RouteRequest r;
  r.ipv6 = config.enable_ipv6;
  r.tproxy_routes =
      config.mode == InterceptionMode::Tproxy && (config.inbound_ports.wildcard || !config.inbound_ports.ports.empty());
  r.mark = config.tproxy_mark;
  r.table = config.tproxy_route_table;
  return r;
}

// The iptables tables of the namespace, opened through the backend the flags choose, with the
// xtables lock held for writers (the restore backend's binaries lock for themselves; readers and
// recording runs take no lock).
struct IptablesSession {
  OpenedStore opened;
  std::shared_ptr<void> lock;
};

Result<IptablesSession> open_iptables(const RunOptions& run, Platform& platform, bool writes, Log& log) {
  BackendRequest request;
  request.backend = run.backend == "libiptc"   ? Backend::Libiptc
                    : run.backend == "restore" ? Backend::Restore
                                               : Backend::Auto;
  request.force_binary = run.force_iptables_binary;
  request.wait_seconds = run.wait_seconds;
  auto opened = platform.open_store(request);
  if (!opened) return Error{opened.error().message};
  log.info("backend: " + opened.value().description);
  IptablesSession session{std::move(opened).value(), {}};
  if (writes && session.opened.needs_xtables_lock) {
    auto l = platform.lock(run.wait_seconds);
    if (!l) return Error{l.error().message + "; nothing was changed"};
    session.lock = std::move(l).value();
  }
  return session;
}

void log_outcome(Log& log, bool dry_run, const char* done, const std::vector<std::string>& what, const char* nothing) {
  if (what.empty())
    log.info(fmt::format("nothing to change: {}", nothing));
  else
    log.info(fmt::format("{}{}: {}", dry_run ? "dry run, would have " : "", done, fmt::join(what, ", ")));
}

// Our rules of one mode, removed: by cleanup, and by an apply in the other mode, so that after
// an apply the namespace holds ours of one mode only. An apply removes them after its own rules
// are in place, so capture never lapses.
Status remove_iptables_rules(const RunOptions& run, Platform& platform, Log& log) {
  auto session = open_iptables(run, platform, true, log);
  if (!session) return Error{session.error().message};
  auto removed = cleanup(*session.value().opened.store);
  if (!removed) return Error{removed.error().message};
  log_outcome(log, run.dry_run, "removed our iptables rules", removed.value().committed, "no iptables rules of ours");
  return ok_status();
}

Status remove_nft_tables(const RunOptions& run, Platform& platform, Log& log) {
  auto store = platform.open_nft_store();
  if (!store) return Error{store.error().message};
  auto removed = nft::cleanup_nft(*store.value());
  if (!removed) return Error{removed.error().message};
  log_outcome(log, run.dry_run, "removed our nftables tables", removed.value().deleted, "no nftables tables of ours");
  return ok_status();
}

int check_iptables(const Settings& settings, const Plan& p, Platform& platform, std::ostream& out, Log& log) {
  auto session = open_iptables(settings.run, platform, false, log);
  if (!session) {
    log.error(session.error().message);
    return exit_code::kStateUnreadable;
  }
  auto diffs = check(*session.value().opened.store, p);
  if (!diffs) {
    log.error(diffs.error().message);
    return exit_code::kStateUnreadable;
  }
  out << format_differences(diffs.value());
  if (any_differences(diffs.value())) return exit_code::kFailure;
  out << "the installed rules match the plan\n";
  return exit_code::kOk;
}

int check_nft_tables(const Settings& settings, Platform& platform, std::ostream& out, Log& log) {
  auto store = platform.open_nft_store();
  if (!store) {
    log.error(store.error().message);
    return exit_code::kStateUnreadable;
  }
  auto diffs = nft::check_nft(*store.value(), plan_nft(settings.config));
  if (!diffs) {
    log.error(diffs.error().message);
    return exit_code::kStateUnreadable;
  }
  for (const auto& d : diffs.value()) out << d << "\n";
  if (!diffs.value().empty()) return exit_code::kFailure;
  out << "the installed rules match the plan\n";
  return exit_code::kOk;
}

// The mode's own rules: iptables through the chosen backend, or nftables in one transaction.
Status apply_rules(const Settings& settings, const Plan& p, Platform& platform, Log& log) {
  const RunOptions& run = settings.run;
  if (run.native_nftables) {
    auto store = platform.open_nft_store();
    if (!store) return Error{store.error().message};
    log.info("backend: nf_tables (in-process, one transaction)");
    auto applied = nft::apply_nft(*store.value(), plan_nft(settings.config));
    if (!applied) return Error{applied.error().message};
    log_outcome(log, run.dry_run, "applied", applied.value().written, "the tables already hold the plan");
    if (!applied.value().deleted.empty())
      log_outcome(log, run.dry_run, "deleted tables the plan no longer has", applied.value().deleted, "");
    return ok_status();
  }
  auto session = open_iptables(run, platform, true, log);
  if (!session) return Error{session.error().message};
  auto applied = apply_plan(*session.value().opened.store, p);
  if (!applied) return Error{applied.error().message};
  log_outcome(log, run.dry_run, "applied", applied.value().committed, "the tables already hold the plan");
  return ok_status();
}

// Apply, cleanup or check against the kernel, through `platform` (the real one, or the
// recording one for read-only runs). The namespace was entered before the settings were built.
int run_on_machine(Command command, const Settings& settings, const Plan& p, Platform& platform, std::ostream& out,
                   Log& log) {
  const RunOptions& run = settings.run;
  switch (command) {
  case Command::Explain: return exit_code::kFailure;  // handled before the machine is asked
  case Command::Check:
    return run.native_nftables ? check_nft_tables(settings, platform, out, log)
                               : check_iptables(settings, p, platform, out, log);
  case Command::Cleanup: {
    // Every rule of ours, of either mode, then the routes.
    for (auto* remove : {&remove_iptables_rules, &remove_nft_tables}) {
      auto removed = (*remove)(run, platform, log);
      if (!removed) {
        log.error(removed.error().message);
        return exit_code::kFailure;
      }
    }
    auto r = platform.remove_routes(routes_to_remove(settings.config));
    if (!r) {
      log.error(r.error().message + " (the rules are removed)");
      return exit_code::kFailure;
    }
    return exit_code::kOk;
  }
  case Command::Apply: {
    auto applied = apply_rules(settings, p, platform, log);
    if (!applied) {
      log.error(applied.error().message);
      return exit_code::kFailure;
    }
    // Then our rules of the other mode go (an earlier run in the other mode).
    // An iptables apply must not fail where nf_tables cannot be read (a kernel without it has no
    // tables of ours there): it says so and goes on. An nftables apply removes the iptables rules
    // or fails.
    auto other =
        run.native_nftables ? remove_iptables_rules(run, platform, log) : remove_nft_tables(run, platform, log);
    if (!other && run.native_nftables) {
      log.error(fmt::format("{} (this mode's rules are in place)", other.error().message));
      return exit_code::kFailure;
    }
    if (!other) log.warn("could not look for native nftables tables of an earlier run: " + other.error().message);
    RouteRequest routes = routes_to_configure(settings.config);
    if (routes.ipv6 || routes.tproxy_routes) {
      auto r = platform.configure_routes(routes);
      if (!r) {
        log.error(r.error().message + " (the rules are in place)");
        return exit_code::kFailure;
      }
    }
    return exit_code::kOk;
  }
  }
  return exit_code::kFailure;
}

// Istio's validation probe: exit 126 when the capture does not work.
int validate(const Settings& settings, Platform& platform, Log& log) {
  ValidationRequest request;
  // Istio probes over IPv6 when the pod's first address (HostIP) is IPv6: with IPv6 on and not
  // dual stack (a dual-stack pod's first address is its IPv4 one).
  request.ipv6 = settings.config.enable_ipv6 && !settings.dual_stack;
  request.outbound_port = settings.config.proxy_port;
  request.inbound_port = settings.config.inbound_capture_port;
  request.probe_port = settings.run.probe_port;
  request.timeout_ms = settings.run.probe_timeout_ms;
  std::string text;
  auto r = platform.validate(request, text);
  for (std::size_t pos = 0; pos < text.size();) {  // the probe's log, a record a line
    std::size_t end = text.find('\n', pos);
    log.line(text.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    pos = end == std::string::npos ? text.size() : end + 1;
  }
  if (!r) {
    log.error("iptables validation failed; workload is not ready for Istio.\n"
              "When using Istio CNI, this can occur if a pod is scheduled before the node is ready.\n"
              "If installed with 'cni.repair.deletePods=true', this pod should automatically be deleted "
              "and retry.\nOtherwise, this pod will need to be manually removed so that it is scheduled on "
              "a node with istio-cni running, allowing iptables rules to be established.\ncause: " +
              r.error().message);
    return exit_code::kValidationFailed;
  }
  log.info("Validation passed, iptables rules established");
  return exit_code::kOk;
}

// The command a run performs: the first word names it; without one, Istio's --cleanup-only
// (CLEANUP_ONLY) chooses cleanup, anything else is apply. A named command is never changed by
// a flag: `check` stays read-only whatever else is set.
Command choose_command(std::optional<Command> named, const RunOptions& run, Log& log) {
  if (!named) return run.cleanup_only ? Command::Cleanup : Command::Apply;
  if (run.cleanup_only && *named != Command::Cleanup)
    log.warn(fmt::format("--cleanup-only (CLEANUP_ONLY) is ignored: the command is {}", command_name(*named)));
  return *named;
}

}  // namespace

int run_cli(std::vector<std::string> args, CliContext& context, std::ostream& out, std::ostream& err) {
  // The injector runs `pilot-agent istio-iptables ...`; accept the subcommand name as a no-op.
  if (!args.empty() && args.front() == "istio-iptables") args.erase(args.begin());
  std::optional<Command> named;
  if (!args.empty()) {
    for (Command c : {Command::Apply, Command::Check, Command::Cleanup, Command::Explain})
      if (args.front() == command_name(c)) named = c;
    if (named) args.erase(args.begin());
  }
  args = normalise(std::move(args));

  CLI::App app{"istio-iptables: sets up a pod's traffic capture for the Istio sidecar", "istio-iptables"};
  std::map<std::string, std::string> storage;
  std::map<std::string, CLI::Option*> options;
  Parsed parsed;
  std::vector<std::string> log_targets;
  make_app(app, storage, options, parsed, log_targets);

  Log early(err, 0);
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return exit_code::kOk;
  } catch (const CLI::ParseError& e) {
    early.error(e.what());
    return exit_code::kUsage;
  }
  for (const auto& [name, option] : options)
    if (option->count() > 0) parsed.command_line[name] = storage[name];
  std::vector<std::string> unknown;
  for (const auto& extra : app.remaining())
    unknown.push_back(extra.size() > 1 && extra[0] == '-'
                          ? fmt::format("unknown flag {}", quoted_for_message(extra))
                          : fmt::format("unexpected argument {}", quoted_for_message(extra)));
  Log log(err, log_threshold(parsed.log_level));

  auto resolved = resolve_settings(parsed.command_line, context.environment);
  // Every fact that depends on the network namespace (addresses for IPv6 detection, the tables)
  // is read inside the target namespace: enter it before anything is asked.
  const std::string& netns = resolved["network-namespace"].value;
  if (unknown.empty() && !netns.empty()) {
    if (context.platform == nullptr) {
      log.error("--network-namespace needs the machine, and this run has none");
      return exit_code::kFailure;
    }
    auto entered = context.platform->enter_network_namespace(netns);
    if (!entered) {
      log.error(entered.error().message);
      log.line("nothing was changed");
      return named == Command::Check ? exit_code::kStateUnreadable : exit_code::kFailure;
    }
  }
  // cleanup depends on no interface address: it is not asked for one.
  const bool cleanup_named =
      named ? *named == Command::Cleanup : parse_go_bool(resolved["cleanup-only"].value).value_or(false);
  auto built = build_settings(resolved, context.environment, *context.facts, /*detect_ipv6=*/!cleanup_named);
  if (!unknown.empty()) {
    for (const auto& m : unknown) log.error(m);
    if (auto* problems = std::get_if<SettingsError>(&built))
      for (const auto& m : problems->messages) log.error(m);
    log.line("nothing was changed");
    return exit_code::kUsage;
  }
  if (auto* problems = std::get_if<SettingsError>(&built)) {
    for (const auto& m : problems->messages) log.error(m);
    if (problems->usage) log.line("nothing was changed");
    return problems->usage ? exit_code::kUsage : exit_code::kFailure;
  }
  const auto& settings = std::get<Settings>(built);
  for (const auto& w : settings.warnings) log.warn(w);
  const Command command = choose_command(named, settings.run, log);

  const bool explain_flags = !parsed.explain.flows.empty() || parsed.explain.installed || parsed.explain.json;
  if (explain_flags && command != Command::Explain) {
    log.error("--flow, --installed and --json only go with the explain command");
    log.line("nothing was changed");
    return exit_code::kUsage;
  }
  if (command == Command::Explain) {
    // Read-only like check: the installed rules are read through a platform that cannot write.
    std::optional<RecordingPlatform> recording;
    if (context.platform != nullptr) recording.emplace(*context.platform);
    return run_explain(parsed.explain, settings, recording ? &*recording : nullptr, out,
                       [&log](const std::string& m) { log.error(m); });
  }
  if (!settings.run.against.empty() && command != Command::Check) {
    log.error("--against only goes with the check command");
    log.line("nothing was changed");
    return exit_code::kUsage;
  }
  // The iptables plan, where the run uses it (not in native nftables mode, not for cleanup).
  const bool iptables_plan = !settings.run.native_nftables && command != Command::Cleanup;
  const Plan p = iptables_plan ? plan(settings.config) : Plan{};
  if (command == Command::Apply && settings.run.dry_run) {
    // The plan itself; no machine is asked.
    out << (settings.run.native_nftables ? nft_script(plan_nft(settings.config)) : dry_run_text(p));
    return exit_code::kOk;
  }
  if (settings.run.native_nftables && !settings.run.against.empty()) {
    log.error("--against compares iptables-restore text; it does not go with --native-nftables");
    log.line("nothing was changed");
    return exit_code::kUsage;
  }
  if (command == Command::Check && !settings.run.against.empty())
    return check_against_file(p, settings.run.against, *context.facts, out, log);
  // --skip-rule-apply: Istio programs nothing at all (the CNI validation container).
  const bool touches_tables = command == Command::Check || !settings.run.skip_rule_apply;
  if (touches_tables) {
    if (context.platform == nullptr) {
      log.error("this command needs the machine, and this run has none");
      return exit_code::kFailure;
    }
    // Read-only runs get a platform that cannot write, chosen here, once.
    const bool read_only = command == Command::Check || settings.run.dry_run;
    std::optional<RecordingPlatform> recording;
    if (read_only) recording.emplace(*context.platform);
    Platform& machine = read_only ? static_cast<Platform&>(*recording) : *context.platform;
    int code = run_on_machine(command, settings, p, machine, out, log);
    if (recording) {
      if (command == Command::Check && !recording->recording().empty()) {
        log.error("internal error: check asked to change the tables; nothing was changed");
        return exit_code::kFailure;
      }
      if (command == Command::Cleanup && code == exit_code::kOk) out << recording_text(recording->recording());
    }
    if (code != exit_code::kOk) return code;
  }
  if (command == Command::Apply && settings.run.run_validation) {
    if (context.platform == nullptr) {
      log.error("--run-validation needs the machine, and this run has none");
      return exit_code::kFailure;
    }
    return validate(settings, *context.platform, log);
  }
  return exit_code::kOk;
}

}  // namespace istio_iptables
