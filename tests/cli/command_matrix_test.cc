// Which runs write. Every command × mode combination runs in-process against a fake machine
// that records each change, and the test states, for each one, whether the machine may change:
// a read-only command or --dry-run must leave it exactly as it was, whatever else is set (the
// way a build tool proves "clean --dry-run removes nothing").
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "core/apply.h"
#include "core/nft_apply.h"
#include "core/nft_planner.h"
#include "core/planner.h"
#include "fake_platform.h"
#include "fixtures.h"
#include "support.h"

using namespace istio_iptables;
using namespace istio_iptables::testing;

namespace {

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

Outcome run_with(FakePlatform& platform, MachineFacts& facts, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env = {}) {
  CliContext context;
  context.environment = env;
  context.facts = &facts;
  context.platform = &platform;
  StringLogSink out, err;
  int code = run_cli(args, context, out, err);
  return {code, out.text(), err.text()};
}

// The tables as text, for "nothing changed" comparisons.
std::string state(MemoryStore& s) {
  std::string out;
  for (auto& [key, snap] : s.tables)
    for (auto& c : snap.chains) {
      out += fmt::format("{} {} :{}\n", family_name(key.first), table_name(key.second), c.name);
      for (auto& r : c.rules) out += r.blob + "\n";
    }
  return out;
}

// A namespace holding an earlier configuration of ours (other excluded inbound ports), so that
// apply and cleanup both have something to change.
void install_earlier_configuration(FakePlatform& platform, bool native) {
  Config earlier = injected_sidecar();
  earlier.inbound_ports_exclude = {15090};
  if (native)
    REQUIRE(nft::apply_nft(platform.nft, plan_nft(earlier)));
  else
    REQUIRE(apply_plan(platform.tables, plan(earlier)));
  platform.tables.commits = 0;
}

std::vector<std::string> with_command(const char* command, std::vector<std::string> args) {
  args.insert(args.begin(), command);
  return args;
}

const std::vector<std::string> kFlags = {"-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                                         "-i", "*",     "-x", "",      "-b", "*",    "-d", "15090,15021,15020"};

struct Mode {
  const char* name;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
};

}  // namespace

TEST_CASE("commands: only apply and cleanup write, and never with --dry-run or --skip-rule-apply") {
  const bool native = GENERATE(false, true);  // iptables, and Istio's native nftables mode
  const std::vector<Mode> modes = {
      {"plain", {}, {}},
      {"--dry-run", {"--dry-run"}, {}},
      {"DRY_RUN", {}, {{"DRY_RUN", "true"}}},
      {"CLEANUP_ONLY", {}, {{"CLEANUP_ONLY", "true"}}},
      {"--cleanup-only --dry-run", {"--cleanup-only", "--dry-run"}, {}},
      {"--skip-rule-apply", {"--skip-rule-apply"}, {}},
      {"--run-validation", {"--run-validation"}, {}},
  };
  // {command word, mode} -> may it write, and does it run the validation probe?
  struct Expect {
    const char* command;
    const char* mode;
    bool writes;
    bool validates;
  };
  const std::vector<Expect> expected = {
      {"", "plain", true, false},
      {"", "--dry-run", false, false},
      {"", "DRY_RUN", false, false},
      {"", "CLEANUP_ONLY", true, false},  // Istio's way to ask for cleanup
      {"", "--cleanup-only --dry-run", false, false},
      {"", "--skip-rule-apply", false, false},
      {"", "--run-validation", true, true},
      {"apply", "plain", true, false},
      {"apply", "--dry-run", false, false},
      {"apply", "DRY_RUN", false, false},
      {"apply", "CLEANUP_ONLY", true, false},
      {"apply", "--cleanup-only --dry-run", false, false},
      {"apply", "--skip-rule-apply", false, false},
      {"apply", "--run-validation", true, true},
      {"check", "plain", false, false},
      {"check", "--dry-run", false, false},
      {"check", "DRY_RUN", false, false},
      {"check", "CLEANUP_ONLY", false, false},
      {"check", "--cleanup-only --dry-run", false, false},
      {"check", "--skip-rule-apply", false, false},
      {"check", "--run-validation", false, false},
      {"cleanup", "plain", true, false},
      {"cleanup", "--dry-run", false, false},
      {"cleanup", "DRY_RUN", false, false},
      {"cleanup", "CLEANUP_ONLY", true, false},
      {"cleanup", "--cleanup-only --dry-run", false, false},
      {"cleanup", "--skip-rule-apply", false, false},
      {"cleanup", "--run-validation", true, false},
  };
  for (const auto& e : expected) {
    const Mode* mode = nullptr;
    for (const auto& m : modes)
      if (std::string(m.name) == e.mode) mode = &m;
    REQUIRE(mode != nullptr);
    FakePlatform platform;
    install_earlier_configuration(platform, native);
    const std::string before = state(platform.tables);
    const std::vector<std::string> nft_before = platform.nft.listing();
    FakeFacts facts;
    facts.ipv6 = false;
    std::vector<std::string> args;
    if (*e.command) args.push_back(e.command);
    args.insert(args.end(), kFlags.begin(), kFlags.end());
    args.insert(args.end(), mode->args.begin(), mode->args.end());
    if (native) args.emplace_back("--native-nftables");
    auto r = run_with(platform, facts, args, mode->env);
    INFO((native ? "native nftables: " : "iptables: ") << e.command << " " << e.mode << " -> exit " << r.code << "\n"
                                                       << r.err);
    CHECK(r.code != exit_code::kUsage);
    CHECK((platform.writes() > 0) == e.writes);
    CHECK((platform.validations > 0) == e.validates);
    if (!e.writes) {
      CHECK(state(platform.tables) == before);
      CHECK(platform.nft.listing() == nft_before);
    }
  }
}

TEST_CASE("commands: cleanup --dry-run prints what it would remove and removes nothing") {
  FakePlatform platform;
  REQUIRE(apply_plan(platform.tables, plan(injected_sidecar())));
  platform.tables.commits = 0;
  const std::string before = state(platform.tables);
  FakeFacts facts;
  facts.ipv6 = false;
  auto r = run_with(platform, facts, {"cleanup", "--dry-run"});
  CHECK(r.code == 0);
  CHECK(state(platform.tables) == before);
  CHECK(platform.writes() == 0);
  // As iptables-restore --noflush input: our jumps from the built-in chains by their own
  // specification (Istio's golden files: "-A OUTPUT -j ISTIO_OUTPUT", "-A PREROUTING -p tcp -j
  // ISTIO_INBOUND"), then our chains emptied and deleted.
  CHECK_THAT(r.out, Catch::StartsWith("* nat\n"));
  CHECK_THAT(r.out, Catch::Contains("-D OUTPUT -j ISTIO_OUTPUT\n"));
  CHECK_THAT(r.out, Catch::Contains("-D PREROUTING -p tcp -j ISTIO_INBOUND\n"));
  CHECK_THAT(r.out, Catch::Contains("-F ISTIO_OUTPUT\n"));
  CHECK_THAT(r.out, Catch::Contains("-X ISTIO_REDIRECT\n"));
  CHECK_THAT(r.out, Catch::Contains("COMMIT\n"));
  CHECK_THAT(r.out, Catch::Contains("# ip -4 rule del fwmark 0x539 lookup 133\n"));
  // The same command without --dry-run removes exactly that.
  auto real = run_with(platform, facts, {"cleanup"});
  CHECK(real.code == 0);
  CHECK(platform.tables.chain(Family::V4, Table::Nat, "OUTPUT").empty());
  CHECK(platform.tables.chain(Family::V4, Table::Nat, "ISTIO_OUTPUT").empty());
  CHECK(platform.route_writes == 1);
}

TEST_CASE("commands: check stays a check when CLEANUP_ONLY or --cleanup-only is set") {
  FakePlatform platform;
  REQUIRE(apply_plan(platform.tables, plan(injected_sidecar())));
  platform.tables.commits = 0;
  FakeFacts facts;
  facts.ipv6 = false;
  auto env = run_with(platform, facts, {"check", "-u", "1337", "-i", "*", "-b", "*", "-d", "15090,15021,15020"},
                      {{"CLEANUP_ONLY", "true"}});
  CHECK(env.code == 0);
  CHECK_THAT(env.out, Catch::Contains("match"));
  CHECK_THAT(env.err, Catch::Contains("--cleanup-only (CLEANUP_ONLY) is ignored: the command is check"));
  auto flag = run_with(platform, facts, {"check", "--cleanup-only", "-u", "1337"});
  CHECK(flag.code == 1);  // differs from these flags' plan, and says so; removes nothing
  CHECK(platform.writes() == 0);
  CHECK_FALSE(platform.tables.chain(Family::V4, Table::Nat, "ISTIO_OUTPUT").empty());
}

TEST_CASE("commands: state that cannot be read is an error, never \"no rules\" (check exits 3, cleanup 1)") {
  FakePlatform platform;
  REQUIRE(apply_plan(platform.tables, plan(injected_sidecar())));
  platform.tables.commits = 0;
  platform.deny_reads = true;
  FakeFacts facts;
  facts.ipv6 = false;
  auto c = run_with(platform, facts, {"check", "-u", "1337", "-i", "*", "-b", "*", "-d", "15090,15021,15020"});
  CHECK(c.code == exit_code::kStateUnreadable);
  CHECK_THAT(c.err, Catch::Contains("CAP_NET_ADMIN"));
  CHECK(c.out.empty());
  auto clean = run_with(platform, facts, {"cleanup"});
  CHECK(clean.code == exit_code::kFailure);
  CHECK_THAT(clean.out, Catch::Contains("CAP_NET_ADMIN"));  // cleanup logs on stdout, as Istio's
  CHECK_THAT(clean.out, !Catch::Contains("none of our rules"));
  auto dry = run_with(platform, facts, {"cleanup", "--dry-run"});
  CHECK(dry.code == exit_code::kFailure);
  CHECK(dry.out.empty());
  platform.deny_reads = false;
  CHECK_FALSE(platform.tables.chain(Family::V4, Table::Nat, "ISTIO_OUTPUT").empty());
}

TEST_CASE("commands: the target namespace is entered before any fact is read from the machine") {
  std::vector<std::string> events;
  struct OrderedFacts : FakeFacts {
    std::vector<std::string>* events = nullptr;
    Result<bool> ipv6_enabled(bool dual) override {
      events->push_back("ipv6_enabled");
      return FakeFacts::ipv6_enabled(dual);
    }
  } facts;
  facts.events = &events;
  facts.ipv6 = true;  // the pod's namespace has an IPv6 address first
  FakePlatform platform;
  platform.events = &events;
  auto r = run_with(platform, facts, {"-u", "1337", "--network-namespace", "/run/netns/pod", "--dry-run"});
  CHECK(r.code == 0);
  REQUIRE(events.size() >= 2);
  CHECK(events[0] == "enter /run/netns/pod");
  CHECK(std::find(events.begin(), events.end(), "ipv6_enabled") != events.end());
  CHECK_THAT(r.out, Catch::Contains("# ip6tables-restore"));
}

namespace {
// Records every chunk written to it, as the kernel sees the write(2) calls of the process's
// FdLogSink: one per write().
struct ChunkBuffer : LogSink {
  std::vector<std::string> chunks;
  void write(std::string_view text) override { chunks.emplace_back(text); }
};
}  // namespace

TEST_CASE("commands: every log record is written whole, in one write") {
  FakePlatform platform;
  FakeFacts facts;
  facts.ipv6 = false;
  ChunkBuffer out_buffer;
  ChunkBuffer err_buffer;
  LogSink& out = out_buffer;
  LogSink& err = err_buffer;
  CliContext context;
  context.facts = &facts;
  context.platform = &platform;
  // A record is one write: it starts with its timestamp (istio-operator-behaviour.md 1.2) and
  // ends with its newline, whatever lines a dump spans.
  auto whole_records = [](const ChunkBuffer& b) {
    for (const auto& chunk : b.chunks) {
      INFO(chunk);
      CHECK(chunk.back() == '\n');
      CHECK((chunk.rfind("Error: ", 0) == 0 || (chunk.size() > 28 && chunk[4] == '-' && chunk[26] == 'Z')));
    }
  };
  // Warnings and errors in one run (exit 2), then the info records of a cleanup.
  int code = run_cli({"-u", "1337", "--redirect-dns", "--dns-servers", "", "-p", "0"}, context, out, err);
  CHECK(code == exit_code::kUsage);
  REQUIRE(out_buffer.chunks.size() >= 2);
  code = run_cli({"cleanup"}, context, out, err);
  CHECK(code == 0);
  REQUIRE(out_buffer.chunks.size() >= 4);
  whole_records(out_buffer);
  whole_records(err_buffer);
}

TEST_CASE("commands: CNI mode locks the pod's network namespace path, and only CNI mode does") {
  // Istio's CNI passes the pod's namespace path as the xtables lock file (per-pod lock).
  for (const bool cni : {true, false}) {
    FakePlatform platform;
    FakeFacts facts;
    facts.ipv6 = false;
    std::vector<std::string> args = {"-u", "1337", "-i", "*", "-b", "*", "--network-namespace", "/run/netns/pod"};
    if (cni) args.emplace_back("--cni-mode");
    REQUIRE(run_with(platform, facts, args).code == 0);
    const auto& ev = platform.own_events;
    INFO("cni " << cni);
    CHECK(std::count(ev.begin(), ev.end(), cni ? "lock /run/netns/pod" : "lock") >= 1);
    CHECK(std::count(ev.begin(), ev.end(), cni ? "lock" : "lock /run/netns/pod") == 0);
  }
}

TEST_CASE("commands: a native apply skips the iptables-nft variant only when nf_tables had no ip or ip6 table") {
  // The generation-guarded read that decided the transaction saw every table of every family:
  // without an ip or ip6 table no iptables-nft rule of ours can have existed at the commit.
  const std::vector<std::string> flags = {"-u", "1337", "-i", "*", "-b", "*", "--native-nftables"};
  auto opened = [](const std::vector<std::string>& events) {
    std::vector<std::string> out;
    for (const auto& e : events)
      if (e.rfind("open_store", 0) == 0) out.push_back(e);
    return out;
  };
  for (const std::optional<bool> seen :
       {std::optional<bool>(false), std::optional<bool>(true), std::optional<bool>()}) {
    FakePlatform platform;
    FakeFacts facts;
    facts.ipv6 = false;
    platform.nft.state.xtables_tables = seen;
    INFO("xtables_tables " << (seen ? (*seen ? "true" : "false") : "unknown"));
    REQUIRE(run_with(platform, facts, flags).code == 0);
    const std::vector<std::string> expected = seen == std::optional<bool>(false)
                                                  ? std::vector<std::string>{"open_store legacy"}
                                                  : std::vector<std::string>{"open_store legacy", "open_store nft"};
    CHECK(opened(platform.own_events) == expected);
  }
}

TEST_CASE("commands: an apply in one mode removes our rules of the other mode, and only ours") {
  FakePlatform platform;
  FakeFacts facts;
  facts.ipv6 = false;
  const std::vector<std::string> flags = {"-u", "1337", "-i", "*", "-b", "*", "-d", "15090,15021,15020"};
  platform.tables.add_foreign(Family::V4, Table::Nat, "OUTPUT", "-d 203.0.113.1/32 -j RETURN");
  REQUIRE(run_with(platform, facts, flags).code == 0);
  CHECK_FALSE(platform.tables.chain(Family::V4, Table::Nat, "ISTIO_OUTPUT").empty());
  auto native = flags;
  native.emplace_back("--native-nftables");
  auto r = run_with(platform, facts, native);
  REQUIRE(r.code == 0);
  CHECK_FALSE(platform.nft.listing().empty());
  CHECK(platform.tables.chain(Family::V4, Table::Nat, "ISTIO_OUTPUT").empty());
  CHECK(platform.tables.chain(Family::V4, Table::Nat, "OUTPUT") ==
        std::vector<std::string>{"-d 203.0.113.1/32 -j RETURN"});
  CHECK(run_with(platform, facts, with_command("check", native)).code == 0);
  // And back.
  REQUIRE(run_with(platform, facts, flags).code == 0);
  CHECK(platform.nft.listing().empty());
  CHECK(run_with(platform, facts, with_command("check", flags)).code == 0);
  // cleanup removes ours of both kinds, the foreign rule stays.
  REQUIRE(run_with(platform, facts, native).code == 0);
  REQUIRE(run_with(platform, facts, {"cleanup"}).code == 0);
  CHECK(platform.nft.listing().empty());
  CHECK(platform.tables.chain(Family::V4, Table::Nat, "OUTPUT") ==
        std::vector<std::string>{"-d 203.0.113.1/32 -j RETURN"});
}
