// Rendering the typed model as iptables-restore text.
//
// Every token comes from a typed field: numbers are printed by us, addresses by format_prefix,
// interface and group names were validated to a character set with no whitespace, quotes or
// leading '-'/'!'. That is what guarantees that no input can add an option or a line here.
#include "core/restore_text.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace istio_iptables {
namespace {

std::string bang(bool negated) { return negated ? "! " : ""; }

std::string ctstate_list(const std::vector<ConntrackState>& states) {
  std::string out;
  for (auto s : states) {
    if (!out.empty()) out += ',';
    switch (s) {
    case ConntrackState::Invalid: out += "INVALID"; break;
    case ConntrackState::Established: out += "ESTABLISHED"; break;
    case ConntrackState::Related: out += "RELATED"; break;
    case ConntrackState::New: out += "NEW"; break;
    }
  }
  return out;
}

struct MatchText {
  std::string operator()(const ProtocolMatch& m) const { return bang(m.negated) + "-p " + protocol_name(m.protocol); }
  std::string operator()(const AddressMatch& m) const {
    return bang(m.negated) + (m.direction == Direction::Source ? "-s " : "-d ") + format_prefix(m.prefix);
  }
  std::string operator()(const InterfaceMatch& m) const {
    return bang(m.negated) + (m.inbound ? "-i " : "-o ") + m.name;
  }
  std::string operator()(const PortMatch& m) const {
    return bang(m.negated) + (m.direction == Direction::Source ? "--sport " : "--dport ") + std::to_string(m.port);
  }
  std::string operator()(const MultiportMatch& m) const {
    return "-m multiport " + bang(m.negated) + "--dports " + fmt::format("{}", fmt::join(m.ports, ","));
  }
  std::string operator()(const OwnerMatch& m) const {
    return "-m owner " + bang(m.negated) + (m.group ? "--gid-owner " : "--uid-owner ") + m.id.text();
  }
  std::string operator()(const ConntrackMatch& m) const {
    return "-m conntrack " + bang(m.negated) + "--ctstate " + ctstate_list(m.states);
  }
  std::string operator()(const MarkMatch& m) const {
    return "-m mark " + bang(m.negated) + "--mark " + std::to_string(m.mark);
  }
  std::string operator()(const ConnmarkMatch& m) const {
    return "-m connmark " + bang(m.negated) + "--mark " + std::to_string(m.mark);
  }
};

struct TargetText {
  std::string operator()(const JumpTarget& t) const { return "-j " + t.chain; }
  std::string operator()(const VerdictTarget& t) const {
    switch (t.verdict) {
    case Verdict::Accept: return "-j ACCEPT";
    case Verdict::Drop: return "-j DROP";
    case Verdict::Return: return "-j RETURN";
    }
    return "";
  }
  std::string operator()(const RedirectTarget& t) const {
    return fmt::format("-j REDIRECT {} {}", t.singular_spelling ? "--to-port" : "--to-ports", t.port);
  }
  std::string operator()(const TproxyTarget& t) const {
    return fmt::format("-j TPROXY --tproxy-mark {}/{:#x} --on-port {}", t.mark, t.mask, t.port);
  }
  std::string operator()(const MarkTarget& t) const { return fmt::format("-j MARK --set-mark {}", t.mark); }
  std::string operator()(const ConnmarkTarget& t) const {
    return t.restore ? "-j CONNMARK --restore-mark" : "-j CONNMARK --save-mark";
  }
  std::string operator()(const CtTarget& t) const { return fmt::format("-j CT --zone {}", t.zone); }
  std::string operator()(const NflogTarget& t) const {
    return fmt::format(t.quoted_prefix ? "-j NFLOG --nflog-prefix \"{}\" --nflog-group {} --nflog-size {}"
                                       : "-j NFLOG --nflog-prefix {} --nflog-group {} --nflog-size {}",
                       t.prefix, t.group, t.size);
  }
};

}  // namespace

std::string rule_spec(const Rule& rule) {
  std::string out;
  for (const auto& m : rule.matches) {
    out += std::visit(MatchText{}, m);
    out += ' ';
  }
  out += std::visit(TargetText{}, rule.target);
  return out;
}

namespace {

// iptables-save's words for the same model (libxt_*.c's save functions in iptables 1.8.9).
struct SaveMatchText {
  std::string operator()(const ProtocolMatch& m) const { return bang(m.negated) + "-p " + protocol_name(m.protocol); }
  std::string operator()(const AddressMatch& m) const {
    return bang(m.negated) + (m.direction == Direction::Source ? "-s " : "-d ") + format_prefix_as_inet_ntop(m.prefix);
  }
  std::string operator()(const InterfaceMatch& m) const { return MatchText{}(m); }
  std::string operator()(const PortMatch& m) const {
    return bang(m.negated) + (m.direction == Direction::Source ? "--sport " : "--dport ") + std::to_string(m.port);
  }
  std::string operator()(const MultiportMatch& m) const { return MatchText{}(m); }
  std::string operator()(const OwnerMatch& m) const { return MatchText{}(m); }
  std::string operator()(const ConntrackMatch& m) const { return MatchText{}(m); }
  std::string operator()(const MarkMatch& m) const {
    return fmt::format("-m mark {}--mark {:#x}", bang(m.negated), m.mark);
  }
  std::string operator()(const ConnmarkMatch& m) const {
    return fmt::format("-m connmark {}--mark {:#x}", bang(m.negated), m.mark);
  }
};

struct SaveTargetText {
  Family family;
  std::string operator()(const RedirectTarget& t) const { return fmt::format("-j REDIRECT --to-ports {}", t.port); }
  std::string operator()(const TproxyTarget& t) const {
    return fmt::format("-j TPROXY --on-port {} --on-ip {} --tproxy-mark {:#x}/{:#x}", t.port,
                       family == Family::V4 ? "0.0.0.0" : "::", t.mark, t.mask);
  }
  std::string operator()(const MarkTarget& t) const {
    return fmt::format("-j MARK --set-xmark {:#x}/0xffffffff", t.mark);
  }
  std::string operator()(const ConnmarkTarget& t) const {
    return t.restore ? "-j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff"
                     : "-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff";
  }
  std::string operator()(const NflogTarget& t) const {
    return fmt::format("-j NFLOG --nflog-prefix {} --nflog-group {} --nflog-size {}", t.prefix, t.group, t.size);
  }
  template <typename T>
  std::string operator()(const T& t) const {
    return TargetText{}(t);
  }
};

}  // namespace

std::string save_spec(const Rule& rule, Family family) {
  auto rank = [](const Match& m) -> int {
    if (auto* a = std::get_if<AddressMatch>(&m)) return a->direction == Direction::Source ? 0 : 1;
    if (auto* i = std::get_if<InterfaceMatch>(&m)) return i->inbound ? 2 : 3;
    if (std::holds_alternative<ProtocolMatch>(m)) return 4;
    return 5;
  };
  std::vector<const Match*> matches;
  for (const auto& m : rule.matches) matches.push_back(&m);
  std::stable_sort(matches.begin(), matches.end(), [&](const Match* a, const Match* b) { return rank(*a) < rank(*b); });
  std::string out;
  for (std::size_t i = 0; i < matches.size(); ++i) {
    // The port matches of one protocol that follow each other are one tcp/udp match, sport first.
    if (const auto* p = std::get_if<PortMatch>(matches[i])) {
      std::vector<const PortMatch*> ports{p};
      while (i + 1 < matches.size()) {
        const auto* q = std::get_if<PortMatch>(matches[i + 1]);
        if (!q || q->protocol != p->protocol) break;
        ports.push_back(q);
        ++i;
      }
      std::stable_sort(ports.begin(), ports.end(), [](const PortMatch* a, const PortMatch* b) {
        return a->direction == Direction::Source && b->direction != Direction::Source;
      });
      out += std::string("-m ") + protocol_name(p->protocol);
      for (const auto* q : ports) out += " " + SaveMatchText{}(*q);
      out += ' ';
      continue;
    }
    out += std::visit(SaveMatchText{}, *matches[i]);
    out += ' ';
  }
  out += std::visit(SaveTargetText{family}, rule.target);
  return out;
}

namespace {

// The chains a table's restore input declares: those that hold rules, in order of first use,
// then jump targets not yet declared (Istio's two passes).
std::vector<std::string> declared_chains(const Ruleset& ruleset, Table table) {
  std::vector<std::string> declared;
  auto declare = [&](const std::string& chain) {
    if (is_builtin_chain(chain)) return;
    if (std::find(declared.begin(), declared.end(), chain) != declared.end()) return;
    declared.push_back(chain);
  };
  for (const auto& op : ruleset.ops)
    if (op.table == table) declare(op.chain);
  for (const auto& op : ruleset.ops)
    if (op.table == table)
      if (auto target = jump_chain(op.rule)) declare(*target);
  return declared;
}

std::string op_text(const RuleOp& op) {
  if (op.insert_position) return fmt::format("-I {} {} {}", op.chain, *op.insert_position, rule_spec(op.rule));
  return fmt::format("-A {} {}", op.chain, rule_spec(op.rule));
}

}  // namespace

std::string restore_text(const Ruleset& ruleset) {
  std::string out;
  for (Table table : kAllTables) {
    if (!ruleset.uses_table(table)) continue;
    out += fmt::format("* {}\n", table_name(table));
    for (const auto& chain : declared_chains(ruleset, table)) out += "-N " + chain + "\n";
    for (const auto& op : ruleset.ops)
      if (op.table == table) out += op_text(op) + "\n";
    out += "COMMIT\n";
  }
  return out;
}

std::string command_text(const Ruleset& ruleset, Family family) {
  const char* binary = family == Family::V4 ? "iptables" : "ip6tables";
  std::string out;
  // Chains in order of first use across tables, then jump targets not yet declared.
  std::vector<std::pair<Table, std::string>> declared;
  auto declare = [&](Table table, const std::string& chain) {
    if (is_builtin_chain(chain)) return;
    const std::pair<Table, std::string> key{table, chain};
    if (std::find(declared.begin(), declared.end(), key) != declared.end()) return;
    declared.push_back(key);
    out += fmt::format("{} -t {} -N {}\n", binary, table_name(table), chain);
  };
  for (const auto& op : ruleset.ops) declare(op.table, op.chain);
  for (const auto& op : ruleset.ops)
    if (auto target = jump_chain(op.rule)) declare(op.table, *target);
  for (const auto& op : ruleset.ops) out += fmt::format("{} -t {} {}\n", binary, table_name(op.table), op_text(op));
  return out;
}

std::string dry_run_text(const Plan& plan) {
  std::string out = restore_text(plan.v4);
  if (plan.v6) {
    out += "# ip6tables-restore\n";
    out += restore_text(*plan.v6);
  }
  return out;
}

std::string dry_run_file_text(const Plan& plan, const DryRunRecord& record) {
  auto input = [&](const Ruleset& r, Family f) { return record.restore_format ? restore_text(r) : command_text(r, f); };
  std::string out = record.initial_saves ? "iptables-save\nip6tables-save\n" : "";
  out += input(plan.v4, Family::V4);
  if (plan.v6) out += input(*plan.v6, Family::V6);
  out += plan.v6 ? "iptables-save\nip6tables-save\n" : "iptables-save\n";
  return out;
}

}  // namespace istio_iptables
