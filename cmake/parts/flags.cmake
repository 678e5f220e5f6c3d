# pflag/cobra command-line parser (lib/core/flags.cc) and its unit tests.
target_sources(istio_iptables_core PRIVATE ${PROJECT_SOURCE_DIR}/lib/core/flags.cc)
if(TARGET unit_tests)
  target_sources(unit_tests PRIVATE ${PROJECT_SOURCE_DIR}/tests/core/flags_test.cc)
endif()
