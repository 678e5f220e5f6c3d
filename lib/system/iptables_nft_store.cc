// The nf_tables variant of iptables, in-process (docs/iptables-nft.md has the measured facts).
//
// Encoding. iptables-nft 1.8.9 turns a rule into a fixed skeleton whatever the option order:
// `-i`, `-o`, `-p`, `-s`, `-d` as native meta/payload compares, then the matches in their order
// (the tcp/udp ports and `-m mark` native, every other match an nft_compat `match` carrying the
// x_tables payload unchanged), exactly one counter, then the verdict (an immediate), NFLOG (a
// native `log`) or an nft_compat `target`. Every rule carries NFTA_RULE_COMPAT {proto, flags},
// which the kernel's nft_compat needs for multiport, tcp, udp and TPROXY. The x_tables payloads
// are the ones the legacy encoder builds (xt_entry.h): the rule is encoded as an entry first and
// its match and target payloads are copied out of it, so their layout is written once.
//
// Decoding. A dumped rule is read back by the inverse walk; the xt payloads go through the legacy
// decoder. A rule is ours to read only when encoding the decoded rule gives the same identity
// (each expression as libnftnl prints it, counter values left out): anything else is opaque and
// never written, only kept in place by its handle.
//
// Writing. One read (GETGEN, the table, chain and rule dumps of all families, GETGEN again) gives
// a snapshot of every table the run visits; the decision for each is turned into messages that
// touch only what changes: our rules deleted by handle (or our chain flushed when none of its
// rules stays), chains deleted, missing tables and chains created as iptables-nft creates them
// (user chains NLM_F_EXCL; a base chain with iptables' hook, priority and type, right before its
// first rule), new rules placed after the rule that precedes them (NFTA_RULE_POSITION for a kept
// rule, NFTA_RULE_POSITION_ID for one added in the same batch). All of it goes in one batch with
// the read's generation: all tables of both families or nothing, and ERESTART when someone else
// committed meanwhile, which starts the run over from a fresh read.
#include "system/back_off.h"
#include "system/iptables_nft_store.h"

#include <arpa/inet.h>
#include <endian.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "core/message.h"
#include "core/restore_text.h"

namespace istio_iptables {

struct IptablesNftStore::TableRead {
  bool exists = false;
  Snapshot snapshot;
  std::set<std::string> chains;                                   // the chains the kernel holds
  std::unordered_map<const std::string*, std::uint64_t> handles;  // snapshot blob -> rule handle
};

struct IptablesNftStore::RulesetRead {
  std::uint32_t generation = 0;
  std::vector<TableRead> tables;
};

namespace {

constexpr unsigned kIfNameSize = 16;
constexpr std::size_t kRuleBuffer = 16384;

struct RuleDeleter {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
using RulePtr = std::unique_ptr<nftnl_rule, RuleDeleter>;

// An attribute of the nft_compat `target` or `match` expression (two unnamed enums).
std::uint16_t pick(bool target, int tg, int mt) { return static_cast<std::uint16_t>(target ? tg : mt); }

std::uint16_t nfproto(Family f) { return f == Family::V4 ? NFPROTO_IPV4 : NFPROTO_IPV6; }
const char* nft_family(Family f) { return f == Family::V4 ? "ip" : "ip6"; }

std::string hex(const void* data, std::size_t len) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  const auto* p = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < len; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

// ---- iptables' base chains (nft-chain.c / xtables_ipv4[] in iptables 1.8.9) --------------------

struct BaseChain {
  const char* name;
  std::uint32_t hook;
  std::int32_t priority;
  const char* type;
};

std::vector<BaseChain> base_chains(Table t) {
  switch (t) {
  case Table::Raw:
    return {{"PREROUTING", NF_INET_PRE_ROUTING, -300, "filter"}, {"OUTPUT", NF_INET_LOCAL_OUT, -300, "filter"}};
  case Table::Mangle:
    return {{"PREROUTING", NF_INET_PRE_ROUTING, -150, "filter"},
            {"INPUT", NF_INET_LOCAL_IN, -150, "filter"},
            {"FORWARD", NF_INET_FORWARD, -150, "filter"},
            {"OUTPUT", NF_INET_LOCAL_OUT, -150, "route"},
            {"POSTROUTING", NF_INET_POST_ROUTING, -150, "filter"}};
  case Table::Filter:
    return {{"INPUT", NF_INET_LOCAL_IN, 0, "filter"},
            {"FORWARD", NF_INET_FORWARD, 0, "filter"},
            {"OUTPUT", NF_INET_LOCAL_OUT, 0, "filter"}};
  case Table::Nat:
    return {{"PREROUTING", NF_INET_PRE_ROUTING, -100, "nat"},
            {"INPUT", NF_INET_LOCAL_IN, 100, "nat"},
            {"OUTPUT", NF_INET_LOCAL_OUT, -100, "nat"},
            {"POSTROUTING", NF_INET_POST_ROUTING, 100, "nat"}};
  }
  return {};
}

std::optional<BaseChain> base_chain(Table t, const std::string& name) {
  for (const auto& b : base_chains(t))
    if (name == b.name) return b;
  return std::nullopt;
}

std::optional<Table> table_of(const char* name) {
  for (Table t : kAllTables)
    if (std::strcmp(name, table_name(t)) == 0) return t;
  return std::nullopt;
}

// ---- encoding -----------------------------------------------------------------------------------

class RuleBuilder : public ExprBuilder {
 public:
  explicit RuleBuilder(nftnl_rule* r) : ExprBuilder(r) {}
  void meta(std::uint32_t key) { meta_load(key); }
  using ExprBuilder::bitwise;
  void bitwise(const void* mask, std::uint32_t len) {
    const std::uint8_t zero[16] = {};
    ExprBuilder::bitwise(mask, zero, len);
  }
  void xt(bool target, const XtExtension& x) {
    nftnl_expr* e = add(target ? "target" : "match");
    nftnl_expr_set(e, pick(target, NFTNL_EXPR_TG_NAME, NFTNL_EXPR_MT_NAME), x.name.data(),
                   static_cast<std::uint32_t>(x.name.size()));
    nftnl_expr_set_u32(e, pick(target, NFTNL_EXPR_TG_REV, NFTNL_EXPR_MT_REV), x.revision);
    // libnftnl keeps (and frees) the info buffer it is given: a malloc'ed copy.
    void* info = std::calloc(1, x.info.size());
    std::memcpy(info, x.info.data(), x.info.size());
    nftnl_expr_set(e, pick(target, NFTNL_EXPR_TG_INFO, NFTNL_EXPR_MT_INFO), info,
                   static_cast<std::uint32_t>(x.info.size()));
  }
  void verdict(std::int32_t code, const std::string& chain = "") {
    nftnl_expr* e = add("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(code));
    if (!chain.empty()) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
  }
};

void encode_interface(RuleBuilder& b, const InterfaceMatch& m) {
  b.meta(m.inbound ? NFT_META_IIFNAME : NFT_META_OIFNAME);
  const std::uint32_t op = m.negated ? NFT_CMP_NEQ : NFT_CMP_EQ;
  if (m.name == "+") {
    // "-i +" matches every interface: iptables loads the name and compares nothing; "! -i +"
    // compares with a name no interface can have.
    if (m.negated) b.cmp(NFT_CMP_EQ, "INVAL/D", 8);
    return;
  }
  if (m.name.back() == '+')
    b.cmp(op, m.name.data(), static_cast<std::uint32_t>(m.name.size() - 1));  // a prefix: no NUL
  else
    b.cmp(op, m.name.c_str(), static_cast<std::uint32_t>(m.name.size() + 1));  // the name and its NUL
}

void encode_address(RuleBuilder& b, Family f, const AddressMatch& m) {
  const unsigned bits = f == Family::V4 ? 32 : 128;
  const unsigned bytes = bits / 8;
  const bool source = m.direction == Direction::Source;
  const std::uint32_t offset = f == Family::V4 ? (source ? 12 : 16) : (source ? 8 : 24);
  if (m.prefix.length == 0) return;  // "-s 0.0.0.0/0": nothing
  std::uint8_t mask[16] = {}, addr[16] = {};
  for (unsigned i = 0; i < bytes; ++i) {
    unsigned n = m.prefix.length > i * 8 ? std::min(8U, m.prefix.length - i * 8) : 0;
    mask[i] = static_cast<std::uint8_t>(n == 0 ? 0 : (0xff << (8 - n)) & 0xff);
    addr[i] = m.prefix.address.bytes[i] & mask[i];
  }
  const std::uint32_t op = m.negated ? NFT_CMP_NEQ : NFT_CMP_EQ;
  if (m.prefix.length % 8 == 0) {  // a byte-aligned prefix loads only its bytes
    b.payload(NFT_PAYLOAD_NETWORK_HEADER, offset, m.prefix.length / 8);
    b.cmp(op, addr, m.prefix.length / 8);
  } else {
    b.payload(NFT_PAYLOAD_NETWORK_HEADER, offset, bytes);
    b.bitwise(mask, bytes);
    b.cmp(op, addr, bytes);
  }
}

// The implicit tcp/udp match of a rule: every port option in one match, source port first; a
// single source and destination port with the same inversion in one 4-byte compare.
Status encode_ports(RuleBuilder& b, const std::vector<const PortMatch*>& ports) {
  const PortMatch* sport = nullptr;
  const PortMatch* dport = nullptr;
  for (const auto* p : ports) {
    auto& slot = p->direction == Direction::Source ? sport : dport;
    if (slot) return Error{fmt::format("more than one --{} in one rule", slot == sport ? "sport" : "dport")};
    slot = p;
  }
  if (sport && dport && sport->negated == dport->negated) {
    const std::uint16_t both[2] = {htons(sport->port), htons(dport->port)};
    b.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 4);
    b.cmp(sport->negated ? NFT_CMP_NEQ : NFT_CMP_EQ, both, 4);
    return ok_status();
  }
  for (const auto* p : {sport, dport}) {
    if (!p) continue;
    const std::uint16_t port = htons(p->port);
    b.payload(NFT_PAYLOAD_TRANSPORT_HEADER, p == sport ? 0 : 2, 2);
    b.cmp(p->negated ? NFT_CMP_NEQ : NFT_CMP_EQ, &port, 2);
  }
  return ok_status();
}

Status encode_rule(nftnl_rule* r, Family f, const Rule& rule, GroupResolver& groups) {
  // The x_tables payloads, from the legacy encoder (which also refuses what iptables refuses).
  auto entry = encode_entry(f, rule, groups);
  if (!entry) return Error{entry.error().message};
  auto xt = entry_extensions(f, entry.value());
  if (!xt) return Error{fmt::format("the rule {} has no readable entry", quoted_for_message(rule_spec(rule)))};
  RuleBuilder b(r);
  const InterfaceMatch* in = nullptr;
  const InterfaceMatch* out = nullptr;
  const ProtocolMatch* proto = nullptr;
  const AddressMatch* src = nullptr;
  const AddressMatch* dst = nullptr;
  std::vector<const PortMatch*> ports;
  for (const auto& m : rule.matches) {
    if (auto* i = std::get_if<InterfaceMatch>(&m)) (i->inbound ? in : out) = i;
    if (auto* p = std::get_if<ProtocolMatch>(&m)) proto = p;
    if (auto* a = std::get_if<AddressMatch>(&m)) (a->direction == Direction::Source ? src : dst) = a;
    if (auto* p = std::get_if<PortMatch>(&m)) ports.push_back(p);
  }
  if (in) encode_interface(b, *in);
  if (out) encode_interface(b, *out);
  std::uint8_t l4 = 0;
  if (proto) {
    l4 = proto->protocol == Protocol::Tcp ? IPPROTO_TCP : IPPROTO_UDP;
    b.meta(NFT_META_L4PROTO);
    b.cmp(proto->negated ? NFT_CMP_NEQ : NFT_CMP_EQ, &l4, 1);
  }
  if (src) encode_address(b, f, *src);
  if (dst) encode_address(b, f, *dst);
  // The matches in their order; each consumes its entry match (the header ones have none).
  std::size_t next = 0;
  bool ports_done = false;
  for (const auto& m : rule.matches) {
    if (std::holds_alternative<InterfaceMatch>(m) || std::holds_alternative<ProtocolMatch>(m) ||
        std::holds_alternative<AddressMatch>(m))
      continue;
    if (next >= xt->matches.size()) return Error{"the entry of a rule has fewer matches than the rule"};
    const XtExtension& x = xt->matches[next++];
    if (std::holds_alternative<PortMatch>(m)) {
      if (!ports_done) {
        if (auto st = encode_ports(b, ports); !st) return st;
        ports_done = true;
      }
    } else if (auto* mk = std::get_if<MarkMatch>(&m)) {
      b.meta(NFT_META_MARK);
      b.cmp(mk->negated ? NFT_CMP_NEQ : NFT_CMP_EQ, &mk->mark, 4);  // host byte order, as the kernel's mark
    } else {
      b.xt(false, x);
    }
  }
  nftnl_expr* counter = b.add("counter");
  nftnl_expr_set_u64(counter, NFTNL_EXPR_CTR_PACKETS, 0);
  nftnl_expr_set_u64(counter, NFTNL_EXPR_CTR_BYTES, 0);
  if (auto* j = std::get_if<JumpTarget>(&rule.target)) {
    b.verdict(NFT_JUMP, j->chain);
  } else if (auto* v = std::get_if<VerdictTarget>(&rule.target)) {
    b.verdict(v->verdict == Verdict::Accept ? NF_ACCEPT : v->verdict == Verdict::Drop ? NF_DROP : NFT_RETURN);
  } else if (auto* n = std::get_if<NflogTarget>(&rule.target)) {
    nftnl_expr* e = b.add("log");  // iptables-nft's add_log(): NFLOG as nf_tables' own log
    if (!n->prefix.empty()) nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, n->prefix.c_str());
    nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, n->group);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, n->size);
  } else {
    if (!xt->target) return Error{"the entry of a rule has no target payload"};
    b.xt(true, *xt->target);
  }
  nftnl_rule_set_u32(r, NFTNL_RULE_COMPAT_PROTO, l4);
  nftnl_rule_set_u32(r, NFTNL_RULE_COMPAT_FLAGS, proto && proto->negated ? NFT_RULE_COMPAT_F_INV : 0);
  return ok_status();
}

// ---- identity -----------------------------------------------------------------------------------

std::string expr_identity(const nftnl_expr* e) {
  const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  if (std::strcmp(name, "counter") == 0) return "[ counter ]";
  if (std::strcmp(name, "match") == 0 || std::strcmp(name, "target") == 0) {
    const bool tg = name[0] == 't';
    std::uint32_t len = 0, name_len = 0;
    const void* info = nftnl_expr_get(e, pick(tg, NFTNL_EXPR_TG_INFO, NFTNL_EXPR_MT_INFO), &len);
    const char* xname =
        static_cast<const char*>(nftnl_expr_get(e, pick(tg, NFTNL_EXPR_TG_NAME, NFTNL_EXPR_MT_NAME), &name_len));
    return fmt::format("[ {} {} rev {} info {} ]", name, xname ? std::string(xname, strnlen(xname, name_len)) : "",
                       nftnl_expr_get_u32(e, pick(tg, NFTNL_EXPR_TG_REV, NFTNL_EXPR_MT_REV)),
                       info ? hex(info, len) : "");
  }
  char buf[1024];
  nftnl_expr_snprintf(buf, sizeof(buf), e, NFTNL_OUTPUT_DEFAULT, 0);
  std::string out = fmt::format("[ {} {}", name, buf);
  if (std::strcmp(name, "cmp") == 0) {
    std::uint32_t len = 0;
    const void* data = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);
    out += fmt::format(" data {}", data ? hex(data, len) : "");
  }
  return out + " ]";
}

// ---- decoding -----------------------------------------------------------------------------------

std::vector<const nftnl_expr*> expressions(const nftnl_rule* r) {
  std::vector<const nftnl_expr*> out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it)) out.push_back(e);
  nftnl_expr_iter_destroy(it);
  return out;
}

bool is(const nftnl_expr* e, const char* name) {
  return std::strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), name) == 0;
}

std::string data_of(const nftnl_expr* e, std::uint16_t attr) {
  std::uint32_t len = 0;
  const void* d = nftnl_expr_get(e, attr, &len);
  return d ? std::string(static_cast<const char*>(d), len) : std::string();
}

// The walk over a dumped rule's expressions, the inverse of encode_rule.
std::optional<Rule> decode_expressions(Family f, const std::vector<const nftnl_expr*>& ex) {
  Rule r;
  std::vector<Match> header;  // in iptables-save's order, as the legacy decoder gives them
  std::optional<AddressMatch> src, dst;
  std::optional<InterfaceMatch> in, out;
  std::optional<ProtocolMatch> proto;
  bool counter = false, target = false;
  std::size_t i = 0;
  auto cmp_at = [&](std::size_t k) -> const nftnl_expr* {
    if (k >= ex.size() || !is(ex[k], "cmp") || nftnl_expr_get_u32(ex[k], NFTNL_EXPR_CMP_SREG) != NFT_REG_1)
      return nullptr;
    return ex[k];
  };
  auto cmp_negated = [](const nftnl_expr* c, bool* negated) {
    const std::uint32_t op = nftnl_expr_get_u32(c, NFTNL_EXPR_CMP_OP);
    *negated = op == NFT_CMP_NEQ;
    return op == NFT_CMP_EQ || op == NFT_CMP_NEQ;
  };
  while (i < ex.size()) {
    const nftnl_expr* e = ex[i];
    if (target) return std::nullopt;  // nothing after the verdict
    if (is(e, "meta")) {
      if (nftnl_expr_is_set(e, NFTNL_EXPR_META_SREG) || nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG) != NFT_REG_1)
        return std::nullopt;
      const std::uint32_t key = nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY);
      const nftnl_expr* c = cmp_at(i + 1);
      bool neg = false;
      if (key == NFT_META_IIFNAME || key == NFT_META_OIFNAME) {
        auto& slot = key == NFT_META_IIFNAME ? in : out;
        if (slot) return std::nullopt;
        if (!c) {  // "-i +"
          slot = InterfaceMatch{key == NFT_META_IIFNAME, "+", false};
          i += 1;
          continue;
        }
        if (!cmp_negated(c, &neg)) return std::nullopt;
        std::string name = data_of(c, NFTNL_EXPR_CMP_DATA);
        if (name.empty() || name.size() > kIfNameSize) return std::nullopt;
        static const std::string kInvalid{'I', 'N', 'V', 'A', 'L', '/', 'D', '\0'};  // "! -i +"
        if (name == kInvalid && !neg)
          slot = InterfaceMatch{key == NFT_META_IIFNAME, "+", true};
        else if (name.back() == '\0')
          slot = InterfaceMatch{key == NFT_META_IIFNAME, name.substr(0, name.size() - 1), neg};
        else
          slot = InterfaceMatch{key == NFT_META_IIFNAME, name + "+", neg};
        i += 2;
      } else if (key == NFT_META_L4PROTO) {
        if (!c || !cmp_negated(c, &neg) || proto) return std::nullopt;
        std::string p = data_of(c, NFTNL_EXPR_CMP_DATA);
        if (p == std::string(1, static_cast<char>(IPPROTO_TCP)))
          proto = ProtocolMatch{Protocol::Tcp, neg};
        else if (p == std::string(1, static_cast<char>(IPPROTO_UDP)))
          proto = ProtocolMatch{Protocol::Udp, neg};
        else
          return std::nullopt;
        i += 2;
      } else if (key == NFT_META_MARK) {
        if (!c || !cmp_negated(c, &neg)) return std::nullopt;
        std::string v = data_of(c, NFTNL_EXPR_CMP_DATA);
        if (v.size() != 4) return std::nullopt;
        std::uint32_t mark = 0;
        std::memcpy(&mark, v.data(), 4);
        r.matches.push_back(MarkMatch{mark, neg});
        i += 2;
      } else {
        return std::nullopt;
      }
    } else if (is(e, "payload")) {
      if (nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG) != NFT_REG_1) return std::nullopt;
      const std::uint32_t base = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE);
      const std::uint32_t offset = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
      const std::uint32_t len = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN);
      if (base == NFT_PAYLOAD_NETWORK_HEADER) {
        const unsigned bytes = f == Family::V4 ? 4 : 16;
        const bool source = offset == (f == Family::V4 ? 12U : 8U);
        if (!source && offset != (f == Family::V4 ? 16U : 24U)) return std::nullopt;
        if (len == 0 || len > bytes) return std::nullopt;
        std::size_t k = i + 1;
        unsigned length = len * 8;
        if (k < ex.size() && is(ex[k], "bitwise")) {
          std::string mask = data_of(ex[k], NFTNL_EXPR_BITWISE_MASK);
          std::string x = data_of(ex[k], NFTNL_EXPR_BITWISE_XOR);
          if (len != bytes || mask.size() != bytes || x != std::string(bytes, '\0')) return std::nullopt;
          length = 0;
          while (length < bytes * 8 && (static_cast<std::uint8_t>(mask[length / 8]) & (0x80 >> (length % 8)))) ++length;
          ++k;
        }
        const nftnl_expr* c = cmp_at(k);
        bool neg = false;
        if (!c || !cmp_negated(c, &neg)) return std::nullopt;
        std::string v = data_of(c, NFTNL_EXPR_CMP_DATA);
        if (v.size() != len) return std::nullopt;
        Prefix p{Address{f, {}}, length};
        std::memcpy(p.address.bytes.data(), v.data(), v.size());
        auto& slot = source ? src : dst;
        if (slot) return std::nullopt;
        slot = AddressMatch{source ? Direction::Source : Direction::Destination, p, neg};
        i = k + 1;
      } else if (base == NFT_PAYLOAD_TRANSPORT_HEADER) {
        const nftnl_expr* c = cmp_at(i + 1);
        bool neg = false;
        if (!proto || proto->negated || !c || !cmp_negated(c, &neg)) return std::nullopt;
        std::string v = data_of(c, NFTNL_EXPR_CMP_DATA);
        if (v.size() != len) return std::nullopt;
        auto port_at = [&](std::size_t at) {
          std::uint16_t be = 0;
          std::memcpy(&be, v.data() + at, 2);
          return ntohs(be);
        };
        if (offset == 0 && len == 4) {
          r.matches.push_back(PortMatch{proto->protocol, Direction::Source, port_at(0), neg});
          r.matches.push_back(PortMatch{proto->protocol, Direction::Destination, port_at(2), neg});
        } else if ((offset == 0 || offset == 2) && len == 2) {
          r.matches.push_back(
              PortMatch{proto->protocol, offset == 0 ? Direction::Source : Direction::Destination, port_at(0), neg});
        } else {
          return std::nullopt;
        }
        i += 2;
      } else {
        return std::nullopt;
      }
    } else if (is(e, "match")) {
      XtExtension x{data_of(e, NFTNL_EXPR_MT_NAME), nftnl_expr_get_u32(e, NFTNL_EXPR_MT_REV),
                    data_of(e, NFTNL_EXPR_MT_INFO)};
      x.name = x.name.substr(0, strnlen(x.name.c_str(), x.name.size()));
      std::optional<Protocol> p;
      if (proto && !proto->negated) p = proto->protocol;
      auto m = decode_xt_match(f, p, x);
      if (!m) return std::nullopt;
      r.matches.push_back(*m);
      ++i;
    } else if (is(e, "counter")) {
      if (counter) return std::nullopt;
      counter = true;
      ++i;
    } else if (is(e, "immediate")) {
      if (!counter || nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG) != NFT_REG_VERDICT) return std::nullopt;
      const auto code = static_cast<std::int32_t>(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT));
      if (code == NFT_JUMP && nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN))
        r.target = JumpTarget{nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN)};
      else if (code == NF_ACCEPT)
        r.target = VerdictTarget{Verdict::Accept};
      else if (code == NF_DROP)
        r.target = VerdictTarget{Verdict::Drop};
      else if (code == NFT_RETURN)
        r.target = VerdictTarget{Verdict::Return};
      else
        return std::nullopt;
      target = true;
      ++i;
    } else if (is(e, "target")) {
      if (!counter) return std::nullopt;
      XtExtension x{data_of(e, NFTNL_EXPR_TG_NAME), nftnl_expr_get_u32(e, NFTNL_EXPR_TG_REV),
                    data_of(e, NFTNL_EXPR_TG_INFO)};
      x.name = x.name.substr(0, strnlen(x.name.c_str(), x.name.size()));
      auto t = decode_xt_target(f, x);
      if (!t) return std::nullopt;
      r.target = *t;
      target = true;
      ++i;
    } else if (is(e, "log")) {
      if (!counter || !nftnl_expr_is_set(e, NFTNL_EXPR_LOG_GROUP) || !nftnl_expr_is_set(e, NFTNL_EXPR_LOG_PREFIX) ||
          !nftnl_expr_is_set(e, NFTNL_EXPR_LOG_SNAPLEN))
        return std::nullopt;
      NflogTarget n;
      n.prefix = nftnl_expr_get_str(e, NFTNL_EXPR_LOG_PREFIX);
      n.group = nftnl_expr_get_u16(e, NFTNL_EXPR_LOG_GROUP);
      n.size = nftnl_expr_get_u32(e, NFTNL_EXPR_LOG_SNAPLEN);
      r.target = n;
      target = true;
      ++i;
    } else {
      return std::nullopt;
    }
  }
  if (!target) return std::nullopt;  // a rule without a target is outside the model
  if (src) header.push_back(*src);
  if (dst) header.push_back(*dst);
  if (in) header.push_back(*in);
  if (out) header.push_back(*out);
  if (proto) header.push_back(*proto);
  r.matches.insert(r.matches.begin(), header.begin(), header.end());
  return r;
}

// Groups are never looked up while decoding: the kernel holds numbers.
struct NoGroups final : GroupResolver {
  Result<std::optional<std::uint32_t>> lookup(const std::string&) override { return std::optional<std::uint32_t>{}; }
};

// The attributes of a rule message that say what the rule is (NFTA_RULE_EXPRESSIONS and
// NFTA_RULE_COMPAT), as bytes to append to a NEWRULE message later.
std::string rule_attributes(Family f, nftnl_rule* r) {
  std::vector<char> buf(kRuleBuffer);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWRULE, nfproto(f), 0, 0);
  const std::size_t head = nlh->nlmsg_len;
  nftnl_rule_nlmsg_build_payload(nlh, r);
  return {buf.data() + head, nlh->nlmsg_len - head};
}

// Appends attribute bytes made by rule_attributes to a message.
void append_attributes(nlmsghdr* nlh, const std::string& attributes) {
  std::memcpy(reinterpret_cast<char*>(nlh) + nlh->nlmsg_len, attributes.data(), attributes.size());
  nlh->nlmsg_len += static_cast<std::uint32_t>(attributes.size());
}

}  // namespace

std::string nft_rule_identity(const nftnl_rule* rule) {
  std::string out;
  for (const auto* e : expressions(rule)) out += expr_identity(e);
  return out;
}

Result<nftnl_rule*> build_nft_rule(Family family, const Rule& rule, GroupResolver& groups) {
  RulePtr r(nftnl_rule_alloc());
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, nfproto(family));
  if (auto st = encode_rule(r.get(), family, rule, groups); !st) return Error{st.error().message};
  return r.release();
}

std::optional<Rule> decode_nft_rule(Family family, const nftnl_rule* rule) {
  auto decoded = decode_expressions(family, expressions(rule));
  if (!decoded) return std::nullopt;
  // Faithful or nothing: encoding the decoded rule must give the kernel's expressions back.
  NoGroups no_groups;
  auto again = build_nft_rule(family, *decoded, no_groups);
  if (!again) return std::nullopt;
  RulePtr owned(again.value());
  if (nft_rule_identity(owned.get()) != nft_rule_identity(rule)) return std::nullopt;
  return decoded;
}

// ---- the store ------------------------------------------------------------------------------------

IptablesNftStore::IptablesNftStore(std::unique_ptr<NfTablesSocket> socket, GroupResolver& groups)
    : socket_(std::move(socket)), groups_(groups) {}

Result<std::unique_ptr<IptablesNftStore>> IptablesNftStore::open(GroupResolver& groups) {
  auto socket = NfTablesSocket::open();
  if (!socket) return Error{socket.error().message};
  return std::unique_ptr<IptablesNftStore>(new IptablesNftStore(std::move(socket).value(), groups));
}

Result<InstalledRule> IptablesNftStore::encode(Family family, Table, const Rule& rule) {
  auto built = build_nft_rule(family, rule, groups_);
  if (!built) return Error{built.error().message};
  RulePtr r(built.value());
  InstalledRule out;
  // The blob: the rule's text (for messages), a NUL, then its NFTA_RULE_EXPRESSIONS and
  // NFTA_RULE_COMPAT attributes, ready to append to a NEWRULE message.
  out.blob = rule_spec(rule);
  out.blob += '\0';
  out.blob += rule_attributes(family, r.get());
  out.identity = nft_rule_identity(r.get());
  out.rule = rule;
  return out;
}

Result<bool> IptablesNftStore::table_exists(Family family, Table table) {
  // One dump answers every question of a run's preparation (which tables exist); any read or
  // transaction drops it.
  if (!tables_) {
    std::vector<std::string> names;
    bool interrupted = false;
    auto st = socket_->dump(
        NFT_MSG_GETTABLE, NFPROTO_UNSPEC,
        [&](const nlmsghdr* h) {
          nftnl_table* t = nftnl_table_alloc();
          if (nftnl_table_nlmsg_parse(h, t) == 0) {
            const auto f = nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY);
            if (f == NFPROTO_IPV4 || f == NFPROTO_IPV6)
              names.push_back(
                  fmt::format("{} {}", f == NFPROTO_IPV4 ? "ip" : "ip6", nftnl_table_get_str(t, NFTNL_TABLE_NAME)));
          }
          nftnl_table_free(t);
          return MNL_CB_OK;
        },
        &interrupted);
    if (!st) return Error{st.error().message};
    tables_ = std::move(names);
  }
  const std::string name = fmt::format("{} {}", nft_family(family), table_name(table));
  return std::find(tables_->begin(), tables_->end(), name) != tables_->end();
}

Result<IptablesNftStore::RulesetRead> IptablesNftStore::read_tables(const std::vector<TableKey>& keys) {
  tables_.reset();
  auto index_of = [&](std::uint32_t family, const char* table) -> std::ptrdiff_t {
    auto t = table_of(table);
    if (!t) return -1;
    for (std::size_t k = 0; k < keys.size(); ++k)
      if (nfproto(keys[k].family) == family && keys[k].table == *t) return static_cast<std::ptrdiff_t>(k);
    return -1;
  };
  for (int attempt = 0; attempt < kRetryAttempts; ++attempt) {
    if (attempt > 0) back_off(attempt - 1);  // another writer is busy: let it finish
    auto gen = socket_->generation();
    if (!gen) return Error{gen.error().message};
    bool interrupted = false;
    RulesetRead out;
    out.generation = gen.value();
    out.tables.resize(keys.size());
    // Per table: the kernel's chains in dump order, and each chain's rules with their handles.
    struct Read {
      std::vector<std::string> chains;
      std::map<std::string, std::tuple<std::string, std::uint64_t, std::uint64_t>> policies;  // base chains
      std::map<std::string, std::vector<std::pair<InstalledRule, std::uint64_t>>> rules;
    };
    std::vector<Read> reads(keys.size());
    auto st = socket_->dump(
        NFT_MSG_GETTABLE, NFPROTO_UNSPEC,
        [&](const nlmsghdr* h) {
          nftnl_table* t = nftnl_table_alloc();
          if (nftnl_table_nlmsg_parse(h, t) == 0) {
            auto k = index_of(nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY), nftnl_table_get_str(t, NFTNL_TABLE_NAME));
            if (k >= 0) out.tables[static_cast<std::size_t>(k)].exists = true;
          }
          nftnl_table_free(t);
          return MNL_CB_OK;
        },
        &interrupted);
    if (!st) return Error{st.error().message};
    // Chains and rules are dumped only for the families whose tables we read: the kernel filters a
    // dump by family, and a namespace's other tables (native nftables ones, ours of the native
    // mode among them) are neither sent nor decoded. No table of ours, nothing more to read.
    std::vector<std::uint16_t> families;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const std::uint16_t f = nfproto(keys[k].family);
      if (out.tables[k].exists && std::find(families.begin(), families.end(), f) == families.end())
        families.push_back(f);
    }
    for (const std::uint16_t dump_family : families) {
      st = socket_->dump(
          NFT_MSG_GETCHAIN, dump_family,
          [&](const nlmsghdr* h) {
            nftnl_chain* c = nftnl_chain_alloc();
            if (nftnl_chain_nlmsg_parse(h, c) == 0) {
              auto k = index_of(nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY), nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE));
              if (k >= 0) {
                Read& rd = reads[static_cast<std::size_t>(k)];
                rd.chains.emplace_back(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
                if (nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY))
                  rd.policies[rd.chains.back()] = {
                      nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) == NF_DROP ? "DROP" : "ACCEPT",
                      nftnl_chain_is_set(c, NFTNL_CHAIN_PACKETS) ? nftnl_chain_get_u64(c, NFTNL_CHAIN_PACKETS) : 0,
                      nftnl_chain_is_set(c, NFTNL_CHAIN_BYTES) ? nftnl_chain_get_u64(c, NFTNL_CHAIN_BYTES) : 0};
              }
            }
            nftnl_chain_free(c);
            return MNL_CB_OK;
          },
          &interrupted);
      if (!st) return Error{st.error().message};
      st = socket_->dump(
          NFT_MSG_GETRULE, dump_family,
          [&](const nlmsghdr* h) {
            RulePtr r(nftnl_rule_alloc());
            if (nftnl_rule_nlmsg_parse(h, r.get()) < 0) return MNL_CB_ERROR;
            const auto family = nftnl_rule_get_u32(r.get(), NFTNL_RULE_FAMILY);
            auto k = index_of(family, nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE));
            if (k < 0) return MNL_CB_OK;
            const Family f = family == NFPROTO_IPV4 ? Family::V4 : Family::V6;
            const std::string chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
            const std::uint64_t handle = nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE);
            InstalledRule ir;
            ir.blob = fmt::format("{} {} {} handle {}", nft_family(f),
                                  table_name(keys[static_cast<std::size_t>(k)].table), chain, handle);
            ir.identity = nft_rule_identity(r.get());
            ir.rule = decode_nft_rule(f, r.get());
            reads[static_cast<std::size_t>(k)].rules[chain].emplace_back(std::move(ir), handle);
            return MNL_CB_OK;
          },
          &interrupted);
      if (!st) return Error{st.error().message};
    }
    auto after = socket_->generation();
    if (!after) return Error{after.error().message};
    if (interrupted || after.value() != out.generation) continue;  // torn: read again

    for (std::size_t k = 0; k < keys.size(); ++k) {
      TableRead& tr = out.tables[k];
      Read& rd = reads[k];
      tr.snapshot.table = keys[k].table;
      tr.chains.insert(rd.chains.begin(), rd.chains.end());
      std::vector<std::string> order;
      for (const auto& name : builtin_chains(keys[k].table)) order.push_back(name);
      for (const auto& name : rd.chains)
        if (std::find(order.begin(), order.end(), name) == order.end()) order.push_back(name);
      tr.snapshot.chains.reserve(order.size());
      for (const auto& name : order) {
        InstalledChain c;
        c.name = name;
        c.builtin = is_builtin_chain(name) && base_chain(keys[k].table, name).has_value();
        if (auto p = rd.policies.find(name); p != rd.policies.end()) std::tie(c.policy, c.packets, c.bytes) = p->second;
        for (auto& [rule, handle] : rd.rules[name]) c.rules.push_back(std::move(rule));
        tr.snapshot.chains.push_back(std::move(c));
      }
      // Handles by blob address: the snapshot is in its final place now.
      for (const auto& c : tr.snapshot.chains) {
        const auto& rules = rd.rules[c.name];
        for (std::size_t i = 0; i < c.rules.size(); ++i) tr.handles.emplace(&c.rules[i].blob, rules[i].second);
      }
    }
    return out;
  }
  return Error{fmt::format(
      "cannot read nf_tables: the ruleset kept changing while it was read ({} attempts, about 3 s)", kRetryAttempts)};
}

Result<Snapshot> IptablesNftStore::read(Family family, Table table) {
  auto read = read_tables({TableKey{family, table}});
  if (!read) return Error{read.error().message};
  return std::move(read.value().tables[0].snapshot);
}

Result<bool>
IptablesNftStore::transact(Family family, Table table,
                           const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) {
  auto done = transact_all({TableKey{family, table}}, [&](std::size_t, const Snapshot& s) { return decide(s); });
  if (!done) return Error{done.error().message};
  return static_cast<bool>(done.value()[0]);
}

namespace {

// The messages of one table's write; see the essay at the top.
Status add_messages(NfTablesBatch& batch, const TableKey& key, const IptablesNftStore::TableRead& tr,
                    const TableWrite& write, std::uint32_t& next_id) {
  const std::uint16_t family = nfproto(key.family);
  const char* table = table_name(key.table);
  const std::string where = fmt::format("{} {}", nft_family(key.family), table);
  struct ChainPlan {
    const TableWrite::Chain* chain;
    std::vector<std::uint64_t> deletes;
    bool flush = false;
    bool any_kept = false;
  };
  std::vector<ChainPlan> plans;
  for (const auto& c : write.chains) {
    ChainPlan plan{&c, {}, false, false};
    const InstalledChain* now = tr.snapshot.find(c.name);
    std::unordered_map<const std::string*, std::size_t> position;  // blob -> index in the chain now
    if (now)
      for (std::size_t i = 0; i < now->rules.size(); ++i) position.emplace(&now->rules[i].blob, i);
    std::vector<char> kept(now ? now->rules.size() : 0, 0);
    std::size_t last = 0;
    for (const auto* blob : c.blobs) {
      auto it = position.find(blob);
      if (it == position.end()) {
        if (tr.handles.count(blob))
          return Error{fmt::format("cannot write {} {}: a rule of another chain would move into it", where, c.name)};
        continue;
      }
      if (plan.any_kept && it->second < last)
        return Error{fmt::format("cannot write {} {}: the rules it keeps would change their order", where, c.name)};
      last = it->second;
      kept[it->second] = 1;
      plan.any_kept = true;
    }
    for (std::size_t i = 0; now && i < now->rules.size(); ++i)
      if (!kept[i]) plan.deletes.push_back(tr.handles.at(&now->rules[i].blob));
    plan.flush = !plan.any_kept && !plan.deletes.empty();
    plans.push_back(std::move(plan));
  }
  auto delrule = [&](const std::string& chain, std::optional<std::uint64_t> handle) {
    nlmsghdr* nlh = batch.message(NFT_MSG_DELRULE, family, 0,
                                  handle ? fmt::format("delete rule {} {} handle {}", where, chain, *handle)
                                         : fmt::format("flush chain {} {}", where, chain));
    mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table);
    mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain.c_str());
    if (handle) mnl_attr_put_u64(nlh, NFTA_RULE_HANDLE, htobe64(*handle));
    batch.end_message();
  };
  // Deletions first: rules by handle, flushes of chains none of whose rules stay, then chains.
  for (const auto& p : plans)
    if (!p.flush)
      for (auto h : p.deletes) delrule(p.chain->name, h);
  for (const auto& p : plans)
    if (p.flush) delrule(p.chain->name, std::nullopt);
  for (const auto& name : write.delete_chains)  // every jump into a deleted chain goes first
    if (const InstalledChain* now = tr.snapshot.find(name); now && !now->rules.empty()) delrule(name, std::nullopt);
  for (const auto& name : write.delete_chains) {
    nlmsghdr* nlh = batch.message(NFT_MSG_DELCHAIN, family, 0, fmt::format("delete chain {} {}", where, name));
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, table);
    mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, name.c_str());
    batch.end_message();
  }
  // Then what is new: the table, our user chains (NLM_F_EXCL, as iptables' -N), and per chain
  // its base chain when missing, then its rules.
  bool table_made = tr.exists;
  auto make_table = [&] {
    if (table_made) return;
    nlmsghdr* nlh = batch.message(NFT_MSG_NEWTABLE, family, NLM_F_CREATE, fmt::format("add table {}", where));
    mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, table);
    batch.end_message();
    table_made = true;
  };
  for (const auto& p : plans) {
    const std::string& name = p.chain->name;
    if (tr.chains.count(name) || base_chain(key.table, name)) continue;
    make_table();
    nlmsghdr* nlh = batch.message(NFT_MSG_NEWCHAIN, family, NLM_F_EXCL, fmt::format("add chain {} {}", where, name));
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, table);
    mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, name.c_str());
    batch.end_message();
  }
  for (const auto& p : plans) {
    const std::string& name = p.chain->name;
    bool has_new = false;
    for (const auto* blob : p.chain->blobs) has_new = has_new || !tr.handles.count(blob);
    if (!has_new) continue;
    if (auto base = base_chain(key.table, name); base && !tr.chains.count(name)) {
      make_table();
      nftnl_chain* c = nftnl_chain_alloc();
      nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, family);
      nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
      nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, base->name);
      nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, base->hook);
      nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, base->priority);
      nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
      nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, base->type);
      nftnl_chain_nlmsg_build_payload(batch.message(NFT_MSG_NEWCHAIN, family, NLM_F_CREATE,
                                                    fmt::format("add chain {} {} {{ type {} hook {} priority {}; }}",
                                                                where, name, base->type, base->hook, base->priority)),
                                      c);
      batch.end_message();
      nftnl_chain_free(c);
    }
    // Each new rule goes after the rule before it: a kept one by handle, a new one by its batch id.
    std::uint64_t after_handle = 0;  // handles and batch ids start at 1: 0 is "none"
    std::uint32_t after_id = 0;
    for (const auto* blob : p.chain->blobs) {
      if (auto h = tr.handles.find(blob); h != tr.handles.end()) {
        after_handle = h->second;
        after_id = 0;
        continue;
      }
      const std::size_t text_end = blob->find('\0');
      if (text_end == std::string::npos)
        return Error{fmt::format("cannot write {} {}: a rule was not encoded for nf_tables", where, name)};
      const std::uint32_t id = ++next_id;
      std::uint16_t flags = NLM_F_CREATE;
      if (!p.any_kept || after_handle != 0 || after_id != 0) flags |= NLM_F_APPEND;  // else: at the head
      nlmsghdr* nlh = batch.message(NFT_MSG_NEWRULE, family, flags,
                                    fmt::format("add rule {} {} {}", where, name, blob->substr(0, text_end)));
      mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table);
      mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, name.c_str());
      if (p.any_kept) {
        if (after_handle != 0) mnl_attr_put_u64(nlh, NFTA_RULE_POSITION, htobe64(after_handle));
        if (after_id != 0) mnl_attr_put_u32(nlh, NFTA_RULE_POSITION_ID, htonl(after_id));
        mnl_attr_put_u32(nlh, NFTA_RULE_ID, htonl(id));
      }
      append_attributes(nlh, blob->substr(text_end + 1));
      batch.end_message();
      after_handle = 0;
      after_id = id;
    }
  }
  return ok_status();
}

}  // namespace

Result<std::vector<bool>> IptablesNftStore::transact_all(const std::vector<TableKey>& tables,
                                                         const TableDecision& decide) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    auto read = read_tables(tables);
    if (!read) return Error{read.error().message};
    std::vector<std::optional<TableWrite>> writes(tables.size());
    for (std::size_t i = 0; i < tables.size(); ++i) {
      auto w = decide(i, read.value().tables[i].snapshot);
      if (!w) return Error{w.error().message};
      writes[i] = std::move(w).value();
    }
    std::vector<bool> written(tables.size(), false);
    NfTablesBatch batch(*socket_, read.value().generation);
    std::uint32_t next_id = 0;
    for (std::size_t i = 0; i < tables.size(); ++i) {
      if (!writes[i]) continue;
      const std::size_t before = batch.messages();
      if (auto st = add_messages(batch, tables[i], read.value().tables[i], *writes[i], next_id); !st)
        return Error{st.error().message + "; nothing was changed"};
      written[i] = batch.messages() > before;
    }
    if (batch.messages() == 0) return written;  // nothing to change: nothing is sent
    auto sent = batch.send();
    if (!sent) return Error{sent.error().message};
    if (!sent.value().failures.empty()) {
      std::vector<std::string> refused;
      for (const auto& f : sent.value().failures) refused.push_back(f.text());
      return Error{
          fmt::format("cannot commit the nf_tables transaction: {}; nothing was changed", fmt::join(refused, "; "))};
    }
    if (sent.value().restart) {  // another writer committed since our read: read, decide, send again
      ++retries_;
      continue;
    }
    ++commits_;
    return written;
  }
  return Error{fmt::format(
      "cannot commit the nf_tables transaction: the ruleset changed under every one of {} attempts; nothing was "
      "changed",
      kMaxAttempts)};
}

}  // namespace istio_iptables
