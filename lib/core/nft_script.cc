// The nft script renderer: Istio's transaction text, byte for byte.
//
// Istio's knftables prints each operation on one line and each rule as its tokens joined by
// single spaces; it never quotes, so interface names appear bare (`oifname lo`) and prefixes
// always carry their length (`ip saddr 127.0.0.6/32`). Those spellings are what the golden files
// hold, so they are what this renderer prints; nft accepts them and lists them in its own
// normalised words (quoted names, no /32, `meta skuid`, hexadecimal marks), which is what the
// kernel conformance test compares. Addresses are printed as Go's netip does (address.h), which
// is what a real Istio run writes.
#include "core/nft_script.h"

#include <string_view>

namespace istio_iptables::nft {

const char* chain_type_name(ChainType type) {
  switch (type) {
  case ChainType::Filter: return "filter";
  case ChainType::Nat: return "nat";
  case ChainType::Route: return "route";
  }
  return "?";
}

const char* hook_name(Hook hook) { return hook == Hook::Prerouting ? "prerouting" : "output"; }

namespace {

const char* state_name(ConntrackState s) {
  switch (s) {
  case ConntrackState::Invalid: return "invalid";
  case ConntrackState::Established: return "established";
  case ConntrackState::Related: return "related";
  case ConntrackState::New: return "new";
  }
  return "?";
}

const char* header_name(TransportHeader h) {
  switch (h) {
  case TransportHeader::Th: return "th";
  case TransportHeader::Tcp: return "tcp";
  case TransportHeader::Udp: return "udp";
  }
  return "?";
}

// Appends "FIELD VALUE" or "FIELD != VALUE".
void relation(std::string& out, std::string_view field, bool negated, std::string_view value) {
  out += field;
  out += negated ? " != " : " ";
  out += value;
}

void mark_source(std::string& out, MarkSource source, std::uint32_t value) {
  switch (source) {
  case MarkSource::Value: out += std::to_string(value); break;
  case MarkSource::PacketMark: out += "mark"; break;
  case MarkSource::ConnectionMark: out += "ct mark"; break;
  }
}

struct StatementText {
  std::string& out;

  void operator()(const L4protoMatch& m) {
    out += "meta l4proto ";
    out += protocol_name(m.protocol);
  }
  void operator()(const AddressMatch& m) {
    std::string field = m.prefix.address.family == Family::V4 ? "ip " : "ip6 ";
    field += m.direction == Direction::Source ? "saddr" : "daddr";
    relation(out, field, m.negated, format_prefix(m.prefix));
  }
  void operator()(const InterfaceMatch& m) { relation(out, m.inbound ? "iifname" : "oifname", m.negated, m.name); }
  void operator()(const PortMatch& m) {
    std::string field = header_name(m.header);
    field += m.direction == Direction::Source ? " sport" : " dport";
    std::string value;
    if (m.set) {
      value = "{ ";
      for (std::size_t i = 0; i < m.ports.size(); ++i) {
        if (i > 0) value += ", ";
        value += std::to_string(m.ports[i]);
      }
      value += " }";
    } else {
      value = std::to_string(m.ports.at(0));
    }
    relation(out, field, m.negated, value);
  }
  void operator()(const SocketOwnerMatch& m) {
    std::string field = m.meta_keyword ? "meta " : "";
    field += m.group ? "skgid" : "skuid";
    relation(out, field, m.negated, m.id.text());
  }
  void operator()(const CtStateMatch& m) {
    std::string value;
    for (std::size_t i = 0; i < m.states.size(); ++i) {
      if (i > 0) value += ",";
      value += state_name(m.states[i]);
    }
    relation(out, "ct state", m.negated, value);
  }
  void operator()(const MarkMatch& m) { relation(out, "mark", m.negated, std::to_string(m.mark)); }
  void operator()(const CtMarkMatch& m) { relation(out, "ct mark", m.negated, std::to_string(m.mark)); }
  void operator()(const CounterStatement&) { out += "counter"; }
  void operator()(const VerdictStatement& v) {
    switch (v.kind) {
    case VerdictKind::Accept: out += "accept"; break;
    case VerdictKind::Drop: out += "drop"; break;
    case VerdictKind::Return: out += "return"; break;
    case VerdictKind::Jump: out += "jump " + v.chain; break;
    case VerdictKind::Goto: out += "goto " + v.chain; break;
    }
  }
  void operator()(const RedirectStatement& r) { out += "redirect to :" + std::to_string(r.port); }
  void operator()(const TproxyStatement& t) {
    out += t.family == Family::V4 ? "tproxy ip to :" : "tproxy ip6 to :";
    out += std::to_string(t.port);
  }
  void operator()(const MetaMarkSet& s) {
    out += "meta mark set ";
    mark_source(out, s.source, s.value);
  }
  void operator()(const CtMarkSet& s) {
    out += "ct mark set ";
    mark_source(out, s.source, s.value);
  }
  void operator()(const CtZoneSet& s) { out += "ct zone set " + std::to_string(s.zone); }
};

void append_rule(std::string& out, const Rule& rule) {
  for (std::size_t i = 0; i < rule.statements.size(); ++i) {
    if (i > 0) out += ' ';
    std::visit(StatementText{out}, rule.statements[i]);
  }
}

}  // namespace
}  // namespace istio_iptables::nft

namespace istio_iptables {

std::string nft_rule_text(const nft::Rule& rule) {
  std::string out;
  nft::append_rule(out, rule);
  return out;
}

std::string nft_script(const NftRuleset& ruleset) {
  std::string out;
  for (const auto& table : ruleset.tables) {
    const std::string inet = "inet " + table.name;
    out += "add table " + inet + "\n";
    out += "flush table " + inet + "\n";
    for (const auto& chain : table.chains) {
      out += "add chain " + inet + " " + chain.name;
      if (chain.base) {
        out += " { type ";
        out += chain_type_name(chain.base->type);
        out += " hook ";
        out += hook_name(chain.base->hook);
        out += " priority " + std::to_string(chain.base->priority) + " ; }";
      }
      out += '\n';
    }
    for (const auto& op : table.ops) {
      if (op.index)
        out += "insert rule " + inet + " " + op.chain + " index " + std::to_string(*op.index) + " ";
      else
        out += "add rule " + inet + " " + op.chain + " ";
      nft::append_rule(out, op.rule);
      out += '\n';
    }
  }
  return out;
}

std::string nft_cleanup_script() {
  std::string out;
  for (const char* table : nft::kAllTables) {
    out += std::string("add table inet ") + table + "\n";
    out += std::string("delete table inet ") + table + "\n";
  }
  return out;
}

}  // namespace istio_iptables
