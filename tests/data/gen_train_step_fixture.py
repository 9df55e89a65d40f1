#!/usr/bin/python3
"""Writes tests/data/train_step_fixture.safetensors: one complete training step of a small
multi-exit ViT computed by PyTorch, for envit's parity test (tests/test_train_parity.cpp).

The model (bench/torch_vit.py, shared with bench/torch_model_bench.py) is plain torch (no timm), with timm's parameter names and layouts:
Conv2d patch embedding, one class token, learned position embedding, pre-LN blocks with a fused
qkv projection (qkv.reshape(B, N, 3, H, E)), exact (erf) GELU, LayerNorm eps from the config, and
exit heads = LayerNorm + Linear on the class token after the configured blocks (final exit
`norm`/`head`, intermediate exits `exits.{j}.norm`/`exits.{j}.head`).

One step = forward -> objective -> backward -> clip_grad_norm_ -> torch.optim.AdamW (one step).
Objectives (no structured dropout, p_M = 0):
  envit : (1/M) * [ sum_{j<M} ((1-a) CE_j + a tau^2 KL(teacher || student_j)) + CE_M ],
          teacher = softmax(z_M / tau) detached, a = 0.5, tau = 4,
          KL = F.kl_div(log_softmax(z_j / tau), softmax(z_M / tau), reduction='batchmean')
  vit-ee: sum_j CE_j
CE is averaged over the batch. AdamW: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.05
on weight matrices and the conv weight only (not biases, norms, cls_token, pos_embed).

Every step is computed twice from the same float32-representable inputs: in float32 (what the
float C++ path is held to) and in float64 (the reference for the double C++ path).

Stored (safetensors, little-endian; written by hand, no safetensors package needed):
  __metadata__ : config (VitConfig::to_map keys), batch, alpha, tau, lr, betas, eps, weight_decay,
                 schemes, per scheme: max_norm, grad_norm (f64 and f32), clipped (0/1)
  images (B,C,H,W) F32, labels (B) I32, param.<name> F32 (initial weights)
  <scheme>.loss F64 [], <scheme>.loss32 F32 [],
  <scheme>.grad.<name> F64 and <scheme>.grad32.<name> F32   (gradients before clipping)
  <scheme>.updated.<name> F64                               (weights after the AdamW step)
Run:  /usr/bin/python3 tests/data/gen_train_step_fixture.py   (torch 1.13, CPU)
"""
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from st_writer import StWriter  # noqa: E402  tests/data/st_writer.py
import torch_vit  # noqa: E402  bench/torch_vit.py: the model and objective, shared with the benchmark

CFG = dict(image_size=8, channels=1, patch=4, dim=12, depth=4, heads=3, mlp_hidden=24, classes=5,
           exits=[2, 4], ln_eps=1e-5)
BATCH = 6
ALPHA, TAU = 0.5, 4.0
LR, BETAS, EPS, WD = 1e-3, (0.9, 0.999), 1e-8, 0.05
# envit's step clips (its gradient norm is above 1); vit-ee's max norm is above its gradient norm,
# so the unclipped path is covered too. Both are asserted below.
MAX_NORM = {"envit": 1.0, "vit-ee": 100.0}
SEED = 20260301


def MultiExitViT(c):
    return torch_vit.build(torch, c)


decays = torch_vit.decays


def init_weights(model, gen):
    """Deterministic, non-trivial values (norm weights != 1, nonzero biases), rounded to float32."""
    for name, p in model.named_parameters():
        shape = p.shape
        if name in ("cls_token", "pos_embed"):
            v = 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif "norm" in name and name.endswith(".weight"):
            v = 1.0 + 0.3 * (2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1)
        elif name.endswith(".bias"):
            v = 0.2 * (2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1)
        else:  # weight matrix / conv weight: fan-in scaled so activations stay O(1)
            fan_in = shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1)
            v = torch.randn(shape, generator=gen, dtype=torch.float64) * (1.2 / math.sqrt(fan_in))
        with torch.no_grad():
            p.copy_(v.float().to(p.dtype))


def objective(scheme, logits, labels):
    return torch_vit.objective(torch, scheme, logits, labels, alpha=ALPHA, tau=TAU)


def run_step(scheme, state, images, labels, dtype):
    torch.manual_seed(0)  # no randomness is used; keeps module construction quiet and repeatable
    model = MultiExitViT(CFG).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    model.zero_grad(set_to_none=True)
    loss = objective(scheme, model(images.to(dtype)), labels)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM[scheme])
    decay = [p for n, p in model.named_parameters() if decays(n)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS)
    opt.step()
    updated = {n: p.detach().clone() for n, p in model.named_parameters()}
    return loss.detach(), grads, float(norm), updated


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    model = MultiExitViT(CFG)
    init_weights(model, gen)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    images = (2 * torch.rand(BATCH, CFG["channels"], CFG["image_size"], CFG["image_size"],
                             generator=gen, dtype=torch.float64) - 1).float()
    labels = torch.tensor([0, 3, 1, 4, 2, 3], dtype=torch.int64)
    assert labels.numel() == BATCH

    st = StWriter()
    st.meta.update({k: (",".join(map(str, v)) if isinstance(v, list) else repr(v) if isinstance(v, float)
                        else str(v)) for k, v in CFG.items()})
    st.meta.update(batch=str(BATCH), alpha=repr(ALPHA), tau=repr(TAU), lr=repr(LR), beta1=repr(BETAS[0]),
                   beta2=repr(BETAS[1]), eps=repr(EPS), weight_decay=repr(WD), schemes="envit,vit-ee",
                   torch_version=torch.__version__, generator=os.path.basename(__file__))
    st.add("images", images)
    st.add("labels", labels.to(torch.int32))
    names = [n for n, _ in model.named_parameters()]
    for n in names:
        st.add("param." + n, state[n])

    for scheme in ("envit", "vit-ee"):
        loss64, g64, norm64, up64 = run_step(scheme, state, images, labels, torch.float64)
        loss32, g32, norm32, _ = run_step(scheme, state, images, labels, torch.float32)
        clipped = norm64 + 1e-6 > MAX_NORM[scheme]
        assert clipped == (scheme == "envit"), (scheme, norm64)
        print(f"{scheme}: loss f64 {loss64.item():.10f} f32 {loss32.item():.8f}, grad norm {norm64:.6f} "
              f"(max {MAX_NORM[scheme]}, clipped {clipped})")
        worst = max(((g32[n].double() - g64[n]).abs() / (g64[n].abs() + 1e-6)).max().item() for n in names)
        print(f"  torch f32 vs f64 gradients: worst |d|/(|g|+1e-6) = {worst:.3g}; smallest |g| = "
              f"{min(g64[n].abs().min().item() for n in names):.3g}")
        st.meta[f"{scheme}.max_norm"] = repr(MAX_NORM[scheme])
        st.meta[f"{scheme}.grad_norm"] = repr(norm64)
        st.meta[f"{scheme}.grad_norm32"] = repr(norm32)
        st.meta[f"{scheme}.clipped"] = str(int(clipped))
        st.add_step(scheme, names, loss64, loss32, g64, g32, up64)

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_step_fixture.safetensors")
    st.write(out)
    print(f"wrote {out} ({os.path.getsize(out)} bytes, {sum(state[n].numel() for n in names)} parameters)")


if __name__ == "__main__":
    sys.exit(main())
