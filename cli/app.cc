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

#include <algorithm>
#include <ctime>
#include <deque>
#include <iterator>

#include <fmt/format.h>

#include "build_info.h"
#include "core/apply.h"
#include "core/istio_state.h"
#include "core/flags.h"
#include "core/istio_dump.h"
#include "backend_request.h"
#include "explain.h"
#include "istio_log.h"
#include "core/message.h"
#include "core/number.h"
#include "core/nft_apply.h"
#include "core/nft_planner.h"
#include "core/nft_script.h"
#include "core/planner.h"
#include "core/restore_text.h"
#include "core/rule_text.h"
#include "system/dry_run_file.h"
#include "system/recording_platform.h"

namespace istio_iptables {
namespace {

// pilot-agent's logging flags (root flags in Istio: they may come before or after the
// `istio-iptables` word), then the flags that are ours only.
struct ExtraFlag {
  const char* name;
  const char* shorthand;
  FlagType type;
  const char* type_name;
  const char* default_text;
  const char* usage;
};
const ExtraFlag kGlobalFlags[] = {
    {"log_as_json", "", FlagType::Bool, "", "", "Whether to format output as JSON or in plain console-friendly format"},
    {"log_caller", "", FlagType::String, "string", "",
     "Comma-separated list of scopes for which to include caller information"},
    {"log_output_level", "", FlagType::String, "string", "",
     "Comma-separated minimum per-scope logging level of messages to output, in the form of "
     "<scope>:<level>,<scope>:<level>,... where level can be one of [debug, info, warn, error, fatal, none]"},
    {"log_rotate", "", FlagType::String, "string", "", "Istio 1.22/1.23 only: the path of a rotating log file"},
    {"log_rotate_max_age", "", FlagType::Int32, "int", "30", "Istio 1.22/1.23 only"},
    {"log_rotate_max_backups", "", FlagType::Int32, "int", "1000", "Istio 1.22/1.23 only"},
    {"log_rotate_max_size", "", FlagType::Int32, "int", "104857600", "Istio 1.22/1.23 only"},
    {"log_stacktrace_level", "", FlagType::String, "string", "\"default:none\"",
     "Comma-separated minimum per-scope logging level at which stack traces are captured"},
    {"log_target", "", FlagType::StringArray, "stringArray", "[stdout]",
     "The set of paths where to output the log. This can be any path as well as the special values stdout and "
     "stderr"},
    {"vklog", "", FlagType::Int32, "Level", "", "number for the log level verbosity. Like -v flag. ex: --vklog=9"},
};
const ExtraFlag kOurFlags[] = {
    {"flow", "", FlagType::StringArray, "stringArray", "",
     "explain: a packet, e.g. 'out tcp 10.0.0.1 -> 192.0.2.1:80 uid 0' (repeatable)"},
    {"installed", "", FlagType::Bool, "", "", "explain: use the rules installed in the namespace, not the plan"},
    {"json", "", FlagType::Bool, "", "", "explain: one JSON object per flow per line"},
    {"version", "", FlagType::Bool, "", "", "print the version and exit"},
};
// Settings that are ours, not Istio's (listed apart in --help, so Istio's block stays Istio's).
const char* const kOurSettings[] = {"compat", "ipv6", "dns-servers", "resolv-conf", "backend", "wait", "against"};

FlagType flag_type(const SettingSpec& spec) {
  if (spec.kind == SettingKind::Bool) return FlagType::Bool;
  const std::string_view name = spec.name;
  if (name == "iptables-probe-port") return FlagType::Uint16;
  if (name == "probe-timeout") return FlagType::Duration;
  return FlagType::String;
}

bool is_our_setting(std::string_view name) {
  return std::any_of(std::begin(kOurSettings), std::end(kOurSettings), [&](const char* n) { return name == n; });
}

// The flag tables, built once per run from setting_specs() and the lists above. FlagSpec holds
// views: the default texts pflag prints live in `texts`.
struct FlagTables {
  std::deque<std::string> texts;
  std::vector<FlagSpec> istio;   ///< istio-iptables' own flags, help included
  std::vector<FlagSpec> global;  ///< pilot-agent's logging flags
  std::vector<FlagSpec> ours;    ///< flags Istio does not have
  std::vector<FlagSpec> all;
};

FlagTables flag_tables() {
  FlagTables t;
  for (const auto& spec : setting_specs()) {
    const FlagType type = flag_type(spec);
    std::string_view default_text;
    if (type != FlagType::Bool && *spec.default_value != '\0')
      default_text = t.texts.emplace_back(type == FlagType::String ? fmt::format("\"{}\"", spec.default_value)
                                                                   : std::string(spec.default_value));
    const char* type_name = type == FlagType::Bool       ? ""
                            : type == FlagType::Uint16   ? "uint16"
                            : type == FlagType::Duration ? "duration"
                                                         : "string";
    FlagSpec f{spec.name, spec.short_name, type, type_name, default_text, spec.help};
    (is_our_setting(spec.name) ? t.ours : t.istio).push_back(f);
  }
  t.istio.push_back(FlagSpec{"help", "h", FlagType::Bool, "", "", "help for istio-iptables"});
  for (const auto& g : kGlobalFlags)
    t.global.push_back(FlagSpec{g.name, g.shorthand, g.type, g.type_name, g.default_text, g.usage});
  for (const auto& o : kOurFlags)
    t.ours.push_back(FlagSpec{o.name, o.shorthand, o.type, o.type_name, o.default_text, o.usage});
  for (const auto* part : {&t.istio, &t.global, &t.ours}) t.all.insert(t.all.end(), part->begin(), part->end());
  return t;
}

// The environment variable (and alias) of each flag that has one, a line each.
std::string environment_bindings() {
  std::string out;
  for (const auto& spec : setting_specs())
    if (*spec.env != '\0')
      out += fmt::format("  --{:<36} {}{}\n", spec.name, spec.env,
                         *spec.env_alias != '\0' ? fmt::format(", {}", spec.env_alias) : "");
  return out;
}

// cobra's help layout (Long text, usage, the flag blocks), and our own flags and commands after it.
// The Flags block is that of the --compat release: flags it does not have are not listed.
std::string help_text(const FlagTables& t, int minor) {
  std::vector<FlagSpec> istio;
  for (const auto& f : t.istio) {
    bool known = true;
    for (const auto& spec : setting_specs())
      if (f.name == spec.name)
        known = (spec.last_minor == 0 || static_cast<unsigned>(minor) <= spec.last_minor) &&
                (spec.first_minor == 0 || static_cast<unsigned>(minor) >= spec.first_minor);
    if (known) istio.push_back(f);
  }
  auto block = [](const std::vector<FlagSpec>& specs) {
    std::string b = flag_usages(specs);
    if (!b.empty() && b.back() == '\n') b.pop_back();
    return b;
  };
  return fmt::format(
      "istio-iptables is responsible for setting up port forwarding for Istio Sidecar.\n\n"
      "Usage:\n  pilot-agent istio-iptables [flags]\n  istio-iptables [apply|check|cleanup|explain] [flags]\n\n"
      "Flags:\n{}\n\nGlobal Flags:\n{}\n\nFlags of this implementation (not Istio's):\n{}\n\n"
      "Commands (not Istio's; the default is apply):\n"
      "  apply     make the namespace hold the rules (Istio's istio-iptables)\n"
      "  check     compare the installed rules with the plan; never writes\n"
      "  cleanup   remove every rule, chain and route of ours (Istio's --cleanup-only, istio-clean-iptables)\n"
      "  explain   where given packets go, and which rules sent them there\n\n"
      "Environment (as Istio binds it: the flag wins, then the second variable, then the first):\n{}",
      block(istio), block(t.global), block(t.ours), environment_bindings());
}

// What the command line asked for, before the environment is consulted.
struct Invocation {
  std::optional<Command> named;
  std::map<std::string, std::string> command_line;             // setting name -> the last value given
  std::vector<std::pair<std::string, std::string>> log_flags;  // pilot-agent's logging flags, in order
  ExplainRequest explain;
  bool help = false;
  bool version = false;
  std::vector<std::string> ignored;  // positional words, ignored as Istio ignores them
};

bool is_setting(std::string_view name) {
  const auto& specs = setting_specs();
  return std::any_of(specs.begin(), specs.end(), [&](const SettingSpec& s) { return name == s.name; });
}

// The words, as pflag and cobra read them: one flag table for every word (flags may come before
// or after the `istio-iptables` word, as cobra allows), then the positional words: Istio's
// subcommand names, then our command word, then anything else (ignored, with a warning).
// `program` is argv[0]'s last component: invoked as istio-clean-iptables, the command is cleanup.
Result<Invocation> read_command_line(const std::vector<std::string>& args, const std::string& program,
                                     const FlagTables& tables) {
  auto parsed = parse_args(args, tables.all);
  if (!parsed) return parsed.error();
  Invocation inv;
  if (program == "istio-clean-iptables") inv.named = Command::Cleanup;
  std::size_t next = 0;
  const auto& words = parsed.value().positionals;
  if (next < words.size() && (words[next] == "istio-iptables" || words[next] == "istio-clean-iptables")) {
    if (words[next] == "istio-clean-iptables") inv.named = Command::Cleanup;
    ++next;
  }
  auto command_word = [](const std::string& w) -> std::optional<Command> {
    for (Command c : {Command::Apply, Command::Check, Command::Cleanup, Command::Explain})
      if (w == command_name(c)) return c;
    return std::nullopt;
  };
  if (next < words.size() && words[next] == "help") {
    inv.help = true;
    return inv;
  }
  if (next < words.size() && command_word(words[next]) && !inv.named) inv.named = command_word(words[next++]);
  for (; next < words.size(); ++next) {
    if (command_word(words[next]))
      return Error{
          fmt::format("the command word {} must come before every other word", quoted_for_message(words[next]))};
    inv.ignored.push_back(words[next]);
  }
  for (const auto& v : parsed.value().values) {
    if (is_setting(v.name))
      inv.command_line[std::string(v.name)] = v.value;
    else if (is_log_flag(v.name, 22))  // every release's logging flags; the release is checked later
      inv.log_flags.emplace_back(std::string(v.name), v.value);
    else if (v.name == "flow")
      inv.explain.flows.push_back(v.value);
    else if (v.name == "installed")
      inv.explain.installed = v.value == "true";
    else if (v.name == "json")
      inv.explain.json = v.value == "true";
    else if (v.name == "version")
      inv.version = v.value == "true";
  }
  inv.help = inv.help || parsed.value().help;
  return inv;
}

// The run's log: Istio's records (cli/istio_log.h) at Istio's levels. Lines of ours (the
// backend chosen, what was committed) are info records in the same format.
class Log {
 public:
  explicit Log(IstioLog& log) : log_(log) {}
  void debug(const std::string& message) { log_.debug(message); }
  void info(const std::string& message) { log_.info(message); }
  void warn(const std::string& message) { log_.warn(message); }
  void error(const std::string& message) { log_.error(message); }
  /// A closing remark ("nothing was changed").
  void line(const std::string& text) { log_.info(text); }

 private:
  IstioLog& log_;
};

// The release --compat names, as a minor number (kCurrentReleaseMinor for "current" and for
// anything the settings will refuse anyway): the logging flags and texts depend on it.
int release_minor(const std::map<std::string, std::string>& command_line) {
  auto it = command_line.find("compat");
  if (it == command_line.end() || it->second.rfind("1.", 0) != 0) return kCurrentReleaseMinor;
  const std::string rest = it->second.substr(2);
  auto minor = parse_unsigned(rest.substr(0, rest.find('.')), 998, NumberSyntax::Decimal);
  return minor ? static_cast<int>(*minor) : kCurrentReleaseMinor;
}

// Compares the plan with a stored iptables-restore text (a golden file), without the kernel.
int check_against_file(const Plan& p, const std::string& path, MachineFacts& facts, LogSink& out, Log& log) {
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

Status lock_for_writing(IptablesSession& session, const RunOptions& run, Platform& platform) {
  if (!session.opened.needs_xtables_lock) return ok_status();
  auto l = platform.lock(run.wait_seconds, run.lock_file);
  if (!l) return Error{l.error().message + "; nothing was changed"};
  session.lock = std::move(l).value();
  return ok_status();
}

Result<IptablesSession> open_iptables(const RunOptions& run, Platform& platform, bool writes, Log& log) {
  auto opened = platform.open_store(backend_request(run));
  if (!opened) return Error{opened.error().message};
  log.info("backend: " + opened.value().description);
  IptablesSession session{std::move(opened).value(), {}};
  if (writes) {
    auto locked = lock_for_writing(session, run, platform);
    if (!locked) return Error{locked.error().message};
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
// Both variants of iptables are looked at: an earlier run may have chosen the other one (a
// forced binary, or legacy rules that came or went), and ours are removed wherever they are.
// A native apply that committed on a view of nf_tables without any ip or ip6 table knows that no
// iptables-nft rule of ours existed when its transaction took effect, and looks at legacy only.
Status remove_iptables_rules_in(const RunOptions& run, Platform& platform, Log& log, bool look_at_nft) {
  for (const char* variant : {"legacy", "nft"}) {
    if (!look_at_nft && std::string_view(variant) == "nft") continue;
    RunOptions each = run;
    each.force_iptables_binary = variant;
    if (each.backend == "libiptc" && std::string_view(variant) == "nft") each.backend = "auto";
    // Where the variant holds no table at all there is nothing of ours to remove, and nothing
    // to lock for.
    auto session = open_iptables(each, platform, false, log);
    if (!session) return Error{session.error().message};
    auto any = holds_any_table(*session.value().opened.store);
    if (!any) return Error{any.error().message};
    if (!any.value()) {
      log_outcome(log, run.dry_run, "", {}, fmt::format("no iptables tables ({})", variant).c_str());
      continue;
    }
    auto locked = lock_for_writing(session.value(), each, platform);
    if (!locked) return Error{locked.error().message};
    auto removed = cleanup(*session.value().opened.store);
    if (!removed) return Error{removed.error().message};
    log_outcome(log, run.dry_run, fmt::format("removed our iptables rules ({})", variant).c_str(),
                removed.value().committed, fmt::format("no iptables rules of ours ({})", variant).c_str());
  }
  return ok_status();
}

Status remove_iptables_rules(const RunOptions& run, Platform& platform, Log& log) {
  return remove_iptables_rules_in(run, platform, log, true);
}

Status remove_nft_tables(const RunOptions& run, Platform& platform, Log& log) {
  auto store = platform.open_nft_store();
  if (!store) return Error{store.error().message};
  auto removed = nft::cleanup_nft(*store.value());
  if (!removed) return Error{removed.error().message};
  log_outcome(log, run.dry_run, "removed our nftables tables", removed.value().deleted, "no nftables tables of ours");
  return ok_status();
}

int check_iptables(const Settings& settings, const Plan& p, Platform& platform, LogSink& out, Log& log) {
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

int check_nft_tables(const Settings& settings, Platform& platform, LogSink& out, Log& log) {
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

// Istio's verdict on the state it finds (1.24 and later), for its records: `true` when Istio
// would see drift (and apply). We act the same either way; `ours_on_drift` says what we do.
Result<bool> log_state_verdict(NetfilterStore& store, const Plan& p, const Settings& settings,
                               const char* ours_on_drift, Log& log) {
  const Layout layout = settings.config.layout;
  if (layout != Layout::Current && layout != Layout::V1_24) return true;
  auto verdict = istio_state_verdict(store, p, read_family_states(store));
  if (!verdict) return Error{verdict.error().message};
  const bool current = layout == Layout::Current;
  if (current)
    for (Family f : verdict.value().ignored)
      log.info(std::string("Ignoring residues because no rules are planned for ") + family_name(f));
  switch (verdict.value().verdict) {
  case StateVerdict::Clean:
    if (current) log.info(istio_message::kCleanState);
    break;
  case StateVerdict::ResiduesDrift:
    if (current) {
      log.info(istio_message::kResiduesDrift);
      if (!settings.run.reconcile) log.info(istio_message::kNoReconcile);
    } else {
      log.warn(istio_message_1_24::kResiduesDrift);
      if (!settings.run.reconcile) log.warn(istio_message_1_24::kNoReconcile);
    }
    log.info(ours_on_drift);
    break;
  case StateVerdict::ResiduesCompatible:
    if (current)
      log.info(istio_message::kResiduesCompatible);
    else
      log.warn(istio_message::kResiduesCompatible);
    break;
  }
  return verdict.value().drift;
}

// `Final iptables state (IPv4):` and the listing (and IPv6 when it is on), as Istio logs
// iptables-save's output; a family whose tables cannot be read is left out, as Istio leaves out
// a save that failed.
void log_final_state(IptablesSession& session, bool ipv6, Log& log) {
  NetfilterStore& store = *session.opened.store;
  const std::string& how = session.opened.description;
  const bool legacy = how.rfind("libiptc", 0) == 0 || how.rfind("iptables-legacy", 0) == 0;
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  const std::string date =
      ctime_text(local.tm_year + 1900, local.tm_mon + 1, local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec);
  for (const auto& state : read_family_states(store)) {
    if (state.family == Family::V6 && !ipv6) continue;
    if (!state.read_ok) continue;
    SaveListing listing;
    listing.variant = legacy ? SaveVariant::Legacy : SaveVariant::Nft;
    listing.program = legacy ? (state.family == Family::V4 ? "iptables-save" : "ip6tables-save")
                             : (state.family == Family::V4 ? "iptables-nft-save" : "ip6tables-nft-save");
    for (const auto& t : state.tables) listing.tables.push_back(saved_table(t, state.family));
    log.info(final_state_message(state.family, save_text(listing, date)));
  }
}

// What applying the mode's own rules learnt about the other mode's.
struct AppliedRules {
  bool iptables_nft_may_hold_ours = true;  ///< false: nf_tables had no ip or ip6 table at our commit
};

// The mode's own rules: iptables through the chosen backend, or nftables in one transaction.
Result<AppliedRules> apply_rules(const Settings& settings, const Plan& p, Platform& platform, Log& log) {
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
    return AppliedRules{applied.value().xtables_tables.value_or(true)};
  }
  auto session = open_iptables(run, platform, true, log);
  if (!session) return Error{session.error().message};
  NetfilterStore& store = *session.value().opened.store;
  const Layout layout = settings.config.layout;
  auto verdict = log_state_verdict(store, p, settings,
                                   "ours: our rules of the earlier run are replaced in place, table by table, without "
                                   "guardrails (each table changes in one commit)",
                                   log);
  if (!verdict) return Error{verdict.error().message};
  const bool drift = verdict.value();
  // Istio's records for the restore it runs (when it runs one); ours names the mechanism that
  // commits instead.
  if (drift || run.force_apply) {
    log.info(istio_message::kApplying);
    const std::string& how = session.value().opened.description;
    const std::string mechanism = how.rfind("restore", 0) == 0   ? "iptables-restore"
                                  : how.rfind("libiptc", 0) == 0 ? "iptables-legacy (in-process libiptc commit)"
                                                                 : "iptables-nft (in-process nf_tables transaction)";
    log.info(restore_message(mechanism, restore_text(p.v4)));
    if (p.v6 || layout != Layout::Current) log.info(restore_message(mechanism, p.v6 ? restore_text(*p.v6) : ""));
  }
  auto applied = apply_plan(store, p);
  // A refused commit: Istio's record of a failed iptables-restore, with our cause.
  if (!applied) log.error("Command error: " + applied.error().message);
  // Istio's last record, also after a failed apply: the state as iptables-save lists it (1.25
  // and later), read in-process.
  if (layout == Layout::Current) log_final_state(session.value(), settings.config.enable_ipv6, log);
  if (!applied) return Error{applied.error().message};
  log_outcome(log, run.dry_run, "applied", applied.value().committed, "the tables already hold the plan");
  return AppliedRules{};
}

// Apply, cleanup or check against the kernel, through `platform` (the real one, or the
// recording one for read-only runs). The namespace was entered before the settings were built.
int run_on_machine(Command command, const Settings& settings, const Plan& p, Platform& platform, LogSink& out,
                   Log& log) {
  const RunOptions& run = settings.run;
  switch (command) {
  case Command::Explain: return exit_code::kFailure;  // handled before the machine is asked
  case Command::Check:
    return run.native_nftables ? check_nft_tables(settings, platform, out, log)
                               : check_iptables(settings, p, platform, out, log);
  case Command::Cleanup: {
    // Istio's --cleanup-only records (iptables mode): its verdict on the state against the plan
    // of these flags, `Performing cleanup of existing iptables`, then (below) the final state,
    // read through the variant an apply would use.
    std::optional<IptablesSession> listing;
    if (!run.native_nftables && settings.config.layout != Layout::V1_22 && settings.config.layout != Layout::V1_23) {
      auto session = open_iptables(run, platform, false, log);
      if (!session) {
        log.error(session.error().message);
        return exit_code::kFailure;
      }
      auto verdict = log_state_verdict(*session.value().opened.store, p, settings,
                                       "ours: every rule and chain of ours is removed, of any configuration", log);
      if (!verdict) {
        log.error(verdict.error().message);
        return exit_code::kFailure;
      }
      log.info(istio_message::kCleanup);
      listing.emplace(std::move(session).value());
    }
    // Every rule of ours, of either mode, then the routes.
    for (auto* remove : {&remove_iptables_rules, &remove_nft_tables}) {
      auto removed = (*remove)(run, platform, log);
      if (!removed) {
        log.error(removed.error().message);
        return exit_code::kFailure;
      }
    }
    if (listing && settings.config.layout == Layout::Current)
      log_final_state(*listing, settings.config.enable_ipv6, log);
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
    auto other = run.native_nftables
                     ? remove_iptables_rules_in(run, platform, log, applied.value().iptables_nft_may_hold_ours)
                     : remove_nft_tables(run, platform, log);
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
  auto r = platform.validate(request, [&log](bool error, const std::string& message) {
    if (error)
      log.error(message);
    else
      log.info(message);
  });
  if (!r) {
    // On a timeout Istio says only this (its cause, "validation timeout", is not printed); ours
    // says what was waited for, in the record before it.
    if (r.error().message.rfind("validation timeout", 0) == 0) log.info("ours: " + r.error().message);
    log.error("iptables validation failed; workload is not ready for Istio.\n"
              "When using Istio CNI, this can occur if a pod is scheduled before the node is ready.\n\n"
              "If installed with 'cni.repair.deletePods=true', this pod should automatically be deleted "
              "and retry.\nOtherwise, this pod will need to be manually removed so that it is scheduled on "
              "a node with istio-cni running, allowing iptables rules to be established.\n");
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

int run_cli(const std::vector<std::string>& args, CliContext& context, LogSink& out, LogSink& err) {
  const FlagTables tables = flag_tables();
  // The log's sinks are shared; these two are the caller's, which outlive the run: shared
  // pointers that own nothing (the aliasing constructor over an empty owner).
  const std::shared_ptr<LogSink> out_sink(std::shared_ptr<LogSink>(), &out);
  const std::shared_ptr<LogSink> err_sink(std::shared_ptr<LogSink>(), &err);
  // Records before the logging flags are read go where Istio's go: stdout, console format.
  IstioLog early(LogOptions{}, {out_sink});
  auto read = read_command_line(args, context.program_name, tables);
  if (!read) {
    // cobra's form: "Error: <pflag's message>" (Istio exits 255; we keep 2 for bad input). pflag
    // echoes a flag's name as given: one carrying control bytes is quoted whole instead.
    const std::string& message = read.error().message;
    const bool plain = std::all_of(message.begin(), message.end(), [](char c) {
      return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
    });
    const std::string shown = plain ? message : quoted_for_message(message, 400);
    err_sink->write("Error: " + shown + "\n");
    early.error(shown);
    return exit_code::kUsage;
  }
  Invocation& parsed = read.value();
  if (parsed.help) {
    out << help_text(tables, release_minor(parsed.command_line));
    return exit_code::kOk;
  }
  if (parsed.version) {
    out << fmt::format("istio-iptables {} (revision {})\nrule layouts of Istio 1.22 and later (--compat), "
                       "iptables and native nftables\n",
                       build_info::kVersion, build_info::kRevision);
    return exit_code::kOk;
  }
  const std::optional<Command> named = parsed.named;
  auto resolved = resolve_settings(parsed.command_line, context.environment);
  // Records go to stdout as Istio's do, except where stdout carries a result: the rules of a dry
  // run (our CI contract), check's differences, explain's answers. Those runs log to stderr.
  const bool dry_run = parse_go_bool(resolved["dry-run"].value).value_or(false);
  const bool results_on_stdout = dry_run || named == Command::Check || named == Command::Explain;
  const int minor = release_minor(parsed.command_line);
  if (minor >= 24)
    for (const auto& [name, value] : parsed.log_flags)
      if (!is_log_flag(name, minor)) {
        err_sink->write("Error: unknown flag: --" + name + "\n");
        early.error("unknown flag: --" + name);
        return exit_code::kUsage;
      }
  auto configured = configure_istio_log(parsed.log_flags, minor, results_on_stdout ? err_sink : out_sink, err_sink);
  if (!configured) {
    err_sink->write("Error: " + configured.error().message + "\n");
    early.error(configured.error().message);
    return exit_code::kUsage;
  }
  IstioLog& istio_log = *configured.value();
  Log log(istio_log);
  for (const auto& word : parsed.ignored)
    log.warn(fmt::format("ignoring the positional argument {}, as Istio does", quoted_for_message(word)));

  // Every fact that depends on the network namespace (addresses for IPv6 detection, the tables)
  // is read inside the target namespace: enter it before anything is asked.
  const std::string& netns = resolved["network-namespace"].value;
  if (!netns.empty()) {
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
  // cleanup depends on no interface address: it is not asked for one. Whether CLEANUP_ONLY
  // chooses cleanup is the built settings' to say (releases before 1.24 have no such flag): a
  // guess that turns out wrong is built again with the detection.
  const bool cleanup_guess =
      named ? *named == Command::Cleanup : parse_go_bool(resolved["cleanup-only"].value).value_or(false);
  auto built = build_settings(resolved, context.environment, *context.facts, /*detect_ipv6=*/!cleanup_guess);
  if (auto* guessed = std::get_if<Settings>(&built); guessed && !named && cleanup_guess && !guessed->run.cleanup_only)
    built = build_settings(resolved, context.environment, *context.facts, /*detect_ipv6=*/true);
  if (auto* problems = std::get_if<SettingsError>(&built)) {
    for (const auto& m : problems->messages) log.error(m);
    if (problems->usage) log.line("nothing was changed");
    return problems->usage ? exit_code::kUsage : exit_code::kFailure;
  }
  const auto& settings = std::get<Settings>(built);
  const Command command = choose_command(named, settings.run, log);
  // Istio's opening records for the commands it has: apply and cleanup.
  if (command == Command::Apply || command == Command::Cleanup) {
    if (settings.run.dry_run) log.info(istio_message::kDryRun);
    log.info(environment_dump(context.environment));
    log.info(config_dump(settings, resolved, context.environment, minor));
  }
  for (const auto& w : settings.warnings) log.warn(w);

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
  // The iptables plan, where the run uses it (not in native nftables mode; cleanup compares the
  // state with it for Istio's records).
  const bool iptables_plan = !settings.run.native_nftables;
  const Plan p = iptables_plan ? plan(settings.config) : Plan{};
  if (command == Command::Apply && settings.run.dry_run) {
    // The plan itself; no machine is asked.
    out << (settings.run.native_nftables ? nft_script(plan_nft(settings.config)) : dry_run_text(p));
    if (!settings.run.native_nftables) {
      // What Istio logs in a dry run (its stub's empty listings, its plain binary names).
      if (minor >= 25) log.info(istio_message::kCleanState);
      log.info(istio_message::kApplying);
      log.info(restore_message("iptables-restore", restore_text(p.v4)));
      if (p.v6 || minor < 25) log.info(restore_message("ip6tables-restore", p.v6 ? restore_text(*p.v6) : ""));
      if (minor >= 25) {
        log.info(final_state_message(Family::V4, ""));
        if (p.v6) log.info(final_state_message(Family::V6, ""));
      }
      log.info(istio_message::kSkipRoutesDryRun);
    }
    // Istio's stub records what it would have run in DRY_RUN_FILE_PATH (iptables modes only).
    auto record_path = context.environment.find("DRY_RUN_FILE_PATH");
    if (record_path != context.environment.end() && !record_path->second.empty() && !settings.run.native_nftables) {
      if (!context.write_file_from_start) {
        log.error("DRY_RUN_FILE_PATH needs the machine, and this run has none");
        return exit_code::kFailure;
      }
      DryRunRecord record;
      record.initial_saves = settings.config.layout == Layout::Current || settings.config.layout == Layout::V1_24;
      record.restore_format = settings.run.restore_format;
      auto written = context.write_file_from_start(record_path->second, dry_run_file_text(p, record));
      if (!written) {
        log.error(written.error().message);
        return exit_code::kFailure;
      }
    }
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
