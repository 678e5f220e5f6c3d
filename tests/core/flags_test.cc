// The command line as pflag v1.0.10 and cobra v1.10.2 parse it for `pilot-agent istio-iptables`.
//
// Every expected value is quoted from ../shared/docs/istio-operator-behaviour.md §2 (observed on
// Istio's own binary by the spec's harness), unless a comment names another source: a few cases
// come from reading pflag's and encoding/csv's source where the spec is silent.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "core/flags.h"
#include "istio_help_block.h"

using namespace istio_iptables;

namespace {

// istio-iptables' own flags in the order HEAD's root.go declares them (§2.2's table), plus the help
// flag cobra adds; the usage texts and defaults are the spec's help text (§2.1 "Help").
const std::vector<FlagSpec>& local_flags() {
  static const std::vector<FlagSpec> specs = {
      {"envoy-port", "p", FlagType::String, "string", "\"15001\"",
       "Specify the envoy port to which redirect all TCP traffic."},
      {"inbound-capture-port", "z", FlagType::String, "string", "\"15006\"",
       "Port to which all inbound TCP traffic to the pod/VM should be redirected to."},
      {"inbound-tunnel-port", "e", FlagType::String, "string", "\"15008\"",
       "Specify the istio tunnel port for inbound tcp traffic."},
      {"proxy-uid", "u", FlagType::String, "string", "",
       "Specify the UID of the user for which the redirection is not applied. Typically, this is the UID of the proxy "
       "container."},
      {"proxy-gid", "g", FlagType::String, "string", "",
       "Specify the GID of the user for which the redirection is not applied (same default value as -u param)."},
      {"istio-inbound-interception-mode", "m", FlagType::String, "string", "",
       "The mode used to redirect inbound connections to Envoy, either \"REDIRECT\" or \"TPROXY\"."},
      {"istio-inbound-ports", "b", FlagType::String, "string", "",
       "Comma separated list of inbound ports for which traffic is to be redirected to Envoy (optional). The wildcard "
       "character \"*\" can be used to configure redirection for all ports. An empty list will disable."},
      {"istio-local-exclude-ports", "d", FlagType::String, "string", "",
       "Comma separated list of inbound ports to be excluded from redirection to Envoy (optional). Only applies when "
       "all inbound traffic (i.e. \"*\") is being redirected."},
      {"istio-exclude-interfaces", "c", FlagType::String, "string", "",
       "Comma separated list of NIC (optional). Neither inbound nor outbound traffic will be captured."},
      {"istio-service-cidr", "i", FlagType::String, "string", "",
       "Comma separated list of IP ranges in CIDR form to redirect to envoy (optional). The wildcard character \"*\" "
       "can be used to redirect all outbound traffic. An empty list will disable all outbound."},
      {"istio-service-exclude-cidr", "x", FlagType::String, "string", "",
       "Comma separated list of IP ranges in CIDR form to be excluded from redirection. Only applies when all  "
       "outbound traffic (i.e. \"*\") is being redirected."},
      {"istio-outbound-ports", "q", FlagType::String, "string", "",
       "Comma separated list of outbound ports to be explicitly included for redirection to Envoy."},
      {"istio-local-outbound-ports-exclude", "o", FlagType::String, "string", "",
       "Comma separated list of outbound ports to be excluded from redirection to Envoy."},
      {"kube-virt-interfaces", "k", FlagType::String, "string", "",
       "Comma separated list of virtual interfaces whose inbound traffic (from VM) will be treated as outbound."},
      {"istio-inbound-tproxy-mark", "t", FlagType::String, "string", "\"1337\"", ""},
      {"istio-inbound-tproxy-route-table", "r", FlagType::String, "string", "\"133\"", ""},
      {"dry-run", "n", FlagType::Bool, "", "", "Do not call any external dependencies like iptables."},
      {"iptables-probe-port", "", FlagType::Uint16, "uint16", "15002", "Set listen port for failure detection."},
      {"probe-timeout", "", FlagType::Duration, "duration", "5s", "Failure detection timeout."},
      {"skip-rule-apply", "", FlagType::Bool, "", "", "Skip iptables apply."},
      {"run-validation", "", FlagType::Bool, "", "", "Validate iptables."},
      {"redirect-dns", "", FlagType::Bool, "", "", "Enable capture of dns traffic by istio-agent."},
      {"drop-invalid", "", FlagType::Bool, "", "", "Enable invalid drop in the iptables rules."},
      {"dual-stack", "", FlagType::Bool, "", "", "Enable ipv4/ipv6 redirects for dual-stack."},
      {"capture-all-dns", "", FlagType::Bool, "", "",
       "Instead of only capturing DNS traffic to DNS server IP, capture all DNS traffic at port 53. This setting is "
       "only effective when redirect dns is enabled."},
      {"network-namespace", "", FlagType::String, "string", "",
       "The network namespace that iptables rules should be applied to."},
      {"cni-mode", "", FlagType::Bool, "", "", "Whether to run as CNI plugin."},
      {"reconcile", "", FlagType::Bool, "", "",
       "Reconcile pre-existing and incompatible iptables rules instead of failing if drift is detected."},
      {"cleanup-only", "", FlagType::Bool, "", "",
       "Perform a forced cleanup without creating new iptables chains or rules."},
      {"force-apply", "", FlagType::Bool, "", "", "Apply iptables changes even if they appear to already be in place."},
      {"native-nftables", "", FlagType::Bool, "", "", "Use native nftables instead of iptables rules."},
      {"force-iptables-binary", "", FlagType::String, "string", "",
       "Break glass option to choose which iptables binary to use."},
      {"help", "h", FlagType::Bool, "", "", "help for istio-iptables"},
  };
  return specs;
}

// pilot-agent's persistent (root) flags, the "Global Flags:" block of §2.1 "Help".
const std::vector<FlagSpec>& global_flags() {
  static const std::vector<FlagSpec> specs = {
      {"log_as_json", "", FlagType::Bool, "", "",
       "Whether to format output as JSON or in plain console-friendly format"},
      {"log_caller", "", FlagType::String, "string", "",
       "Comma-separated list of scopes for which to include caller information, scopes can be any of [<sorted scopes "
       "incl. all>]"},
      {"log_output_level", "", FlagType::String, "string", "",
       "Comma-separated minimum per-scope logging level of messages to output, in the form of "
       "<scope>:<level>,<scope>:<level>,... where scope can be one of [<sorted scopes incl. all>] and level can be one "
       "of [debug, info, warn, error, fatal, none]"},
      {"log_stacktrace_level", "", FlagType::String, "string", "\"default:none\"",
       "Comma-separated minimum per-scope logging level at which stack traces are captured, in the form of "
       "<scope>:<level>,<scope:level>,... where scope can be one of [<sorted scopes incl. all>] and level can be one "
       "of [debug, info, warn, error, fatal, none]"},
      {"log_target", "", FlagType::StringArray, "stringArray", "[stdout]",
       "The set of paths where to output the log. This can be any path as well as the special values stdout and "
       "stderr"},
      {"vklog", "", FlagType::Int32, "Level", "", "number for the log level verbosity. Like -v flag. ex: --vklog=9"},
  };
  return specs;
}

// What cobra parses after the `istio-iptables` word: its own flags and the inherited ones.
const std::vector<FlagSpec>& subcommand_flags() {
  static const std::vector<FlagSpec> specs = [] {
    std::vector<FlagSpec> all = local_flags();
    all.insert(all.end(), global_flags().begin(), global_flags().end());
    return all;
  }();
  return specs;
}

ParsedArgs parsed(const std::vector<std::string>& args) {
  auto result = parse_args(args, subcommand_flags());
  if (!result) FAIL("refused: " << result.error().message);
  return std::move(result).value();
}

std::string refusal(const std::vector<std::string>& args) {
  auto result = parse_args(args, subcommand_flags());
  if (result) FAIL("accepted");
  return result.error().message;
}

// Every value given to `name`, in command-line order.
std::vector<std::string> values(const ParsedArgs& args, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& v : args.values)
    if (v.name == name) out.push_back(v.value);
  return out;
}

// The value a scalar flag ends up with: the last one given ("" when never given).
std::string last(const ParsedArgs& args, std::string_view name) {
  auto all = values(args, name);
  return all.empty() ? std::string() : all.back();
}

using Words = std::vector<std::string>;

}  // namespace

// §2.1 Syntax, "Long flags": `--envoy-port=15011` and `--envoy-port 15011` both work.
TEST_CASE("flags: a long flag takes its value after = or as the next word", "[flags]") {
  CHECK(last(parsed({"--envoy-port=15011"}), "envoy-port") == "15011");
  CHECK(last(parsed({"--envoy-port", "15011"}), "envoy-port") == "15011");
}

// §2.1: "Flag names are case-sensitive and not normalised: `--dry_run` is unknown, and the log
// flags use underscores." The unknown-flag text is §2.1 "Unknown flags after the subcommand name".
TEST_CASE("flags: long names are case-sensitive and not normalised", "[flags]") {
  CHECK(refusal({"--dry_run"}) == "unknown flag: --dry_run");
  CHECK(refusal({"--Dry-Run"}) == "unknown flag: --Dry-Run");
  CHECK(last(parsed({"--log_as_json"}), "log_as_json") == "true");
  CHECK(refusal({"--log-as-json"}) == "unknown flag: --log-as-json");
}

// §2.1 "Short flags": `-p 15011`, `-p=15011` and `-p15011` all set 15011.
TEST_CASE("flags: a shorthand takes its value as the next word, after = or glued to it", "[flags]") {
  CHECK(last(parsed({"-p", "15011"}), "envoy-port") == "15011");
  CHECK(last(parsed({"-p=15011"}), "envoy-port") == "15011");
  CHECK(last(parsed({"-p15011"}), "envoy-port") == "15011");
}

// §2.1: "Boolean shorthands can be combined: `-nz 9` means `--dry-run` plus `-z 9`."
TEST_CASE("flags: combined boolean shorthands are each set and the last one takes the next word", "[flags]") {
  const auto args = parsed({"-nz", "9"});
  CHECK(last(args, "dry-run") == "true");
  CHECK(last(args, "inbound-capture-port") == "9");
  CHECK(args.positionals.empty());
}

// §2.1 "Boolean flags": `--dry-run` (or `-n`) sets true; `--dry-run=false` (or `-n=false`) sets false.
TEST_CASE("flags: a boolean flag alone sets true and takes false only after =", "[flags]") {
  CHECK(last(parsed({"--dry-run"}), "dry-run") == "true");
  CHECK(last(parsed({"-n"}), "dry-run") == "true");
  CHECK(last(parsed({"--dry-run=false"}), "dry-run") == "false");
  CHECK(last(parsed({"-n=false"}), "dry-run") == "false");
}

// §2.1: "The value must parse with Go's `strconv.ParseBool`: `1 t T TRUE true True 0 f F FALSE false False`."
TEST_CASE("flags: every strconv.ParseBool spelling is a boolean value", "[flags]") {
  for (const char* text : {"1", "t", "T", "TRUE", "true", "True"}) {
    INFO(text);
    CHECK(last(parsed({std::string("--redirect-dns=") + text}), "redirect-dns") == "true");
  }
  for (const char* text : {"0", "f", "F", "FALSE", "false", "False"}) {
    INFO(text);
    CHECK(last(parsed({std::string("--redirect-dns=") + text}), "redirect-dns") == "false");
  }
}

// §2.1: "`--dry-run=maybe`, gives `invalid argument "maybe" for "-n, --dry-run" flag:
// strconv.ParseBool: parsing "maybe": invalid syntax`" (exit 255, §3).
TEST_CASE("flags: a boolean value that ParseBool refuses gives pflag's invalid argument text", "[flags]") {
  CHECK(refusal({"--dry-run=maybe"}) ==
        "invalid argument \"maybe\" for \"-n, --dry-run\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax");
  CHECK(refusal({"-n=maybe"}) ==
        "invalid argument \"maybe\" for \"-n, --dry-run\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax");
}

// §2.1: "`--dry-run false` sets dry-run=true, and `false` becomes a positional argument that is
// silently ignored. The same holds for `-n false` and `--log_as_json false`."
TEST_CASE("flags: a word after a boolean flag is a positional, not its value", "[flags]") {
  for (const Words& words : {Words{"--dry-run", "false"}, Words{"-n", "false"}}) {
    const auto args = parsed(words);
    CHECK(last(args, "dry-run") == "true");
    CHECK(args.positionals == Words{"false"});
  }
  const auto args = parsed({"--log_as_json", "false"});
  CHECK(last(args, "log_as_json") == "true");
  CHECK(args.positionals == Words{"false"});
}

// §2.1 "Non-boolean flag without a value": `--envoy-port` at the end of the line gives
// `flag needs an argument: --envoy-port`; `-p` gives `flag needs an argument: 'p' in -p`.
TEST_CASE("flags: a value flag at the end of the line needs an argument", "[flags]") {
  CHECK(refusal({"--envoy-port"}) == "flag needs an argument: --envoy-port");
  CHECK(refusal({"-p"}) == "flag needs an argument: 'p' in -p");
  CHECK(refusal({"-z", "1", "--envoy-port"}) == "flag needs an argument: --envoy-port");
}

// §2.1: "A flag followed by another flag consumes that token as its value: `-p -z` sets
// `ProxyPort="-z"`".
TEST_CASE("flags: a value flag takes the next word even when it looks like a flag", "[flags]") {
  const auto args = parsed({"-p", "-z"});
  CHECK(last(args, "envoy-port") == "-z");
  CHECK(values(args, "inbound-capture-port").empty());
  CHECK(last(parsed({"--envoy-port", "--dry-run"}), "envoy-port") == "--dry-run");
}

// §2.1 "Empty values are allowed": `-p ""` sets an empty string, and `-x ''` sets an empty
// exclude list. (`--name=` with nothing after = is pflag's '--flag=arg' with an empty arg.)
TEST_CASE("flags: an empty value is a value", "[flags]") {
  const auto args = parsed({"-p", "", "-x", ""});
  CHECK(values(args, "envoy-port") == Words{""});
  CHECK(values(args, "istio-service-exclude-cidr") == Words{""});
  CHECK(values(parsed({"--istio-service-cidr="}), "istio-service-cidr") == Words{""});
  CHECK(parsed({"-p", ""}).positionals.empty());
}

// §2.1 "uint16": `strconv.ParseUint(s, 0, 16)`: `0x10` is 16, and `010` is octal, 8.
TEST_CASE("flags: the uint16 probe port reads hexadecimal and octal as ParseUint with base 0 does", "[flags]") {
  CHECK(last(parsed({"--iptables-probe-port", "0x10"}), "iptables-probe-port") == "16");
  CHECK(last(parsed({"--iptables-probe-port=010"}), "iptables-probe-port") == "8");
  CHECK(last(parsed({"--iptables-probe-port", "15002"}), "iptables-probe-port") == "15002");
}

// §2.1: "`-1` and `70000` are errors: `invalid argument "70000" for "--iptables-probe-port" flag:
// strconv.ParseUint: parsing "70000": value out of range`."
TEST_CASE("flags: a probe port beyond uint16 or with a sign is refused with ParseUint's text", "[flags]") {
  CHECK(refusal({"--iptables-probe-port", "70000"}) ==
        "invalid argument \"70000\" for \"--iptables-probe-port\" flag: strconv.ParseUint: parsing \"70000\": "
        "value out of range");
  // The spec gives no text for -1; the part it fixes is the prefix.
  CHECK_THAT(refusal({"--iptables-probe-port=-1"}),
             Catch::StartsWith("invalid argument \"-1\" for \"--iptables-probe-port\" flag: strconv.ParseUint: "
                               "parsing \"-1\": "));
}

// §2.1 "Duration": Go duration syntax (`5s`, `1m30s`, `300ms`); "A bare number other than `0` is
// an error: `… time: missing unit in duration "10"`."
TEST_CASE("flags: the probe timeout takes Go durations and refuses a bare number", "[flags]") {
  for (const char* text : {"5s", "1m30s", "300ms", "0"}) {
    INFO(text);
    CHECK(last(parsed({"--probe-timeout", text}), "probe-timeout") == text);
  }
  CHECK_THAT(refusal({"--probe-timeout", "10"}), Catch::EndsWith("time: missing unit in duration \"10\""));
  CHECK_THAT(refusal({"--probe-timeout=10"}),
             Catch::StartsWith("invalid argument \"10\" for \"--probe-timeout\" flag: "));
}

// §2.1 "Repeated flags": "the last one wins for string, bool, uint16 and duration flags.
// `--log_target` (a stringArray) accumulates; its first use replaces the default `[stdout]`."
TEST_CASE("flags: repeated flags are all reported in order so the last wins and arrays accumulate", "[flags]") {
  const auto args = parsed({"-p", "1", "--envoy-port=2", "-n", "--dry-run=false", "--iptables-probe-port", "7",
                            "--iptables-probe-port=8", "--probe-timeout=1s", "--probe-timeout", "2s", "--log_target",
                            "stderr", "--log_target=/tmp/a.log"});
  CHECK(last(args, "envoy-port") == "2");
  CHECK(last(args, "dry-run") == "false");
  CHECK(last(args, "iptables-probe-port") == "8");
  CHECK(last(args, "probe-timeout") == "2s");
  CHECK(values(args, "log_target") == Words{"stderr", "/tmp/a.log"});
  CHECK(values(parsed({"-p", "1"}), "log_target").empty());  // no use: the caller keeps [stdout]
}

// §2.1 "Positional arguments are accepted and ignored ... Flags and positionals may be interleaved
// freely." Istio's VM script passes a positional `init` (issue 11).
TEST_CASE("flags: positionals interleaved with flags are reported in order", "[flags]") {
  const auto args = parsed({"init", "-p", "15001", "extra", "--dry-run", "last"});
  CHECK(args.positionals == Words{"init", "extra", "last"});
  CHECK(last(args, "envoy-port") == "15001");
  CHECK(last(args, "dry-run") == "true");
}

// §2.1: "`--` ends flag parsing. Everything after it is positional and ignored: `-- -p 5` leaves
// the port at its default. A lone `-` is also positional."
TEST_CASE("flags: -- ends the flags and a lone - is a positional", "[flags]") {
  const auto args = parsed({"--", "-p", "5"});
  CHECK(values(args, "envoy-port").empty());
  CHECK(args.positionals == Words{"-p", "5"});
  const auto dash = parsed({"-", "-p", "5"});
  CHECK(dash.positionals == Words{"-"});
  CHECK(last(dash, "envoy-port") == "5");
  CHECK(parsed({"-n", "--", "--", "x"}).positionals == Words{"--", "x"});
}

// §2.1 "Unknown flags after the subcommand name are errors ... `unknown flag: --foo` ... For an
// unknown shorthand, ... `unknown shorthand flag: 'y' in -y`. `--foo=bar` reports `unknown flag:
// --foo`." At 1.24 and later `--log_rotate=…` is such an unknown flag (§1, "--log_rotate").
TEST_CASE("flags: unknown long and short flags are refused with pflag's text", "[flags]") {
  CHECK(refusal({"--foo"}) == "unknown flag: --foo");
  CHECK(refusal({"--foo=bar"}) == "unknown flag: --foo");
  CHECK(refusal({"-y"}) == "unknown shorthand flag: 'y' in -y");
  CHECK(refusal({"--log_rotate=/tmp/x"}) == "unknown flag: --log_rotate");
  CHECK(refusal({"-p", "1", "--foo", "--dry-run=maybe"}) == "unknown flag: --foo");  // the first error wins
}

// §2.1 "Help": "`-h` or `--help` anywhere ... prints help on stdout and exits 0 without running
// anything. `--help=false` is ignored."
TEST_CASE("flags: -h and --help anywhere ask for help and --help=false does not", "[flags]") {
  CHECK(parsed({"-h"}).help);
  CHECK(parsed({"--help"}).help);
  CHECK(parsed({"-p", "1", "init", "--help"}).help);
  CHECK(parsed({"-nh"}).help);
  CHECK_FALSE(parsed({"--help=false"}).help);
  CHECK_FALSE(parsed({"-p", "1"}).help);
}

// §2.1 "Help": the `Flags:` block, "Flags are sorted by long name and columns are aligned by pflag"
// (the block is "exact for HEAD"). cobra's template trims the final newline that FlagUsages ends with.
TEST_CASE("flags: the usage of istio-iptables' flags is the spec's Flags block", "[flags]") {
  const std::string expected = testing::kIstioFlagsBlock;
  CHECK(flag_usages(local_flags()) == expected + "\n");
}

// §2.1 "Help": the `Global Flags:` block (scope lists as the spec writes them), aligned on its own.
TEST_CASE("flags: the usage of pilot-agent's global flags is the spec's Global Flags block", "[flags]") {
  const std::string expected =
      R"usage(      --log_as_json                   Whether to format output as JSON or in plain console-friendly format
      --log_caller string             Comma-separated list of scopes for which to include caller information, scopes can be any of [<sorted scopes incl. all>]
      --log_output_level string       Comma-separated minimum per-scope logging level of messages to output, in the form of <scope>:<level>,<scope>:<level>,... where scope can be one of [<sorted scopes incl. all>] and level can be one of [debug, info, warn, error, fatal, none]
      --log_stacktrace_level string   Comma-separated minimum per-scope logging level at which stack traces are captured, in the form of <scope>:<level>,<scope:level>,... where scope can be one of [<sorted scopes incl. all>] and level can be one of [debug, info, warn, error, fatal, none] (default "default:none")
      --log_target stringArray        The set of paths where to output the log. This can be any path as well as the special values stdout and stderr (default [stdout])
      --vklog Level                   number for the log level verbosity. Like -v flag. ex: --vklog=9)usage";
  CHECK(flag_usages(global_flags()) == expected + "\n");
}

// §2.1 "Flags before the subcommand": flags known to the root command may precede
// `istio-iptables`: `pilot-agent --log_output_level=debug istio-iptables -p 1`.
TEST_CASE("flags: cobra finds the subcommand after root flags", "[flags]") {
  const std::vector<std::string_view> commands = {"istio-iptables", "help", "completion"};
  const Words words = {"--log_output_level=debug", "istio-iptables", "-p", "1"};
  const auto found = locate_subcommand(words, global_flags(), commands);
  REQUIRE(found.subcommand);
  CHECK(*found.subcommand == 1);
  CHECK_FALSE(found.unknown);
  CHECK(locate_subcommand({"--log_as_json", "istio-iptables"}, global_flags(), commands).subcommand == 1u);
}

// §2.1: "Subcommand flags given before the name, as in `pilot-agent -p 7 istio-iptables`, still
// work: cobra strips `-p 7` while locating the subcommand, and all arguments are then parsed by
// the subcommand."
TEST_CASE("flags: subcommand flags before the subcommand word are skipped with their value", "[flags]") {
  const std::vector<std::string_view> commands = {"istio-iptables", "help", "completion"};
  const Words words = {"-p", "7", "istio-iptables"};
  const auto found = locate_subcommand(words, global_flags(), commands);
  REQUIRE(found.subcommand);
  CHECK(*found.subcommand == 2);
  const auto args = parsed({"-p", "7"});  // every word but the subcommand's name
  CHECK(last(args, "envoy-port") == "7");
}

// §2.1 trap: "an unknown flag written before the subcommand name without `=` consumes the next
// word as its value ... `pilot-agent --foo istio-iptables` therefore selects the root command".
TEST_CASE("flags: an unknown flag before the subcommand word swallows it and the root runs", "[flags]") {
  const std::vector<std::string_view> commands = {"istio-iptables", "help", "completion"};
  const auto found = locate_subcommand({"--foo", "istio-iptables"}, global_flags(), commands);
  CHECK_FALSE(found.subcommand);
  CHECK_FALSE(found.unknown);
}

// §2.1 "Unknown subcommand", for example `pilot-agent istio-clean-iptables` at ≥1.25: `unknown
// command "istio-clean-iptables" for "pilot-agent"`; and `pilot-agent help istio-iptables` (Help).
TEST_CASE("flags: the first non-flag word names the subcommand or is an unknown command", "[flags]") {
  const std::vector<std::string_view> commands = {"istio-iptables", "help", "completion"};
  const auto unknown = locate_subcommand({"istio-clean-iptables"}, global_flags(), commands);
  CHECK_FALSE(unknown.subcommand);
  CHECK(unknown.unknown == 0u);
  CHECK(locate_subcommand({"help", "istio-iptables"}, global_flags(), commands).subcommand == 0u);
}

// pflag's documentation of StringSlice (string_slice.go, StringSliceP): `--ss="v1,v2" --ss="v3"`
// gives []string{"v1", "v2", "v3"}; readAsCSV("") is an empty list. (Not used by istio-iptables.)
TEST_CASE("flags: a string slice splits each occurrence at commas", "[flags]") {
  const std::vector<FlagSpec> specs = {{"ss", "", FlagType::StringSlice, "strings", "", ""}};
  const auto result = parse_args({"--ss=v1,v2", "--ss", "v3"}, specs);
  REQUIRE(result);
  Words items;
  for (const auto& v : result.value().values) {
    auto split = string_slice_items(v.value);
    items.insert(items.end(), split.begin(), split.end());
  }
  CHECK(items == Words{"v1", "v2", "v3"});
  CHECK(string_slice_items("").empty());
}

// Where §2 is silent, pflag's own source decides (flag.go parseLongArg / parseSingleShortArg at
// v1.0.10, read, not run): these cases pin the branches §2's spellings pass through.
TEST_CASE("flags: pflag refuses a long flag that starts with a third dash or with =", "[flags]") {
  CHECK(refusal({"---dry-run"}) == "bad flag syntax: ---dry-run");
  CHECK(refusal({"--=x"}) == "bad flag syntax: --=x");
}

// parseSingleShortArg: '-f=arg' needs something after '='; "-p=" is then '-farg' with arg "=",
// and for a boolean "-n=" the '=' is read as the next shorthand.
TEST_CASE("flags: a shorthand with = and nothing after it follows pflag's branch order", "[flags]") {
  CHECK(last(parsed({"-p="}), "envoy-port") == "=");
  CHECK(refusal({"-n="}) == "unknown shorthand flag: '=' in -=");
}

// parseSingleShortArg: "-test.*" (Go's testing flags) is skipped without a word.
TEST_CASE("flags: a -test. shorthand group is ignored as pflag ignores it", "[flags]") {
  const auto args = parsed({"-test.v", "-p", "1"});
  CHECK(args.values.size() == 1);
  CHECK(args.positionals.empty());
}

// Go's %q (strconv.Quote) in pflag's "invalid argument %q" and strconv's "parsing %q".
TEST_CASE("flags: values in error messages are quoted as Go's %q quotes them", "[flags]") {
  CHECK(refusal({"--dry-run=a\"b\t"}) == "invalid argument \"a\\\"b\\t\" for \"-n, --dry-run\" flag: "
                                         "strconv.ParseBool: parsing \"a\\\"b\\t\": invalid syntax");
  CHECK(go_quote("\xff\x01\x7f") == "\"\\xff\\x01\\x7f\"");
  CHECK(go_quote("caf\xC3\xA9 \xC2\xA0") == "\"caf\xC3\xA9 \\u00a0\"");
}

// strconv.ParseUint(s, 0, 16) (atoi.go): base prefixes, underscores between digits, and an
// overflow reported as soon as the digits read overflow.
TEST_CASE("flags: the probe port follows ParseUint with base 0 in every prefix", "[flags]") {
  CHECK(last(parsed({"--iptables-probe-port=0b101"}), "iptables-probe-port") == "5");
  CHECK(last(parsed({"--iptables-probe-port=0o17"}), "iptables-probe-port") == "15");
  CHECK(last(parsed({"--iptables-probe-port=1_000"}), "iptables-probe-port") == "1000");
  CHECK(last(parsed({"--iptables-probe-port=0"}), "iptables-probe-port") == "0");
  CHECK(refusal({"--iptables-probe-port=1__0"}) == "invalid argument \"1__0\" for \"--iptables-probe-port\" flag: "
                                                   "strconv.ParseUint: parsing \"1__0\": invalid syntax");
  CHECK(refusal({"--iptables-probe-port=09"}) == "invalid argument \"09\" for \"--iptables-probe-port\" flag: "
                                                 "strconv.ParseUint: parsing \"09\": invalid syntax");
  CHECK(refusal({"--iptables-probe-port="}) == "invalid argument \"\" for \"--iptables-probe-port\" flag: "
                                               "strconv.ParseUint: parsing \"\": invalid syntax");
  CHECK(refusal({"--iptables-probe-port=700000x"}) ==
        "invalid argument \"700000x\" for \"--iptables-probe-port\" flag: strconv.ParseUint: parsing \"700000x\": "
        "value out of range");
}

// time.ParseDuration (time/format.go): the three messages and the signs it accepts.
TEST_CASE("flags: the probe timeout follows time.ParseDuration's messages", "[flags]") {
  CHECK(last(parsed({"--probe-timeout=-1.5h"}), "probe-timeout") == "-1.5h");
  CHECK(last(parsed({"--probe-timeout=1\xC2\xB5s"}), "probe-timeout") == "1\xC2\xB5s");
  CHECK_THAT(refusal({"--probe-timeout="}), Catch::EndsWith("flag: time: invalid duration \"\""));
  CHECK_THAT(refusal({"--probe-timeout=1x"}), Catch::EndsWith("flag: time: unknown unit \"x\" in duration \"1x\""));
  CHECK_THAT(refusal({"--probe-timeout=.s"}), Catch::EndsWith("flag: time: invalid duration \".s\""));
  CHECK_THAT(refusal({"--probe-timeout=9999999999h"}), Catch::EndsWith("flag: time: invalid duration \"9999999999h\""));
}

// klog's Level.Set is strconv.ParseInt(value, 10, 32) (the --vklog flag).
TEST_CASE("flags: --vklog takes a 32-bit decimal integer", "[flags]") {
  CHECK(last(parsed({"--vklog=9"}), "vklog") == "9");
  CHECK(last(parsed({"--vklog", "-2"}), "vklog") == "-2");
  CHECK(refusal({"--vklog=x"}) ==
        "invalid argument \"x\" for \"--vklog\" flag: strconv.ParseInt: parsing \"x\": invalid syntax");
  CHECK(refusal({"--vklog=2147483648"}) == "invalid argument \"2147483648\" for \"--vklog\" flag: "
                                           "strconv.ParseInt: parsing \"2147483648\": value out of range");
}

// encoding/csv (reader.go) as pflag's readAsCSV uses it: quoted fields and its two quote errors.
TEST_CASE("flags: a string slice value is read as one CSV record", "[flags]") {
  const std::vector<FlagSpec> specs = {{"ss", "", FlagType::StringSlice, "strings", "", ""}};
  CHECK(string_slice_items("\"a,b\",c,") == Words{"a,b", "c", ""});
  CHECK(string_slice_items("\"say \"\"hi\"\"\"") == Words{"say \"hi\""});
  auto bare = parse_args({"--ss=a\"b"}, specs);
  REQUIRE_FALSE(bare);
  CHECK(bare.error().message ==
        "invalid argument \"a\\\"b\" for \"--ss\" flag: parse error on line 1, column 2: bare \" in non-quoted-field");
  auto open = parse_args({"--ss=\"ab"}, specs);
  REQUIRE_FALSE(open);
  CHECK_THAT(open.error().message,
             Catch::EndsWith("parse error on line 1, column 4: extraneous or missing \" in quoted-field"));
}

// cobra's stripFlags (command.go): a known boolean root flag consumes nothing, "--" ends the
// search, and a value flag in the last-but-one place ends it too.
TEST_CASE("flags: cobra's subcommand search skips values only of non-boolean flags", "[flags]") {
  const std::vector<std::string_view> commands = {"istio-iptables", "help", "completion"};
  CHECK(locate_subcommand({"--log_target", "stderr", "istio-iptables"}, global_flags(), commands).subcommand == 2u);
  CHECK(locate_subcommand({"--foo", "x", "istio-iptables"}, global_flags(), commands).subcommand == 2u);
  const auto dashed = locate_subcommand({"--", "istio-iptables"}, global_flags(), commands);
  CHECK_FALSE(dashed.subcommand);
  CHECK_FALSE(dashed.unknown);
  const auto trailing = locate_subcommand({"--foo", "istio-iptables", "-p", "1"}, global_flags(), commands);
  CHECK_FALSE(trailing.subcommand);
  CHECK_FALSE(trailing.unknown);
}
