// Command-line parsing exactly as Go's pflag v1.0.10 parses a cobra command's flags.
//
// Istio's pilot-agent parses `istio-iptables` with cobra and pflag, and operators (and Istio's own
// injector and VM scripts) rely on pflag's syntax: `-p=15011`, `-p15011`, combined boolean
// shorthands (`-nz 9`), `--name=` giving an empty value, a word after a boolean flag being a
// positional rather than its value, `--` ending the flags. A general-purpose parser gets several of
// these wrong, and building its option table cost a third of an apply's instructions; so this file
// re-implements pflag's FlagSet.parseArgs step by step (the branches of parseLongArg and
// parseSingleShortArg, in their order) over a caller-owned table of FlagSpec.
//
// Values are checked while parsing, in command-line order, as pflag's Value.Set does, so the first
// bad token is the one reported, with pflag's message text (Go's %q quoting included). Parsing is
// pure and allocates only the result vectors; nothing here looks at the environment (the caller
// applies Istio's environment binding before the command line wins over it).
//
// cobra's part is here too where it is a pure function of the words: locate_subcommand is cobra's
// Command.Find (stripFlags) for a root command and its subcommand words. What the words then mean
// (help, unknown command, exit codes) is the caller's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace istio_iptables {

/// How a flag takes its value, and how the value is checked (pflag's Value types).
enum class FlagType {
  String,       ///< any text, also empty (pflag string)
  Bool,         ///< no value unless `=value`; value checked by strconv.ParseBool (pflag bool)
  Uint16,       ///< strconv.ParseUint(s, 0, 16): 0x10, 010 (octal), 0b1, 1_000 (pflag uint16)
  Int32,        ///< strconv.ParseInt(s, 10, 32) (klog's Level, pilot-agent's --vklog)
  Duration,     ///< time.ParseDuration (pflag duration)
  StringArray,  ///< each occurrence appends its value unsplit (pflag stringArray)
  StringSlice,  ///< each occurrence appends its CSV fields (pflag stringSlice); see string_slice_items
};

/// One flag of a command: the caller's static table, never copied.
struct FlagSpec {
  std::string_view name;       ///< long name without "--"
  std::string_view shorthand;  ///< "" or one ASCII character
  FlagType type;
  std::string_view type_name;     ///< as pflag prints it in usage ("string", "uint16", "" for bool)
  std::string_view default_text;  ///< as pflag prints the default, quotes included ("" = none shown)
  std::string_view usage;
};

/// One occurrence of a flag on the command line.
struct FlagValue {
  std::string_view name;  ///< the spec's long name
  /// The value: as given for String, StringArray, StringSlice (the raw text) and Duration;
  /// "true"/"false" for Bool; the number in decimal for Uint16 and Int32 ("0x10" gives "16").
  std::string value;
};

/// What parse_args found, in command-line order.
struct ParsedArgs {
  /// Every flag occurrence in order: the last one wins for scalar flags, all count for arrays.
  std::vector<FlagValue> values;
  /// Every non-flag word in order, including those after "--" and a lone "-".
  std::vector<std::string> positionals;
  /// True when the spec named "help" ended up true (cobra's help flag: `--help=false` is ignored),
  /// or, when no such spec exists, when pflag met `--help`/`-h` (parsing then stops, as ErrHelp).
  bool help = false;
};

/// Parses `args` (without argv[0]) as pflag's FlagSet.Parse does, interspersed flags and
/// positionals, stopping at the first error. Error messages are pflag's texts, e.g.
/// `unknown flag: --foo`, `flag needs an argument: 'p' in -p`,
/// `invalid argument "maybe" for "-n, --dry-run" flag: strconv.ParseBool: parsing "maybe": invalid syntax`.
Result<ParsedArgs> parse_args(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs);

/// pflag's FlagUsages() for `specs`: one line per flag sorted by long name, the usage column
/// aligned two spaces after the longest "  -x, --name type", each line ending in "\n" (cobra's
/// template trims the last one).
std::string flag_usages(const std::vector<FlagSpec>& specs);

/// The items of one StringSlice value as pflag's readAsCSV splits it ("" gives none, `"a,b",c`
/// gives `a,b` and `c`). The value must have passed parse_args.
std::vector<std::string> string_slice_items(std::string_view value);

/// Where cobra's Command.Find puts the words of a root command that has subcommands.
struct SubcommandSearch {
  /// Index in args of the word naming a subcommand: cobra runs that subcommand with every other
  /// word, flags before the name included.
  std::optional<std::size_t> subcommand;
  /// Otherwise the index of the first non-flag word cobra saw, which is not a subcommand: cobra
  /// fails with `unknown command "<word>" for "<root>"`. Neither set: the root command itself runs.
  std::optional<std::size_t> unknown;
};

/// cobra's stripFlags over `args` with the root command's flags `root_specs`: a `--name` or `-x`
/// without `=` that is not a known boolean consumes the next word (unknown flags included), and
/// such a flag in the last-but-one position ends the search. `subcommands` lists the names and
/// aliases of the root's subcommands (cobra's own "help" and "completion" included).
SubcommandSearch locate_subcommand(const std::vector<std::string>& args, const std::vector<FlagSpec>& root_specs,
                                   const std::vector<std::string_view>& subcommands);

/// Go's time.ParseDuration: `error` holds its message ("time: missing unit in duration \"10\""),
/// empty when `text` is a duration; then `nanoseconds` is its magnitude and `negative` its sign.
struct GoDuration {
  std::string error;
  bool negative = false;
  std::uint64_t nanoseconds = 0;
};
GoDuration parse_go_duration(std::string_view text);

/// Go's strconv.Quote (what fmt's %q prints for a string). Non-ASCII runes are kept unless they are
/// in a known unprintable class (controls, format characters, separators, private use).
std::string go_quote(std::string_view text);

}  // namespace istio_iptables
