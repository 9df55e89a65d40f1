# envit early-exit inference: MAC counts and eq. 19, exit criteria, simulation and calibration,
# real early exit (compaction, streaming) agreeing exactly with the simulation.
envit_add_test(infer_macs infer/test_infer_macs.cpp)
envit_add_test(infer_criteria infer/test_infer_criteria.cpp infer/test_infer_simulate.cpp infer/test_infer_beem_energy.cpp)
# infer_agreement's float agreement and compaction cases run under every kernel set the host has
# (infer_agreement_isa_<set>): the row kernels' position independence is what keeps compaction
# bitwise equal to the simulation. (The double cases use no kernel set; the sample-chunk case
# takes half a minute and exercises the same property.)
envit_add_test(infer_agreement infer/test_infer_agreement.cpp alloc_counter.cpp)
envit_test_kernel_sets(infer_agreement infer_agreement "[agree][packed],[agree][eigen],[compact],[invariance]")
