// The catalogue (rules/): every scenario's dry-run output, byte for byte.
//
// Each folder holds `args` (one shell-quoted line), optionally `env` (KEY=VALUE lines), the
// expected dry-run output `expected.rules`, and `expected.nft`, the dry-run output of the same
// flags with --native-nftables (absent for --compat releases before 1.27, where that mode is
// refused).
// REFRESH_GOLDEN=1 rewrites the expected files, so a change in the rules shows up as a reviewable
// diff. The scenarios must not depend on the machine: the fake facts answer nothing, so a case
// that forgets --ipv6 or --dns-servers fails here. Whether the expected output is *right* is
// checked against Istio's golden files and the seed listing by the conformance tests
// (tests/conformance), in the kernel's own words.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support.h"

namespace fs = std::filesystem;
using namespace istio_iptables;
using namespace istio_iptables::testing;

TEST_CASE("catalogue: every scenario prints its expected rules byte for byte") {
  const fs::path root = fs::path(ISTIO_IPTABLES_SOURCE_DIR) / "rules";
  const bool refresh = std::getenv("REFRESH_GOLDEN") != nullptr;
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory()) cases.push_back(entry.path());
  std::sort(cases.begin(), cases.end());
  REQUIRE(cases.size() >= 40);

  for (const auto& dir : cases) {
    SECTION(dir.filename().string()) {
      auto args = shell_words(read_text((dir / "args").string()));
      args.push_back("--dry-run");
      std::map<std::string, std::string> env;
      if (fs::exists(dir / "env")) {
        std::istringstream lines(read_text((dir / "env").string()));
        std::string line;
        while (std::getline(lines, line)) {
          auto eq = line.find('=');
          if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
        }
      }
      FakeFacts facts;  // answers nothing: the scenario must be hermetic
      auto result = run(args, env, facts);
      INFO("stderr: " << result.err);
      REQUIRE(result.code == 0);
      CHECK(facts.questions <= 1);  // at most the proxy user's UID (unused when -u is given)
      const auto expected_path = dir / "expected.rules";
      if (refresh) {
        std::ofstream(expected_path, std::ios::binary) << result.out;
      } else {
        REQUIRE(fs::exists(expected_path));
        CHECK(result.out == read_text(expected_path.string()));
      }
      // The same flags in Istio's native nftables mode.
      args.push_back("--native-nftables");
      FakeFacts nft_facts;
      auto nft = run(args, env, nft_facts);
      INFO("stderr (--native-nftables): " << nft.err);
      const auto nft_path = dir / "expected.nft";
      if (nft.code == exit_code::kUsage) {  // --compat before 1.27: the mode did not exist yet
        CHECK_THAT(nft.err, Catch::Contains("native nftables mode exists from release 1.27 on"));
        CHECK_FALSE(fs::exists(nft_path));
      } else if (refresh) {
        REQUIRE(nft.code == 0);
        std::ofstream(nft_path, std::ios::binary) << nft.out;
      } else {
        REQUIRE(nft.code == 0);
        REQUIRE(fs::exists(nft_path));
        CHECK(nft.out == read_text(nft_path.string()));
      }
    }
  }
}

TEST_CASE("catalogue: every release from 1.22 on has each of Istio's golden cases, with its golden as reference") {
  // The 20 cases of ../shared/conformance/istio/cases.tsv, once per release (docs/releases.md).
  struct Release {
    const char* prefix;
    const char* compat;  // what the args start with ("" for the current layout: no --compat)
    const char* golden;
  };
  const Release releases[] = {{"istio-", "", "capture"},
                              {"istio-1.24-", "--compat 1.24 ", "capture-1.24"},
                              {"istio-1.23-", "--compat 1.23 ", "capture-1.23"},
                              {"istio-1.22-", "--compat 1.22 ", "capture-1.22"}};
  const fs::path root = fs::path(ISTIO_IPTABLES_SOURCE_DIR) / "rules";
  std::vector<std::string> names;  // from the 1.24 folders
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string dir = entry.path().filename().string();
    if (dir.rfind("istio-1.24-", 0) == 0) names.push_back(dir.substr(std::string("istio-1.24-").size()));
  }
  REQUIRE(names.size() == 20);
  for (const Release& r : releases) {
    for (const auto& name : names) {
      const fs::path dir = root / (r.prefix + name);
      INFO(dir.string());
      REQUIRE(fs::exists(dir / "expected.rules"));
      CHECK(read_text((dir / "reference").string()) ==
            "file istio/" + std::string(r.golden) + "/" + name + ".golden\n");
      const std::string args = read_text((dir / "args").string());
      if (*r.compat)
        CHECK(args.rfind(r.compat, 0) == 0);
      else
        CHECK(args.find("--compat") == std::string::npos);
    }
  }
}
