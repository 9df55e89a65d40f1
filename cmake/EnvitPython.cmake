# The `envit` Python module (python/envit_module.cpp, pybind11; docs/python.md). Option ENVIT_PYTHON,
# on when pybind11 (Debian pybind11-dev) and the interpreter's development files (python3-dev) are
# found; never in a sanitizer build (an ASan-instrumented module cannot load into a plain interpreter).
# The interpreter: Python3_EXECUTABLE, by default Debian's /usr/bin/python3 when it exists (a pyenv
# `python3` first on PATH may lack numpy). The module is built at <build>/python/envit*.so
# (PYTHONPATH=<build>/python) and installed to <prefix>/${ENVIT_PYTHON_INSTALL_DIR}.
if(ENVIT_SANITIZE)
  set(ENVIT_PYTHON OFF)
  return()
endif()
if(NOT DEFINED Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python3_EXECUTABLE /usr/bin/python3 CACHE FILEPATH "Python interpreter for the envit module")
endif()
find_package(Python3 COMPONENTS Interpreter Development.Module QUIET)
set(PYBIND11_FINDPYTHON ON)
if(Python3_FOUND)
  find_package(pybind11 CONFIG QUIET)
endif()
if(Python3_FOUND AND pybind11_FOUND)
  set(_envit_python_default ON)
else()
  set(_envit_python_default OFF)
endif()
option(ENVIT_PYTHON "Build the envit Python module (on when pybind11 and Python 3 are found)" ${_envit_python_default})
if(NOT ENVIT_PYTHON)
  return()
endif()
if(NOT pybind11_FOUND)
  message(FATAL_ERROR "ENVIT_PYTHON needs pybind11 (Debian pybind11-dev) and Python 3 development files "
                      "(python3-dev); set -DPython3_EXECUTABLE=/path/to/python3 to choose the interpreter")
endif()

include(${CMAKE_CURRENT_LIST_DIR}/EnvitCli.cmake)
pybind11_add_module(envit_python MODULE NO_EXTRAS python/envit_module.cpp examples/envit/train.cpp)
set_target_properties(envit_python PROPERTIES OUTPUT_NAME envit
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/python)
target_link_libraries(envit_python PRIVATE envit::envit envit::arch envit::cli)
target_compile_options(envit_python PRIVATE -Wall -Wextra)

# <prefix>/lib/pythonX.Y/site-packages: the interpreter's posix_prefix layout, relative to the prefix.
execute_process(COMMAND ${Python3_EXECUTABLE} -c
                "import sysconfig; print(sysconfig.get_path('platlib', 'posix_prefix', vars={'platbase': '', 'base': ''}).lstrip('/'))"
                OUTPUT_VARIABLE _envit_py_dir OUTPUT_STRIP_TRAILING_WHITESPACE)
set(ENVIT_PYTHON_INSTALL_DIR "${_envit_py_dir}" CACHE STRING
    "Where `cmake --install` puts the envit module, relative to the prefix (PYTHONPATH=<prefix>/<this>)")
if(ENVIT_INSTALL)
  install(TARGETS envit_python LIBRARY DESTINATION ${ENVIT_PYTHON_INSTALL_DIR} COMPONENT python)
endif()

# pytest (tests/python): needs numpy and pytest in that interpreter; skipped (exit 77) otherwise.
if(ENVIT_BUILD_TESTS AND ENVIT_BUILD_EXAMPLES)
  add_test(NAME "python: pytest tests/python"
           COMMAND ${CMAKE_COMMAND} -E env PYTHONPATH=${CMAKE_BINARY_DIR}/python
                   ENVIT_PROGRAM=$<TARGET_FILE:envit_cli> ENVIT_BUILD_DIR=${CMAKE_BINARY_DIR}
                   ENVIT_SOURCE_DIR=${PROJECT_SOURCE_DIR} ENVIT_PYTHON_INSTALL_DIR=${ENVIT_PYTHON_INSTALL_DIR}
                   ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/run_pytest.py
                   ${PROJECT_SOURCE_DIR}/tests/python)
  set_tests_properties("python: pytest tests/python" PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                       LABELS python)
endif()
