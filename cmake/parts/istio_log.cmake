# istio_log: Istio's log records (cli/istio_log.*), the dumps Istio logs and iptables-save's
# listing (lib/core/istio_dump.*), their unit tests and the comparison with the real iptables-save.
target_sources(istio_iptables_cli PRIVATE ${PROJECT_SOURCE_DIR}/cli/istio_log.cc)
target_sources(istio_iptables_core PRIVATE ${PROJECT_SOURCE_DIR}/lib/core/istio_dump.cc)

if(TARGET unit_tests)
  target_sources(unit_tests PRIVATE
    ${PROJECT_SOURCE_DIR}/tests/cli/istio_log_test.cc
    ${PROJECT_SOURCE_DIR}/tests/core/istio_dump_test.cc)
endif()
