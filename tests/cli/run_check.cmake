# Runs one program and checks its exit code and output (ctest: `cmake -P` this script).
#   -DCMD=<program> "-DARGS=a|b|c" (arguments separated by |) -DRC=<expected exit code>
#   [-DOUT=<regex stdout must match>] [-DERR=<regex stderr must match>] [-DNOT_ERR=<regex it must not>]
#   [-DOMP=<value for OMP_NUM_THREADS, or "unset">]
# -DOMP=unset also checks OUT against the processor count `nproc` reports (OUT may hold @NPROC@).
if(DEFINED OMP)
  if(OMP STREQUAL "unset")
    unset(ENV{OMP_NUM_THREADS})
    execute_process(COMMAND nproc OUTPUT_VARIABLE nproc OUTPUT_STRIP_TRAILING_WHITESPACE)
    string(REPLACE "@NPROC@" "${nproc}" OUT "${OUT}")
  else()
    set(ENV{OMP_NUM_THREADS} "${OMP}")
  endif()
endif()
string(REPLACE "|" ";" args "${ARGS}")
execute_process(COMMAND ${CMD} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(report "command: ${CMD} ${args}\nexit code: ${rc}\n--- stdout:\n${out}\n--- stderr:\n${err}")
if(NOT rc STREQUAL RC)
  message(FATAL_ERROR "expected exit code ${RC}, got ${rc}\n${report}")
endif()
if(DEFINED OUT AND NOT out MATCHES "${OUT}")
  message(FATAL_ERROR "stdout does not match '${OUT}'\n${report}")
endif()
if(DEFINED ERR AND NOT err MATCHES "${ERR}")
  message(FATAL_ERROR "stderr does not match '${ERR}'\n${report}")
endif()
if(DEFINED NOT_ERR AND err MATCHES "${NOT_ERR}")
  message(FATAL_ERROR "stderr matches '${NOT_ERR}'\n${report}")
endif()
