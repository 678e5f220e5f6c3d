// The command a run performs, chosen once from the command line before anything else.
//
// Every later decision (which store and platform to open, whether the machine may be written,
// which facts to ask for) is a function of this value, never of a string compared again. A
// read-only command cannot be turned into a writing one by a flag or an environment variable:
// CLEANUP_ONLY only chooses `cleanup` when no command was named (Istio's istio-iptables has no
// `check`, so its only two commands are "apply" and "clean up").
#pragma once

namespace istio_iptables {

enum class Command {
  Apply,    ///< make the namespace hold the plan (the default; Istio's istio-iptables)
  Check,    ///< compare what is installed with the plan; never writes
  Cleanup,  ///< remove every rule, chain and route of ours (Istio's --cleanup-only)
  Explain,  ///< where given packets go through the plan or the installed rules; never writes
};

/// "apply", "check", "cleanup" or "explain".
inline const char* command_name(Command c) {
  switch (c) {
  case Command::Apply: return "apply";
  case Command::Check: return "check";
  case Command::Cleanup: return "cleanup";
  case Command::Explain: return "explain";
  }
  return "apply";
}

}  // namespace istio_iptables
