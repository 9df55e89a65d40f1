# The command-line programs' conventions: `envit` (examples/envit) and the writers it uses.
# Unit tests of the text writers, the warm-up rule, the step floor and the memory plan (header-only, also run under the sanitizers).
envit_add_test(test_cli_outputs test_cli_outputs.cpp)
target_include_directories(test_cli_outputs PRIVATE ${PROJECT_SOURCE_DIR}/examples/envit)

if(ENVIT_BUILD_EXAMPLES)
  set(check ${CMAKE_CURRENT_SOURCE_DIR}/cli/run_check.cmake)
  # The readme preset's step floor (kReadmeMinSteps in envit/model/config.hpp) and its epochs on
  # 1,500 images at batch 128 (11 steps per epoch).
  file(STRINGS ${PROJECT_SOURCE_DIR}/include/envit/model/config.hpp floor_line REGEX "kReadmeMinSteps = [0-9]+")
  string(REGEX REPLACE ".*kReadmeMinSteps = ([0-9]+).*" "\\1" ENVIT_README_MIN_STEPS "${floor_line}")
  math(EXPR ENVIT_README_FLOOR_EPOCHS "(${ENVIT_README_MIN_STEPS} + 10) / 11")
  envit_program(envit envit_cli)
  # envit_cli_test(name RC <code> ARGS a|b|c [OUT re] [ERR re] [NOT_ERR re] [OMP n|unset] [SETENV NAME=VALUE])
  function(envit_cli_test name)
    cmake_parse_arguments(T "" "RC;ARGS;OUT;ERR;NOT_ERR;OMP;SETENV" "" ${ARGN})
    set(defs -DCMD=${envit} "-DARGS=${T_ARGS}" -DRC=${T_RC})
    foreach(k OUT ERR NOT_ERR OMP SETENV)
      if(DEFINED T_${k})
        list(APPEND defs "-D${k}=${T_${k}}")
      endif()
    endforeach()
    add_test(NAME "envit cli: ${name}" COMMAND ${CMAKE_COMMAND} ${defs} -P ${check})
  endfunction()

  envit_cli_test("--version prints the project version" RC 0 ARGS --version OUT "^envit ${PROJECT_VERSION}\nkernels: [a-z0-9_]+ [^\n]*; bf16 products: [^\n]*\n$")
  envit_cli_test("--help lists the exit codes" RC 0 ARGS train|--help
                 OUT "Exit codes: 0 success.*2 usage error.*3 a non-finite")
  envit_cli_test("unknown flag: exit 2, error and usage on stderr" RC 2 ARGS train|--no-such-flag
                 ERR "envit train: error: .*--no-such-flag.*\nUsage: envit train \\[OPTIONS\\]")
  envit_cli_test("no subcommand: exit 2, usage on stderr" RC 2 ARGS "" ERR "Usage: envit \\[OPTIONS\\] SUBCOMMAND")
  envit_cli_test("out-of-range value rejected" RC 2 ARGS train|--batch|0 ERR "--batch: Value 0 not in range 1")
  envit_cli_test("non-finite value rejected" RC 2 ARGS train|--lr|nan ERR "--lr: 'nan' is not a finite number")
  envit_cli_test("model that does not validate is a usage error" RC 2 ARGS train|--dim|100|--heads|3|--print-config
                 ERR "dim 100 is not divisible by heads 3")
  envit_cli_test("missing file is a runtime error" RC 1 ARGS eval|--checkpoint|/nonexistent/x.safetensors
                 ERR "envit eval: error: .*/nonexistent/x.safetensors")
  envit_cli_test("--threads defaults to OMP_NUM_THREADS" RC 0 OMP 3 ARGS train|--subset|1500|--print-config
                 OUT "\nthreads=3\n")
  envit_cli_test("--threads defaults to the cores without OMP_NUM_THREADS" RC 0 OMP unset
                 ARGS train|--subset|1500|--print-config OUT "\nthreads=@NPROC@\n")
  # 1,500 images, batch 128: 11 steps x 18 epochs = 198; the readme preset's 400 steps do not fit.
  envit_cli_test("warm-up of a short run is a fraction of it" RC 0 ARGS train|--subset|1500|--epochs|18|--print-config
                 OUT "train.total_steps=198\ntrain.warmup_steps=10\n" ERR "note: preset readme's 400 warm-up steps")
  # Without --epochs the same run is raised to the readme preset's step floor (schedule.hpp), and says so.
  envit_cli_test("a short-data run is raised to the preset's step floor" RC 0 ARGS train|--subset|1500|--print-config
                 OUT "train.epochs=${ENVIT_README_FLOOR_EPOCHS}\n.*train.min_steps=${ENVIT_README_MIN_STEPS}\n"
                 ERR "schedule: preset readme's 18 epochs are 198 steps on this data set \\(11 per epoch\\), far fewer than the 7722 it was tuned for; raised to ${ENVIT_README_FLOOR_EPOCHS} epochs")
  envit_cli_test("--epochs wins over the step floor" RC 0 ARGS train|--subset|1500|--epochs|5|--print-config
                 OUT "train.total_steps=55\n" NOT_ERR "schedule:")
  envit_cli_test("--steps wins over the step floor" RC 0 ARGS train|--subset|1500|--steps|100|--print-config
                 OUT "train.epochs=18\n.*train.total_steps=100\n" NOT_ERR "schedule:")
  # Memory: a plan above the limit is refused before any step (and before the output directory exists).
  envit_cli_test("a run whose memory plan exceeds --memory-limit is refused" RC 1
                 ARGS train|--subset|1500|--memory-limit|1M|--out|${CMAKE_CURRENT_BINARY_DIR}/cli_runs/refused
                 ERR "memory: planned [0-9.]+ MiB \\(parameters, gradients and AdamW [0-9.]+ MiB, activations at batch 128 [0-9.]+ MiB, evaluation [0-9.]+ MiB, data [0-9.]+ MiB\\) is more than the 1.0 MiB available \\(--memory-limit\\); reduce --batch"
                 NOT_ERR "epoch 1")
  envit_cli_test("ENVIT_MEMORY_LIMIT refuses the same way" RC 1 SETENV ENVIT_MEMORY_LIMIT=2M
                 ARGS train|--subset|1500|--out|${CMAKE_CURRENT_BINARY_DIR}/cli_runs/refused
                 ERR "is more than the 2.0 MiB available \\(ENVIT_MEMORY_LIMIT\\)" NOT_ERR "epoch 1")
  envit_cli_test("a malformed memory limit is a usage error" RC 2 ARGS train|--memory-limit|lots|--print-config
                 ERR "--memory-limit: 'lots' is not a memory size")
  envit_cli_test("the run header states the planned memory" RC 0
                 ARGS train|--subset|256|--steps|1|--batch|64|--dim|16|--heads|2|--mlp|32|--depth|2|--threads|1|--memory-limit|4G|--out|${CMAKE_CURRENT_BINARY_DIR}/cli_runs/mem
                 ERR "memory: planned [0-9.]+ MiB \\(parameters.*\\); 4.00 GiB available \\(--memory-limit\\)")
  envit_cli_test("--warmup-frac sets the warm-up" RC 0 ARGS train|--subset|1500|--epochs|18|--warmup-frac|0.1|--print-config
                 OUT "train.warmup_steps=20\n" NOT_ERR "note:")
  envit_cli_test("--warmup-steps overrides" RC 0 ARGS train|--subset|1500|--warmup-steps|7|--print-config
                 OUT "train.warmup_steps=7\n")
  # scripts/main.sh's run: 55,000 images, 429 steps x 18 epochs; the preset's 400 steps stay.
  envit_cli_test("the README job keeps the preset's 400 warm-up steps" RC 0
                 ARGS train|--preset|readme|--val|5000|--print-config
                 OUT "train.total_steps=7722\ntrain.warmup_steps=400\n" NOT_ERR "note:|schedule:")

  envit_cli_test("train --precision: a bad value is a usage error naming the flag" RC 2
                 ARGS train|--precision|fp16|--print-config ERR "--precision: unknown precision 'fp16' \\(expected fp32 or bf16\\)")
  envit_cli_test("eval --precision: a bad value is a usage error naming the flag" RC 2
                 ARGS eval|--checkpoint|/nonexistent/x.safetensors|--precision|BF16
                 ERR "--precision: unknown precision 'BF16' \\(expected fp32, bf16 or int8\\)")
  envit_cli_test("quantize --act static without --calib is a usage error" RC 2
                 ARGS quantize|--checkpoint|/nonexistent/x.safetensors|--out|/nonexistent/y.safetensors|--act|static
                 ERR "--act static needs --calib N > 0 calibration images")
  envit_cli_test("quantize --act: a bad value is a usage error" RC 2
                 ARGS quantize|--checkpoint|/nonexistent/x.safetensors|--out|/nonexistent/y.safetensors|--act|dynamic,static
                 ERR "--act: 2 values \\(expected one, or four for qkv,proj,fc1,fc2\\)")
  envit_cli_test("--precision bf16 is a training setting" RC 0 ARGS train|--subset|1500|--precision|bf16|--print-config
                 OUT "\ntrain.precision=bf16\n")
  envit_cli_test("the default precision is fp32" RC 0 ARGS train|--subset|1500|--print-config
                 OUT "\ntrain.precision=fp32\n")

  # A tiny 3-exit checkpoint (seconds) in a directory whose name needs XML escaping.
  set(run_dir "${CMAKE_CURRENT_BINARY_DIR}/cli_runs/r&d <1>")
  add_test(NAME "envit cli: tiny checkpoint for eval"
           COMMAND envit_cli train --subset 512 --epochs 1 --depth 3 --exits 1,2,3 --dim 16 --heads 2 --mlp 32
                   --patch 7 --batch 64 --threads 2 --out ${run_dir})
  set_tests_properties("envit cli: tiny checkpoint for eval" PROPERTIES FIXTURES_SETUP envit_cli_tiny)
  add_test(NAME "envit cli: eval --exit-thresholds, JSON/CSV/SVG outputs"
           COMMAND ${CMAKE_COMMAND} -DENVIT=${envit} "-DCKPT=${run_dir}/last.safetensors"
                   "-DOUT=${CMAKE_CURRENT_BINARY_DIR}/cli_runs/eval" -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/eval_exit_thresholds.cmake)
  set_tests_properties("envit cli: eval --exit-thresholds, JSON/CSV/SVG outputs" PROPERTIES FIXTURES_REQUIRED envit_cli_tiny)
  # The tiny FP32 checkpoint continued in BF16 for one more epoch, then evaluated in the precision it
  # records (bf16), with the kernel set named.
  set(bf16_dir "${CMAKE_CURRENT_BINARY_DIR}/cli_runs/bf16")
  add_test(NAME "envit cli: an fp32 checkpoint resumes in bf16"
           COMMAND envit_cli train --subset 512 --epochs 2 --depth 3 --exits 1,2,3 --dim 16 --heads 2 --mlp 32
                   --patch 7 --batch 64 --threads 2 --precision bf16 --resume ${run_dir}/last.safetensors
                   --out ${bf16_dir})
  set_tests_properties("envit cli: an fp32 checkpoint resumes in bf16" PROPERTIES FIXTURES_REQUIRED envit_cli_tiny
                       FIXTURES_SETUP envit_cli_bf16
                       PASS_REGULAR_EXPRESSION "precision: bf16 \\(resuming a checkpoint trained in fp32: the steps from here run in bf16\\); kernels: ")
  add_test(NAME "envit cli: eval of a bf16 checkpoint runs in bf16 and names the kernels"
           COMMAND envit_cli eval --checkpoint ${bf16_dir}/last.safetensors --thresholds 2 --stream-samples 0
                   --time-samples 64 --repeats 1 --threads 2 --out ${bf16_dir}/eval)
  set_tests_properties("envit cli: eval of a bf16 checkpoint runs in bf16 and names the kernels" PROPERTIES
                       FIXTURES_REQUIRED envit_cli_bf16 PASS_REGULAR_EXPRESSION "\n  precision bf16, kernels: [a-z0-9_]+ ")
  # The tiny FP32 checkpoint quantized (static qkv and fc1 scales on 64 training samples: it has no
  # validation split), then evaluated: INT8 selected by the file, real early exit identical to the
  # simulated one.
  set(int8_dir "${CMAKE_CURRENT_BINARY_DIR}/cli_runs/int8")
  add_test(NAME "envit cli: quantize a checkpoint to INT8"
           COMMAND envit_cli quantize --checkpoint ${run_dir}/last.safetensors --out ${int8_dir}/q.safetensors
                   --act static,dynamic,static,dynamic --calib 64 --threads 2)
  set_tests_properties("envit cli: quantize a checkpoint to INT8" PROPERTIES FIXTURES_REQUIRED envit_cli_tiny
                       FIXTURES_SETUP envit_cli_int8
                       PASS_REGULAR_EXPRESSION "activations qkv static, proj dynamic, fc1 static, fc2 dynamic; 64 calibration images \\(training samples\\)")
  add_test(NAME "envit cli: eval of a quantized checkpoint runs in int8, early exit as simulated"
           COMMAND envit_cli eval --checkpoint ${int8_dir}/q.safetensors --thresholds 0.5,2 --stream-samples 8
                   --time-samples 64 --repeats 1 --threads 2 --out ${int8_dir}/eval)
  set_tests_properties("envit cli: eval of a quantized checkpoint runs in int8, early exit as simulated" PROPERTIES
                       FIXTURES_REQUIRED envit_cli_int8
                       PASS_REGULAR_EXPRESSION "\n  precision int8, kernels: [^\n]*int8 products: [a-z0-9_]+\n.*simulated vs real early exit on 64 samples: identical exits and predictions at every threshold")
  add_test(NAME "envit cli: quantize refuses an already quantized checkpoint"
           COMMAND envit_cli quantize --checkpoint ${int8_dir}/q.safetensors --out ${int8_dir}/qq.safetensors)
  set_tests_properties("envit cli: quantize refuses an already quantized checkpoint" PROPERTIES
                       FIXTURES_REQUIRED envit_cli_int8 PASS_REGULAR_EXPRESSION "is already quantized \\(int8\\)")
endif()
