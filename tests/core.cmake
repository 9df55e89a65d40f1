# core (include/envit/core/): tests/core/test_<name>.cpp for core/<name>.hpp, executables core_<name>.
foreach(h tensor arena rng parallel)
  envit_add_test(core_${h} core/test_${h}.cpp)
endforeach()
