# envit early-exit inference: MAC counts and eq. 19, exit criteria, simulation and calibration,
# real early exit (compaction, streaming) agreeing exactly with the simulation.
envit_add_test(infer_macs infer/test_infer_macs.cpp)
envit_add_test(infer_criteria infer/test_infer_criteria.cpp infer/test_infer_simulate.cpp infer/test_infer_beem_energy.cpp)
envit_add_test(infer_agreement infer/test_infer_agreement.cpp alloc_counter.cpp)
