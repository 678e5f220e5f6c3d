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

std::string restore_text(const Ruleset& ruleset) {
  std::string out;
  for (Table table : kAllTables) {
    if (!ruleset.uses_table(table)) continue;
    out += fmt::format("* {}\n", table_name(table));
    // Declarations: chains that hold rules, in order of first use; then jump targets not yet
    // declared (Istio's two passes).
    std::vector<std::string> declared;
    auto declare = [&](const std::string& chain) {
      if (is_builtin_chain(chain)) return;
      if (std::find(declared.begin(), declared.end(), chain) != declared.end()) return;
      declared.push_back(chain);
      out += "-N " + chain + "\n";
    };
    for (const auto& op : ruleset.ops)
      if (op.table == table) declare(op.chain);
    for (const auto& op : ruleset.ops)
      if (op.table == table)
        if (auto target = jump_chain(op.rule)) declare(*target);
    for (const auto& op : ruleset.ops) {
      if (op.table != table) continue;
      if (op.insert_position)
        out += fmt::format("-I {} {} {}\n", op.chain, *op.insert_position, rule_spec(op.rule));
      else
        out += fmt::format("-A {} {}\n", op.chain, rule_spec(op.rule));
    }
    out += "COMMIT\n";
  }
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

std::string dry_run_file_text(const Plan& plan, bool initial_saves) {
  std::string out = initial_saves ? "iptables-save\nip6tables-save\n" : "";
  out += restore_text(plan.v4);
  if (plan.v6) out += restore_text(*plan.v6);
  out += plan.v6 ? "iptables-save\nip6tables-save\n" : "iptables-save\n";
  return out;
}

}  // namespace istio_iptables
