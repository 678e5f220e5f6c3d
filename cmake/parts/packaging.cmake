# Packaging: how operators, administrators and C++ users take the tool (docs/packaging.md).
#
# Three consumers, three shapes of one build. `cmake --install` (GNUInstallDirs) puts the binary,
# its man page and shell completions (component `runtime`), and the pure core library with its
# public headers, a versioned CMake package (find_package(istio_iptables), target
# istio_iptables::core) and a pkg-config file (component `dev`). `cpack -G DEB` turns those two
# components into two Debian packages, istio-iptables and libistio-iptables-dev, with the binary's
# dependencies computed by dpkg-shlibdeps. scripts/build-image.sh makes the init-container image.
#
# Only the core is installed: it touches no OS and depends on nothing a consumer must link (fmt is
# header-only and stays inside the archive), so the exported target carries no dependency. The
# man page and the completions are generated at build time from the built binary's --help, the
# same text users read, so they cannot drift from the flags (tests/package/docs_test.py checks).
#
# The version and source revision for --version: build_info.h, regenerated at every build (only
# rewritten when the revision changes), available to the CLI as "build_info.h".
set(ISTIO_IPTABLES_BUILD_INFO ${PROJECT_BINARY_DIR}/generated/build_info.h)
add_custom_target(istio_iptables_build_info
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR} -DVERSION=${PROJECT_VERSION}
          -DOUT=${ISTIO_IPTABLES_BUILD_INFO} -P ${PROJECT_SOURCE_DIR}/cmake/build_info.cmake
  BYPRODUCTS ${ISTIO_IPTABLES_BUILD_INFO}
  COMMENT "Recording the version and source revision"
  VERBATIM)
add_dependencies(istio_iptables_cli istio_iptables_build_info)
target_include_directories(istio_iptables_cli PRIVATE ${PROJECT_BINARY_DIR}/generated)

# A sanitized build is for finding bugs, not for shipping: nothing else here applies to it.
if(ISTIO_IPTABLES_SANITIZE)
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The binary ships in a 5 MiB image: the linker drops the sections nothing uses (most of them in
# the static libstdc++, which is built with a section per function). 2.67 -> 2.10 MB stripped.
target_link_options(istio-iptables PRIVATE -Wl,--gc-sections)

set(ISTIO_IPTABLES_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/istio_iptables")
set(ISTIO_IPTABLES_INCLUDE_DIR "${CMAKE_INSTALL_INCLUDEDIR}/istio_iptables")

# The stable public API (docs/packaging.md says why these and not the others). Each header's
# includes stay within this list.
set(ISTIO_IPTABLES_PUBLIC_HEADERS
  address.h family.h model.h constants.h result.h config.h settings.h planner.h restore_text.h
  store.h reconcile.h apply.h rule_text.h)
list(TRANSFORM ISTIO_IPTABLES_PUBLIC_HEADERS PREPEND "${PROJECT_SOURCE_DIR}/lib/core/")

# --- The core library, exportable --------------------------------------------------------------
# lib/CMakeLists.txt gives the core its source folder as a usage requirement and links fmt and the
# warning set; an exported target may name none of them. Whatever the core's interface holds stays
# as it is for the build tree ($<BUILD_INTERFACE:>); the install tree gets the installed include
# folder and nothing to link (a real link dependency added to the core later would have to be
# exported too: package_install's embed build fails until it is).
get_target_property(core_includes istio_iptables_core INTERFACE_INCLUDE_DIRECTORIES)
get_target_property(core_links istio_iptables_core INTERFACE_LINK_LIBRARIES)
set(core_interface_includes "$<INSTALL_INTERFACE:${ISTIO_IPTABLES_INCLUDE_DIR}>")
set(core_interface_links "")
foreach(item IN LISTS core_includes)
  list(APPEND core_interface_includes "$<BUILD_INTERFACE:${item}>")
endforeach()
foreach(item IN LISTS core_links)
  list(APPEND core_interface_links "$<BUILD_INTERFACE:${item}>")
endforeach()
set_target_properties(istio_iptables_core PROPERTIES
  EXPORT_NAME core
  INTERFACE_INCLUDE_DIRECTORIES "${core_interface_includes}"
  INTERFACE_LINK_LIBRARIES "${core_interface_links}")
target_compile_features(istio_iptables_core INTERFACE cxx_std_17)
add_library(istio_iptables::core ALIAS istio_iptables_core)

install(TARGETS istio_iptables_core EXPORT istio_iptables-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(FILES ${ISTIO_IPTABLES_PUBLIC_HEADERS} DESTINATION ${ISTIO_IPTABLES_INCLUDE_DIR}/core COMPONENT dev)
install(EXPORT istio_iptables-targets NAMESPACE istio_iptables::
  DESTINATION ${ISTIO_IPTABLES_CMAKE_DIR} COMPONENT dev)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/istio_iptablesConfig.cmake.in
  ${PROJECT_BINARY_DIR}/packaging/istio_iptablesConfig.cmake
  INSTALL_DESTINATION ${ISTIO_IPTABLES_CMAKE_DIR})
# 0.x: a minor release may change the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/packaging/istio_iptablesConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/packaging/istio_iptablesConfig.cmake
              ${PROJECT_BINARY_DIR}/packaging/istio_iptablesConfigVersion.cmake
  DESTINATION ${ISTIO_IPTABLES_CMAKE_DIR} COMPONENT dev)

# pkg-config: relocatable (prefix found from the .pc file's own folder), so a staging install or
# a package installed under another prefix finds its own files.
file(RELATIVE_PATH ISTIO_IPTABLES_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" ISTIO_IPTABLES_PC_TO_PREFIX "${ISTIO_IPTABLES_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/istio_iptables.pc.in ${PROJECT_BINARY_DIR}/packaging/istio_iptables.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/packaging/istio_iptables.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# --- The binary, its man page and completions -----------------------------------------------------
install(TARGETS istio-iptables RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND AND NOT CMAKE_CROSSCOMPILING)
  set(ISTIO_IPTABLES_DOCS_DIR ${PROJECT_BINARY_DIR}/packaging/docs)
  set(ISTIO_IPTABLES_DOCS_OUTPUTS
    ${ISTIO_IPTABLES_DOCS_DIR}/istio-iptables.8 ${ISTIO_IPTABLES_DOCS_DIR}/istio-iptables.8.gz
    ${ISTIO_IPTABLES_DOCS_DIR}/istio-iptables.bash ${ISTIO_IPTABLES_DOCS_DIR}/_istio-iptables)
  add_custom_command(OUTPUT ${ISTIO_IPTABLES_DOCS_OUTPUTS}
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/man/generate.py
            --tool $<TARGET_FILE:istio-iptables> --template ${PROJECT_SOURCE_DIR}/man/istio-iptables.8.in
            --version ${PROJECT_VERSION} --out ${ISTIO_IPTABLES_DOCS_DIR}
    DEPENDS istio-iptables ${PROJECT_SOURCE_DIR}/man/generate.py ${PROJECT_SOURCE_DIR}/man/istio-iptables.8.in
    COMMENT "Generating the man page and shell completions from istio-iptables --help"
    VERBATIM)
  add_custom_target(istio_iptables_docs ALL DEPENDS ${ISTIO_IPTABLES_DOCS_OUTPUTS})
  install(FILES ${ISTIO_IPTABLES_DOCS_DIR}/istio-iptables.8.gz
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT runtime)
  install(FILES ${ISTIO_IPTABLES_DOCS_DIR}/istio-iptables.bash
    DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME istio-iptables COMPONENT runtime)
  install(FILES ${ISTIO_IPTABLES_DOCS_DIR}/_istio-iptables
    DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions COMPONENT runtime)
endif()

# --- Debian packages (cpack -G DEB in the build folder) ------------------------------------------
# cpack packages what the build made; it does not build the whole tree (tests, benchmarks) again
# first (its preinstall step would otherwise depend on `all`).
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(CPACK_PACKAGE_NAME istio-iptables)
set(CPACK_PACKAGE_VENDOR "istio-iptables (C++)")
set(CPACK_PACKAGE_CONTACT "istio-iptables maintainers <istio-iptables@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "sets up a pod's traffic capture for the Istio sidecar")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME istio-iptables)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# dpkg-shlibdeps sees what the binary links; libiptc is loaded with dlopen when the legacy
# backend first opens a table (lib/system/libiptc_store.cc), so its packages are named here.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "libip4tc2 (>= 1.8.3), libip6tc2 (>= 1.8.3)")
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
  "Istio's istio-iptables in C++: the init container's traffic capture\n"
  "Programs a pod's network namespace so that its traffic goes through the Envoy sidecar, with\n"
  "Istio's flags and environment, in-process through libiptc or nf_tables.")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libistio-iptables-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DESCRIPTION
  "istio-iptables' rule model and planner as a C++17 static library\n"
  "The pure core of istio-iptables (settings, planner, restore text, check) with a CMake package\n"
  "(find_package(istio_iptables), target istio_iptables::core) and a pkg-config file.")
include(CPack)

# --- Tests (tests/package) ------------------------------------------------------------------------
if(ISTIO_IPTABLES_TESTS AND Python3_FOUND AND NOT CMAKE_CROSSCOMPILING)
  set(ISTIO_IPTABLES_PACKAGE_TESTS ${PROJECT_SOURCE_DIR}/tests/package)
  # The man page and both completions name every flag of --help (and bash really completes them).
  add_test(NAME package_docs
    COMMAND ${Python3_EXECUTABLE} ${ISTIO_IPTABLES_PACKAGE_TESTS}/docs_test.py
            $<TARGET_FILE:istio-iptables> ${PROJECT_BINARY_DIR}/packaging/docs)
  # Every manifest in deploy/: the init container's command line is one the CLI accepts, its
  # security context grants NET_ADMIN and NET_RAW as root and nothing more.
  add_test(NAME package_manifests
    COMMAND ${Python3_EXECUTABLE} ${ISTIO_IPTABLES_PACKAGE_TESTS}/manifests_test.py
            $<TARGET_FILE:istio-iptables> ${PROJECT_SOURCE_DIR}/deploy)
  # cmake --install into a staging folder; examples/embed built against it by find_package and by
  # pkg-config prints exactly the CLI's dry-run.
  add_test(NAME package_install
    COMMAND sh ${ISTIO_IPTABLES_PACKAGE_TESTS}/install_test.sh
            ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} $<TARGET_FILE:istio-iptables>)
  set_tests_properties(package_install PROPERTIES TIMEOUT 300)
  # cpack -G DEB: the packages' contents and dependencies, the packaged binary run from them.
  add_test(NAME package_deb
    COMMAND sh ${ISTIO_IPTABLES_PACKAGE_TESTS}/deb_test.sh ${PROJECT_BINARY_DIR} $<TARGET_FILE:istio-iptables>)
  set_tests_properties(package_deb PROPERTIES TIMEOUT 300)
  # The init-container image: built with podman from this build's binary, under 5 MiB, unpacked
  # with umoci; its entrypoint applies the reference sidecar in a fresh network namespace and the
  # kernel lists what iptables-restore makes of the dry-run.
  add_test(NAME package_image
    COMMAND ${Python3_EXECUTABLE} ${ISTIO_IPTABLES_PACKAGE_TESTS}/image_test.py
            $<TARGET_FILE:istio-iptables> ${PROJECT_SOURCE_DIR})
  set_tests_properties(package_image PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
