#include "app.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "core/planner.h"
#include "core/restore_text.h"

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
    if (*spec.env != '\0') help += fmt::format(" [env {}{}]", spec.env, *spec.env_alias ? fmt::format(", {}", spec.env_alias) : "");
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

}  // namespace

int run_cli(std::vector<std::string> args, CliContext& context, std::ostream& out, std::ostream& err) {
  // The injector runs `pilot-agent istio-iptables ...`; accept the subcommand name as a no-op.
  if (!args.empty() && args.front() == "istio-iptables") args.erase(args.begin());
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
  for (const auto& w : settings.warnings) err << "warn\t" << w << "\n";

  const Plan p = plan(settings.config);
  if (settings.run.dry_run) {
    out << dry_run_text(p);
    return exit_code::kOk;
  }
  if (settings.run.skip_rule_apply) return exit_code::kOk;
  err << "error: applying rules is not implemented yet; use --dry-run to print them\n";
  return exit_code::kFailure;
}

}  // namespace istio_iptables
