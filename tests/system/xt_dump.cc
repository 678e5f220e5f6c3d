// Test tool: prints every entry of the current namespace's x_tables as libiptc reads it back,
// normalised (counters, kernel-written fields and name padding zeroed; standard targets by
// label), one line per rule: "family table chain hex". Two namespaces whose dumps are equal
// hold the same binary rules, whatever their text looks like.
#include <cstdio>
#include <fstream>
#include <string>

#include <libiptc/libiptc.h>
extern "C" {
#include <libiptc/libip6tc.h>
}

#include "system/xt_entry.h"

using istio_iptables::Family;

namespace {
void hex(const std::string& s) {
  for (char c : s) std::printf("%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
}

template <bool V6>
void dump(const char* table) {
  xtc_handle* h = V6 ? ip6tc_init(table) : iptc_init(table);
  if (!h) return;
  Family f = V6 ? Family::V6 : Family::V4;
  for (const char* c = V6 ? ip6tc_first_chain(h) : iptc_first_chain(h); c;
       c = V6 ? ip6tc_next_chain(h) : iptc_next_chain(h)) {
    std::string chain = c;
    if constexpr (V6) {
      for (const ip6t_entry* e = ip6tc_first_rule(c, h); e; e = ip6tc_next_rule(e, h)) {
        std::printf("ipv6 %s %s ", table, chain.c_str());
        hex(istio_iptables::entry_identity(f, istio_iptables::blob_from_kernel(f, e, ip6tc_get_target(e, h))));
        std::printf("\n");
      }
    } else {
      for (const ipt_entry* e = iptc_first_rule(c, h); e; e = iptc_next_rule(e, h)) {
        std::printf("ipv4 %s %s ", table, chain.c_str());
        hex(istio_iptables::entry_identity(f, istio_iptables::blob_from_kernel(f, e, iptc_get_target(e, h))));
        std::printf("\n");
      }
    }
  }
  if (V6)
    ip6tc_free(h);
  else
    iptc_free(h);
}

template <bool V6>
void dump_existing() {
  std::ifstream names(V6 ? "/proc/net/ip6_tables_names" : "/proc/net/ip_tables_names");
  std::string t;
  while (std::getline(names, t)) dump<V6>(t.c_str());
}
}  // namespace

int main() {
  dump_existing<false>();
  dump_existing<true>();
  return 0;
}
