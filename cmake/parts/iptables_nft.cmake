# iptables_nft: the nf_tables variant of iptables in-process (lib/system/iptables_nft_store.*),
# the nf_tables netlink plumbing it shares (nf_tables_batch.*), the choice of variant as Istio
# makes it (iptables_nft_choice.*), their unit tests and the system test against
# iptables-nft-restore.
target_sources(istio_iptables_system PRIVATE
  ${PROJECT_SOURCE_DIR}/lib/system/nf_tables_batch.cc
  ${PROJECT_SOURCE_DIR}/lib/system/iptables_nft_choice.cc
  ${PROJECT_SOURCE_DIR}/lib/system/iptables_nft_store.cc)

if(TARGET unit_tests)
  target_sources(unit_tests PRIVATE
    ${PROJECT_SOURCE_DIR}/tests/system/iptables_nft_choice_test.cc
    ${PROJECT_SOURCE_DIR}/tests/system/iptables_nft_encoding_test.cc)
  target_link_libraries(unit_tests PRIVATE nftnl)
  find_package(Python3 COMPONENTS Interpreter REQUIRED)  # tests/'s is not visible from here
  # Every catalogue scenario applied in-process and through iptables-nft-restore of the dry-run,
  # compared by iptables-nft-save and nft list ruleset; atomicity, foreign rules, concurrency.
  add_test(NAME iptables_nft
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/system/iptables_nft_test.py
            $<TARGET_FILE:istio-iptables> ${PROJECT_SOURCE_DIR})
  set_tests_properties(iptables_nft PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200)
endif()
if(TARGET unit_tests)
  # The catalogue of iptables-nft 1.8.9's encodings, beside the project (as the conformance test's).
  set(ISTIO_IPTABLES_NFT_SHARED "${PROJECT_SOURCE_DIR}/../shared" CACHE PATH "the shared/ folder beside the project")
  target_compile_definitions(unit_tests PRIVATE
    ISTIO_IPTABLES_NFT_CATALOGUE="${ISTIO_IPTABLES_NFT_SHARED}/docs/iptables-nft/catalog-istio-shapes.txt")
endif()
