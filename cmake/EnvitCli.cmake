# envit::cli — the command-line conventions shared by envit's programs (the `envit` program and the
# plain bench programs): examples/envit/cli.hpp on top of CLI11 (Debian libcli11-dev, header-only).
include_guard(GLOBAL)
find_package(CLI11 CONFIG REQUIRED)
add_library(envit_cli_support INTERFACE)
add_library(envit::cli ALIAS envit_cli_support)
target_include_directories(envit_cli_support INTERFACE ${CMAKE_CURRENT_LIST_DIR}/../examples/envit)
target_link_libraries(envit_cli_support INTERFACE CLI11::CLI11 envit::envit)
