// Istio's dumps and iptables-save's listing, formatted from values the caller has read (see the
// header for why each looks as it does; the order rules are iptables 1.8.9's, measured).
#include "core/istio_dump.h"

#include <algorithm>
#include <cstring>

#include "core/address.h"
#include "core/restore_text.h"

namespace istio_iptables {
namespace {

std::string setting(const std::map<std::string, SettingValue>& values, const char* name) {
  auto it = values.find(name);
  return it == values.end() ? std::string() : it->second.value;
}

// Istio's bool flags hold the parsed value; a text pflag cannot parse leaves false (§2.2).
const char* setting_bool(const std::map<std::string, SettingValue>& values, const char* name) {
  return parse_go_bool(setting(values, name)).value_or(false) ? "true" : "false";
}

const char* go_bool(bool value) { return value ? "true" : "false"; }

std::string join_ids(const std::vector<std::uint32_t>& ids) {
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ids[i]);
  }
  return out;
}

std::vector<std::string> address_texts(const std::vector<Address>& addresses) {
  std::vector<std::string> out;
  out.reserve(addresses.size());
  for (const auto& a : addresses) out.push_back(format_address(a));
  return out;
}

// iptables-nft-save's table order (its builtin_table array: mangle, security, raw, filter, nat);
// names it does not know go last, in the caller's order.
int nft_table_rank(const std::string& name) {
  static const char* const order[] = {"mangle", "security", "raw", "filter", "nat"};
  for (int i = 0; i < 5; ++i)
    if (name == order[i]) return i;
  return 5;
}

int hook_rank(const std::string& chain) {
  static const char* const order[] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};
  for (int i = 0; i < 5; ++i)
    if (chain == order[i]) return i;
  return 5;
}

}  // namespace

std::string environment_dump(const std::map<std::string, std::string>& environment) {
  static const char* const names[] = {
      "ENVOY_PORT",
      "INBOUND_CAPTURE_PORT",
      "ISTIO_INBOUND_INTERCEPTION_MODE",
      "ISTIO_INBOUND_TPROXY_ROUTE_TABLE",
      "ISTIO_INBOUND_PORTS",
      "ISTIO_OUTBOUND_PORTS",
      "ISTIO_LOCAL_EXCLUDE_PORTS",
      "ISTIO_EXCLUDE_INTERFACES",
      "ISTIO_SERVICE_CIDR",
      "ISTIO_SERVICE_EXCLUDE_CIDR",
      "ISTIO_META_DNS_CAPTURE",
      "INVALID_DROP",
  };
  std::string out = "Istio iptables environment:\n";
  for (const char* name : names) {
    auto it = environment.find(name);
    out += name;
    out += '=';
    if (it != environment.end()) out += it->second;
    out += '\n';
  }
  return out;
}

std::string go_string_slice(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ' ';
    out += items[i];
  }
  out += ']';
  return out;
}

std::string config_dump(const Settings& settings, const std::map<std::string, SettingValue>& values,
                        const std::map<std::string, std::string>& environment, int release_minor) {
  const Config& c = settings.config;
  std::string out = release_minor >= 27 ? "Istio config:\n" : "Istio iptables variables:\n";
  auto line = [&out](const char* key, const std::string& value) {
    out += key;
    out += '=';
    out += value;
    out += '\n';
  };
  auto env_or = [&environment](const char* name, const char* fallback) {
    auto it = environment.find(name);
    return it == environment.end() ? std::string(fallback) : it->second;  // set but empty counts as set
  };
  // FillConfigFromEnvironment: an empty -u becomes ENVOY_USER's UID (or 1337), an empty -g the
  // UID text.
  std::string uid = setting(values, "proxy-uid");
  if (uid.empty()) uid = join_ids(c.proxy_uids);
  std::string gid = setting(values, "proxy-gid");
  if (gid.empty()) gid = uid;

  line("PROXY_PORT", setting(values, "envoy-port"));
  line("PROXY_INBOUND_CAPTURE_PORT", setting(values, "inbound-capture-port"));
  line("PROXY_TUNNEL_PORT", setting(values, "inbound-tunnel-port"));
  line("PROXY_UID", uid);
  line("PROXY_GID", gid);
  line("INBOUND_INTERCEPTION_MODE", setting(values, "istio-inbound-interception-mode"));
  line("INBOUND_TPROXY_MARK", setting(values, "istio-inbound-tproxy-mark"));
  line("INBOUND_TPROXY_ROUTE_TABLE", setting(values, "istio-inbound-tproxy-route-table"));
  line("INBOUND_PORTS_INCLUDE", setting(values, "istio-inbound-ports"));
  line("INBOUND_PORTS_EXCLUDE", setting(values, "istio-local-exclude-ports"));
  line("OUTBOUND_OWNER_GROUPS_INCLUDE", env_or("ISTIO_OUTBOUND_OWNER_GROUPS", "*"));
  line("OUTBOUND_OWNER_GROUPS_EXCLUDE", env_or("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", ""));
  line("OUTBOUND_IP_RANGES_INCLUDE", setting(values, "istio-service-cidr"));
  line("OUTBOUND_IP_RANGES_EXCLUDE", setting(values, "istio-service-exclude-cidr"));
  line("OUTBOUND_PORTS_INCLUDE", setting(values, "istio-outbound-ports"));
  line("OUTBOUND_PORTS_EXCLUDE", setting(values, "istio-local-outbound-ports-exclude"));
  line("KUBE_VIRT_INTERFACES", setting(values, "kube-virt-interfaces"));
  line("ENABLE_INBOUND_IPV6", go_bool(c.enable_ipv6));
  line("DUAL_STACK", go_bool(settings.dual_stack));
  line("DNS_CAPTURE", go_bool(c.redirect_dns));
  line("DROP_INVALID", go_bool(c.drop_invalid));
  line("CAPTURE_ALL_DNS", go_bool(c.capture_all_dns));
  line("DNS_SERVERS",
       go_string_slice(address_texts(c.dns_servers_v4)) + "," + go_string_slice(address_texts(c.dns_servers_v6)));
  line("NETWORK_NAMESPACE", settings.run.network_namespace);
  line("CNI_MODE", setting_bool(values, "cni-mode"));
  line("EXCLUDE_INTERFACES", setting(values, "istio-exclude-interfaces"));
  if (release_minor >= 24) {  // --reconcile, --cleanup-only and --force-apply came with 1.24
    line("RECONCILE", setting_bool(values, "reconcile"));
    line("CLEANUP_ONLY", go_bool(settings.run.cleanup_only));
    line("FORCE_APPLY", setting_bool(values, "force-apply"));
  }
  if (release_minor >= 27) line("NATIVE_NFTABLES", go_bool(settings.run.native_nftables));
  if (release_minor >= 28) line("FORCE_IPTABLES_BINARY", settings.run.force_iptables_binary);
  return out;
}

std::string save_text(const SaveListing& listing, const std::string& date) {
  std::vector<const SavedTable*> tables;
  for (const auto& t : listing.tables) tables.push_back(&t);
  if (listing.variant == SaveVariant::Nft)
    std::stable_sort(tables.begin(), tables.end(), [](const SavedTable* a, const SavedTable* b) {
      return nft_table_rank(a->name) < nft_table_rank(b->name);
    });
  std::string out;
  for (const SavedTable* table : tables) {
    std::vector<const SavedChain*> chains;
    for (const auto& c : table->chains) chains.push_back(&c);
    // Built-in chains in hook order, then user chains by strcmp (libiptc's and nft's order).
    std::stable_sort(chains.begin(), chains.end(), [](const SavedChain* a, const SavedChain* b) {
      const bool a_builtin = !a->policy.empty();
      const bool b_builtin = !b->policy.empty();
      if (a_builtin != b_builtin) return a_builtin;
      if (a_builtin) return hook_rank(a->name) < hook_rank(b->name);
      return std::strcmp(a->name.c_str(), b->name.c_str()) < 0;
    });
    out += "# Generated by " + listing.program + " v" + listing.version;
    if (listing.variant == SaveVariant::Nft) out += " (nf_tables)";
    out += " on " + date + "\n";
    out += "*" + table->name + "\n";
    for (const SavedChain* c : chains) {
      if (c->policy.empty())
        out += ":" + c->name + " - [0:0]\n";
      else
        out += ":" + c->name + " " + c->policy + " [" + std::to_string(c->packets) + ":" + std::to_string(c->bytes) +
               "]\n";
    }
    for (const SavedChain* c : chains)
      for (const auto& rule : c->rules) out += rule + "\n";
    out += "COMMIT\n";
    out += "# Completed on " + date + "\n";
  }
  return out;
}

SavedTable saved_table(const Snapshot& snapshot, Family family) {
  SavedTable out;
  out.name = table_name(snapshot.table);
  for (const auto& c : snapshot.chains) {
    SavedChain chain;
    chain.name = c.name;
    if (c.builtin) {
      chain.policy = c.policy.empty() ? "ACCEPT" : c.policy;
      chain.packets = c.packets;
      chain.bytes = c.bytes;
    }
    if (c.opaque) chain.rules.push_back("# " + c.name + ": rules not listed (a foreign chain with no jump to ours)");
    for (const auto& r : c.rules)
      chain.rules.push_back("-A " + c.name + " " +
                            (r.rule ? save_spec(*r.rule, family) : "[a rule outside istio-iptables' model]"));
    out.chains.push_back(std::move(chain));
  }
  return out;
}

std::string ctime_text(int year, int month, int day, int hour, int minute, int second) {
  static const char* const weekdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // Sakamoto's day of the week.
  static const int offsets[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
  int y = month < 3 ? year - 1 : year;
  int weekday = (y + y / 4 - y / 100 + y / 400 + offsets[(month - 1) % 12] + day) % 7;
  auto two = [](int v) { return std::string(v < 10 ? "0" : "") + std::to_string(v); };
  std::string day_text = std::to_string(day);
  if (day < 10) day_text = " " + day_text;  // asctime's %3d
  return std::string(weekdays[weekday]) + " " + months[(month - 1) % 12] + " " + day_text + " " + two(hour) + ":" +
         two(minute) + ":" + two(second) + " " + std::to_string(year);
}

std::string final_state_message(Family family, const std::string& save_output) {
  return std::string("Final iptables state (") + family_name(family) + "):\n" + save_output;
}

std::string restore_message(const std::string& binary, const std::string& restore_input) {
  // Go's strings.TrimSpace: ASCII white space here (the input is ASCII).
  auto space = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; };
  std::size_t begin = 0;
  std::size_t end = restore_input.size();
  while (begin < end && space(restore_input[begin])) ++begin;
  while (end > begin && space(restore_input[end - 1])) --end;
  return "Running iptables restore with: " + binary + " and the following input:\n" +
         restore_input.substr(begin, end - begin);
}

}  // namespace istio_iptables
