#!/usr/bin/env python3
"""envit vs PyTorch on the same multi-exit ViT, batch and thread count, in one run.

For each mode it runs envit_model_bench (bench/model_bench.cpp) and bench/torch_model_bench.py
INTERLEAVED -- envit, torch, envit, torch, ... --rounds times -- each in a fresh process, so slow
drifts of a shared machine hit both alike, and each process's peak RSS is its own. Each run prints
one JSON line (median over its timed iterations); the table shows, per mode and implementation,
the median over rounds of those medians as images/s (latency mode: milliseconds per image), the
largest peak RSS over rounds, and the ratios envit/torch.

  speed envit/torch = envit images/s / torch images/s  (= torch time / envit time; > 1: envit faster)
  RSS envit/torch   = envit peak RSS / torch peak RSS   (torch's includes ~230 MB of libraries, see
                                                          base RSS under the table)

torch runs under /usr/bin/python3 (--python) with LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp
when that directory exists (package libopenblas0-openmp: an OpenMP BLAS that honours the thread
count); both get OMP_NUM_THREADS=--threads and --threads. If torch cannot be imported, this says so
and prints envit's numbers alone.

Configs: tiny28 (28x28x1, patch 4, dim 192, depth 12, 3 heads, MLP 768, 10 classes; modes train,
infer, latency) and vitb16 (224x224x3, patch 16, dim 768, depth 12, 12 heads, MLP 3072, 1000
classes; modes latency, infer by default). Exits after every other block in both.
--precision bf16: envit runs with --precision bf16 (BF16 operands, FP32 accumulation in every matrix
product) and torch under torch.autocast("cpu", dtype=torch.bfloat16) (bench/torch_model_bench.py).
--precision int8 (infer and latency; train is left out): envit --precision int8 (the blocks' Linear
layers in INT8, dynamic per-token activation scales) against torch's quantize_dynamic on every
nn.Linear (engine onednn where available).
Training: --scheme (envit default) at p_M = --p-max (default 0). torch has no layer skipping, so with
--p-max > 0 envit runs at that p_M and torch at p_M = 0 (noted under the table).

Usage:
  python3 bench/side_by_side.py [--config tiny28|vitb16] [--modes train,infer,latency]
      [--threads 2] [--batch 128] [--rounds 3] [--iters N] [--warmup N] [--scheme envit]
      [--p-max 0] [--precision fp32|bf16|int8] [--envit-bin build/bench/envit_model_bench] [--python /usr/bin/python3] [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OPENBLAS_OMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp"

CONFIGS = {
    "tiny28": dict(image=28, channels=1, patch=4, dim=192, depth=12, heads=3, mlp=768, classes=10),
    "vitb16": dict(image=224, channels=3, patch=16, dim=768, depth=12, heads=12, mlp=3072, classes=1000),
}
TORCH_SCHEMES = ("vit-ee", "envit", "envit-kd")  # what bench/torch_model_bench.py implements (p_M = 0)
DEFAULT_MODES = {"tiny28": "train,infer,latency", "vitb16": "latency,infer"}
# (iters, warmup) per config and mode when --iters / --warmup are not given.
DEFAULT_ITERS = {
    "tiny28": {"train": (10, 2), "infer": (10, 2), "latency": (50, 5)},
    "vitb16": {"train": (3, 1), "infer": (3, 1), "latency": (10, 2)},
}


def parse_args(argv):
    ap = argparse.ArgumentParser(description="envit vs PyTorch, same model/batch/threads, interleaved runs")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny28")
    ap.add_argument("--modes", help="comma list of train,infer,latency (default per config)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128, help="batch of train and infer (latency: 1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, help="timed iterations per run (default per config and mode)")
    ap.add_argument("--warmup", type=int, help="untimed iterations per run (default per config and mode)")
    ap.add_argument("--scheme", default="envit", help="training scheme (torch: vit-ee, envit, envit-kd)")
    ap.add_argument("--p-max", type=float, default=0.0, help="envit's p_M in train mode (torch: always 0)")
    ap.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                    help="bf16: envit --precision bf16 against torch under autocast(bfloat16); int8: envit "
                         "--precision int8 against torch's quantize_dynamic (infer and latency only)")
    ap.add_argument("--envit-bin", default="build/bench/envit_model_bench")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter for the torch benchmark")
    ap.add_argument("--json", help="also write every run's JSON record to this file")
    a = ap.parse_args(argv)
    a.mode_list = [m.strip() for m in (a.modes or DEFAULT_MODES[a.config]).split(",") if m.strip()]
    if a.precision == "int8":
        if a.modes and "train" in a.mode_list:
            ap.error("--precision int8 is for the infer and latency modes")
        a.mode_list = [m for m in a.mode_list if m != "train"]
    for m in a.mode_list:
        if m not in ("train", "infer", "latency"):
            ap.error(f"--modes: unknown mode '{m}' (expected train, infer, latency)")
    if a.threads < 1 or a.batch < 1 or a.rounds < 1:
        ap.error("--threads, --batch and --rounds must be >= 1")
    if (a.iters is not None and a.iters < 1) or (a.warmup is not None and a.warmup < 0):
        ap.error("--iters must be >= 1 and --warmup >= 0")
    return a


def resolve_bin(path):
    if os.path.isabs(path):
        return path
    for base in (os.getcwd(), ROOT):
        p = os.path.join(base, path)
        if os.path.exists(p):
            return p
    return os.path.join(ROOT, path)


def child_env(a, torch):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(a.threads)
    if torch and os.path.isdir(OPENBLAS_OMP):
        old = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = OPENBLAS_OMP + (":" + old if old else "")
    return env


def torch_status(a):
    """(True, version) or (False, reason)."""
    try:
        r = subprocess.run([a.python, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                           text=True, env=child_env(a, True), timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{a.python} could not be run ({e})"
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        return False, f"'import torch' failed under {a.python}: {tail}"
    return True, r.stdout.strip()


def bench_flags(a, mode):
    c = CONFIGS[a.config]
    iters, warmup = DEFAULT_ITERS[a.config][mode]
    if a.iters is not None:
        iters = a.iters
    if a.warmup is not None:
        warmup = a.warmup
    flags = ["--mode", mode, "--batch", str(1 if mode == "latency" else a.batch), "--threads", str(a.threads),
             "--iters", str(iters), "--warmup", str(warmup), "--scheme", a.scheme, "--exits", "every-other",
             "--precision", a.precision]
    for k in ("dim", "depth", "heads", "mlp", "image", "channels", "patch", "classes"):
        flags += ["--" + k, str(c[k])]
    return flags


def run_one(cmd, env):
    """Runs one benchmark process; returns (record or None, error text)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except OSError as e:
        return None, f"could not start {cmd[0]}: {e}"
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not lines:
        msg = (r.stderr.strip() or r.stdout.strip() or "(no output)").splitlines()
        return None, f"exit code {r.returncode}: {msg[-1]}"
    try:
        return json.loads(lines[-1]), ""
    except json.JSONDecodeError as e:
        return None, f"unparsable JSON ({e}): {lines[-1][:200]}"


def summarise(records):
    """Median over rounds of the per-run medians, max peak RSS, mean executed fraction."""
    if not records:
        return None
    med = statistics.median(r["median_s"] for r in records)
    batch = records[0]["batch"]
    return {
        "median_s": med, "images_per_s": batch / med, "batch": batch,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in records),
        "base_rss_mb": max(r.get("base_rss_mb", 0.0) for r in records),
        "executed_fraction": statistics.fmean(r["executed_fraction"] for r in records),
        "rounds": [r["median_s"] for r in records],
        "loss": records[-1].get("loss"),
    }


def fmt_speed(mode, s):
    if s is None:
        return "-"
    return f"{1e3 * s['median_s']:.2f} ms" if mode == "latency" else f"{s['images_per_s']:.1f} img/s"


def print_table(a, results, have_torch):
    head = ["mode", "batch", "envit", "torch", "speed envit/torch", "envit RSS MB", "torch RSS MB",
            "RSS envit/torch"]
    rows = []
    for mode in a.mode_list:
        e, t = results[mode]["envit"], results[mode]["torch"]
        speed = f"{e['images_per_s'] / t['images_per_s']:.2f}x" if e and t else "-"
        rss = f"{e['peak_rss_mb'] / t['peak_rss_mb']:.2f}" if e and t else "-"
        batch = (e or t or {}).get("batch", "-")
        rows.append([mode, str(batch), fmt_speed(mode, e), fmt_speed(mode, t) if have_torch else "n/a", speed,
                     f"{e['peak_rss_mb']:.0f}" if e else "-",
                     (f"{t['peak_rss_mb']:.0f}" if t else "-") if have_torch else "n/a", rss])
    if not have_torch:  # envit alone: drop the torch and ratio columns
        keep = [0, 1, 2, 5]
        head = [head[i] for i in keep]
        rows = [[r[i] for i in keep] for r in rows]
    w = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    line = "  ".join(h.ljust(w[i]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(head))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))


def main(argv):
    a = parse_args(argv)
    envit_bin = resolve_bin(a.envit_bin)
    if not os.access(envit_bin, os.X_OK):
        print(f"side_by_side: envit benchmark not found at {envit_bin}\n  build it: cmake -S . -B build "
              f"-DCMAKE_BUILD_TYPE=Release && cmake --build build --target envit_model_bench -j2", file=sys.stderr)
        return 2
    torch_script = os.path.join(HERE, "torch_model_bench.py")
    have_torch, torch_info = torch_status(a)

    c = CONFIGS[a.config]
    print(f"config {a.config}: image {c['image']}x{c['image']}x{c['channels']}, patch {c['patch']}, dim {c['dim']}, "
          f"depth {c['depth']}, heads {c['heads']}, mlp {c['mlp']}, classes {c['classes']}, exits every other block")
    print(f"threads {a.threads}, batch {a.batch} (latency: 1), rounds {a.rounds} interleaved, "
          f"train scheme {a.scheme} p_M {a.p_max:g}")
    print(f"precision {a.precision}" + (": envit --precision bf16, torch under torch.autocast('cpu', "
                                        "dtype=torch.bfloat16)" if a.precision == "bf16" else
                                        ": envit --precision int8, torch quantize_dynamic(nn.Linear, qint8)"
                                        if a.precision == "int8" else ""))
    print(f"envit: {envit_bin}")
    if have_torch:
        blas = f"LD_LIBRARY_PATH={OPENBLAS_OMP}" if os.path.isdir(OPENBLAS_OMP) else \
            f"{OPENBLAS_OMP} not found (libopenblas0-openmp not installed): default BLAS"
        print(f"torch: {torch_info} under {a.python}, {blas}")
    else:
        print(f"torch: NOT AVAILABLE -- {torch_info}. Showing envit's numbers alone.")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f} on {os.cpu_count()} CPUs -- other work is running; timings are noisy")
    print(flush=True)

    results, raw, failures, notes = {}, [], [], []
    for mode in a.mode_list:
        flags = bench_flags(a, mode)
        per = {"envit": [], "torch": []}
        run_torch = have_torch
        if mode == "train" and have_torch and a.scheme not in TORCH_SCHEMES:
            run_torch = False
            notes.append(f"torch implements the schemes {', '.join(TORCH_SCHEMES)} only: train ran envit alone "
                         f"for --scheme {a.scheme}.")
        for rnd in range(a.rounds):
            impls = [("envit", [envit_bin] + flags + ["--p-max", str(a.p_max if mode == "train" else 0.0)],
                      child_env(a, False))]
            if run_torch:
                impls.append(("torch", [a.python, torch_script] + flags + ["--p-max", "0"], child_env(a, True)))
            for impl, cmd, env in impls:
                rec, err = run_one(cmd, env)
                if rec is None:
                    failures.append(f"{mode} {impl} round {rnd + 1}: {err}")
                    print(f"  [{mode}] round {rnd + 1}/{a.rounds} {impl}: FAILED ({err})", file=sys.stderr, flush=True)
                    continue
                if rec.get("impl") != impl or rec.get("mode") != mode:
                    failures.append(f"{mode} {impl} round {rnd + 1}: record is for {rec.get('impl')}/{rec.get('mode')}")
                    continue
                per[impl].append(rec)
                raw.append(rec)
                print(f"  [{mode}] round {rnd + 1}/{a.rounds} {impl:5s}: median {rec['median_s']:.4g} s, "
                      f"{rec['images_per_s']:.4g} img/s, peak RSS {rec['peak_rss_mb']:.0f} MB",
                      file=sys.stderr, flush=True)
        results[mode] = {k: summarise(v) for k, v in per.items()}

    print()
    print_table(a, results, have_torch)
    print()
    if have_torch:
        print("speed envit/torch = envit images/s / torch images/s (> 1: envit faster); ", end="")
    print("values are medians over rounds of per-run medians; RSS = largest peak over rounds.")
    for mode in a.mode_list:
        for impl in ("envit", "torch"):
            s = results[mode][impl]
            if s is None:
                continue
            extra = ""
            if mode == "train":
                extra = f", executed fraction {s['executed_fraction']:.3f}, last loss {s['loss']:.4f}"
            print(f"  {mode:7s} {impl:5s}: round medians {', '.join(f'{x:.4g}' for x in s['rounds'])} s; "
                  f"base RSS {s['base_rss_mb']:.0f} MB{extra}")
    kernels = {r.get("kernels") for r in raw if r["impl"] == "envit"}
    if kernels:
        print(f"  envit {', '.join(sorted(k for k in kernels if k))}, precision {a.precision}")
    blas = {r.get("blas") for r in raw if r["impl"] == "torch"}
    if blas:
        print(f"  torch BLAS: {', '.join(sorted(b for b in blas if b))}")
    if a.p_max > 0 and "train" in a.mode_list and have_torch:
        notes.append(f"envit trained at p_M = {a.p_max:g} (layer skipping); torch has none and ran p_M = 0.")
    for n in notes:
        print(f"  note: {n}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(a).items()}, "runs": raw, "summary": results}, f, indent=1)
        print(f"  wrote {a.json}")
    if failures:
        print("\nFAILED runs:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
