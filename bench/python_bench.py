#!/usr/bin/python3
"""The envit Python module against the `envit` program on the same work, timed alternately
(program, module, program, module, ...) and reported as medians:
  1. inference: every exit's logits of the Fashion-MNIST test set at batch 128 (`envit eval` with
     no sweep timing against model.logits), on a checkpoint the bench trains first (or --checkpoint);
  2. one training epoch of the same flags (`envit train` against Trainer.fit), data loading included
     on both sides;
  3. batch-1 model.predict: seconds per call from Python against early_exit_one's time measured by
     the program (`envit eval --stream-samples`), the difference being the per-call overhead.
Usage:
  PYTHONPATH=build/python /usr/bin/python3 bench/python_bench.py --program build/examples/envit [--repeats 5]
Prints one line per measurement: the program's and the module's medians and their ratio."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import envit

TRAIN = ["--preset", "readme", "--subset", "6400", "--epochs", "1", "--batch", "128", "--seed", "0"]


def flags_to_kwargs(argv):
    kw, i = {}, 0
    while i < len(argv):
        k = argv[i][2:].replace("-", "_")
        kw[k] = argv[i + 1]
        i += 2
    return kw


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--program", required=True)
    ap.add_argument("--checkpoint", help="a checkpoint to evaluate (default: one trained here with %s)" % " ".join(TRAIN))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=envit.get_threads())
    ap.add_argument("--predict-calls", type=int, default=2000)
    a = ap.parse_args()
    envit.set_threads(a.threads)
    th = ["--threads", str(a.threads)]
    work = tempfile.mkdtemp(prefix="envit_pybench_")
    ckpt = a.checkpoint
    if not ckpt:
        subprocess.run([a.program, "train", *TRAIN, *th, "--out", work + "/seed"], check=True, capture_output=True)
        ckpt = work + "/seed/last.safetensors"
    model = envit.load(ckpt)
    images, _ = model.test_set()
    x = model.normalize(images)

    def report(what, prog, mod, unit="s"):
        p, m = statistics.median(prog), statistics.median(mod)
        print(f"{what:<44} program {p:10.4f} {unit}  module {m:10.4f} {unit}  module/program {m / p:6.3f}")

    # 1. inference at batch 128, end to end on both sides: load the checkpoint and the test set,
    # every exit's logits at batch 128, one sweep point (the program also writes its files and runs
    # its full-model timing on one sample); then the module's logits alone.
    ev = [a.program, "eval", "--checkpoint", ckpt, "--thresholds", "1", "--repeats", "1", "--stream-samples", "0",
          "--time-samples", "1", "--batch", "128", *th, "--out", work + "/eval"]

    def module_eval():
        m = envit.load(ckpt)
        imgs, labels = m.test_set()
        m.sweep(imgs, labels, thresholds=[1.0], batch=128)

    prog, mod, alone = [], [], []
    for _ in range(a.repeats):
        prog.append(timed(lambda: subprocess.run(ev, check=True, capture_output=True)))
        mod.append(timed(module_eval))
        alone.append(timed(lambda: model.logits(x, batch=128)))
    report("eval: load, test-set logits at batch 128", prog, mod)
    print(f"module logits alone (10000 images, batch 128): {statistics.median(alone):.4f} s")

    # 2. one training epoch.
    prog, mod = [], []
    for r in range(a.repeats):
        prog.append(timed(lambda: subprocess.run([a.program, "train", *TRAIN, *th, "--out", f"{work}/p{r}"],
                                                 check=True, capture_output=True)))
        mod.append(timed(lambda: envit.Trainer(out=f"{work}/m{r}", threads=a.threads, **flags_to_kwargs(TRAIN)).fit()))
    report("train one epoch (6400 samples, end to end)", prog, mod)

    # 3. batch-1 predict: the program's streaming early exit (early_exit_one, threshold 0.9) per
    # image, from its full-model streaming time and its streaming speed-up, against model.predict on
    # the same images one call each. The difference is what a Python call adds.
    n = 200
    prog, mod = [], []
    for _ in range(a.repeats):
        out = subprocess.run([a.program, "eval", "--checkpoint", ckpt, "--thresholds", "0.9", "--repeats", "1",
                              "--stream-samples", str(n), "--time-samples", str(n), *th, "--out", work + "/ev1"],
                             check=True, capture_output=True, text=True).stdout
        line = [s for s in out.splitlines() if "ms per image streaming" in s][0]
        full_ms = float(line.split(",")[1].split()[0])
        with open(work + "/ev1/sweep.csv") as f:
            row = f.read().splitlines()[1].split(",")
        prog.append(full_ms / 1e3 / float(row[6]))  # speedup_stream
        mod.append(timed(lambda: [model.predict(x[i:i + 1], 0.9) for i in range(n)]) / n)
    report("batch-1 early exit per image (threshold 0.9)", prog, mod)
    print(f"batch-1 predict adds {(statistics.median(mod) - statistics.median(prog)) * 1e6:.1f} us per call")
    print(f"work files in {work}")


if __name__ == "__main__":
    sys.exit(main())
