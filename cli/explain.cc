// Placeholder until the flow simulator lands: refuses every request, naming the command.
#include "explain.h"

namespace istio_iptables {

int run_explain(const ExplainRequest& /*request*/, const Settings& /*settings*/, Platform* /*platform*/,
                std::ostream& /*out*/, const std::function<void(const std::string&)>& error) {
  error("explain is not built yet");
  return 1;
}

}  // namespace istio_iptables
