// Our rules as nf_tables expressions, against the catalogue of what iptables-nft-restore 1.8.9
// itself created for every distinct Istio rule (../shared/docs/iptables-nft/catalog-istio-shapes.txt,
// read back from the kernel attribute by attribute): the same expressions, in the same order,
// with the same bytes; and each rule decoded back from those expressions into the same rule.
#include <catch2/catch.hpp>

#include <libnftnl/expr.h>
#include <libnftnl/rule.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/restore_text.h"
#include "core/rule_text.h"
#include "system/iptables_nft_store.h"

using namespace istio_iptables;

namespace {

struct Numbers final : GroupResolver {
  Result<std::optional<std::uint32_t>> lookup(const std::string&) override { return std::optional<std::uint32_t>{}; }
};

std::uint16_t pick(bool target, int tg, int mt) { return static_cast<std::uint16_t>(target ? tg : mt); }

std::string hex(const void* data, std::uint32_t len) {
  std::string out;
  for (std::uint32_t i = 0; i < len; ++i) out += fmt::format("{:02x}", static_cast<const unsigned char*>(data)[i]);
  return out;
}

// One expression in the catalogue's notation (the attributes as the kernel dumps them).
std::string notation(const nftnl_expr* e) {
  const std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  std::uint32_t len = 0;
  if (name == "meta")
    return fmt::format("[meta key={} dreg={} ]", nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY),
                       nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG));
  if (name == "cmp") {
    const void* d = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);
    return fmt::format("[cmp sreg={} op={} data[{}]={} ]", nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_SREG),
                       nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP), len, hex(d, len));
  }
  if (name == "payload")
    return fmt::format("[payload dreg={} base={} offset={} len={} ]", nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG),
                       nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE), nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET),
                       nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN));
  if (name == "counter") return "[counter pkts bytes ]";
  if (name == "immediate") {
    std::string out = fmt::format("[immediate dreg={} verdict={} ", nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG),
                                  static_cast<std::int32_t>(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT)));
    if (nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN))
      out += fmt::format("chain=\"{}\" ", nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN));
    return out + "]";
  }
  if (name == "match" || name == "target") {
    const bool tg = name == "target";
    std::uint32_t nlen = 0;
    const char* n =
        static_cast<const char*>(nftnl_expr_get(e, pick(tg, NFTNL_EXPR_TG_NAME, NFTNL_EXPR_MT_NAME), &nlen));
    const void* info = nftnl_expr_get(e, pick(tg, NFTNL_EXPR_TG_INFO, NFTNL_EXPR_MT_INFO), &len);
    return fmt::format("[{} name=\"{}\" rev={} info[{}]={} ]", name, std::string(n, strnlen(n, nlen)),
                       nftnl_expr_get_u32(e, pick(tg, NFTNL_EXPR_TG_REV, NFTNL_EXPR_MT_REV)), len, hex(info, len));
  }
  return "[" + name + " ? ]";
}

std::string notation(const nftnl_rule* r) {
  std::string out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it)) out += notation(e) + "\n";
  nftnl_expr_iter_destroy(it);
  return out;
}

struct Entry {
  Family family;
  std::string spec;  // after "-A CHAIN"
  std::string expressions;
};

std::vector<Entry> catalogue() {
  std::ifstream in(ISTIO_IPTABLES_NFT_CATALOGUE);
  std::vector<Entry> out;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("ip", 0) == 0) {
      std::istringstream words(line);
      std::string family, table, append, chain;
      words >> family >> table >> append >> chain;
      std::string spec;
      std::getline(words, spec);
      out.push_back(Entry{family == "ip6" ? Family::V6 : Family::V4, spec.substr(spec.find_first_not_of(' ')), ""});
    } else if (!out.empty() && line.find('[') != std::string::npos) {
      std::string e = line.substr(line.find('['));
      e = e.substr(0, e.rfind(']') + 1);  // without the notes after it
      out.back().expressions += e + "\n";
    }
  }
  return out;
}

}  // namespace

TEST_CASE("every Istio rule is encoded with exactly the expressions iptables-nft 1.8.9 creates and decodes back",
          "[iptables_nft][encoding]") {
  auto entries = catalogue();
  if (entries.empty()) {
    WARN("no catalogue at " ISTIO_IPTABLES_NFT_CATALOGUE "; nothing compared");
    return;
  }
  CHECK(entries.size() == 135);  // 69 IPv4 and 66 IPv6 lines (the catalogue's own count)
  Numbers numbers;
  for (const auto& entry : entries) {
    INFO(entry.spec);
    auto rule = parse_rule_spec(entry.spec);
    REQUIRE(rule);
    auto built = build_nft_rule(entry.family, *rule, numbers);
    REQUIRE(built);
    std::unique_ptr<nftnl_rule, void (*)(const nftnl_rule*)> owned(built.value(), nftnl_rule_free);
    CHECK(notation(owned.get()) == entry.expressions);
    auto back = decode_nft_rule(entry.family, owned.get());
    REQUIRE(back);
    CHECK(rule_spec(canonical(*back, [](const std::string&) { return std::nullopt; })) ==
          rule_spec(canonical(*rule, [](const std::string&) { return std::nullopt; })));
  }
}

TEST_CASE("a rule with an expression outside the model is not read as one of ours", "[iptables_nft][encoding]") {
  Numbers numbers;
  auto rule = parse_rule_spec("-p tcp --dport 80 -j RETURN");
  REQUIRE(rule);
  auto built = build_nft_rule(Family::V4, *rule, numbers);
  REQUIRE(built);
  std::unique_ptr<nftnl_rule, void (*)(const nftnl_rule*)> owned(built.value(), nftnl_rule_free);
  REQUIRE(decode_nft_rule(Family::V4, owned.get()));
  // A second counter (nft's own "counter counter"): iptables-nft never writes one.
  nftnl_rule_add_expr(owned.get(), nftnl_expr_alloc("counter"));
  CHECK_FALSE(decode_nft_rule(Family::V4, owned.get()));
}
