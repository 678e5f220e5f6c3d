#include "core/rule_text.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "core/message.h"
#include "core/number.h"
#include "core/restore_text.h"
#include "core/settings.h"

namespace istio_iptables {
namespace {

// Words separated by white space (the C locale's: space, \t, \n, \v, \f, \r), as iptables-save
// separates them. Written out rather than read through a stream: a stream would initialise the C++
// locale machinery in every process that lists a rule (docs/performance.md).
std::vector<std::string> tokens(const std::string& s) {
  constexpr std::string_view kSpace = " \t\n\v\f\r";
  std::vector<std::string> out;
  std::size_t at = s.find_first_not_of(kSpace);
  while (at != std::string::npos) {
    const std::size_t end = s.find_first_of(kSpace, at);
    out.push_back(s.substr(at, end == std::string::npos ? std::string::npos : end - at));
    at = end == std::string::npos ? end : s.find_first_not_of(kSpace, end);
  }
  return out;
}

// Numbers as iptables reads them (strtoul with base 0): decimal, or 0x hex as iptables-save
// prints marks. A leading 0 is octal to iptables: refused, so that such a rule stays text rather
// than being read as another number.
std::optional<std::uint32_t> number(const std::string& s) {
  auto v = parse_unsigned(s, 0xffffffffULL, NumberSyntax::DecimalOrHex);
  if (!v) return std::nullopt;
  return static_cast<std::uint32_t>(*v);
}

std::optional<std::uint16_t> port(const std::string& s) {
  auto v = parse_unsigned(s, 65535, NumberSyntax::DecimalOrHex);
  if (!v) return std::nullopt;
  return static_cast<std::uint16_t>(*v);
}

// "VALUE" or "VALUE/0xffffffff": only full masks are in the model.
std::optional<std::uint32_t> full_mask_value(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return number(s);
  auto mask = number(s.substr(slash + 1));
  if (!mask || *mask != 0xffffffffU) return std::nullopt;
  return number(s.substr(0, slash));
}

std::optional<Prefix> prefix(const std::string& s) {
  if (s.find('/') == std::string::npos) {
    auto a = parse_address(s);
    if (!a) return std::nullopt;
    return host_prefix(*a);
  }
  return parse_prefix(s);
}

// A word that prints safely in every rendering: printable ASCII without spaces or quotes, not
// starting like an option.
bool plain_word(const std::string& word) {
  if (word.empty() || word[0] == '-' || word[0] == '!') return false;
  return std::all_of(word.begin(), word.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c > 0x20 && c < 0x7f && c != '"' && c != '\'' && c != '\\';
  });
}

// A chain name a jump can carry in an entry (at most 28 bytes and a NUL), printing safely.
bool valid_chain_name(const std::string& name) { return name.size() <= 28 && plain_word(name); }

}  // namespace

std::optional<Rule> parse_rule_spec(const std::string& spec) {
  auto t = tokens(spec);
  Rule r;
  bool have_target = false;
  bool neg = false;
  std::string module;
  std::optional<Protocol> protocol;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const std::string& tok = t[i];
    auto arg = [&]() -> std::optional<std::string> {
      if (i + 1 >= t.size()) return std::nullopt;
      return t[++i];
    };
    if (tok == "!") {
      if (neg) return std::nullopt;
      neg = true;
      continue;
    }
    bool negated = neg;
    neg = false;
    if (have_target) return std::nullopt;  // target options are consumed below
    if (tok == "-s" || tok == "--source" || tok == "-d" || tok == "--destination") {
      auto v = arg();
      auto p = v ? prefix(*v) : std::nullopt;
      if (!p) return std::nullopt;
      bool src = tok == "-s" || tok == "--source";
      r.matches.push_back(AddressMatch{src ? Direction::Source : Direction::Destination, *p, negated});
    } else if (tok == "-i" || tok == "--in-interface" || tok == "-o" || tok == "--out-interface") {
      auto v = arg();
      // A name outside what we would write ourselves (control bytes, NUL, quotes) stays text:
      // such a rule is someone else's, and the entry codec could not hold it as a C string.
      if (!v || !valid_interface_name(*v)) return std::nullopt;
      r.matches.push_back(InterfaceMatch{tok == "-i" || tok == "--in-interface", *v, negated});
    } else if (tok == "-p" || tok == "--protocol") {
      auto v = arg();
      if (!v) return std::nullopt;
      if (*v == "tcp" || *v == "6")
        protocol = Protocol::Tcp;
      else if (*v == "udp" || *v == "17")
        protocol = Protocol::Udp;
      else
        return std::nullopt;
      r.matches.push_back(ProtocolMatch{*protocol, negated});
    } else if (tok == "-m" || tok == "--match") {
      auto v = arg();
      if (!v || negated) return std::nullopt;
      module = *v;
      if (module != "tcp" && module != "udp" && module != "multiport" && module != "owner" && module != "conntrack" &&
          module != "mark" && module != "connmark")
        return std::nullopt;
    } else if (tok == "--dport" || tok == "--destination-port" || tok == "--sport" || tok == "--source-port") {
      auto v = arg();
      auto p = v ? port(*v) : std::nullopt;
      if (!p || !protocol) return std::nullopt;
      bool dst = tok == "--dport" || tok == "--destination-port";
      r.matches.push_back(PortMatch{*protocol, dst ? Direction::Destination : Direction::Source, *p, negated});
    } else if (tok == "--dports" || tok == "--destination-ports") {
      auto v = arg();
      if (!v || module != "multiport") return std::nullopt;
      MultiportMatch m{{}, negated};
      for (const auto& item : split_list(*v, EmptyItems::Keep)) {
        auto p = port(item);
        if (!p) return std::nullopt;
        m.ports.push_back(*p);
      }
      r.matches.push_back(m);
    } else if (tok == "--uid-owner" || tok == "--gid-owner") {
      auto v = arg();
      if (!v || module != "owner") return std::nullopt;
      bool group = tok == "--gid-owner";
      OwnerId id;
      if (v->find_first_not_of("0123456789") == std::string::npos)
        id.number = number(*v);
      else if (group)
        id.name = *v;
      else
        return std::nullopt;
      if (!id.number && id.name.empty()) return std::nullopt;
      r.matches.push_back(OwnerMatch{group, id, negated});
    } else if (tok == "--ctstate") {
      auto v = arg();
      if (!v || module != "conntrack") return std::nullopt;
      ConntrackMatch m{{}, negated};
      for (const auto& item : split_list(*v, EmptyItems::Keep)) {
        if (item == "INVALID")
          m.states.push_back(ConntrackState::Invalid);
        else if (item == "ESTABLISHED")
          m.states.push_back(ConntrackState::Established);
        else if (item == "RELATED")
          m.states.push_back(ConntrackState::Related);
        else if (item == "NEW")
          m.states.push_back(ConntrackState::New);
        else
          return std::nullopt;
      }
      r.matches.push_back(m);
    } else if (tok == "--mark" && (module == "mark" || module == "connmark")) {
      auto v = arg();
      auto value = v ? full_mask_value(*v) : std::nullopt;
      if (!value) return std::nullopt;
      if (module == "mark")
        r.matches.push_back(MarkMatch{*value, negated});
      else
        r.matches.push_back(ConnmarkMatch{*value, negated});
    } else if (tok == "-j" || tok == "--jump") {
      auto v = arg();
      if (!v || negated) return std::nullopt;
      const std::string target = *v;
      // Target options: everything that follows.
      std::map<std::string, std::string> opts;
      std::vector<std::string> flags;
      while (i + 1 < t.size()) {
        const std::string& o = t[++i];
        if (o.rfind("--", 0) != 0) return std::nullopt;
        if (o == "--save-mark" || o == "--restore-mark") {
          flags.push_back(o);
          continue;
        }
        if (i + 1 >= t.size()) return std::nullopt;
        opts[o] = t[++i];
      }
      auto take = [&](const std::string& k) -> std::optional<std::string> {
        auto it = opts.find(k);
        if (it == opts.end()) return std::nullopt;
        std::string v2 = it->second;
        opts.erase(it);
        return v2;
      };
      if (target == "ACCEPT" || target == "DROP" || target == "RETURN") {
        r.target = VerdictTarget{target == "ACCEPT" ? Verdict::Accept
                                 : target == "DROP" ? Verdict::Drop
                                                    : Verdict::Return};
      } else if (target == "REDIRECT") {
        auto v2 = take("--to-ports");
        bool singular = false;
        if (!v2) {
          v2 = take("--to-port");
          singular = true;
        }
        auto p = v2 ? port(*v2) : std::nullopt;
        if (!p) return std::nullopt;
        r.target = RedirectTarget{*p, singular};
      } else if (target == "TPROXY") {
        auto p = take("--on-port");
        auto m = take("--tproxy-mark");
        auto ip = take("--on-ip");
        if (ip && *ip != "0.0.0.0" && *ip != "::") return std::nullopt;
        auto pp = p ? port(*p) : std::nullopt;
        if (!pp || !m) return std::nullopt;
        auto slash = m->find('/');
        auto value = number(m->substr(0, slash));
        auto mask =
            slash == std::string::npos ? std::optional<std::uint32_t>(0xffffffffU) : number(m->substr(slash + 1));
        if (!value || !mask) return std::nullopt;
        r.target = TproxyTarget{*pp, *value, *mask};
      } else if (target == "MARK") {
        auto v2 = take("--set-mark");
        if (!v2) v2 = take("--set-xmark");
        auto value = v2 ? full_mask_value(*v2) : std::nullopt;
        if (!value) return std::nullopt;
        r.target = MarkTarget{*value};
      } else if (target == "CONNMARK") {
        for (const char* k : {"--nfmask", "--ctmask"})
          if (auto v2 = take(k); v2 && number(*v2) != 0xffffffffU) return std::nullopt;
        if (flags.size() != 1) return std::nullopt;
        r.target = ConnmarkTarget{flags[0] == "--restore-mark"};
        flags.clear();
      } else if (target == "CT") {
        auto v2 = take("--zone");
        auto z = v2 ? port(*v2) : std::nullopt;
        if (!z) return std::nullopt;
        r.target = CtTarget{*z};
      } else if (target == "NFLOG") {
        // Only the shape Istio writes: a plain prefix (quoted or not, as restore reads it), a
        // group and a size.
        auto prefix = take("--nflog-prefix");
        auto group = take("--nflog-group");
        auto size = take("--nflog-size");
        if (!prefix || !group || !size) return std::nullopt;
        bool quoted = prefix->size() >= 2 && prefix->front() == '"' && prefix->back() == '"';
        std::string text = quoted ? prefix->substr(1, prefix->size() - 2) : *prefix;
        auto g = port(*group);
        auto n = number(*size);
        if (!g || !n || text.empty() || text.size() > kMaxNflogPrefix || !plain_word(text)) return std::nullopt;
        r.target = NflogTarget{text, *g, *n, quoted};
      } else if (valid_chain_name(target)) {
        r.target = JumpTarget{target};
      } else {
        return std::nullopt;
      }
      if (!opts.empty() || !flags.empty()) return std::nullopt;
      have_target = true;
    } else {
      return std::nullopt;
    }
  }
  if (!have_target || neg) return std::nullopt;
  return r;
}

Rule canonical(const Rule& rule, const std::function<std::optional<std::uint32_t>(const std::string&)>& gid) {
  Rule out;
  auto header_rank = [](const Match& m) -> int {
    if (auto* a = std::get_if<AddressMatch>(&m)) return a->direction == Direction::Source ? 0 : 1;
    if (auto* i = std::get_if<InterfaceMatch>(&m)) return i->inbound ? 2 : 3;
    if (std::holds_alternative<ProtocolMatch>(m)) return 4;
    return 5;
  };
  std::vector<Match> matches = rule.matches;
  std::stable_sort(matches.begin(), matches.end(), [&](const Match& a, const Match& b) {
    int ra = header_rank(a), rb = header_rank(b);
    return ra < rb;  // header fields in save order; extension matches (all rank 5) keep their order
  });
  for (auto& m : matches) {
    if (auto* o = std::get_if<OwnerMatch>(&m))
      if (!o->id.number)
        if (auto n = gid(o->id.name)) o->id = OwnerId{*n, {}};
    if (auto* a = std::get_if<AddressMatch>(&m)) a->prefix = Prefix{masked(a->prefix), a->prefix.length};
    if (auto* c = std::get_if<ConntrackMatch>(&m)) {
      // A set of bits to the kernel: in the order iptables-save prints them, once each.
      auto rank = [](ConntrackState st) {
        switch (st) {
        case ConntrackState::Invalid: return 0;
        case ConntrackState::New: return 1;
        case ConntrackState::Related: return 2;
        case ConntrackState::Established: return 3;
        }
        return 4;
      };
      std::sort(c->states.begin(), c->states.end(),
                [&](ConntrackState x, ConntrackState y) { return rank(x) < rank(y); });
      c->states.erase(std::unique(c->states.begin(), c->states.end()), c->states.end());
    }
  }
  out.matches = std::move(matches);
  out.target = rule.target;
  if (auto* r = std::get_if<RedirectTarget>(&out.target)) r->singular_spelling = false;
  if (auto* n = std::get_if<NflogTarget>(&out.target)) n->quoted_prefix = false;  // spelling only
  return out;
}

namespace {

// A chain while a text is read. Rules are kept in the order they arrive, each with the place it
// was given (0-based, among the rules the chain held then); the chain's final order is computed
// once, at the end. Inserting into a vector line by line would shift the whole chain for each
// `-I CHAIN 1` and make a long text quadratic.
struct ChainBuilder {
  std::string name;
  bool builtin = false;
  std::vector<TextRule> rules;  // since the last flush, in order of arrival
  std::vector<std::size_t> at;  // where each was put among the rules present at the time
  bool appends_only = true;
};

struct TableBuilder {
  Table table;
  std::vector<ChainBuilder> chains;                      // in order of appearance
  std::unordered_map<std::string, std::size_t> by_name;  // index into chains

  ChainBuilder& chain(const std::string& name) {
    auto [it, added] = by_name.emplace(name, chains.size());
    if (added) chains.push_back(ChainBuilder{name, is_builtin_chain(name), {}, {}, true});
    return chains[it->second];
  }
};

// The final order of a chain's rules. Replayed backwards, each rule takes the (at+1)-th place not
// yet taken by a later rule: a later insertion moves an earlier rule, never the other way round.
// A Fenwick tree over the free places finds that place in O(log n).
std::vector<TextRule> final_order(ChainBuilder& chain) {
  std::vector<TextRule>& rules = chain.rules;
  if (chain.appends_only) return std::move(rules);
  const std::size_t n = rules.size();
  std::vector<std::size_t> tree(n + 1, 0);  // 1-based; every place free at first
  for (std::size_t i = 1; i <= n; ++i) {
    tree[i] += 1;
    std::size_t parent = i + (i & (~i + 1));
    if (parent <= n) tree[parent] += tree[i];
  }
  std::size_t top = 1;
  while (top * 2 <= n) top *= 2;
  std::vector<std::optional<TextRule>> placed(n);
  for (std::size_t k = n; k-- > 0;) {
    // The smallest place p with (free places up to p) = at[k] + 1.
    std::size_t want = chain.at[k] + 1, p = 0;
    for (std::size_t step = top; step > 0; step /= 2)
      if (p + step <= n && tree[p + step] < want) {
        p += step;
        want -= tree[p];
      }
    ++p;
    placed[p - 1] = std::move(rules[k]);
    for (std::size_t i = p; i <= n; i += i & (~i + 1)) tree[i] -= 1;
  }
  std::vector<TextRule> out;
  out.reserve(n);
  for (auto& r : placed) out.push_back(std::move(*r));
  return out;
}

TextTable finish(TableBuilder& builder) {
  TextTable t{builder.table, {}};
  t.chains.reserve(builder.chains.size());
  for (auto& c : builder.chains) t.chains.push_back(TextChain{c.name, c.builtin, final_order(c)});
  return t;
}

}  // namespace

Result<ParsedText> parse_ruleset_text(const std::string& text) {
  std::vector<TableBuilder> v4, v6;
  std::vector<TableBuilder>* family = &v4;
  TableBuilder* table = nullptr;
  std::vector<std::string> seen;
  std::size_t lineno = 0;
  std::string line;
  auto error = [&](const std::string& why) {
    return Error{"line " + std::to_string(lineno) + ": " + why + ": " + quoted_for_message(line)};
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    line.assign(text, pos, end - pos);
    pos = end + 1;
    ++lineno;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.rfind("# ip6tables", 0) == 0 || line.rfind("#ip6tables", 0) == 0) {
      family = &v6;
      seen.clear();
      table = nullptr;
      continue;
    }
    if (line.empty() || line[0] == '#' || line == "COMMIT") {
      if (line == "COMMIT") table = nullptr;
      continue;
    }
    if (line.rfind("iptables", 0) == 0 || line.rfind("ip6tables", 0) == 0) continue;  // Istio's golden "iptables-save"
    if (line[0] == '*') {
      std::string name = line.substr(1);
      name.erase(0, name.find_first_not_of(' '));
      Table t;
      if (name == "filter")
        t = Table::Filter;
      else if (name == "mangle")
        t = Table::Mangle;
      else if (name == "nat")
        t = Table::Nat;
      else if (name == "raw")
        t = Table::Raw;
      else
        return error("unknown table");
      if (std::find(seen.begin(), seen.end(), name) != seen.end() && family == &v4) {
        family = &v6;
        seen.clear();
      }
      seen.push_back(name);
      family->push_back(TableBuilder{t, {}, {}});
      table = &family->back();
      continue;
    }
    if (!table) return error("a rule outside a table");
    std::string counters;
    std::string rest = line;
    if (rest[0] == '[') {
      auto close = rest.find(']');
      if (close == std::string::npos) return error("bad counters");
      counters = rest.substr(0, close + 1);
      rest = rest.substr(close + 1);
      rest.erase(0, rest.find_first_not_of(' '));
    }
    auto t = tokens(rest);
    if (t.empty()) continue;
    if (t[0][0] == ':') {
      table->chain(t[0].substr(1));
      continue;
    }
    if ((t[0] == "-N" || t[0] == "--new-chain" || t[0] == "-F" || t[0] == "--flush") && t.size() == 2) {
      auto& c = table->chain(t[1]);
      if (t[0] == "-F" || t[0] == "--flush") {
        c.rules.clear();
        c.at.clear();
        c.appends_only = true;
      }
      continue;
    }
    bool insert = t[0] == "-I" || t[0] == "--insert";
    if ((t[0] == "-A" || t[0] == "--append" || insert) && t.size() >= 2) {
      std::size_t first = 2;
      std::size_t position = 1;
      if (insert && t.size() > 2 && t[2][0] >= '0' && t[2][0] <= '9') {
        // iptables' rule numbers: 1 to INT_MAX, read as strtoul with base 0 reads them.
        auto n = parse_unsigned(t[2], 2147483647, NumberSyntax::DecimalOrHex);
        if (!n || *n == 0) return error("not a rule number (1 to 2147483647)");
        position = static_cast<std::size_t>(*n);
        first = 3;
      }
      std::string spec;
      for (std::size_t k = first; k < t.size(); ++k) spec += (k == first ? "" : " ") + t[k];
      table->chain(t[1]);  // the chain is named before its jump target, as iptables-restore sees them
      TextRule rule{spec, counters, parse_rule_spec(spec)};
      if (rule.rule)
        if (auto target = jump_chain(*rule.rule)) table->chain(*target);
      ChainBuilder& chain = table->chain(t[1]);  // looked up again: declaring the target may move the vector
      std::size_t present = chain.rules.size();
      std::size_t at = insert ? std::min(position - 1, present) : present;
      if (at != present) chain.appends_only = false;
      chain.at.push_back(at);
      chain.rules.push_back(std::move(rule));
      continue;
    }
    return error("not a rule, a chain or a table");
  }
  ParsedText out;
  for (auto& b : v4) out.v4.push_back(finish(b));
  for (auto& b : v6) out.v6.push_back(finish(b));
  return out;
}

Snapshot snapshot_of(const TextTable& table,
                     const std::function<std::optional<std::uint32_t>(const std::string&)>& gid) {
  Snapshot s;
  s.table = table.table;
  for (const auto& c : table.chains) {
    InstalledChain chain{c.name, c.builtin, {}};
    for (const auto& r : c.rules) {
      InstalledRule ir;
      ir.blob = r.counters.empty() ? r.spec : r.counters + " " + r.spec;
      ir.rule = r.rule;
      ir.identity = r.rule ? rule_spec(canonical(*r.rule, gid)) : "text: " + r.spec;
      chain.rules.push_back(std::move(ir));
    }
    s.chains.push_back(std::move(chain));
  }
  // Built-in chains first, as in a kernel snapshot.
  std::stable_partition(s.chains.begin(), s.chains.end(), [](const InstalledChain& c) { return c.builtin; });
  return s;
}

}  // namespace istio_iptables
