// The nf_tables store: Istio's nftables model as libnftnl expressions, one netlink batch per
// transaction, and our tables read back into fingerprints.
//
// Encoding. Every statement becomes the expressions `nft -f` emits for Istio's text (compared
// with `nft --debug=netlink -f` on nft 1.0.6): `meta l4proto` is a meta load and a one-byte
// compare, and a `tcp|udp dport` match adds that same dependency only when no earlier
// `meta l4proto` of the rule established the protocol; an `ip|ip6` match is preceded by a
// `meta nfproto` dependency (inet tables see both families); a prefix loads only its bytes when
// its length is a multiple of eight and otherwise the whole address through a bitwise mask; an
// anonymous port set is a NEWSET (flags anonymous|constant, key inet_service) plus NEWSETELEM in
// the same batch, referenced by the lookup through its batch id; negated ct state is a plain
// `cmp neq`, a positive one a mask test. Group and user names are resolved here, where nft
// resolves them when it parses the script, but from /etc/group and /etc/passwd read directly.
// The encoder is written once over two sinks: a commit writes the netlink attributes directly
// (AttrSink), the bytes libnftnl would write, held equal to them by a unit test over every rule
// of the conformance cases; a fingerprint builds libnftnl's expression objects (NftnlSink) to
// print them with the printer the kernel's rules go through.
//
// Reading. Tables, chains, rules and sets of family inet are dumped between two GETGEN
// requests; if the generation moved, the view may be torn and is read again (with no table of
// ours there is one dump only, a view of one moment, and no second GETGEN). A rule's
// fingerprint is libnftnl's own printing of each expression, the same printer for what we
// would send and what the kernel returns, with counters' values left out and a lookup replaced
// by the sorted elements of its set (anonymous set names are chosen by the kernel). A rule is
// decoded back into our model for messages; the decoding is trusted only when encoding it again
// gives the same fingerprint.
//
// Committing. BATCH_BEGIN carries NFNL_BATCH_GENID = the generation of the read; the kernel
// checks it under its commit mutex and refuses the whole batch with ERESTART when it moved on.
// No message asks for an ack: the kernel runs the batch inside sendmsg() and queues an error
// only for messages that failed, which we drain without blocking and map back to the operation.
// The socket, the dumps and the batch are nf_tables_batch.h's, shared with the iptables-nft store.
#include "system/nft_netlink_store.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <functional>
#include <set>
#include <utility>
#include <vector>

#include "core/nft_script.h"
#include "system/back_off.h"
#include "system/host_facts.h"

namespace istio_iptables::nft {
namespace {

constexpr const char* kOurPrefix = "istio-proxy-";
constexpr std::uint32_t kInetServiceType = 13;  // nft's TYPE_INET_SERVICE
constexpr unsigned kIfNameSize = 16;

// ---- small RAII helpers ---------------------------------------------------------------------------

struct RuleDeleter {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct SetDeleter {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct ChainDeleter {
  void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct TableDeleter {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
using RulePtr = std::unique_ptr<nftnl_rule, RuleDeleter>;
using SetPtr = std::unique_ptr<nftnl_set, SetDeleter>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainDeleter>;
using TablePtr = std::unique_ptr<nftnl_table, TableDeleter>;

bool has_our_prefix(const char* name) { return name && std::strncmp(name, kOurPrefix, std::strlen(kOurPrefix)) == 0; }

// ---- encoding -----------------------------------------------------------------------------------

/// An anonymous set a rule needs, sent before the rule in the same batch.
struct AnonymousSet {
  std::uint32_t id;
  TransportHeader header;
  std::vector<std::uint16_t> ports;  // distinct, in the order written
};

/// A rule of ours as expressions, and the anonymous sets it refers to.
struct EncodedRule {
  RulePtr rule;
  std::vector<AnonymousSet> sets;
};

// Two ways to write the same expressions. NftnlSink makes libnftnl expression objects in an
// nftnl_rule: the fingerprint of a planned rule is libnftnl's printing of them, the printer the
// kernel's rules go through. AttrSink writes the netlink attributes themselves, the bytes
// nftnl_rule_nlmsg_build_payload would write for those objects (a unit test holds every rule
// of the conformance cases to that), without allocating, filling, looking up by name and
// freeing an object per expression: a commit's encoding is a quarter of what it was.

class NftnlSink : protected ExprBuilder {
 public:
  explicit NftnlSink(nftnl_rule* rule) : ExprBuilder(rule) {}

 protected:
  using ExprBuilder::bitwise;
  using ExprBuilder::cmp;
  using ExprBuilder::meta_load;
  using ExprBuilder::payload;
  void meta_store(std::uint32_t key) { set("meta", {{NFTNL_EXPR_META_KEY, key}, {NFTNL_EXPR_META_SREG, NFT_REG_1}}); }
  void ct_load(std::uint32_t key) { set("ct", {{NFTNL_EXPR_CT_KEY, key}, {NFTNL_EXPR_CT_DREG, NFT_REG_1}}); }
  void ct_store(std::uint32_t key) { set("ct", {{NFTNL_EXPR_CT_KEY, key}, {NFTNL_EXPR_CT_SREG, NFT_REG_1}}); }
  void immediate_data(const void* data, std::uint32_t len) {
    nftnl_expr_set(set("immediate", {{NFTNL_EXPR_IMM_DREG, NFT_REG_1}}), NFTNL_EXPR_IMM_DATA, data, len);
  }
  void verdict(int code, const std::string* chain) {
    nftnl_expr* e = set("immediate", {{NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT},
                                      {NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(code)}});
    if (chain) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain->c_str());
  }
  void lookup(std::uint32_t set_id, bool negated) {
    nftnl_expr* e = set("lookup", {{NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1}, {NFTNL_EXPR_LOOKUP_SET_ID, set_id}});
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, "__set%d");
    if (negated) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  }
  void counter() { add("counter"); }
  void redirect() {
    set("redir", {{NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1}, {NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED}});
  }
  void tproxy(std::uint32_t nfproto) {
    set("tproxy", {{NFTNL_EXPR_TPROXY_FAMILY, nfproto}, {NFTNL_EXPR_TPROXY_REG_PORT, NFT_REG_1}});
  }

 private:
  // A new expression of type `name` with these u32 attributes (libnftnl orders them itself).
  nftnl_expr* set(const char* name, std::initializer_list<std::pair<std::uint16_t, std::uint32_t>> attributes) {
    nftnl_expr* e = add(name);
    for (const auto& [attribute, value] : attributes) nftnl_expr_set_u32(e, attribute, value);
    return e;
  }
};

class AttrSink {
 public:
  // Well under the batch's overrun space (4 × MNL_SOCKET_BUFFER_SIZE, 16 KiB with 4 KiB pages):
  // a rule message, expressions plus its own headers and names, must fit in it wherever on its
  // page it starts (nf_tables_batch.cc). Our largest rule is about 1 KiB.
  static constexpr std::size_t kSize = 8192;
  /// Writes into `scratch`, kSize bytes, which it needs no particular content of.
  explicit AttrSink(std::vector<char>& scratch) : scratch_(scratch) { assert(scratch.size() == kSize); }
  /// Appends NFTA_RULE_EXPRESSIONS with every expression written to `nlh`; false if they did
  /// not fit in the scratch buffer (no rule of a plan comes near).
  bool put_expressions(nlmsghdr* nlh) const {
    if (overflow_) return false;
    nlattr* nest = mnl_attr_nest_start(nlh, NFTA_RULE_EXPRESSIONS);
    std::memcpy(mnl_nlmsg_get_payload_tail(nlh), scratch_.data(), used_);
    nlh->nlmsg_len += static_cast<std::uint32_t>(used_);
    mnl_attr_nest_end(nlh, nest);
    return true;
  }

 protected:
  void meta_load(std::uint32_t key) { expr("meta", {{NFTA_META_KEY, key}, {NFTA_META_DREG, NFT_REG_1}}); }
  void meta_store(std::uint32_t key) { expr("meta", {{NFTA_META_KEY, key}, {NFTA_META_SREG, NFT_REG_1}}); }
  void ct_load(std::uint32_t key) { expr("ct", {{NFTA_CT_KEY, key}, {NFTA_CT_DREG, NFT_REG_1}}); }
  void ct_store(std::uint32_t key) { expr("ct", {{NFTA_CT_KEY, key}, {NFTA_CT_SREG, NFT_REG_1}}); }
  void cmp(std::uint32_t op, const void* data, std::uint32_t len) {
    expr("cmp", {{NFTA_CMP_SREG, NFT_REG_1}, {NFTA_CMP_OP, op}}, [&] { value(NFTA_CMP_DATA, data, len); });
  }
  void payload(std::uint32_t base, std::uint32_t offset, std::uint32_t len) {
    expr("payload", {{NFTA_PAYLOAD_DREG, NFT_REG_1},
                     {NFTA_PAYLOAD_BASE, base},
                     {NFTA_PAYLOAD_OFFSET, offset},
                     {NFTA_PAYLOAD_LEN, len}});
  }
  void bitwise(const void* mask, const void* xor_value, std::uint32_t len) {
    expr("bitwise", {{NFTA_BITWISE_SREG, NFT_REG_1}, {NFTA_BITWISE_DREG, NFT_REG_1}, {NFTA_BITWISE_LEN, len}}, [&] {
      value(NFTA_BITWISE_MASK, mask, len);
      value(NFTA_BITWISE_XOR, xor_value, len);
    });
  }
  void immediate_data(const void* data, std::uint32_t len) {
    expr("immediate", {{NFTA_IMMEDIATE_DREG, NFT_REG_1}}, [&] { value(NFTA_IMMEDIATE_DATA, data, len); });
  }
  void verdict(int code, const std::string* chain) {
    expr("immediate", {{NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT}}, [&] {
      const std::size_t data = start(NFTA_IMMEDIATE_DATA);
      const std::size_t v = start(NFTA_DATA_VERDICT);
      u32(NFTA_VERDICT_CODE, static_cast<std::uint32_t>(code));
      if (chain) strz(NFTA_VERDICT_CHAIN, chain->c_str());
      end(v);
      end(data);
    });
  }
  void lookup(std::uint32_t set_id, bool negated) {
    expr("lookup", {{NFTA_LOOKUP_SREG, NFT_REG_1}}, [&] {
      strz(NFTA_LOOKUP_SET, "__set%d");
      u32(NFTA_LOOKUP_SET_ID, set_id);
      if (negated) u32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    });
  }
  void counter() { expr("counter", {}); }
  void redirect() {
    expr("redir", {{NFTA_REDIR_REG_PROTO_MIN, NFT_REG_1}, {NFTA_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED}});
  }
  void tproxy(std::uint32_t nfproto) {
    expr("tproxy", {{NFTA_TPROXY_FAMILY, nfproto}, {NFTA_TPROXY_REG_PORT, NFT_REG_1}});
  }

 private:
  struct U32 {
    std::uint16_t type;
    std::uint32_t value;
  };
  // An NFTA_LIST_ELEM: the name, then NFTA_EXPR_DATA with the u32 attributes in the order
  // given (libnftnl's order for each type), then what `more` writes.
  template <class More = void (*)()>
  void expr(
      const char* name, std::initializer_list<U32> attributes, const More& more = [] {}) {
    const std::size_t elem = start(NFTA_LIST_ELEM);
    strz(NFTA_EXPR_NAME, name);
    const std::size_t data = start(NFTA_EXPR_DATA);
    for (const auto& a : attributes) u32(a.type, a.value);
    more();
    end(data);
    end(elem);
  }
  // The attributes are written here rather than with libmnl's mnl_attr_put_check family, which
  // cost more than everything else of the encoding: a header (length, type), the payload, and
  // zero padding to four bytes, as the kernel's nla_put writes them.
  std::size_t start(std::uint16_t type) {
    const std::size_t at = used_;
    put(type | NLA_F_NESTED, nullptr, 0);
    return at;
  }
  void end(std::size_t at) {
    if (overflow_) return;
    const auto len = static_cast<std::uint16_t>(used_ - at);
    std::memcpy(scratch_.data() + at, &len, sizeof len);
  }
  void put(std::uint16_t type, const void* data, std::size_t len) {
    const std::size_t padded = (len + 3) & ~std::size_t{3};
    if (overflow_ || len > 0xffff - sizeof(nlattr) || used_ + sizeof(nlattr) + padded > kSize) {
      overflow_ = true;
      return;
    }
    const nlattr header{static_cast<std::uint16_t>(sizeof(nlattr) + len), type};
    char* out = scratch_.data() + used_;
    std::memcpy(out, &header, sizeof header);
    if (len > 0) std::memcpy(out + sizeof header, data, len);
    std::memset(out + sizeof header + len, 0, padded - len);
    used_ += sizeof header + padded;
  }
  void u32(std::uint16_t type, std::uint32_t value) {
    const std::uint32_t be = htonl(value);
    put(type, &be, sizeof be);
  }
  void strz(std::uint16_t type, const char* text) { put(type, text, std::strlen(text) + 1); }
  void value(std::uint16_t type, const void* data, std::uint32_t len) {
    const std::size_t nest = start(type);
    put(NFTA_DATA_VALUE, data, len);
    end(nest);
  }

  std::vector<char>& scratch_;
  std::size_t used_ = 0;
  bool overflow_ = false;
};

/// Our model's statements as nf_tables expressions, written to Sink (NftnlSink or AttrSink).
template <class Sink>
class Encoder : public Sink {
 public:
  template <class... SinkArgs>
  Encoder(std::vector<AnonymousSet>& sets, std::uint32_t& next_set_id,
          const std::function<Result<std::uint32_t>(const OwnerId&, bool)>& resolve, SinkArgs&&... sink)
      : Sink(std::forward<SinkArgs>(sink)...), sets_(sets), next_set_id_(next_set_id), resolve_(resolve) {}

  Status statement(const Statement& s) {
    return std::visit([&](const auto& v) { return encode(v); }, s);
  }

 private:
  void cmp(bool negated, const void* data, std::uint32_t len) {
    Sink::cmp(negated ? NFT_CMP_NEQ : NFT_CMP_EQ, data, len);
  }
  void l4proto(Protocol p) {
    const std::uint8_t proto = p == Protocol::Tcp ? IPPROTO_TCP : IPPROTO_UDP;
    this->meta_load(NFT_META_L4PROTO);
    cmp(false, &proto, 1);
    l4_ = p;
  }

  Status encode(const L4protoMatch& m) {
    l4proto(m.protocol);
    return ok_status();
  }
  Status encode(const AddressMatch& m) {
    const bool v4 = m.prefix.address.family == Family::V4;
    if (family_ != m.prefix.address.family) {
      const std::uint8_t nfproto = v4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
      this->meta_load(NFT_META_NFPROTO);
      cmp(false, &nfproto, 1);
      family_ = m.prefix.address.family;
    }
    const std::uint32_t full = v4 ? 4 : 16;
    const std::uint32_t offset =
        v4 ? (m.direction == Direction::Source ? 12 : 16) : (m.direction == Direction::Source ? 8 : 24);
    const unsigned bits = m.prefix.length;
    const std::uint8_t* addr = m.prefix.address.bytes.data();
    if (bits == full * 8) {
      this->payload(NFT_PAYLOAD_NETWORK_HEADER, offset, full);
      cmp(m.negated, addr, full);
    } else if (bits > 0 && bits % 8 == 0) {
      this->payload(NFT_PAYLOAD_NETWORK_HEADER, offset, bits / 8);
      cmp(m.negated, addr, bits / 8);
    } else {
      std::array<std::uint8_t, 16> mask{}, zero{}, masked{};
      for (unsigned i = 0; i < full; ++i) {
        const unsigned left = bits > i * 8 ? std::min(8U, bits - i * 8) : 0;
        mask[i] = static_cast<std::uint8_t>(left == 0 ? 0 : 0xff << (8 - left));
        masked[i] = static_cast<std::uint8_t>(addr[i] & mask[i]);
      }
      this->payload(NFT_PAYLOAD_NETWORK_HEADER, offset, full);
      this->bitwise(mask.data(), zero.data(), full);
      cmp(m.negated, masked.data(), full);
    }
    return ok_status();
  }
  Status encode(const InterfaceMatch& m) {
    if (m.name.empty() || m.name.size() >= kIfNameSize)
      return Error{"cannot encode interface name \"" + m.name + "\": it must have 1 to 15 characters"};
    std::array<char, kIfNameSize> name{};
    std::memcpy(name.data(), m.name.data(), m.name.size());
    this->meta_load(m.inbound ? NFT_META_IIFNAME : NFT_META_OIFNAME);
    cmp(m.negated, name.data(), kIfNameSize);
    return ok_status();
  }
  Status encode(const PortMatch& m) {
    if (m.header != TransportHeader::Th) {
      const Protocol p = m.header == TransportHeader::Tcp ? Protocol::Tcp : Protocol::Udp;
      if (l4_ != p) l4proto(p);
    }
    this->payload(NFT_PAYLOAD_TRANSPORT_HEADER, m.direction == Direction::Source ? 0 : 2, 2);
    if (m.ports.empty()) return Error{"cannot encode an empty port match"};
    if (!m.set) {
      const std::uint16_t port = htons(m.ports[0]);
      cmp(m.negated, &port, 2);
      return ok_status();
    }
    AnonymousSet set{next_set_id_++, m.header, {}};
    for (auto p : m.ports)
      if (std::find(set.ports.begin(), set.ports.end(), p) == set.ports.end()) set.ports.push_back(p);
    this->lookup(set.id, m.negated);
    sets_.push_back(std::move(set));
    return ok_status();
  }
  Status encode(const SocketOwnerMatch& m) {
    auto id = resolve_(m.id, m.group);
    if (!id) return id.error();
    const std::uint32_t value = id.value();
    this->meta_load(m.group ? NFT_META_SKGID : NFT_META_SKUID);
    cmp(m.negated, &value, 4);
    return ok_status();
  }
  Status encode(const CtStateMatch& m) {
    std::uint32_t bits = 0;
    for (auto s : m.states) bits |= static_cast<std::uint32_t>(s);
    this->ct_load(NFT_CT_STATE);
    if (m.negated) {
      cmp(true, &bits, 4);
    } else {
      const std::uint32_t zero = 0;
      this->bitwise(&bits, &zero, 4);
      cmp(true, &zero, 4);
    }
    return ok_status();
  }
  Status encode(const MarkMatch& m) {
    this->meta_load(NFT_META_MARK);
    cmp(m.negated, &m.mark, 4);
    return ok_status();
  }
  Status encode(const CtMarkMatch& m) {
    this->ct_load(NFT_CT_MARK);
    cmp(m.negated, &m.mark, 4);
    return ok_status();
  }
  Status encode(const CounterStatement&) {
    this->counter();
    return ok_status();
  }
  Status encode(const VerdictStatement& v) {
    int code = NF_ACCEPT;
    switch (v.kind) {
    case VerdictKind::Accept: code = NF_ACCEPT; break;
    case VerdictKind::Drop: code = NF_DROP; break;
    case VerdictKind::Return: code = NFT_RETURN; break;
    case VerdictKind::Jump: code = NFT_JUMP; break;
    case VerdictKind::Goto: code = NFT_GOTO; break;
    }
    this->verdict(code, v.kind == VerdictKind::Jump || v.kind == VerdictKind::Goto ? &v.chain : nullptr);
    return ok_status();
  }
  Status encode(const RedirectStatement& r) {
    const std::uint16_t port = htons(r.port);
    this->immediate_data(&port, 2);
    this->redirect();
    return ok_status();
  }
  Status encode(const TproxyStatement& t) {
    const std::uint16_t port = htons(t.port);
    this->immediate_data(&port, 2);
    this->tproxy(t.family == Family::V4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
    return ok_status();
  }
  Status encode(const MetaMarkSet& s) {
    if (s.source == MarkSource::ConnectionMark)
      this->ct_load(NFT_CT_MARK);
    else
      this->immediate_data(&s.value, 4);
    this->meta_store(NFT_META_MARK);
    return ok_status();
  }
  Status encode(const CtMarkSet& s) {
    if (s.source == MarkSource::PacketMark)
      this->meta_load(NFT_META_MARK);
    else
      this->immediate_data(&s.value, 4);
    this->ct_store(NFT_CT_MARK);
    return ok_status();
  }
  Status encode(const CtZoneSet& s) {
    this->immediate_data(&s.zone, 2);
    this->ct_store(NFT_CT_ZONE);
    return ok_status();
  }

  std::vector<AnonymousSet>& sets_;
  std::uint32_t& next_set_id_;
  const std::function<Result<std::uint32_t>(const OwnerId&, bool)>& resolve_;
  std::optional<Protocol> l4_;
  std::optional<Family> family_;
};

// NFT_MSG_NEWRULE's attributes after the header, in nftnl_rule_nlmsg_build_payload's order.
bool put_rule(nlmsghdr* nlh, const std::string& table, const std::string& chain, const AttrSink& expressions) {
  mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table.c_str());
  mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain.c_str());
  return expressions.put_expressions(nlh);
}

// ---- fingerprints -------------------------------------------------------------------------------

std::string hex(const void* data, std::size_t len) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  const auto* p = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < len; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

/// Set elements by the name the rule's lookup uses (kernel) or by batch id (ours).
using SetElements = std::function<std::string(const nftnl_expr* lookup)>;

std::string expr_fingerprint(const nftnl_expr* e, const SetElements& elements) {
  const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  if (std::strcmp(name, "counter") == 0) return "[ counter ]";
  if (std::strcmp(name, "lookup") == 0) {
    std::string out =
        "[ lookup reg " + std::to_string(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_SREG)) + " set {" + elements(e) + "}";
    if (nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS))
      out += " flags " + std::to_string(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS));
    return out + " ]";
  }
  if (std::strcmp(name, "redir") == 0) {
    // The kernel reports proto_max = proto_min when only the minimum was sent.
    std::string out = "[ redir";
    const bool has_min = nftnl_expr_is_set(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN);
    const std::uint32_t min = has_min ? nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN) : 0;
    if (has_min) out += " proto_min reg " + std::to_string(min);
    if (nftnl_expr_is_set(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX) &&
        !(has_min && nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX) == min))
      out += " proto_max reg " + std::to_string(nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX));
    if (nftnl_expr_is_set(e, NFTNL_EXPR_REDIR_FLAGS))
      out += " flags " + std::to_string(nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_FLAGS));
    return out + " ]";
  }
  char buf[512];
  nftnl_expr_snprintf(buf, sizeof(buf), e, NFTNL_OUTPUT_DEFAULT, 0);
  return std::string("[ ") + name + " " + buf + " ]";
}

std::string rule_fingerprint(const nftnl_rule* r, const SetElements& elements) {
  std::string out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it)) out += expr_fingerprint(e, elements);
  nftnl_expr_iter_destroy(it);
  return out;
}

std::string elements_key(std::vector<std::string> elems) {
  std::sort(elems.begin(), elems.end());
  std::string out;
  for (const auto& x : elems) out += (out.empty() ? "" : ",") + x;
  return out;
}

// ---- decoding (for messages) ----------------------------------------------------------------------

std::uint32_t u32_data(const nftnl_expr* e, std::uint16_t attr, std::uint32_t* len) {
  std::uint32_t value = 0;
  const void* d = nftnl_expr_get(e, attr, len);
  if (d) std::memcpy(&value, d, std::min<std::uint32_t>(*len, 4));
  return value;
}

/// Decodes the expressions of a rule into statements, when they are a shape we write.
std::optional<Rule> decode_rule(const nftnl_rule* r, const std::map<std::string, std::vector<std::uint16_t>>& sets) {
  std::vector<const nftnl_expr*> ex;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it)) ex.push_back(e);
  nftnl_expr_iter_destroy(it);
  auto is = [&](std::size_t i, const char* n) {
    return i < ex.size() && std::strcmp(nftnl_expr_get_str(ex[i], NFTNL_EXPR_NAME), n) == 0;
  };
  auto key = [&](std::size_t i, std::uint16_t attr) { return nftnl_expr_get_u32(ex[i], attr); };
  auto negated = [&](std::size_t i) { return key(i, NFTNL_EXPR_CMP_OP) == NFT_CMP_NEQ; };
  Rule rule;
  std::optional<Protocol> l4;
  std::optional<Family> family;
  for (std::size_t i = 0; i < ex.size();) {
    std::uint32_t len = 0;
    if (is(i, "meta") && nftnl_expr_is_set(ex[i], NFTNL_EXPR_META_DREG) && is(i + 1, "cmp")) {
      const std::uint32_t k = key(i, NFTNL_EXPR_META_KEY);
      const std::uint32_t v = u32_data(ex[i + 1], NFTNL_EXPR_CMP_DATA, &len);
      const bool neg = negated(i + 1);
      if (k == NFT_META_L4PROTO && !neg && (v == IPPROTO_TCP || v == IPPROTO_UDP)) {
        l4 = v == IPPROTO_TCP ? Protocol::Tcp : Protocol::Udp;
        rule.statements.push_back(L4protoMatch{*l4});
      } else if (k == NFT_META_NFPROTO && !neg && (v == NFPROTO_IPV4 || v == NFPROTO_IPV6)) {
        family = v == NFPROTO_IPV4 ? Family::V4 : Family::V6;
      } else if (k == NFT_META_IIFNAME || k == NFT_META_OIFNAME) {
        const char* d = static_cast<const char*>(nftnl_expr_get(ex[i + 1], NFTNL_EXPR_CMP_DATA, &len));
        rule.statements.push_back(InterfaceMatch{k == NFT_META_IIFNAME, std::string(d, strnlen(d, len)), neg});
      } else if (k == NFT_META_SKUID || k == NFT_META_SKGID) {
        rule.statements.push_back(SocketOwnerMatch{k == NFT_META_SKGID, OwnerId{v, ""}, neg, false});
      } else if (k == NFT_META_MARK) {
        rule.statements.push_back(MarkMatch{v, neg});
      } else {
        return std::nullopt;
      }
      i += 2;
    } else if (is(i, "payload")) {
      const std::uint32_t base = key(i, NFTNL_EXPR_PAYLOAD_BASE), off = key(i, NFTNL_EXPR_PAYLOAD_OFFSET);
      const std::uint32_t plen = key(i, NFTNL_EXPR_PAYLOAD_LEN);
      if (base == NFT_PAYLOAD_TRANSPORT_HEADER && plen == 2 && (off == 0 || off == 2)) {
        const Direction dir = off == 0 ? Direction::Source : Direction::Destination;
        const TransportHeader h =
            !l4 ? TransportHeader::Th : (*l4 == Protocol::Tcp ? TransportHeader::Tcp : TransportHeader::Udp);
        if (is(i + 1, "cmp")) {
          const std::uint32_t v = u32_data(ex[i + 1], NFTNL_EXPR_CMP_DATA, &len);
          rule.statements.push_back(PortMatch{h, dir, {ntohs(static_cast<std::uint16_t>(v))}, false, negated(i + 1)});
        } else if (is(i + 1, "lookup")) {
          auto s = sets.find(nftnl_expr_get_str(ex[i + 1], NFTNL_EXPR_LOOKUP_SET));
          if (s == sets.end()) return std::nullopt;
          const bool neg = nftnl_expr_is_set(ex[i + 1], NFTNL_EXPR_LOOKUP_FLAGS) &&
                           (key(i + 1, NFTNL_EXPR_LOOKUP_FLAGS) & NFT_LOOKUP_F_INV);
          rule.statements.push_back(PortMatch{h, dir, s->second, true, neg});
        } else {
          return std::nullopt;
        }
        i += 2;
      } else if (base == NFT_PAYLOAD_NETWORK_HEADER && family) {
        const bool v4 = *family == Family::V4;
        const std::uint32_t full = v4 ? 4 : 16;
        Direction dir;
        if (off == (v4 ? 12U : 8U))
          dir = Direction::Source;
        else if (off == (v4 ? 16U : 24U))
          dir = Direction::Destination;
        else
          return std::nullopt;
        Prefix prefix;
        prefix.address.family = *family;
        std::size_t c = i + 1;
        unsigned bits = plen * 8;
        if (is(c, "bitwise")) {
          const auto* mask = static_cast<const std::uint8_t*>(nftnl_expr_get(ex[c], NFTNL_EXPR_BITWISE_MASK, &len));
          bits = 0;
          for (std::uint32_t b = 0; b < len; ++b) bits += static_cast<unsigned>(__builtin_popcount(mask[b]));
          ++c;
        }
        if (!is(c, "cmp") || plen > full) return std::nullopt;
        const void* d = nftnl_expr_get(ex[c], NFTNL_EXPR_CMP_DATA, &len);
        std::memcpy(prefix.address.bytes.data(), d, std::min<std::uint32_t>(len, full));
        prefix.length = bits;
        rule.statements.push_back(AddressMatch{dir, prefix, negated(c)});
        i = c + 1;
      } else {
        return std::nullopt;
      }
    } else if (is(i, "ct") && nftnl_expr_is_set(ex[i], NFTNL_EXPR_CT_DREG)) {
      const std::uint32_t k = key(i, NFTNL_EXPR_CT_KEY);
      if (k == NFT_CT_STATE) {
        std::uint32_t bits = 0;
        bool neg = true;
        if (is(i + 1, "bitwise") && is(i + 2, "cmp")) {
          bits = u32_data(ex[i + 1], NFTNL_EXPR_BITWISE_MASK, &len);
          neg = !negated(i + 2);
          i += 3;
        } else if (is(i + 1, "cmp") && negated(i + 1)) {
          bits = u32_data(ex[i + 1], NFTNL_EXPR_CMP_DATA, &len);
          i += 2;
        } else {
          return std::nullopt;
        }
        CtStateMatch m{{}, neg};
        for (auto s :
             {ConntrackState::Invalid, ConntrackState::Established, ConntrackState::Related, ConntrackState::New})
          if (bits & static_cast<std::uint32_t>(s)) m.states.push_back(s);
        rule.statements.push_back(m);
      } else if (k == NFT_CT_MARK && is(i + 1, "cmp")) {
        rule.statements.push_back(CtMarkMatch{u32_data(ex[i + 1], NFTNL_EXPR_CMP_DATA, &len), negated(i + 1)});
        i += 2;
      } else if (k == NFT_CT_MARK && is(i + 1, "meta") && nftnl_expr_is_set(ex[i + 1], NFTNL_EXPR_META_SREG)) {
        rule.statements.push_back(MetaMarkSet{MarkSource::ConnectionMark, 0});
        i += 2;
      } else {
        return std::nullopt;
      }
    } else if (is(i, "meta") && key(i, NFTNL_EXPR_META_KEY) == NFT_META_MARK && is(i + 1, "ct")) {
      rule.statements.push_back(CtMarkSet{MarkSource::PacketMark, 0});
      i += 2;
    } else if (is(i, "counter")) {
      rule.statements.push_back(CounterStatement{});
      ++i;
    } else if (is(i, "immediate") && key(i, NFTNL_EXPR_IMM_DREG) == NFT_REG_VERDICT) {
      const auto code = static_cast<int>(key(i, NFTNL_EXPR_IMM_VERDICT));
      VerdictStatement v{VerdictKind::Accept, ""};
      if (code == NF_DROP)
        v.kind = VerdictKind::Drop;
      else if (code == NFT_RETURN)
        v.kind = VerdictKind::Return;
      else if (code == NFT_JUMP || code == NFT_GOTO) {
        v.kind = code == NFT_JUMP ? VerdictKind::Jump : VerdictKind::Goto;
        v.chain = nftnl_expr_get_str(ex[i], NFTNL_EXPR_IMM_CHAIN);
      } else if (code != NF_ACCEPT)
        return std::nullopt;
      rule.statements.push_back(v);
      ++i;
    } else if (is(i, "immediate") && i + 1 < ex.size()) {
      const std::uint32_t v = u32_data(ex[i], NFTNL_EXPR_IMM_DATA, &len);
      const auto port = ntohs(static_cast<std::uint16_t>(v));
      if (is(i + 1, "redir")) {
        rule.statements.push_back(RedirectStatement{port});
      } else if (is(i + 1, "tproxy")) {
        const auto f = key(i + 1, NFTNL_EXPR_TPROXY_FAMILY);
        rule.statements.push_back(TproxyStatement{f == NFPROTO_IPV6 ? Family::V6 : Family::V4, port});
      } else if (is(i + 1, "meta") && key(i + 1, NFTNL_EXPR_META_KEY) == NFT_META_MARK) {
        rule.statements.push_back(MetaMarkSet{MarkSource::Value, v});
      } else if (is(i + 1, "ct") && key(i + 1, NFTNL_EXPR_CT_KEY) == NFT_CT_MARK) {
        rule.statements.push_back(CtMarkSet{MarkSource::Value, v});
      } else if (is(i + 1, "ct") && key(i + 1, NFTNL_EXPR_CT_KEY) == NFT_CT_ZONE) {
        rule.statements.push_back(CtZoneSet{static_cast<std::uint16_t>(v)});
      } else {
        return std::nullopt;
      }
      i += 2;
    } else {
      return std::nullopt;
    }
  }
  return rule;
}

/// The modules a rule's statements need, for an error message.
std::string modules_for(const Rule& rule) {
  std::set<std::string> mods;
  for (const auto& s : rule.statements) {
    if (std::holds_alternative<TproxyStatement>(s)) mods.insert("nft_tproxy");
    if (std::holds_alternative<RedirectStatement>(s)) mods.insert("nft_redir");
    if (std::holds_alternative<CtStateMatch>(s) || std::holds_alternative<CtMarkMatch>(s) ||
        std::holds_alternative<CtMarkSet>(s) || std::holds_alternative<CtZoneSet>(s) ||
        (std::holds_alternative<MetaMarkSet>(s) && std::get<MetaMarkSet>(s).source == MarkSource::ConnectionMark))
      mods.insert("nft_ct");
    if (const auto* p = std::get_if<PortMatch>(&s); p && p->set) mods.insert("nft_set_hash/nft_set_rbtree");
    if (std::holds_alternative<SocketOwnerMatch>(s)) mods.insert("nft_meta");
  }
  std::string out;
  for (const auto& m : mods) out += (out.empty() ? "" : ", ") + m;
  return out;
}

}  // namespace

Result<RuleEncodings> rule_encodings(const std::string& table, const std::string& chain, const Rule& rule,
                                     const std::function<Result<std::uint32_t>(const OwnerId&, bool)>& resolve) {
  RuleEncodings out;
  std::vector<char> buffer(65536);
  {
    std::vector<AnonymousSet> sets;
    std::uint32_t next_id = 1;
    // Dirty on purpose: a commit reuses one scratch for every rule, so nothing may depend on its
    // content (padding included).
    std::vector<char> scratch(AttrSink::kSize, '\x5a');
    Encoder<AttrSink> enc(sets, next_id, resolve, scratch);
    for (const auto& s : rule.statements)
      if (auto st = enc.statement(s); !st) return st.error();
    nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
    if (!put_rule(nlh, table, chain, enc)) return Error{"the rule's expressions are too long for one message"};
    out.ours.assign(buffer.data(), nlh->nlmsg_len);
  }
  {
    RulePtr r(nftnl_rule_alloc());
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
    std::vector<AnonymousSet> sets;
    std::uint32_t next_id = 1;
    Encoder<NftnlSink> enc(sets, next_id, resolve, r.get());
    for (const auto& s : rule.statements)
      if (auto st = enc.statement(s); !st) return st.error();
    std::fill(buffer.begin(), buffer.end(), 0);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
    out.libnftnl.assign(buffer.data(), nlh->nlmsg_len);
  }
  return out;
}

// ---- the store ------------------------------------------------------------------------------------

NetlinkStore::NetlinkStore(std::unique_ptr<NfTablesSocket> socket) : socket_(std::move(socket)) {}

Result<std::unique_ptr<NetlinkStore>> NetlinkStore::open() {
  auto socket = NfTablesSocket::open();
  if (!socket) return Error{socket.error().message};
  return std::unique_ptr<NetlinkStore>(new NetlinkStore(std::move(socket).value()));
}

Result<std::string> NetlinkStore::fingerprint(const std::string& table, const Rule& rule) {
  RulePtr r(nftnl_rule_alloc());
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
  std::vector<AnonymousSet> sets;
  std::uint32_t next_id = 1;
  std::function<Result<std::uint32_t>(const OwnerId&, bool)> resolve = [this](const OwnerId& id, bool group) {
    return resolve_owner(id, group);
  };
  Encoder<NftnlSink> enc(sets, next_id, resolve, r.get());
  for (const auto& s : rule.statements)
    if (auto st = enc.statement(s); !st) return st.error();
  return rule_fingerprint(r.get(), [&](const nftnl_expr* lookup) {
    const std::uint32_t id = nftnl_expr_get_u32(lookup, NFTNL_EXPR_LOOKUP_SET_ID);
    std::vector<std::string> elems;
    for (const auto& s : sets)
      if (s.id == id)
        for (auto p : s.ports) {
          const std::uint16_t be = htons(p);
          elems.push_back(hex(&be, 2));
        }
    return elements_key(elems);
  });
}

Result<std::uint32_t> NetlinkStore::resolve_owner(const OwnerId& id, bool group) {
  if (id.number) return *id.number;
  const std::string k = (group ? "g:" : "u:") + id.name;
  if (auto f = names_.find(k); f != names_.end()) return f->second;
  // The files themselves, never NSS (no name-service lookup from an init container or a CNI
  // plugin): the same readers as the iptables modes use.
  auto found = group ? groups_.lookup(id.name) : HostFacts().user_id(id.name);
  if (!found) return Error{found.error().message};
  if (!found.value())
    return Error{"cannot resolve " + std::string(group ? "group" : "user") + " \"" + id.name + "\": no such " +
                 (group ? "group" : "user")};
  names_[k] = *found.value();
  return *found.value();
}

Result<InstalledState> NetlinkStore::read() {
  for (int attempt = 0; attempt < kRetryAttempts; ++attempt) {
    if (attempt > 0) back_off(attempt - 1);  // another writer is busy: let it finish
    bool consistent = true;
    auto state = read_once(&consistent);
    if (!state || consistent) return state;
  }
  return Error{"cannot read nf_tables: the ruleset kept changing while it was read (" + std::to_string(kRetryAttempts) +
               " attempts, about 3 s)"};
}

Result<InstalledState> NetlinkStore::read_once(bool* consistent) {
  bool interrupted = false;
  auto getgen = [&](std::uint32_t* out) -> Status {
    auto gen = socket_->generation();
    if (!gen) return gen.error();
    *out = gen.value();
    return ok_status();
  };
  auto dump = [&](std::uint16_t type, const char*, const std::function<int(const nlmsghdr*)>& cb,
                  const std::function<void(nlmsghdr*)>& payload = nullptr) -> Status {
    return socket_->dump(type, NFPROTO_INET, cb, &interrupted, payload);
  };

  InstalledState state;
  std::uint32_t gen_after = 0;
  if (auto st = getgen(&state.generation); !st) return st.error();

  std::vector<std::string> tables;
  std::map<std::string, std::string> table_unexpected;
  // Tables of every family: ours are inet ones; whether any ip or ip6 table exists tells a
  // native apply whether iptables-nft rules of ours can exist at all (InstalledState).
  state.xtables_tables = false;
  auto st = socket_->dump(
      NFT_MSG_GETTABLE, NFPROTO_UNSPEC,
      [&](const nlmsghdr* h) {
        TablePtr t(nftnl_table_alloc());
        if (nftnl_table_nlmsg_parse(h, t.get()) < 0) return MNL_CB_ERROR;
        const char* name = nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME);
        const std::uint32_t family = nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY);
        if (family == NFPROTO_IPV4 || family == NFPROTO_IPV6) state.xtables_tables = true;
        if (family == NFPROTO_INET && has_our_prefix(name)) {
          tables.emplace_back(name);
          const std::uint32_t flags = nftnl_table_get_u32(t.get(), NFTNL_TABLE_FLAGS);
          if (flags != 0) table_unexpected[name] = "table flags " + std::to_string(flags);
        }
        return MNL_CB_OK;
      },
      &interrupted);
  if (!st) return st.error();

  if (!tables.empty()) {
    // Chains (in creation order, as the dump gives them).
    std::map<std::string, std::vector<InstalledChain>> chains;
    st = dump(NFT_MSG_GETCHAIN, "NFT_MSG_GETCHAIN", [&](const nlmsghdr* h) {
      ChainPtr c(nftnl_chain_alloc());
      if (nftnl_chain_nlmsg_parse(h, c.get()) < 0) return MNL_CB_ERROR;
      const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE);
      if (!has_our_prefix(table)) return MNL_CB_OK;
      InstalledChain ic;
      ic.name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
      if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM)) {
        const std::uint32_t hook = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM);
        const char* type = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE);
        const auto prio = static_cast<int>(nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO));
        BaseChain base{ChainType::Filter, Hook::Prerouting, prio};
        const std::string t = type ? type : "";
        if (t == "nat")
          base.type = ChainType::Nat;
        else if (t == "route")
          base.type = ChainType::Route;
        else if (t != "filter")
          ic.unexpected = "chain type " + t;
        if (hook == NF_INET_LOCAL_OUT)
          base.hook = Hook::Output;
        else if (hook != NF_INET_PRE_ROUTING)
          ic.unexpected = "hook " + std::to_string(hook);
        if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY) &&
            nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY) != NF_ACCEPT)
          ic.unexpected = "policy drop";
        if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_DEV) || nftnl_chain_is_set(c.get(), NFTNL_CHAIN_DEVICES))
          ic.unexpected = "device";
        ic.base = base;
      }
      chains[table].push_back(std::move(ic));
      return MNL_CB_OK;
    });
    if (!st) return st.error();

    // Sets and their elements: anonymous ones resolve lookups, named ones are unexpected.
    std::map<std::string, std::map<std::string, std::vector<std::uint16_t>>> set_ports;  // table -> set -> ports
    std::map<std::string, std::map<std::string, std::string>> set_keys;                  // table -> set -> elements
    std::vector<std::pair<std::string, std::string>> set_names;
    st = dump(NFT_MSG_GETSET, "NFT_MSG_GETSET", [&](const nlmsghdr* h) {
      SetPtr s(nftnl_set_alloc());
      if (nftnl_set_nlmsg_parse(h, s.get()) < 0) return MNL_CB_ERROR;
      const char* table = nftnl_set_get_str(s.get(), NFTNL_SET_TABLE);
      if (!has_our_prefix(table)) return MNL_CB_OK;
      const char* name = nftnl_set_get_str(s.get(), NFTNL_SET_NAME);
      if (!(nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS) & NFT_SET_ANONYMOUS))
        table_unexpected[table] = std::string("named set ") + name;
      set_names.emplace_back(table, name);
      return MNL_CB_OK;
    });
    if (!st) return st.error();
    for (const auto& [table, name] : set_names) {
      SetPtr q(nftnl_set_alloc());
      nftnl_set_set_str(q.get(), NFTNL_SET_TABLE, table.c_str());
      nftnl_set_set_str(q.get(), NFTNL_SET_NAME, name.c_str());
      nftnl_set_set_u32(q.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
      SetPtr s(nftnl_set_alloc());
      st = dump(
          NFT_MSG_GETSETELEM, "NFT_MSG_GETSETELEM",
          [&](const nlmsghdr* h) { return nftnl_set_elems_nlmsg_parse(h, s.get()) < 0 ? MNL_CB_ERROR : MNL_CB_OK; },
          [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, q.get()); });
      if (!st) return st.error();
      std::vector<std::string> elems;
      std::vector<std::uint16_t> ports;
      nftnl_set_elems_iter* it = nftnl_set_elems_iter_create(s.get());
      for (nftnl_set_elem* e = nftnl_set_elems_iter_next(it); e; e = nftnl_set_elems_iter_next(it)) {
        std::uint32_t len = 0;
        const void* k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
        elems.push_back(hex(k, len));
        std::uint16_t be = 0;
        if (len == 2) std::memcpy(&be, k, 2);
        ports.push_back(ntohs(be));
      }
      nftnl_set_elems_iter_destroy(it);
      std::sort(ports.begin(), ports.end());
      set_keys[table][name] = elements_key(elems);
      set_ports[table][name] = ports;
    }

    // Rules, in each chain's order.
    st = dump(NFT_MSG_GETRULE, "NFT_MSG_GETRULE", [&](const nlmsghdr* h) {
      RulePtr r(nftnl_rule_alloc());
      if (nftnl_rule_nlmsg_parse(h, r.get()) < 0) return MNL_CB_ERROR;
      const std::string table = nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE);
      if (!has_our_prefix(table.c_str())) return MNL_CB_OK;
      const std::string chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
      auto& cs = chains[table];
      auto c = std::find_if(cs.begin(), cs.end(), [&](const InstalledChain& x) { return x.name == chain; });
      if (c == cs.end()) return MNL_CB_OK;  // a chain created after the chain dump: GETGEN will tell
      InstalledRule ir;
      ir.handle = nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE);
      ir.fingerprint = rule_fingerprint(r.get(), [&](const nftnl_expr* lookup) {
        const char* set = nftnl_expr_get_str(lookup, NFTNL_EXPR_LOOKUP_SET);
        auto f = set_keys[table].find(set ? set : "");
        return f == set_keys[table].end() ? std::string("?") : f->second;
      });
      auto decoded = decode_rule(r.get(), set_ports[table]);
      if (decoded) {
        auto again = fingerprint(table, *decoded);
        if (again && again.value() == ir.fingerprint) ir.text = nft_rule_text(*decoded);
      }
      if (ir.text.empty()) ir.text = ir.fingerprint;
      c->rules.push_back(std::move(ir));
      return MNL_CB_OK;
    });
    if (!st) return st.error();

    for (const auto& name : tables) {
      InstalledTable t;
      t.name = name;
      if (auto u = table_unexpected.find(name); u != table_unexpected.end()) t.unexpected = u->second;
      t.chains = std::move(chains[name]);
      state.tables.push_back(std::move(t));
    }
  }

  if (tables.empty()) {
    // Only the table dump was made, and it was not interrupted. If the ruleset changed after the
    // GETGEN before it, the view may be newer than state.generation, and a commit built on it is
    // refused (and retried) as any stale one; a read-only caller (check) sees the tables as the
    // dump found them. A second GETGEN would only cost a round trip.
    *consistent = !interrupted;
    return state;
  }
  if (auto g = getgen(&gen_after); !g) return g.error();
  *consistent = !interrupted && gen_after == state.generation;
  return state;
}

Result<CommitOutcome> NetlinkStore::commit(const Transaction& tx) {
  NfTablesBatch batch(*socket_, tx.generation);
  std::vector<std::pair<std::size_t, std::string>> hints;  // message index -> modules it needs
  auto hdr = [&](std::uint16_t type, std::uint16_t flags, auto description) {
    return batch.message(type, NFPROTO_INET, flags, std::move(description));
  };

  std::uint32_t next_set_id = 1;
  std::vector<char> scratch(AttrSink::kSize);  // the rules' expressions, one rule at a time
  for (const auto& op : tx.operations) {
    switch (op.kind) {
    case Operation::Kind::AddTable:
    case Operation::Kind::DeleteTable: {
      TablePtr t(nftnl_table_alloc());
      nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
      nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, op.table.c_str());
      const bool add = op.kind == Operation::Kind::AddTable;
      if (add) nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, 0);
      nftnl_table_nlmsg_build_payload(hdr(add ? NFT_MSG_NEWTABLE : NFT_MSG_DELTABLE, add ? NLM_F_CREATE : 0,
                                          std::string(add ? "add" : "delete") + " table inet " + op.table),
                                      t.get());
      break;
    }
    case Operation::Kind::FlushTable: {
      RulePtr r(nftnl_rule_alloc());
      nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
      nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, op.table.c_str());
      nftnl_rule_nlmsg_build_payload(hdr(NFT_MSG_DELRULE, 0, "flush table inet " + op.table), r.get());
      break;
    }
    case Operation::Kind::AddChain: {
      ChainPtr c(nftnl_chain_alloc());
      nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, op.table.c_str());
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, op.chain.name.c_str());
      std::string d = "add chain inet " + op.table + " " + op.chain.name;
      if (op.chain.base) {
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, chain_type_name(op.chain.base->type));
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM,
                            op.chain.base->hook == Hook::Output ? NF_INET_LOCAL_OUT : NF_INET_PRE_ROUTING);
        nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, op.chain.base->priority);
        d += std::string(" { type ") + chain_type_name(op.chain.base->type) + " hook " +
             hook_name(op.chain.base->hook) + " priority " + std::to_string(op.chain.base->priority) + " ; }";
        if (op.chain.base->type == ChainType::Nat) hints.emplace_back(batch.messages(), "nft_chain_nat");
      }
      nftnl_chain_nlmsg_build_payload(hdr(NFT_MSG_NEWCHAIN, NLM_F_CREATE, d), c.get());
      break;
    }
    case Operation::Kind::AddRule: {
      std::vector<AnonymousSet> sets;
      std::function<Result<std::uint32_t>(const OwnerId&, bool)> resolve = [this](const OwnerId& id, bool group) {
        return resolve_owner(id, group);
      };
      Encoder<AttrSink> enc(sets, next_set_id, resolve, scratch);
      for (const auto& s : op.rule.statements)
        if (auto st = enc.statement(s); !st) return st.error();
      // The rule's text names its messages only if the kernel refuses one.
      const Operation* rule_op = &op;
      auto text = [rule_op] { return nft_rule_text(rule_op->rule); };
      for (const auto& s : sets) {
        SetPtr set(nftnl_set_alloc());
        nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
        nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, op.table.c_str());
        nftnl_set_set_str(set.get(), NFTNL_SET_NAME, "__set%d");
        nftnl_set_set_u32(set.get(), NFTNL_SET_ID, s.id);
        nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
        nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, kInetServiceType);
        nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, 2);
        nftnl_set_set_u32(set.get(), NFTNL_SET_DESC_SIZE, static_cast<std::uint32_t>(s.ports.size()));
        // nft's user data: key byte order big endian, and "typeof" = the payload field the set
        // is matched against (proto description tcp 8 / udp 6 / th 11, field dport/sport).
        const std::uint8_t desc = s.header == TransportHeader::Tcp ? 8 : s.header == TransportHeader::Udp ? 6 : 11;
        const std::uint8_t udata[] = {0, 4,  2, 0, 0,    0, 3, 20, 0, 4, 7, 0, 0, 0,
                                      1, 12, 0, 4, desc, 0, 0, 0,  1, 4, 2, 0, 0, 0};
        nftnl_set_set_data(set.get(), NFTNL_SET_USERDATA, udata, sizeof(udata));
        nftnl_set_nlmsg_build_payload(hdr(NFT_MSG_NEWSET, NLM_F_CREATE, std::function<std::string()>([text] {
                                            return "anonymous set of rule `" + text() + "`";
                                          })),
                                      set.get());
        batch.end_message();
        for (auto p : s.ports) {
          nftnl_set_elem* e = nftnl_set_elem_alloc();
          const std::uint16_t be = htons(p);
          nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &be, 2);
          nftnl_set_elem_add(set.get(), e);
        }
        nftnl_set_elems_nlmsg_build_payload(hdr(NFT_MSG_NEWSETELEM, NLM_F_CREATE, std::function<std::string()>([text] {
                                                  return "elements of the anonymous set of rule `" + text() + "`";
                                                })),
                                            set.get());
        batch.end_message();
      }
      const std::string mods = modules_for(op.rule);
      if (!mods.empty()) hints.emplace_back(batch.messages(), mods);
      nlmsghdr* nlh = hdr(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, std::function<std::string()>([rule_op, text] {
                            return "add rule inet " + rule_op->table + " " + rule_op->chain.name + " " + text();
                          }));
      if (!put_rule(nlh, op.table, op.chain.name, enc))
        return Error{"cannot encode rule `" + text() + "`: its expressions are too long for one message"};
      break;
    }
    }
    batch.end_message();
  }
  auto sent = batch.send();
  if (!sent) return Error{sent.error().message};
  if (!sent.value().failures.empty()) {
    std::string msg_text = "cannot commit the nftables transaction: ";
    bool first = true;
    for (const auto& f : sent.value().failures) {
      std::string hint;
      for (const auto& [index, m] : hints)
        if (index == f.message && (f.error == ENOENT || f.error == EOPNOTSUPP))
          hint = "; does the kernel have " + m + "?";
      msg_text += (first ? "" : "; ") + f.text(hint);
      first = false;
    }
    return Error{msg_text + "; nothing was changed"};
  }
  if (sent.value().restart) return CommitOutcome::GenerationChanged;
  return CommitOutcome::Committed;
}

}  // namespace istio_iptables::nft
