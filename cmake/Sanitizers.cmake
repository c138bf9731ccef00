if(KVMLIKE_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
elseif(KVMLIKE_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  # GCC warns (-Wtsan) that TSan does not model atomic_thread_fence; the SRCU
  # keeps its fences and gives TSan acquire/release edges on its counters too.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-tsan)
  endif()
elseif(NOT KVMLIKE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "KVMLIKE_SANITIZE must be '', 'address' or 'thread'")
endif()
