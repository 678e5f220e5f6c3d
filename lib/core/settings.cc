#include "core/settings.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include <fmt/format.h>

namespace istio_iptables {

const std::vector<SettingSpec>& setting_specs() {
  using K = SettingKind;
  static const std::vector<SettingSpec> specs = {
      // Istio's flags (tools/istio-iptables/pkg/cmd/root.go).
      {"envoy-port", "p", "", "", K::String, "15001", "outbound traffic is redirected to this port (ISTIO_REDIRECT)"},
      {"inbound-capture-port", "z", "INBOUND_CAPTURE_PORT", "", K::String, "15006",
       "inbound traffic is redirected to this port"},
      {"inbound-tunnel-port", "e", "INBOUND_TUNNEL_PORT", "", K::String, "15008", "HBONE tunnel port, never captured"},
      {"proxy-uid", "u", "PROXY_UID", "", K::String, "",
       "UIDs whose traffic is not captured (default: UID of $ENVOY_USER, else 1337)"},
      {"proxy-gid", "g", "PROXY_GID", "", K::String, "",
       "GIDs whose traffic is not captured (default: the proxy UIDs)"},
      {"istio-inbound-interception-mode", "m", "ISTIO_INBOUND_INTERCEPTION_MODE", "", K::String, "",
       "REDIRECT (default) or TPROXY"},
      {"istio-inbound-ports", "b", "ISTIO_INBOUND_PORTS", "", K::String, "",
       "inbound ports to capture, or '*' for all"},
      {"istio-local-exclude-ports", "d", "ISTIO_LOCAL_EXCLUDE_PORTS", "", K::String, "",
       "inbound ports not captured (with -b '*')"},
      {"istio-exclude-interfaces", "c", "ISTIO_EXCLUDE_INTERFACES", "", K::String, "",
       "interfaces on which nothing is captured"},
      {"istio-service-cidr", "i", "ISTIO_SERVICE_CIDR", "", K::String, "", "outbound CIDRs to capture, or '*' for all"},
      {"istio-service-exclude-cidr", "x", "ISTIO_SERVICE_EXCLUDE_CIDR", "", K::String, "",
       "outbound CIDRs never captured"},
      {"istio-outbound-ports", "q", "ISTIO_OUTBOUND_PORTS", "", K::String, "", "outbound TCP ports always captured"},
      {"istio-local-outbound-ports-exclude", "o", "ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE", "", K::String, "",
       "outbound ports never captured"},
      {"kube-virt-interfaces", "k", "KUBE_VIRT_INTERFACES", "", K::String, "",
       "virtual interfaces whose inbound traffic is treated as outbound"},
      {"istio-inbound-tproxy-mark", "t", "ISTIO_INBOUND_TPROXY_MARK", "", K::String, "1337",
       "fwmark of TPROXY'd packets"},
      {"istio-inbound-tproxy-route-table", "r", "ISTIO_INBOUND_TPROXY_ROUTE_TABLE", "", K::String, "133",
       "routing table for TPROXY"},
      {"dry-run", "n", "DRY_RUN", "", K::Bool, "false", "print the rules as iptables-restore text; change nothing"},
      {"iptables-probe-port", "", "IPTABLES_PROBE_PORT", "", K::String, "15002",
       "validation probe's original destination port"},
      {"probe-timeout", "", "PROBE_TIMEOUT", "", K::String, "5s", "validation probe timeout (Go duration)"},
      {"skip-rule-apply", "", "SKIP_RULE_APPLY", "", K::Bool, "false", "program nothing"},
      {"run-validation", "", "RUN_VALIDATION", "", K::Bool, "false", "validate the capture after programming"},
      {"redirect-dns", "", "REDIRECT_DNS", "ISTIO_META_DNS_CAPTURE", K::Bool, "false",
       "capture DNS to the agent on 15053"},
      {"drop-invalid", "", "DROP_INVALID", "INVALID_DROP", K::Bool, "false", "drop conntrack-INVALID packets"},
      {"dual-stack", "", "DUAL_STACK", "ISTIO_DUAL_STACK", K::Bool, "false",
       "IPv6 detection: any IPv6 address enables IPv6"},
      {"capture-all-dns", "", "CAPTURE_ALL_DNS", "", K::Bool, "false",
       "capture DNS to every server, not only resolv.conf's"},
      {"network-namespace", "", "NETWORK_NAMESPACE", "", K::String, "", "network namespace path to program"},
      {"cni-mode", "", "CNI_MODE", "", K::Bool, "false", "run as the CNI plugin does"},
      {"reconcile", "", "RECONCILE", "", K::Bool, "false", "replace drifted rules"},
      {"cleanup-only", "", "CLEANUP_ONLY", "", K::Bool, "false", "remove the rules; apply nothing"},
      {"force-apply", "", "FORCE_APPLY", "", K::Bool, "false", "apply even when the rules look applied"},
      {"native-nftables", "", "NATIVE_NFTABLES", "", K::Bool, "false", "nftables backend (not supported)"},
      {"force-iptables-binary", "", "FORCE_IPTABLES_BINARY", "", K::String, "", "legacy or nft"},
      // Removed from Istio; accepted so that old injection templates keep working.
      {"restore-format", "f", "", "", K::Bool, "true", "removed in Istio 1.24; ignored"},
      {"iptables-trace-logging", "", "", "", K::Bool, "false", "removed in Istio 1.26; ignored"},
      // Ours.
      {"compat", "", "", "", K::String, "current", "rule layout of an Istio release: 1.23, 1.24, 1.25 ... or current"},
      {"ipv6", "", "", "", K::String, "auto", "auto (detect from interface addresses), on or off"},
      {"dns-servers", "", "", "", K::String, "", "nameservers to capture DNS to, instead of --resolv-conf's"},
      {"resolv-conf", "", "", "", K::String, "/etc/resolv.conf", "resolv.conf to read nameservers from"},
      {"backend", "", "", "", K::String, "auto", "auto, libiptc (in-process) or restore (iptables-restore)"},
      {"wait", "", "", "", K::String, "30", "seconds to wait for the xtables lock"},
      {"against", "", "", "", K::String, "", "check: compare the plan with this iptables-restore text instead"},
  };
  return specs;
}

std::map<std::string, SettingValue> resolve_settings(const std::map<std::string, std::string>& command_line,
                                                     const std::map<std::string, std::string>& environment) {
  std::map<std::string, SettingValue> out;
  for (const auto& spec : setting_specs()) {
    SettingValue v{spec.default_value, "default", false};
    auto from_env = [&](const char* var) {
      if (*var == '\0') return;
      auto it = environment.find(var);
      if (it == environment.end()) return;
      v = SettingValue{it->second, fmt::format("environment variable {}", var), true};
    };
    from_env(spec.env);
    from_env(spec.env_alias);  // Istio applies the alias after the primary variable: it wins
    auto it = command_line.find(spec.name);
    if (it != command_line.end()) v = SettingValue{it->second, fmt::format("--{}", spec.name), true};
    out[spec.name] = v;
  }
  return out;
}

std::optional<bool> parse_go_bool(const std::string& t) {
  if (t == "1" || t == "t" || t == "T" || t == "TRUE" || t == "true" || t == "True") return true;
  if (t == "0" || t == "f" || t == "F" || t == "FALSE" || t == "false" || t == "False") return false;
  return std::nullopt;
}

std::optional<std::uint64_t> parse_go_duration_ms(const std::string& text) {
  // [0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h), repeated; "0" alone is allowed.
  if (text == "0") return 0;
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == start) return std::nullopt;
    std::string number = text.substr(start, i - start);
    if (std::count(number.begin(), number.end(), '.') > 1 || number == ".") return std::nullopt;
    double value = std::stod(number);
    std::size_t ustart = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.') ++i;
    std::string unit = text.substr(ustart, i - ustart);
    double scale;
    if (unit == "ns")
      scale = 1e-6;
    else if (unit == "us" || unit == "\xc2\xb5s")
      scale = 1e-3;
    else if (unit == "ms")
      scale = 1;
    else if (unit == "s")
      scale = 1e3;
    else if (unit == "m")
      scale = 60e3;
    else if (unit == "h")
      scale = 3600e3;
    else
      return std::nullopt;
    total_ms += value * scale;
    if (total_ms > 1e12) return std::nullopt;
  }
  return static_cast<std::uint64_t>(total_ms);
}

bool valid_interface_name(const std::string& name) {
  // The kernel's dev_valid_name: 1..15 bytes, not "." or "..", no '/', ':' or whitespace. We also
  // refuse what could be read as an option or a quote in iptables-restore text, anything outside
  // printable ASCII, and a '+' (iptables' wildcard) anywhere but at the end.
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  if (name[0] == '-' || name[0] == '!') return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (c <= 0x20 || c >= 0x7f) return false;
    if (c == '/' || c == ':' || c == '"' || c == '\'' || c == '\\' || c == '#') return false;
    if (c == '+' && i + 1 != name.size()) return false;
  }
  return true;
}

std::vector<std::string> resolv_conf_nameservers(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? text.size() + 1 : end + 1;
    std::vector<std::string> fields;
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      std::size_t s = i;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
      if (i > s) fields.push_back(line.substr(s, i - s));
    }
    if (fields.size() >= 2 && fields[0] == "nameserver") out.push_back(fields[1]);
  }
  return out;
}

namespace {

// A value as it may appear in a message: quoted, control characters escaped.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Istio's config.Split: split on ',' and drop empty items (no trimming).
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    if (end > pos) out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

std::optional<std::uint64_t> parse_decimal(const std::string& s, std::uint64_t max) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

bool valid_group_name(const std::string& s) {
  // POSIX portable names, as useradd/groupadd accept them: [A-Za-z_][A-Za-z0-9_.-]*, at most 32.
  if (s.empty() || s.size() > 32) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

class Builder {
 public:
  Builder(const std::map<std::string, SettingValue>& values, const std::map<std::string, std::string>& env,
          MachineFacts& facts)
      : values_(values), env_(env), facts_(facts) {}

  std::variant<Settings, SettingsError> build() {
    Config& c = s_.config;
    RunOptions& r = s_.run;

    c.layout = compat();
    c.proxy_port = port("envoy-port");
    c.inbound_capture_port = port("inbound-capture-port");
    c.inbound_tunnel_port = port("inbound-tunnel-port");
    c.mode = mode();
    c.inbound_ports = port_list("istio-inbound-ports", /*wildcard_ok=*/true);
    c.inbound_ports_exclude = port_list("istio-local-exclude-ports", false).ports;
    c.exclude_interfaces = interfaces("istio-exclude-interfaces");
    c.kube_virt_interfaces = interfaces("kube-virt-interfaces");
    c.outbound_include = cidrs("istio-service-cidr", /*wildcard_ok=*/true);
    c.outbound_exclude = cidrs("istio-service-exclude-cidr", false).prefixes;
    c.outbound_ports_include = port_list("istio-outbound-ports", false).ports;
    c.outbound_ports_exclude = port_list("istio-local-outbound-ports-exclude", false).ports;
    c.tproxy_mark = number("istio-inbound-tproxy-mark", 1, 0xffffffffULL, "a mark from 1 to 4294967295");
    c.tproxy_route_table = route_table();
    c.redirect_dns = boolean("redirect-dns");
    c.capture_all_dns = boolean("capture-all-dns");
    c.drop_invalid = boolean("drop-invalid");
    owner_groups();
    loopback_cidr();

    r.dry_run = boolean("dry-run");
    r.skip_rule_apply = boolean("skip-rule-apply");
    r.run_validation = boolean("run-validation");
    r.cleanup_only = boolean("cleanup-only");
    r.reconcile = boolean("reconcile");
    r.force_apply = boolean("force-apply");
    r.cni_mode = boolean("cni-mode");
    r.probe_port = port("iptables-probe-port");
    r.network_namespace = get("network-namespace").value;
    r.backend = get("backend").value;
    if (r.backend != "auto" && r.backend != "libiptc" && r.backend != "restore")
      invalid(get("backend"), "not a backend (auto, libiptc or restore)");
    r.wait_seconds = number("wait", 0, 86400, "a number of seconds from 0 to 86400");
    r.against = get("against").value;
    probe_timeout();
    force_binary();
    if (boolean("native-nftables"))
      usage(fmt::format("{}: the nftables backend is not implemented; the rules are applied as iptables rules "
                        "(libiptc or iptables-restore)",
                        get("native-nftables").source));
    for (const char* removed : {"restore-format", "iptables-trace-logging"})
      if (get(removed).explicitly_set) {
        boolean(removed);
        s_.warnings.push_back(fmt::format("{} was removed from Istio and is ignored", get(removed).source));
      }
    const bool dual_stack = boolean("dual-stack");
    s_.dual_stack = dual_stack;

    proxy_ids();
    if (!errors_.messages.empty()) return errors_;  // the machine is asked only about valid input

    ipv6(dual_stack);
    dns_servers();
    if (!errors_.messages.empty()) return errors_;
    if (c.redirect_dns && !c.capture_all_dns && c.dns_servers_v4.empty() && c.dns_servers_v6.empty() &&
        c.layout == Layout::Current)
      s_.warnings.push_back(
          "REDIRECT_DNS is set, but CAPTURE_ALL_DNS is false, and no DNS servers provided. DNS capture disabled.");
    return s_;
  }

 private:
  const SettingValue& get(const std::string& name) const { return values_.at(name); }

  void usage(std::string message) { errors_.messages.push_back(std::move(message)); }
  void invalid(const SettingValue& v, const std::string& reason) {
    usage(fmt::format("{}: invalid value {}: {}", v.source, quoted(v.value), reason));
  }
  void invalid_item(const SettingValue& v, const std::string& item, const std::string& reason) {
    usage(fmt::format("{}: invalid item {} in {}: {}", v.source, quoted(item), quoted(v.value), reason));
  }
  void machine(std::string message) {
    errors_.messages.push_back(std::move(message));
    errors_.usage = false;
  }

  bool boolean(const std::string& name) {
    const auto& v = get(name);
    auto b = parse_go_bool(v.value);
    if (!b) {
      invalid(v, "not a boolean (true or false)");
      return false;
    }
    return *b;
  }

  std::uint16_t port(const std::string& name) {
    const auto& v = get(name);
    auto p = parse_decimal(v.value, 65535);
    if (!p || *p == 0) {
      invalid(v, "not a port number (1-65535)");
      return 1;
    }
    return static_cast<std::uint16_t>(*p);
  }

  std::uint32_t number(const std::string& name, std::uint64_t min, std::uint64_t max, const char* what) {
    const auto& v = get(name);
    auto n = parse_decimal(v.value, max);
    if (!n || *n < min) {
      invalid(v, fmt::format("not {}", what));
      return static_cast<std::uint32_t>(min);
    }
    return static_cast<std::uint32_t>(*n);
  }

  std::uint32_t route_table() {
    std::uint32_t t =
        number("istio-inbound-tproxy-route-table", 1, 0xffffffffULL, "a routing table number from 1 to 4294967295");
    if (t >= 253 && t <= 255)
      invalid(get("istio-inbound-tproxy-route-table"),
              "tables 253, 254 and 255 are the system's default, main and local tables");
    return t;
  }

  PortList port_list(const std::string& name, bool wildcard_ok) {
    const auto& v = get(name);
    PortList out;
    if (wildcard_ok && v.value == "*") {
      out.wildcard = true;
      return out;
    }
    for (const auto& item : split(v.value)) {
      auto p = parse_decimal(item, 65535);
      if (item == "*")
        invalid_item(v, item, wildcard_ok ? "'*' stands alone, not in a list" : "'*' is not accepted here");
      else if (!p || *p == 0)
        invalid_item(v, item, "not a port number (1-65535)");
      else
        out.ports.push_back(static_cast<std::uint16_t>(*p));
    }
    return out;
  }

  std::vector<std::string> interfaces(const std::string& name) {
    const auto& v = get(name);
    std::vector<std::string> out;
    for (const auto& item : split(v.value)) {
      if (!valid_interface_name(item))
        invalid_item(v, item,
                     "not an interface name (1-15 printable characters without whitespace, '/', ':', quotes, "
                     "'#' or '\\', not starting with '-' or '!', '+' only at the end)");
      else
        out.push_back(item);
    }
    return out;
  }

  CidrList cidrs(const std::string& name, bool wildcard_ok) {
    const auto& v = get(name);
    CidrList out;
    if (v.value == "*") {
      if (wildcard_ok)
        out.wildcard = true;
      else
        invalid(v, "'*' cannot be excluded (it would exclude all outbound traffic)");
      return out;
    }
    for (const auto& item : split(v.value)) {
      auto p = parse_prefix(item);
      if (!p)
        invalid_item(v, item,
                     item == "*" ? "'*' stands alone, not in a list"
                                 : "not a CIDR (address/prefix-length, e.g. 192.0.2.0/24 or 2001:db8::/32)");
      else
        out.prefixes.push_back(*p);
    }
    return out;
  }

  std::vector<std::uint32_t> id_list(const SettingValue& v, const char* what) {
    std::vector<std::uint32_t> out;
    for (const auto& item : split(v.value)) {
      auto n = parse_decimal(item, 4294967294ULL);
      if (!n)
        invalid_item(v, item, fmt::format("not a numeric {} (0-4294967294)", what));
      else
        out.push_back(static_cast<std::uint32_t>(*n));
    }
    return out;
  }

  // -u "" means the UID of $ENVOY_USER (default istio-proxy), else 1337; -g "" copies -u's text.
  void proxy_ids() {
    SettingValue uid = get("proxy-uid");
    if (uid.value.empty()) {
      auto user_it = env_.find("ENVOY_USER");
      std::string user = user_it == env_.end() || user_it->second.empty() ? "istio-proxy" : user_it->second;
      auto id = facts_.user_id(user);
      uid = SettingValue{std::to_string(id.value_or(1337)), fmt::format("the UID of user {}", user), false};
    }
    s_.config.proxy_uids = id_list(uid, "UID");
    const SettingValue& gid = get("proxy-gid");
    // An empty -g copies -u's text (even a list), as Istio does.
    s_.config.proxy_gids = gid.value.empty() ? s_.config.proxy_uids : id_list(gid, "GID");
  }

  Layout compat() {
    const auto& v = get("compat");
    if (v.value == "current" || v.value == "latest") return Layout::Current;
    // A release number: 1.MINOR or 1.MINOR.PATCH (pre-release suffixes allowed).
    std::string text = v.value;
    std::size_t dash = text.find('-');
    if (dash != std::string::npos) text = text.substr(0, dash);
    std::vector<std::string> parts;
    std::size_t pos = 0;
    while (pos <= text.size()) {
      std::size_t dot = text.find('.', pos);
      if (dot == std::string::npos) dot = text.size();
      parts.push_back(text.substr(pos, dot - pos));
      pos = dot + 1;
    }
    std::optional<std::uint64_t> major =
        parts.size() >= 2 && parts.size() <= 3 ? parse_decimal(parts[0], 99) : std::nullopt;
    std::optional<std::uint64_t> minor = major ? parse_decimal(parts[1], 999) : std::nullopt;
    bool patch_ok = parts.size() < 3 || parse_decimal(parts[2], 999).has_value();
    if (!major || !minor || !patch_ok || *major != 1) {
      invalid(v, "not an Istio release (1.23, 1.24, 1.25 ... or current)");
      return Layout::Current;
    }
    if (*minor < 23) {
      invalid(v,
              "releases before 1.23 are not modeled (1.23 and 1.24 share one layout; 1.25 and later the current one)");
      return Layout::Current;
    }
    return *minor <= 24 ? Layout::V1_24 : Layout::Current;
  }

  InterceptionMode mode() {
    const auto& v = get("istio-inbound-interception-mode");
    if (v.value == "TPROXY") return InterceptionMode::Tproxy;
    if (v.value.empty() || v.value == "REDIRECT") return InterceptionMode::Redirect;
    invalid(v, "not an interception mode (REDIRECT or TPROXY)");
    return InterceptionMode::Redirect;
  }

  void owner_groups() {
    auto& g = s_.config.owner_groups;
    auto parse_groups = [&](const std::string& var, const std::string& text) {
      SettingValue v{text, fmt::format("environment variable {}", var), true};
      std::vector<OwnerId> out;
      for (const auto& item : split(text)) {
        if (auto n = parse_decimal(item, 4294967294ULL))
          out.push_back(OwnerId{static_cast<std::uint32_t>(*n), {}});
        else if (valid_group_name(item))
          out.push_back(OwnerId{std::nullopt, item});
        else
          invalid_item(v, item, "not a group name or GID");
      }
      return out;
    };
    auto inc = env_.find("ISTIO_OUTBOUND_OWNER_GROUPS");
    auto exc = env_.find("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE");
    std::string include = inc == env_.end() ? "*" : inc->second;  // present but empty is honoured
    if (include == "*") {
      g.include_all = true;
      if (exc != env_.end()) g.exclude = parse_groups(exc->first, exc->second);
      return;
    }
    g.include_all = false;
    g.include = parse_groups(inc->first, include);
    if (g.include.size() > 64)
      usage(fmt::format("environment variable ISTIO_OUTBOUND_OWNER_GROUPS: {} groups given; at most 64 are supported",
                        g.include.size()));
  }

  void loopback_cidr() {
    auto it = env_.find("ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR");
    if (it == env_.end() || it->second.empty()) return;
    SettingValue v{it->second, "environment variable ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR", true};
    auto p = parse_prefix(it->second);
    if (!p || p->address.family != Family::V4 || !is_loopback(p->address) || p->length < 8)
      invalid(v, "not an IPv4 loopback CIDR with a prefix length from 8 to 32 (e.g. 127.0.0.1/32)");
    else
      s_.config.ipv4_loopback_cidr = *p;
  }

  void probe_timeout() {
    const auto& v = get("probe-timeout");
    auto ms = parse_go_duration_ms(v.value);
    if (!ms || *ms == 0 || *ms > 0xffffffffULL)
      invalid(v, "not a positive duration (e.g. 5s, 500ms, 1m30s)");
    else
      s_.run.probe_timeout_ms = static_cast<std::uint32_t>(*ms);
  }

  void force_binary() {
    const auto& v = get("force-iptables-binary");
    if (v.value.empty() || v.value == "legacy" || v.value == "nft")
      s_.run.force_iptables_binary = v.value;
    else
      invalid(v, "not an iptables variant (legacy or nft)");
  }

  void ipv6(bool dual_stack) {
    const auto& v = get("ipv6");
    if (v.value == "on" || v.value == "true") {
      s_.config.enable_ipv6 = true;
    } else if (v.value == "off" || v.value == "false") {
      s_.config.enable_ipv6 = false;
    } else if (v.value == "auto") {
      auto r = facts_.ipv6_enabled(dual_stack);
      if (r)
        s_.config.enable_ipv6 = r.value();
      else
        machine(r.error().message + " (give --ipv6 on or --ipv6 off to skip the detection)");
    } else {
      invalid(v, "not auto, on or off");
    }
  }

  // Nameservers matter only when DNS is captured to specific servers.
  void dns_servers() {
    Config& c = s_.config;
    if (!c.redirect_dns || c.capture_all_dns) return;
    const auto& flag = get("dns-servers");
    std::vector<std::string> servers;
    SettingValue source = flag;
    if (flag.explicitly_set) {
      servers = split(flag.value);
      for (const auto& s : servers)
        if (!parse_address(s)) invalid_item(flag, s, "not an IP address");
    } else {
      const auto& path = get("resolv-conf").value;
      auto text = facts_.read_file(path);
      if (!text) {
        machine(fmt::format("cannot read nameservers: {} (give --dns-servers to name them)", text.error().message));
        return;
      }
      for (const auto& s : resolv_conf_nameservers(text.value())) {
        if (parse_address(s))
          servers.push_back(s);
        else
          s_.warnings.push_back(fmt::format("{}: ignoring nameserver {}: not an IP address", path, quoted(s)));
      }
    }
    for (const auto& s : servers) {
      auto a = parse_address(s);
      if (!a) continue;
      (a->family == Family::V4 ? c.dns_servers_v4 : c.dns_servers_v6).push_back(*a);
    }
  }

  const std::map<std::string, SettingValue>& values_;
  const std::map<std::string, std::string>& env_;
  MachineFacts& facts_;
  Settings s_;
  SettingsError errors_;
};

}  // namespace

std::variant<Settings, SettingsError> build_settings(const std::map<std::string, SettingValue>& values,
                                                     const std::map<std::string, std::string>& environment,
                                                     MachineFacts& facts) {
  return Builder(values, environment, facts).build();
}

}  // namespace istio_iptables
