# cmake -DNM=<nm> -DLIBRARY=<lib.so> -DEXPECTED=<sym,sym,...> -P check_exports.cmake
# Fails unless the library's dynamic symbol table defines exactly the EXPECTED symbols.
execute_process(COMMAND ${NM} -D --defined-only --format=just-symbols ${LIBRARY}
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${LIBRARY}")
endif()
string(REGEX REPLACE "\n$" "" out "${out}")
string(REPLACE "\n" ";" actual "${out}")
list(REMOVE_ITEM actual "")
list(SORT actual)
string(REPLACE "," ";" expected "${EXPECTED}")
list(SORT expected)

set(extra ${actual})
list(REMOVE_ITEM extra ${expected})
set(missing ${expected})
list(REMOVE_ITEM missing ${actual})
if(extra OR missing)
  message(FATAL_ERROR "${LIBRARY}: unexpected exports [${extra}], missing exports [${missing}]")
endif()
list(LENGTH actual n)
message(STATUS "${LIBRARY}: exports exactly the ${n} expected symbols")
