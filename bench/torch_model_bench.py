#!/usr/bin/python3
"""PyTorch twin of envit_model_bench (bench/model_bench.cpp): the same multi-exit ViT, batch,
thread count and step, timed the same way, printed as ONE JSON line with "impl":"torch".

The model is plain torch (no timm) with timm's structure and parameter names, as in
tests/data/gen_train_step_fixture.py: Conv2d patch embedding, class token, learned position
embedding, pre-LN blocks with a fused qkv projection and explicit softmax attention (what timm does
on torch 1.13), exact (erf) GELU, LayerNorm eps 1e-6, exit heads = LayerNorm + Linear on the class
token after the configured blocks. Initialisation as envit's ViTParams::init (truncated normal,
std 0.02, cut at 2 std, for weight matrices / patch projection / cls_token / pos_embed; zero
biases; LayerNorm 1/0); the values differ from envit's (different generator), the distribution is
the same.

Modes:
  train    one complete step per iteration: zero_grad(set_to_none=True), forward, objective,
           backward, clip_grad_norm_(1.0), torch.optim.AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8,
           weight decay 0.05 on weight matrices and the conv weight only), fixed data batch.
           Objectives (p_M = 0: no layer skipping in torch):
             vit-ee          sum_j CE_j
             envit/envit-kd  (1/M) [ sum_{j<M} ((1-a) CE_j + a tau^2 KL(teacher || student_j)) + CE_M ],
                             teacher = softmax(z_M / tau) detached (the final exit of the same
                             pass, which is the complete model at p_M = 0), a = 0.5, tau = 4.
           This is exactly envit's objective for these schemes at p_M = 0 (checked against envit
           in tests/test_train_parity.cpp). Other schemes / p_M > 0 are refused.
  infer    the complete model at --batch under torch.no_grad(), every exit's logits.
  latency  infer at batch 1.
--precision bf16 runs the forward (and the objective) under torch.autocast("cpu", dtype=torch.bfloat16),
the one line a PyTorch user adds; backward and the optimizer step outside it, as PyTorch's autocast
recipe does. (envit's --precision bf16 rounds only the matrix products' operands; autocast also
leaves the outputs of those products in BF16: docs/method.md.)
Output keys as envit_model_bench: impl, mode, median_s, images_per_s, peak_rss_mb (ru_maxrss),
executed_fraction (always 1), plus settings, loss of the last step, parameter count, base RSS
(after importing torch), and the BLAS library torch loaded.

Run with /usr/bin/python3 (Debian's python3-torch). For OpenMP-threaded BLAS that honours
--threads: LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp (bench/side_by_side.py sets it).
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch_vit  # bench/torch_vit.py: the model and objective, shared with the parity fixture


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def blas_library():
    """The BLAS/LAPACK shared object mapped into this process (what torch's matmuls call)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = path.rsplit("/", 1)[-1]
                if name.startswith(("libblas", "libopenblas", "libmkl", "libblis")):
                    libs.add(path)
    except OSError:
        pass
    return ",".join(sorted(libs)) or "unknown"


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["train", "infer", "latency"], default="train")
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--mlp", type=int, default=768)
    ap.add_argument("--image", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--exits", default="every-other", help="every-other or a list s1,s2,...,depth")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scheme", default="envit")
    ap.add_argument("--p-max", type=float, default=0.0)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                    help="bf16: forward under torch.autocast('cpu', dtype=torch.bfloat16); int8 (infer and latency "
                         "only): torch.ao.quantization.quantize_dynamic on every nn.Linear (qint8 weights, dynamic "
                         "per-tensor activation scales), quantized engine onednn where available, else fbgemm")
    a = ap.parse_args(argv)
    if a.exits == "every-other":
        a.exit_list = list(range(2, a.depth + 1, 2))
        if not a.exit_list or a.exit_list[-1] != a.depth:
            a.exit_list.append(a.depth)
    else:
        try:
            a.exit_list = [int(s) for s in a.exits.split(",")]
        except ValueError:
            ap.error(f"--exits: '{a.exits}' is not a list of integers")
    e = a.exit_list
    if any(x < 1 or x > a.depth for x in e) or any(e[i] >= e[i + 1] for i in range(len(e) - 1)) \
            or e[-1] != a.depth:
        ap.error(f"--exits {a.exits}: exits must increase strictly within 1..{a.depth} and end at {a.depth}")
    if a.image % a.patch or a.dim % a.heads:
        ap.error("image size must be divisible by patch and dim by heads")
    if a.mode == "latency":
        a.batch = 1
    if a.batch < 1 or a.threads < 1 or a.iters < 1 or a.warmup < 0:
        ap.error("--batch, --threads, --iters must be >= 1 and --warmup >= 0")
    if a.mode == "train":
        if a.scheme not in ("vit-ee", "envit", "envit-kd"):
            ap.error(f"--scheme {a.scheme}: the torch benchmark implements vit-ee, envit and envit-kd only")
        if a.scheme == "envit" and a.p_max != 0.0:
            ap.error(f"--scheme envit --p-max {a.p_max}: the torch benchmark has no layer skipping; "
                     "only p_M = 0 (envit-kd style distillation) is implemented")
    return a


def build_model(torch, a):
    c = dict(image_size=a.image, channels=a.channels, patch=a.patch, dim=a.dim, depth=a.depth, heads=a.heads,
             mlp_hidden=a.mlp, classes=a.classes, exits=a.exit_list, ln_eps=1e-6)
    model = torch_vit.build(torch, c)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith(".weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                torch.nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)
    return model


decays = torch_vit.decays
objective = torch_vit.objective


def time_iters(warmup, iters, f):
    for _ in range(warmup):
        f()
    t = []
    for _ in range(iters):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return t


def main(argv):
    a = parse_args(argv)
    import torch  # after argument checks, so --help and errors are fast

    rss_base = peak_rss_mb()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = build_model(torch, a)
    engine = None
    if a.precision == "int8":
        if a.mode == "train":
            raise SystemExit("torch_model_bench: --precision int8 is for --mode infer or latency")
        engines = torch.backends.quantized.supported_engines
        engine = "onednn" if "onednn" in engines else "fbgemm" if "fbgemm" in engines else engines[0]
        torch.backends.quantized.engine = engine
        model.eval()
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    B = a.batch
    g = torch.Generator().manual_seed(7)
    images = 2 * torch.rand(B, a.channels, a.image, a.image, generator=g) - 1
    labels = torch.arange(B) % a.classes
    loss_val = None
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")

    if a.mode == "train":
        model.train()
        named = list(model.named_parameters())
        params = [p for _, p in named]
        opt = torch.optim.AdamW([{"params": [p for n, p in named if decays(n)], "weight_decay": 0.05},
                                 {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0}],
                                lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
        last = [None]

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = objective(torch, a.scheme, model(images), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            last[0] = loss.detach()

        times = time_iters(a.warmup, a.iters, step)
        loss_val = float(last[0])
    else:
        model.eval()

        def fwd():
            with torch.no_grad(), autocast:
                out = model(images)
            return out[-1][0, 0].item()

        times = time_iters(a.warmup, a.iters, fwd)

    med = statistics.median(times)
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "impl": "torch", "mode": a.mode, "median_s": med, "images_per_s": B / med,
        "peak_rss_mb": round(peak_rss_mb(), 1), "executed_fraction": 1.0,
        "batch": B, "threads": torch.get_num_threads(), "iters": a.iters, "warmup": a.warmup,
        "min_s": min(times), "max_s": max(times), "scheme": a.scheme, "p_max": a.p_max,
        "loss": loss_val, "params": n_params, "base_rss_mb": round(rss_base, 1),
        "torch": torch.__version__, "blas": blas_library(), "precision": a.precision, "quantized_engine": engine,
        "config": f"image {a.image}x{a.image}x{a.channels}, patch {a.patch}, dim {a.dim}, depth {a.depth}, "
                  f"heads {a.heads}, mlp {a.mlp}, classes {a.classes}, "
                  f"exits [{','.join(map(str, a.exit_list))}], ln_eps 1e-06",
    }, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
