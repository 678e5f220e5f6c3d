// The choice of iptables variant, as Istio makes it (istio-behaviour.md §5.1), against facts
// given by hand: legacy rules present, nf_tables missing, the force flag.
#include <catch2/catch.hpp>

#include "system/iptables_nft_choice.h"

using namespace istio_iptables;

TEST_CASE("a namespace without legacy tables on a kernel with nf_tables gets the nf_tables variant",
          "[iptables_nft][choice]") {
  auto c = choose_variant("", VariantFacts{});
  REQUIRE(c);
  CHECK(c.value().variant == IptablesVariant::Nft);
  CHECK(c.value().why.find("kernel has nf_tables") != std::string::npos);
}

TEST_CASE("legacy tables in the namespace choose legacy and the log names them", "[iptables_nft][choice]") {
  auto c = choose_variant("", VariantFacts{{"ip nat", "ip6 raw"}, std::nullopt});
  REQUIRE(c);
  CHECK(c.value().variant == IptablesVariant::Legacy);
  CHECK(c.value().why.find("ip nat, ip6 raw") != std::string::npos);
}

TEST_CASE("without nf_tables and without legacy tables the choice is legacy, saying why", "[iptables_nft][choice]") {
  auto c = choose_variant("", VariantFacts{{}, std::string("the kernel has no nfnetlink")});
  REQUIRE(c);
  CHECK(c.value().variant == IptablesVariant::Legacy);
  CHECK(c.value().why.find("the kernel has no nfnetlink") != std::string::npos);
}

TEST_CASE("iptables-nft choice: --force-iptables-binary wins over every fact", "[iptables_nft][choice]") {
  auto nft = choose_variant("nft", VariantFacts{{"ip nat"}, std::nullopt});
  REQUIRE(nft);
  CHECK(nft.value().variant == IptablesVariant::Nft);
  CHECK(nft.value().why == "--force-iptables-binary nft");
  auto legacy = choose_variant("legacy", VariantFacts{});
  REQUIRE(legacy);
  CHECK(legacy.value().variant == IptablesVariant::Legacy);
  CHECK_FALSE(choose_variant("nftables", VariantFacts{}));
}

TEST_CASE("iptables-nft choice: an unreadable legacy table list counts as none, as Istio's detection, and says so",
          "[iptables_nft][choice]") {
  VariantFacts facts;
  facts.legacy_unreadable = "cannot read /proc/net/ip_tables_names: permission denied";
  auto c = choose_variant("", facts);
  REQUIRE(c);
  CHECK(c.value().variant == IptablesVariant::Nft);
  CHECK(c.value().why.find("could not be listed (cannot read /proc/net/ip_tables_names: permission denied)") !=
        std::string::npos);
  facts.nft_missing = "the kernel has no nfnetlink";
  auto legacy = choose_variant("", facts);
  REQUIRE(legacy);
  CHECK(legacy.value().variant == IptablesVariant::Legacy);
  CHECK(legacy.value().why.find("could not be listed") != std::string::npos);
  CHECK(legacy.value().why.find("the kernel has no nfnetlink") != std::string::npos);
}
