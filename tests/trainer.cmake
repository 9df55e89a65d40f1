# test_trainer: linked with envit::dispatch (when built), so its cases run the host's best kernel set
# (a native BF16 one where the CPU has it); the BF16 training case runs once more under every lower
# set (test_trainer_isa_<set>: FP32 sets emulating BF16), since determinism and exact resume are
# per kernel set.
envit_add_test(test_trainer test_trainer.cpp)
envit_test_kernel_sets(test_trainer test_trainer "[bf16]")
envit_add_test(test_batch_reduce core/test_batch_reduce.cpp)
