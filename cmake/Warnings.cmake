add_library(kvmlike_warnings INTERFACE)
target_compile_options(kvmlike_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wcast-align -Wunused
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor -Woverloaded-virtual>
  -Wnull-dereference -Wformat=2 -Wimplicit-fallthrough
  $<$<COMPILE_LANGUAGE:CXX>:-Wold-style-cast>
  $<$<CXX_COMPILER_ID:Clang>:-Wthread-safety>
  $<$<BOOL:${KVMLIKE_WERROR}>:-Werror>)
