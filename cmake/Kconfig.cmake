# Kconfig through python3-kconfiglib (Debian's /usr/bin/python3, not a pyenv one).
# At configure time: make .config from KVMLIKE_DEFCONFIG if missing, generate
# include/generated/autoconf.h, and re-run CMake when any Kconfig file or .config changes.
find_program(KCONFIG_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
set(KCONFIG_ROOT ${CMAKE_SOURCE_DIR}/Kconfig)
set(KCONFIG_DOTCONFIG ${CMAKE_BINARY_DIR}/.config)
set(KCONFIG_HEADER ${CMAKE_BINARY_DIR}/include/generated/autoconf.h)
set(KCONFIG_ENV ${CMAKE_COMMAND} -E env KCONFIG_CONFIG=${KCONFIG_DOTCONFIG}
                srctree=${CMAKE_SOURCE_DIR})

if(NOT EXISTS ${KCONFIG_DOTCONFIG})
  execute_process(COMMAND ${KCONFIG_ENV} ${KCONFIG_PYTHON} -m defconfig
                          --kconfig ${KCONFIG_ROOT} ${KVMLIKE_DEFCONFIG}
                  OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
endif()
execute_process(COMMAND ${KCONFIG_ENV} ${KCONFIG_PYTHON} -m olddefconfig ${KCONFIG_ROOT}
                OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/include/generated)
execute_process(COMMAND ${KCONFIG_ENV} ${KCONFIG_PYTHON} -m genconfig
                        --header-path ${KCONFIG_HEADER}
                        --file-list ${CMAKE_BINARY_DIR}/kconfig-files.txt ${KCONFIG_ROOT}
                COMMAND_ERROR_IS_FATAL ANY)
file(STRINGS ${CMAKE_BINARY_DIR}/kconfig-files.txt KCONFIG_SOURCES)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${KCONFIG_SOURCES} ${KCONFIG_DOTCONFIG})

foreach(t menuconfig oldconfig olddefconfig savedefconfig)
  if(t STREQUAL savedefconfig)
    set(args --kconfig ${KCONFIG_ROOT} --out ${CMAKE_BINARY_DIR}/defconfig)
  else()
    set(args ${KCONFIG_ROOT})
  endif()
  add_custom_target(${t}
    COMMAND ${KCONFIG_ENV} ${KCONFIG_PYTHON} -m ${t} ${args}
    COMMAND ${CMAKE_COMMAND} ${CMAKE_BINARY_DIR}
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR} USES_TERMINAL)
endforeach()

# Import CONFIG_* values into CMake variables.
file(STRINGS ${KCONFIG_DOTCONFIG} _kconfig_lines REGEX "^CONFIG_")
foreach(line ${_kconfig_lines})
  if(line MATCHES "^(CONFIG_[A-Za-z0-9_]+)=\"?([^\"]*)\"?$")
    set(${CMAKE_MATCH_1} "${CMAKE_MATCH_2}")
  endif()
endforeach()
