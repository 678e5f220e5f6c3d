#include "core/settings.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

#include "core/flags.h"
#include "core/message.h"
#include "core/number.h"

namespace istio_iptables {

const std::vector<SettingSpec>& setting_specs() {
  using K = SettingKind;
  static const std::vector<SettingSpec> specs = {
      // Istio's flags (tools/istio-iptables/pkg/cmd/root.go).
      {"envoy-port", "p", "", "", K::String, "15001", "Specify the envoy port to which redirect all TCP traffic."},
      {"inbound-capture-port", "z", "INBOUND_CAPTURE_PORT", "", K::String, "15006",
       "Port to which all inbound TCP traffic to the pod/VM should be redirected to."},
      {"inbound-tunnel-port", "e", "INBOUND_TUNNEL_PORT", "", K::String, "15008",
       "Specify the istio tunnel port for inbound tcp traffic."},
      {"proxy-uid", "u", "PROXY_UID", "", K::String, "",
       "Specify the UID of the user for which the redirection is not applied. Typically, this is the UID of the proxy "
       "container."},
      {"proxy-gid", "g", "PROXY_GID", "", K::String, "",
       "Specify the GID of the user for which the redirection is not applied (same default value as -u param)."},
      {"istio-inbound-interception-mode", "m", "ISTIO_INBOUND_INTERCEPTION_MODE", "", K::String, "",
       R"(The mode used to redirect inbound connections to Envoy, either "REDIRECT" or "TPROXY".)"},
      {"istio-inbound-ports", "b", "ISTIO_INBOUND_PORTS", "", K::String, "",
       "Comma separated list of inbound ports for which traffic is to be redirected to Envoy (optional). The wildcard "
       "character \"*\" can be used to configure redirection for all ports. An empty list will disable."},
      {"istio-local-exclude-ports", "d", "ISTIO_LOCAL_EXCLUDE_PORTS", "", K::String, "",
       "Comma separated list of inbound ports to be excluded from redirection to Envoy (optional). Only applies when "
       "all inbound traffic (i.e. \"*\") is being redirected."},
      {"istio-exclude-interfaces", "c", "ISTIO_EXCLUDE_INTERFACES", "", K::String, "",
       "Comma separated list of NIC (optional). Neither inbound nor outbound traffic will be captured."},
      {"istio-service-cidr", "i", "ISTIO_SERVICE_CIDR", "", K::String, "",
       "Comma separated list of IP ranges in CIDR form to redirect to envoy (optional). The wildcard character \"*\" "
       "can be used to redirect all outbound traffic. An empty list will disable all outbound."},
      {"istio-service-exclude-cidr", "x", "ISTIO_SERVICE_EXCLUDE_CIDR", "", K::String, "",
       "Comma separated list of IP ranges in CIDR form to be excluded from redirection. Only applies when all  "
       "outbound traffic (i.e. \"*\") is being redirected."},
      {"istio-outbound-ports", "q", "ISTIO_OUTBOUND_PORTS", "", K::String, "",
       "Comma separated list of outbound ports to be explicitly included for redirection to Envoy."},
      {"istio-local-outbound-ports-exclude", "o", "ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE", "", K::String, "",
       "Comma separated list of outbound ports to be excluded from redirection to Envoy."},
      {"kube-virt-interfaces", "k", "KUBE_VIRT_INTERFACES", "", K::String, "",
       "Comma separated list of virtual interfaces whose inbound traffic (from VM) will be treated as outbound."},
      {"istio-inbound-tproxy-mark", "t", "ISTIO_INBOUND_TPROXY_MARK", "", K::String, "1337", ""},
      {"istio-inbound-tproxy-route-table", "r", "ISTIO_INBOUND_TPROXY_ROUTE_TABLE", "", K::String, "133", ""},
      {"dry-run", "n", "DRY_RUN", "", K::Bool, "false", "Do not call any external dependencies like iptables."},
      {"iptables-probe-port", "", "IPTABLES_PROBE_PORT", "", K::String, "15002",
       "Set listen port for failure detection."},
      {"probe-timeout", "", "PROBE_TIMEOUT", "", K::String, "5s", "Failure detection timeout."},
      {"skip-rule-apply", "", "SKIP_RULE_APPLY", "", K::Bool, "false", "Skip iptables apply."},
      {"run-validation", "", "RUN_VALIDATION", "", K::Bool, "false", "Validate iptables."},
      {"redirect-dns", "", "REDIRECT_DNS", "ISTIO_META_DNS_CAPTURE", K::Bool, "false",
       "Enable capture of dns traffic by istio-agent."},
      {"drop-invalid", "", "DROP_INVALID", "INVALID_DROP", K::Bool, "false",
       "Enable invalid drop in the iptables rules."},
      {"dual-stack", "", "DUAL_STACK", "ISTIO_DUAL_STACK", K::Bool, "false",
       "Enable ipv4/ipv6 redirects for dual-stack."},
      {"capture-all-dns", "", "CAPTURE_ALL_DNS", "", K::Bool, "false",
       "Instead of only capturing DNS traffic to DNS server IP, capture all DNS traffic at port 53. This setting is "
       "only effective when redirect dns is enabled."},
      {"network-namespace", "", "NETWORK_NAMESPACE", "", K::String, "",
       "The network namespace that iptables rules should be applied to."},
      {"cni-mode", "", "CNI_MODE", "", K::Bool, "false", "Whether to run as CNI plugin."},
      {"reconcile", "", "RECONCILE", "", K::Bool, "false",
       "Reconcile pre-existing and incompatible iptables rules instead of failing if drift is detected.", 0, 24},
      {"cleanup-only", "", "CLEANUP_ONLY", "", K::Bool, "false",
       "Perform a forced cleanup without creating new iptables chains or rules.", 0, 24},
      {"force-apply", "", "FORCE_APPLY", "", K::Bool, "false",
       "Apply iptables changes even if they appear to already be in place.", 0, 24},
      {"native-nftables", "", "NATIVE_NFTABLES", "", K::Bool, "false",
       "Use native nftables instead of iptables rules."},
      {"force-iptables-binary", "", "FORCE_IPTABLES_BINARY", "", K::String, "",
       "Break glass option to choose which iptables binary to use.", 0, 28},
      // Flags of older releases only: unknown flags at --compat releases that lack them
      // (docs/releases.md).
      {"restore-format", "f", "RESTORE_FORMAT", "", K::Bool, "true",
       "Istio 1.22/1.23 only: apply with iptables-restore (false: one iptables command a rule)", 23},
      {"iptables-trace-logging", "", "IPTABLES_TRACE_LOGGING", "", K::Bool, "false",
       "Insert tracing logs for each iptables rules, using the LOG chain.", 25},
      // Ours.
      {"compat", "", "", "", K::String, "current",
       "rules and flags of an Istio release: 1.22, 1.23, 1.24, 1.25 ... or current"},
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
  // One parser of Go durations: pflag's (flags.h), which the command line already went through.
  const GoDuration d = parse_go_duration(text);
  if (!d.error.empty() || d.negative) return std::nullopt;
  return d.nanoseconds / 1000000;
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
          MachineFacts& facts, bool detect_ipv6)
      : values_(values), env_(env), facts_(facts), detect_ipv6_(detect_ipv6) {}

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
    release_flags();
    owner_groups();
    loopback_cidr();

    r.dry_run = boolean("dry-run");
    r.skip_rule_apply = boolean("skip-rule-apply");
    r.run_validation = boolean("run-validation");
    r.cleanup_only = release_has_flag("cleanup-only") && boolean("cleanup-only");
    // Accepted and validated; reconcile and force-apply only choose log records (docs/differences.md):
    // every apply reconciles, and the lock is the one iptables uses.
    r.reconcile = release_has_flag("reconcile") && boolean("reconcile");
    r.force_apply = release_has_flag("force-apply") && boolean("force-apply");
    const bool cni_mode = release_has_flag("cni-mode") && boolean("cni-mode");
    r.probe_port = port("iptables-probe-port");
    r.network_namespace = get("network-namespace").value;
    if (cni_mode && !r.network_namespace.empty()) r.lock_file = r.network_namespace;
    r.backend = get("backend").value;
    if (r.backend != "auto" && r.backend != "libiptc" && r.backend != "restore")
      invalid(get("backend"), "not a backend (auto, libiptc or restore)");
    r.wait_seconds = number("wait", 0, 86400, "a number of seconds from 0 to 86400");
    r.against = get("against").value;
    probe_timeout();
    force_binary();
    r.native_nftables = boolean("native-nftables");
    if (r.native_nftables && compat_minor_ && *compat_minor_ < 27)
      invalid(get("compat"), "Istio's native nftables mode exists from release 1.27 on");
    const bool dual_stack = boolean("dual-stack");
    s_.dual_stack = dual_stack;
    const std::optional<bool> ipv6_flag = ipv6();
    proxy_ids();
    dns_servers();
    resolv_conf_path();
    if (!errors_.messages.empty()) return errors_;  // the machine is asked only about valid input

    // The machine's answers, where the flags leave them open.
    proxy_uid_of_user();
    if (ipv6_flag)
      c.enable_ipv6 = *ipv6_flag;
    else if (detect_ipv6_)
      detect_ipv6(dual_stack);
    nameservers_from_resolv_conf();
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
    usage(fmt::format("{}: invalid value {}: {}", v.source, quoted_for_message(v.value), reason));
  }
  void invalid_item(const SettingValue& v, const std::string& item, const std::string& reason) {
    usage(fmt::format("{}: invalid item {} in {}: {}", v.source, quoted_for_message(item), quoted_for_message(v.value),
                      reason));
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
    auto p = parse_unsigned(v.value, 65535);
    if (!p || *p == 0) {
      invalid(v, "not a port number (1-65535)");
      return 1;
    }
    return static_cast<std::uint16_t>(*p);
  }

  std::uint32_t number(const std::string& name, std::uint64_t min, std::uint64_t max, const char* what) {
    const auto& v = get(name);
    auto n = parse_unsigned(v.value, max);
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
    for (const auto& item : split_list(v.value, EmptyItems::Drop)) {
      auto p = parse_unsigned(item, 65535);
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
    for (const auto& item : split_list(v.value, EmptyItems::Drop)) {
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
    for (const auto& item : split_list(v.value, EmptyItems::Drop)) {
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
    for (const auto& item : split_list(v.value, EmptyItems::Drop)) {
      auto n = parse_unsigned(item, 4294967294ULL);
      if (!n)
        invalid_item(v, item, fmt::format("not a numeric {} (0-4294967294)", what));
      else
        out.push_back(static_cast<std::uint32_t>(*n));
    }
    return out;
  }

  // -u "" means the UID of $ENVOY_USER (default istio-proxy), else 1337; -g "" copies -u's text.
  // The lists given are validated here; the user is looked up later, with the other questions.
  void proxy_ids() {
    const SettingValue& uid = get("proxy-uid");
    if (!uid.value.empty()) s_.config.proxy_uids = id_list(uid, "UID");
    const SettingValue& gid = get("proxy-gid");
    if (!gid.value.empty()) s_.config.proxy_gids = id_list(gid, "GID");
  }

  void proxy_uid_of_user() {
    if (get("proxy-uid").value.empty()) {
      auto user_it = env_.find("ENVOY_USER");
      std::string user = user_it == env_.end() || user_it->second.empty() ? "istio-proxy" : user_it->second;
      auto id = facts_.user_id(user);
      if (!id) {
        machine(fmt::format("cannot find the UID of user {}: {} (give --proxy-uid to name it)",
                            quoted_for_message(user), id.error().message));
        return;
      }
      s_.config.proxy_uids = {id.value().value_or(1337)};
    }
    // An empty -g copies -u's text (even a list), as Istio does.
    if (get("proxy-gid").value.empty()) s_.config.proxy_gids = s_.config.proxy_uids;
  }

  // Does the release --compat names have this flag? `last_minor`: the last 1.MINOR with it.
  // "current" is the newest release, which has none of these.
  bool release_has(std::uint64_t last_minor) const { return compat_minor_ && *compat_minor_ <= last_minor; }

  // Does the release --compat names have this flag at all (SettingSpec::first_minor, last_minor)?
  bool release_has_flag(const std::string& name) const {
    for (const auto& spec : setting_specs())
      if (spec.name == name) return release_has_flag(spec);
    return true;
  }
  bool release_has_flag(const SettingSpec& spec) const {
    if (spec.last_minor != 0 && !release_has(spec.last_minor)) return false;
    return spec.first_minor == 0 || !compat_minor_ || *compat_minor_ >= spec.first_minor;
  }

  // The flags that exist only in some releases (docs/releases.md). Where the release has the
  // flag it is read as Istio read it (flag, then its environment variable); where it does not,
  // the flag on the command line is unknown, as pflag would say, and the variable is not read.
  void release_flags() {
    const std::string& compat = get("compat").value;
    if (!compat_minor_ && compat != "current" && compat != "latest") return;  // --compat is refused already
    for (const auto& spec : setting_specs()) {
      if (release_has_flag(spec)) continue;
      const SettingValue& v = get(spec.name);
      if (!v.explicitly_set || v.source.rfind("--", 0) != 0) continue;
      if (spec.last_minor != 0)
        usage(fmt::format("{}: unknown flag in {} (removed in Istio 1.{}; --compat 1.{} and earlier have it)", v.source,
                          compat_name(), spec.last_minor + 1, spec.last_minor));
      else
        usage(fmt::format("{}: unknown flag in {} (added in Istio 1.{})", v.source, compat_name(), spec.first_minor));
    }
    if (release_has(23)) s_.run.restore_format = boolean("restore-format");
    if (release_has(25)) s_.config.trace_logging = boolean("iptables-trace-logging");
    if (!s_.run.restore_format && s_.config.trace_logging)
      s_.warnings.push_back(
          "--restore-format=false with --iptables-trace-logging: Istio 1.22/1.23 then installed the NFLOG "
          "prefixes with their Go quotes (\"JumpInbound\"); they are installed without them "
          "(docs/releases.md)");
  }

  // The release --compat names, for messages.
  std::string compat_name() const {
    return compat_minor_ ? "Istio " + get("compat").value : std::string("the current Istio release");
  }

  Layout compat() {
    const auto& v = get("compat");
    if (v.value == "current" || v.value == "latest") return Layout::Current;
    // A release number: 1.MINOR or 1.MINOR.PATCH (pre-release suffixes allowed).
    std::string text = v.value;
    std::size_t dash = text.find('-');
    if (dash != std::string::npos) text = text.substr(0, dash);
    std::vector<std::string> parts = split_list(text, EmptyItems::Keep, '.');
    std::optional<std::uint64_t> major =
        parts.size() >= 2 && parts.size() <= 3 ? parse_unsigned(parts[0], 99) : std::nullopt;
    std::optional<std::uint64_t> minor = major ? parse_unsigned(parts[1], 999) : std::nullopt;
    bool patch_ok = parts.size() < 3 || parse_unsigned(parts[2], 999).has_value();
    if (!major || !minor || !patch_ok || *major != 1) {
      invalid(v, "not an Istio release (1.22, 1.23, 1.24, 1.25 ... or current)");
      return Layout::Current;
    }
    if (*minor < 22) {
      invalid(v, "releases before 1.22 are not modeled (the oldest is 1.22; docs/releases.md)");
      return Layout::Current;
    }
    compat_minor_ = *minor;
    switch (*minor) {
    case 22: return Layout::V1_22;
    case 23: return Layout::V1_23;
    case 24: return Layout::V1_24;
    default: return Layout::Current;  // 1.25 and later: no change in any golden (docs/releases.md)
    }
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
      for (const auto& item : split_list(text, EmptyItems::Drop)) {
        if (auto n = parse_unsigned(item, 4294967294ULL))
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
    // The exclude list counts only with include "*", but it is validated either way.
    std::vector<OwnerId> exclude;
    if (exc != env_.end()) exclude = parse_groups(exc->first, exc->second);
    if (include == "*") {
      g.include_all = true;
      g.exclude = std::move(exclude);
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
    if (!release_has_flag("force-iptables-binary")) return;  // Istio before 1.28 does not read it
    const auto& v = get("force-iptables-binary");
    if (v.value.empty() || v.value == "legacy" || v.value == "nft")
      s_.run.force_iptables_binary = v.value;
    else
      invalid(v, "not an iptables variant (legacy or nft)");
  }

  // --ipv6 on/off, or nullopt for auto (detected later, when asked for).
  std::optional<bool> ipv6() {
    const auto& v = get("ipv6");
    if (v.value == "on" || v.value == "true") return true;
    if (v.value == "off" || v.value == "false") return false;
    if (v.value == "auto") return std::nullopt;
    invalid(v, "not auto, on or off");
    return false;
  }

  void detect_ipv6(bool dual_stack) {
    auto r = facts_.ipv6_enabled(dual_stack);
    if (r)
      s_.config.enable_ipv6 = r.value();
    else
      machine(r.error().message + " (give --ipv6 on or --ipv6 off to skip the detection)");
  }

  // Nameservers matter only when DNS is captured to specific servers, but --dns-servers is
  // validated whatever the other flags say.
  bool nameservers_needed() const { return s_.config.redirect_dns && !s_.config.capture_all_dns; }

  void dns_servers() {
    const auto& flag = get("dns-servers");
    std::vector<Address> servers;
    for (const auto& s : split_list(flag.value, EmptyItems::Drop)) {
      if (auto a = parse_address(s))
        servers.push_back(*a);
      else
        invalid_item(flag, s, "not an IP address");
    }
    if (flag.explicitly_set && nameservers_needed()) add_nameservers(servers);
  }

  void resolv_conf_path() {
    const auto& v = get("resolv-conf");
    if (v.value.empty())
      invalid(v, "not a path");
    else if (v.value == "-")
      invalid(v, "standard input is not accepted here; give the path of a resolv.conf file");
  }

  void nameservers_from_resolv_conf() {
    if (!nameservers_needed() || get("dns-servers").explicitly_set) return;
    const auto& path = get("resolv-conf").value;
    auto text = facts_.read_file(path, kMaxResolvConfBytes);
    if (!text) {
      machine(fmt::format("cannot read nameservers: {} (give --dns-servers to name them)", text.error().message));
      return;
    }
    std::vector<Address> servers;
    RepeatedMessages bad;
    for (const auto& s : resolv_conf_nameservers(text.value())) {
      if (auto a = parse_address(s))
        servers.push_back(*a);
      else if (bad.admit())
        s_.warnings.push_back(fmt::format("{}: ignoring nameserver {}: not an IP address", quoted_for_message(path),
                                          quoted_for_message(s)));
    }
    if (bad.hidden() > 0)
      s_.warnings.push_back(fmt::format("{}: ignoring {} more nameserver lines that are not IP addresses",
                                        quoted_for_message(path), bad.hidden()));
    add_nameservers(servers);
  }

  void add_nameservers(const std::vector<Address>& servers) {
    for (const auto& a : servers)
      (a.family == Family::V4 ? s_.config.dns_servers_v4 : s_.config.dns_servers_v6).push_back(a);
  }

  const std::map<std::string, SettingValue>& values_;
  const std::map<std::string, std::string>& env_;
  MachineFacts& facts_;
  bool detect_ipv6_;
  std::optional<std::uint64_t> compat_minor_;  ///< --compat's minor release, when one was named
  Settings s_;
  SettingsError errors_;
};

}  // namespace

std::variant<Settings, SettingsError> build_settings(const std::map<std::string, SettingValue>& values,
                                                     const std::map<std::string, std::string>& environment,
                                                     MachineFacts& facts, bool detect_ipv6) {
  return Builder(values, environment, facts, detect_ipv6).build();
}

}  // namespace istio_iptables
