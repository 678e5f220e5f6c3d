// Istio's `Flags:` block of `pilot-agent istio-iptables --help` at HEAD, from the spec
// (../shared/docs/istio-operator-behaviour.md §2.1 "Help": "exact for HEAD"), without the final
// newline cobra's template trims. Shared by the flag renderer's test and the CLI's --help test.
#pragma once

namespace istio_iptables::testing {

inline constexpr const char* kIstioFlagsBlock =
    R"usage(      --capture-all-dns                             Instead of only capturing DNS traffic to DNS server IP, capture all DNS traffic at port 53. This setting is only effective when redirect dns is enabled.
      --cleanup-only                                Perform a forced cleanup without creating new iptables chains or rules.
      --cni-mode                                    Whether to run as CNI plugin.
      --drop-invalid                                Enable invalid drop in the iptables rules.
  -n, --dry-run                                     Do not call any external dependencies like iptables.
      --dual-stack                                  Enable ipv4/ipv6 redirects for dual-stack.
  -p, --envoy-port string                           Specify the envoy port to which redirect all TCP traffic. (default "15001")
      --force-apply                                 Apply iptables changes even if they appear to already be in place.
      --force-iptables-binary string                Break glass option to choose which iptables binary to use.
  -h, --help                                        help for istio-iptables
  -z, --inbound-capture-port string                 Port to which all inbound TCP traffic to the pod/VM should be redirected to. (default "15006")
  -e, --inbound-tunnel-port string                  Specify the istio tunnel port for inbound tcp traffic. (default "15008")
      --iptables-probe-port uint16                  Set listen port for failure detection. (default 15002)
  -c, --istio-exclude-interfaces string             Comma separated list of NIC (optional). Neither inbound nor outbound traffic will be captured.
  -m, --istio-inbound-interception-mode string      The mode used to redirect inbound connections to Envoy, either "REDIRECT" or "TPROXY".
  -b, --istio-inbound-ports string                  Comma separated list of inbound ports for which traffic is to be redirected to Envoy (optional). The wildcard character "*" can be used to configure redirection for all ports. An empty list will disable.
  -t, --istio-inbound-tproxy-mark string             (default "1337")
  -r, --istio-inbound-tproxy-route-table string      (default "133")
  -d, --istio-local-exclude-ports string            Comma separated list of inbound ports to be excluded from redirection to Envoy (optional). Only applies when all inbound traffic (i.e. "*") is being redirected.
  -o, --istio-local-outbound-ports-exclude string   Comma separated list of outbound ports to be excluded from redirection to Envoy.
  -q, --istio-outbound-ports string                 Comma separated list of outbound ports to be explicitly included for redirection to Envoy.
  -i, --istio-service-cidr string                   Comma separated list of IP ranges in CIDR form to redirect to envoy (optional). The wildcard character "*" can be used to redirect all outbound traffic. An empty list will disable all outbound.
  -x, --istio-service-exclude-cidr string           Comma separated list of IP ranges in CIDR form to be excluded from redirection. Only applies when all  outbound traffic (i.e. "*") is being redirected.
  -k, --kube-virt-interfaces string                 Comma separated list of virtual interfaces whose inbound traffic (from VM) will be treated as outbound.
      --native-nftables                             Use native nftables instead of iptables rules.
      --network-namespace string                    The network namespace that iptables rules should be applied to.
      --probe-timeout duration                      Failure detection timeout. (default 5s)
  -g, --proxy-gid string                            Specify the GID of the user for which the redirection is not applied (same default value as -u param).
  -u, --proxy-uid string                            Specify the UID of the user for which the redirection is not applied. Typically, this is the UID of the proxy container.
      --reconcile                                   Reconcile pre-existing and incompatible iptables rules instead of failing if drift is detected.
      --redirect-dns                                Enable capture of dns traffic by istio-agent.
      --run-validation                              Validate iptables.
      --skip-rule-apply                             Skip iptables apply.)usage";

}  // namespace istio_iptables::testing
