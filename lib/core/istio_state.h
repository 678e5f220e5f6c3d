// Istio's verdict on the state it finds before an apply (VerifyIptablesState), for its log
// record: "Clean-state detected", "Found residues ... reconciliation is recommended" or "Found
// compatible residues ...". We never act on it the way Istio does (we always bring our rules to
// the plan, in place, and commit nothing when they already are), but an operator reading
// `kubectl logs` expects the same line for the same state, so it is computed exactly as Istio
// computes it: per family, from what iptables-save would list (the four tables; ISTIO_* chain
// declarations and every chain that holds a rule), compared with the planned restore text
// (chain presence, rule counts of ISTIO_* chains, unplanned ISTIO_* chains, and `-C` of every
// planned rule: present anywhere in its chain, order never compared). Presence is decided on the
// kernel's encoding (the store's identities), as `-C` does.
#pragma once

#include <vector>

#include "core/planner.h"
#include "core/result.h"
#include "core/store.h"

namespace istio_iptables {

/// One family's tables as read before the apply.
struct FamilyState {
  Family family = Family::V4;
  bool read_ok = true;           ///< false: the tables could not be read (Istio: "iptables-save failed")
  std::vector<Snapshot> tables;  ///< the existing ones among filter, mangle, nat and raw
};

enum class StateVerdict { Clean, ResiduesDrift, ResiduesCompatible };

struct IstioStateVerdict {
  StateVerdict verdict = StateVerdict::Clean;
  bool drift = true;
  /// Families with residue but no planned rules: Istio logs "Ignoring residues because no rules
  /// are planned for IPv6" (or IPv4) for each.
  std::vector<Family> ignored;
};

/// Istio's verdict for `states` (IPv4 and IPv6: Istio checks both, whether IPv6 is on or not)
/// against `plan`. Planned rules are encoded through `store` to compare them as the kernel
/// holds them; an error when one cannot be.
Result<IstioStateVerdict> istio_state_verdict(NetfilterStore& store, const Plan& plan,
                                              const std::vector<FamilyState>& states);

/// Reads the state of both families through `store` (never creating a table); a family whose
/// tables cannot be read has read_ok false.
std::vector<FamilyState> read_family_states(NetfilterStore& store);

}  // namespace istio_iptables
