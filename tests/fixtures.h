// Configurations the tests share.
#pragma once

#include "core/config.h"

namespace istio_iptables::testing {

/// The sidecar Istio's injector configures (-u 1337 -i '*' -b '*' -d 15090,15021,15020), IPv4.
inline Config injected_sidecar() {
  Config c;
  c.proxy_uids = {1337};
  c.proxy_gids = {1337};
  c.outbound_include.wildcard = true;
  c.inbound_ports.wildcard = true;
  c.inbound_ports_exclude = {15090, 15021, 15020};
  return c;
}

}  // namespace istio_iptables::testing
