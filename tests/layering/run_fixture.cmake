# Configures fixture/ with one CASE and checks the outcome:
#   clean              configure succeeds
#   store_in_worker    fails: the worker reaches libpqxx through the store's PRIVATE link
#   torch_in_services  fails: a library in services/ reaches LibTorch through a helper
# Usage: cmake -DCASE=... -DFIXTURE=<dir> -DWORK=<dir> -DGENERATOR=... -DMAKE_PROGRAM=...
#        -P run_fixture.cmake
set(expected_clean "")
set(expected_store_in_worker
    "layering: fixture_worker links PkgConfig::PQXX via fixture_api -> fixture_store; the worker must not link libpqxx")
set(expected_torch_in_services
    "layering: fixture_services_api links torch via fixture_helper; services/ never links LibTorch")
if(NOT DEFINED expected_${CASE})
  message(FATAL_ERROR "unknown CASE '${CASE}'")
endif()

file(REMOVE_RECURSE "${WORK}")
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${FIXTURE} -B ${WORK} -G ${GENERATOR}
          -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM} -DFIXTURE_CASE=${CASE}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
set(log "${out}${err}")

if(CASE STREQUAL "clean")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the clean fixture should configure, but it failed (${rc}):\n${log}")
  endif()
  if(NOT log MATCHES "layering rules hold")
    message(FATAL_ERROR "the clean fixture did not run the check:\n${log}")
  endif()
else()
  if(rc EQUAL 0)
    message(FATAL_ERROR "case ${CASE} should fail the configure, but it passed:\n${log}")
  endif()
  # The message may be wrapped by CMake's error formatting; compare with whitespace squeezed.
  string(REGEX REPLACE "[ \t\r\n]+" " " squeezed "${log}")
  string(FIND "${squeezed}" "${expected_${CASE}}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "case ${CASE}: expected\n  ${expected_${CASE}}\nin:\n${log}")
  endif()
endif()
message(STATUS "layering.${CASE}: ok")
