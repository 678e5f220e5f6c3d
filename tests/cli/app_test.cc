// The CLI as the init container, an engineer and CI use it.
#include <catch2/catch.hpp>

#include <algorithm>

#include "istio_help_block.h"
#include "support.h"

using namespace istio_iptables;
using namespace istio_iptables::testing;

namespace {
const std::vector<std::string> kInjected = {"-p",
                                            "15001",
                                            "-z",
                                            "15006",
                                            "-u",
                                            "1337",
                                            "-m",
                                            "REDIRECT",
                                            "-i",
                                            "*",
                                            "-x",
                                            "",
                                            "-b",
                                            "*",
                                            "-d",
                                            "15090,15021,15020",
                                            "--log_output_level=default:info"};
std::vector<std::string> with(std::vector<std::string> args, std::initializer_list<std::string> more) {
  args.insert(args.end(), more);
  return args;
}
}  // namespace

TEST_CASE("cli: the injected init container's arguments work unchanged, also behind pilot-agent's subcommand") {
  FakeFacts facts;
  facts.ipv6 = false;
  auto a = run(with(kInjected, {"-n"}), {}, facts);
  CHECK(a.code == 0);
  CHECK(a.out.rfind("* nat\n", 0) == 0);
  auto args = kInjected;
  args.insert(args.begin(), "istio-iptables");
  auto b = run(with(args, {"--dry-run", "--log_as_json"}), {}, facts);
  CHECK(b.code == 0);
  CHECK(b.out == a.out);
}

TEST_CASE("cli: same input, same bytes") {
  FakeFacts facts;
  facts.ipv6 = true;
  auto a = run(with(kInjected, {"-n", "--redirect-dns", "--dns-servers", "10.96.0.10,fd00::a"}), {}, facts);
  auto b = run(with(kInjected, {"-n", "--redirect-dns", "--dns-servers", "10.96.0.10,fd00::a"}), {}, facts);
  CHECK(a.code == 0);
  CHECK(a.out == b.out);
  CHECK(a.out.find("\n# ip6tables-restore\n* nat\n") != std::string::npos);
}

TEST_CASE("cli: GNU flag forms as pflag takes them") {
  FakeFacts facts;
  facts.ipv6 = false;
  auto spaced = run({"-n", "-b", "8080", "-x", "", "-u", "1337"}, {}, facts);
  auto joined = run({"-n", "-b8080", "--istio-service-exclude-cidr=", "--proxy-uid=1337"}, {}, facts);
  CHECK(spaced.code == 0);
  CHECK(joined.out == spaced.out);
  // The last of a repeated flag wins.
  auto repeated = run({"-n", "-b", "9090", "-b", "8080", "-u", "1337"}, {}, facts);
  CHECK(repeated.out == spaced.out);
  // Bool flags take =value but never a separate value.
  auto off = run({"--dry-run=false", "--skip-rule-apply", "-u", "1337"}, {}, facts);
  CHECK(off.code == 0);
  CHECK(off.out.find("* nat\n") == std::string::npos);  // no rules printed: not a dry run
  CHECK_THAT(off.out, Catch::Contains("\tinfo\tIstio iptables environment:\n"));
}

TEST_CASE("cli: DRY_RUN in the environment means dry run") {
  FakeFacts facts;
  facts.ipv6 = false;
  auto r = run({"-u", "1337"}, {{"DRY_RUN", "true"}}, facts);
  CHECK(r.code == 0);
  CHECK_FALSE(r.out.empty());
}

TEST_CASE("cli: an unknown flag is a usage error (exit 2) in pflag's words, a stray word is ignored with a warning") {
  FakeFacts facts;
  facts.ipv6 = false;
  // pflag stops at the first problem (istio-operator-behaviour.md 2.1: "Error: unknown flag: --foo").
  auto r = run({"-n", "--bogus", "-p", "0", "stray"}, {}, facts);
  CHECK(r.code == 2);
  // Istio's two lines (istio-operator-behaviour.md 2.1): cobra's on stderr, the log record on stdout.
  CHECK(r.err == "Error: unknown flag: --bogus\n");
  CHECK_THAT(r.out, Catch::EndsWith("\terror\tunknown flag: --bogus\n"));
  CHECK(r.out.find("* nat") == std::string::npos);
  // Positional words are accepted and ignored, as Istio's cobra command ignores them.
  auto stray = run({"-n", "-u", "1337", "stray"}, {}, facts);
  CHECK(stray.code == 0);
  CHECK_FALSE(stray.out.empty());
  CHECK_THAT(stray.err, Catch::Contains("ignoring the positional argument \"stray\""));
  // Values are still ours to refuse, every problem at once.
  auto bad = run({"-n", "-p", "0", "-z", "x"}, {}, facts);
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Contains("--envoy-port: invalid value \"0\""));
  CHECK_THAT(bad.err, Catch::Contains("--inbound-capture-port: invalid value \"x\""));
  auto missing = run({"-n", "-p"}, {}, facts);
  CHECK(missing.code == 2);
  CHECK_THAT(missing.err, Catch::Contains("Error: flag needs an argument: 'p' in -p"));
  // A command word after another positional word is refused rather than ignored: "check" must
  // not apply. (Flags may come before it, as cobra allows flags before a subcommand.)
  auto late = run({"-n", "-u", "1337", "stray", "check"}, {}, facts);
  CHECK(late.code == 2);
}

TEST_CASE("cli: a machine that cannot answer exits 1 and says how to avoid asking it") {
  FakeFacts facts;  // no addresses
  auto r = run({"-n", "-u", "1337"}, {}, facts);
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--ipv6 on or --ipv6 off"));
}

TEST_CASE("cli: --help's Flags block is Istio's, word for word, at the current release") {
  FakeFacts facts;
  auto r = run({"--help"}, {}, facts);
  REQUIRE(r.code == 0);
  const auto begin = r.out.find("Flags:\n");
  REQUIRE(begin != std::string::npos);
  const auto end = r.out.find("\n\nGlobal Flags:", begin);
  REQUIRE(end != std::string::npos);
  CHECK(r.out.substr(begin + 7, end - begin - 7) == testing::kIstioFlagsBlock);
  // An older release's help lists that release's flags.
  auto old = run({"--help", "--compat", "1.24"}, {}, facts);
  CHECK_THAT(old.out, Catch::Contains("      --iptables-trace-logging                      Insert tracing logs"));
}

TEST_CASE("cli: --help prints every Istio flag with its environment variable") {
  FakeFacts facts;
  auto r = run({"--help"}, {}, facts);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("--istio-local-outbound-ports-exclude"));
  CHECK_THAT(r.out, Catch::Contains("REDIRECT_DNS, ISTIO_META_DNS_CAPTURE"));
}

TEST_CASE("cli: warnings go to stderr, never into the rules") {
  FakeFacts facts;
  facts.ipv6 = false;
  auto r = run({"-n", "-u", "1337", "--redirect-dns", "--dns-servers", ""}, {}, facts);
  CHECK(r.code == 0);
  CHECK_THAT(r.err, Catch::Contains("DNS capture disabled"));
  CHECK(r.out.find("warn") == std::string::npos);
}

TEST_CASE("cli: --log_output_level quiets what is below the level, as pilot-agent's does") {
  FakeFacts facts;
  facts.ipv6 = false;
  const std::vector<std::string> args = {"-n", "-u", "1337", "--redirect-dns", "--dns-servers", ""};
  CHECK_THAT(run(with(args, {"--log_output_level=default:info"}), {}, facts).err,
             Catch::Contains("DNS capture disabled"));
  CHECK_THAT(run(with(args, {"--log_output_level=ads:debug,default:warn"}), {}, facts).err,
             Catch::Contains("DNS capture disabled"));
  auto quiet = run(with(args, {"--log_output_level=default:error"}), {}, facts);
  CHECK(quiet.code == 0);
  CHECK(quiet.err.empty());
}

TEST_CASE("cli: input echoed in messages is escaped, cut and never repeated without end") {
  FakeFacts facts;
  facts.ipv6 = false;
  // Terminal control bytes and a megabyte-long bad line in an --against file.
  facts.files["/golden"] = "*nat\n-Z OUTPUT \x1b]0;pwned\x07 " + std::string(1 << 20, 'x') + "\nCOMMIT\n";
  auto r = run({"check", "--against", "/golden", "-u", "1337"}, {}, facts);
  CHECK(r.code == exit_code::kUsage);
  CHECK(r.err.find('\x1b') == std::string::npos);
  CHECK(r.err.find('\x07') == std::string::npos);
  CHECK(r.err.size() < 4096);
  CHECK_THAT(r.err, Catch::Contains("more bytes"));
  // A flag named with control bytes.
  auto flag = run({"--bogus\x1b[2J", "-u", "1337", "-n"}, {}, facts);
  CHECK(flag.code == exit_code::kUsage);
  CHECK(flag.err.find('\x1b') == std::string::npos);
  // A resolv.conf of 30 000 bad nameserver lines (under the 1 MiB limit) gives a handful of
  // warnings, not 30 000.
  std::string resolv;
  for (int i = 0; i < 30000; ++i) resolv += "nameserver not-an-address\n";
  facts.files["/etc/resolv.conf"] = resolv;
  auto dns = run({"-u", "1337", "-n", "--redirect-dns"}, {}, facts);
  CHECK(dns.code == 0);
  std::size_t warnings = 0;
  for (auto at = dns.err.find("\twarn\t"); at != std::string::npos; at = dns.err.find("\twarn\t", at + 1)) ++warnings;
  CHECK(warnings < 10);
}
