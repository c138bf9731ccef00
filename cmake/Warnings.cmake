add_library(kvmlike_warnings INTERFACE)
# C++ (kvmlike itself) gets the strict set; the C selftests, which cast mmap'd
# buffers and forward printf formats, get the common one.
target_compile_options(kvmlike_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wunused -Wnull-dereference -Wimplicit-fallthrough
  $<$<COMPILE_LANGUAGE:CXX>:-Wcast-align -Wformat=2 -Wnon-virtual-dtor -Woverloaded-virtual -Wold-style-cast>
  $<$<CXX_COMPILER_ID:Clang>:-Wthread-safety>
  $<$<BOOL:${KVMLIKE_WERROR}>:-Werror>)
