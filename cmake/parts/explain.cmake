# explain: the flow simulator (lib/core/explain.*), its unit tests and the proof on real packets.
target_sources(istio_iptables_core PRIVATE ${PROJECT_SOURCE_DIR}/lib/core/explain.cc)

if(TARGET unit_tests)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)  # found in tests/'s scope only
  target_sources(unit_tests PRIVATE ${PROJECT_SOURCE_DIR}/tests/core/explain_test.cc)
  # Random flows sent as real packets through a pod namespace, each compared with
  # `explain --installed --json`, in iptables and native nftables mode.
  add_test(NAME explain
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/e2e/explain_test.py $<TARGET_FILE:istio-iptables>)
  set_tests_properties(explain PROPERTIES SKIP_RETURN_CODE 77 RUN_SERIAL TRUE TIMEOUT 300)
endif()
