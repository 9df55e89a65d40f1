#!/usr/bin/python3
"""Writes tests/data/bf16_fixture.safetensors: every exit's logits of a small multi-exit ViT computed
by PyTorch three ways, for envit's BF16 inference test (tests/infer/test_infer_bf16.cpp).

The model is bench/torch_vit.py's (timm's names and layouts, as the training-step fixture,
tests/data/gen_train_step_fixture.py). Three forwards of the same weights and images:
  logits32       float32 throughout.
  logits_strict  float32, with both operands of every matrix product (patch-embedding convolution,
                 qkv / proj / fc1 / fc2 / head Linear, attention's Q K^T and P V) rounded to bfloat16
                 (nearest even), the product accumulated in float32 and everything else in float32:
                 envit's --precision bf16, written out in torch (an independent implementation with
                 another accumulation order).
  logits_autocast  the float32 model under torch.autocast("cpu", dtype=torch.bfloat16), the one line
                 a PyTorch user adds. On CPU (torch 1.13) autocast rounds the OUTPUT of every
                 Linear / convolution / matmul to bfloat16 as well, so the attention scores and the
                 softmax's probabilities, GELU's input and output, the branch outputs added to the
                 residual stream and the logits are bfloat16 (the residual stream itself stays
                 float32 by type promotion; LayerNorm runs in float32 on it). The dtypes are checked
                 below and recorded in the metadata.
The head dim is 16, so the attention scale 1/4 is exact in every format (no rounding of the scale).

Stored: __metadata__ = config (VitConfig::to_map keys), batch, torch_version, autocast_dtypes;
images (B,C,H,W) F32, labels (B) I32 (unused), param.<name> F32, logits32 / logits_strict / logits_autocast (M,B,C) F32.
Run:  /usr/bin/python3 tests/data/gen_bf16_fixture.py   (torch 1.13, CPU)
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from st_writer import StWriter  # noqa: E402  tests/data/st_writer.py
import torch_vit  # noqa: E402  bench/torch_vit.py

CFG = dict(image_size=16, channels=3, patch=4, dim=32, depth=4, heads=2, mlp_hidden=64, classes=10,
           exits=[1, 2, 4], ln_eps=1e-6)
BATCH = 16
SEED = 20261207
F = torch.nn.functional


def init_weights(model, gen):
    """Non-trivial float32 values with O(1) activations and logits of a few units."""
    for name, p in model.named_parameters():
        shape = p.shape
        if name in ("cls_token", "pos_embed"):
            v = 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif "norm" in name and name.endswith(".weight"):
            v = 1.0 + 0.3 * (2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1)
        elif name.endswith(".bias"):
            v = 0.2 * (2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1)
        else:
            fan_in = shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1)
            gain = 3.0 if name.endswith("head.weight") else 1.2
            v = torch.randn(shape, generator=gen, dtype=torch.float64) * (gain / math.sqrt(fan_in))
        with torch.no_grad():
            p.copy_(v.float())


def r(t):
    """float32 -> nearest-even bfloat16 -> float32 (torch's cast rounds to nearest even)."""
    return t.to(torch.bfloat16).to(torch.float32)


def strict_forward(model, img):
    """envit's BF16 semantics: BF16 operands, FP32 accumulation, FP32 elsewhere."""
    c = CFG
    B, D, H = img.shape[0], c["dim"], c["heads"]
    E = D // H
    pe = model.patch_embed.proj
    x = F.conv2d(r(img), r(pe.weight), stride=c["patch"]) + pe.bias.view(1, -1, 1, 1)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([model.cls_token.expand(B, -1, -1), x], dim=1) + model.pos_embed
    N = x.shape[1]

    def lin(m, t):
        return r(t) @ r(m.weight).T + m.bias

    logits = []
    for l, blk in enumerate(model.blocks):
        a = blk.attn
        qkv = lin(a.qkv, blk.norm1(x)).reshape(B, N, 3, H, E).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = ((r(q) @ r(k).transpose(-2, -1)) * a.scale).softmax(dim=-1)
        x = x + lin(a.proj, (r(att) @ r(v)).transpose(1, 2).reshape(B, N, D))
        x = x + lin(blk.mlp.fc2, F.gelu(lin(blk.mlp.fc1, blk.norm2(x))))
        j = model.exit_at.get(l)
        if j is not None:
            norm, head = (model.norm, model.head) if j == model.last else (model.exits[j].norm, model.exits[j].head)
            logits.append(lin(head, norm(x[:, 0])))
    return logits


def autocast_dtypes(model, img):
    """The dtypes autocast leaves at the points docs/method.md names (asserted, then recorded)."""
    seen = {}
    blk = model.blocks[0]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        x = model.patch_embed(img)
        x = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + model.pos_embed
        seen["residual_stream"] = x.dtype
        h = blk.norm1(x)
        seen["layernorm_out"] = h.dtype
        qkv = blk.attn.qkv(h)
        seen["linear_out"] = qkv.dtype
        q = qkv[..., :16]
        s = (q @ q.transpose(-2, -1)) * blk.attn.scale
        seen["softmax_in"] = s.dtype
        seen["softmax_out"] = s.softmax(-1).dtype
        u = blk.mlp.fc1(blk.norm2(x))
        seen["gelu_out"] = F.gelu(u).dtype
        seen["residual_addend"] = blk.attn(h).dtype
        seen["residual_sum"] = (x + blk.attn(h)).dtype
    want = dict(residual_stream=torch.float32, layernorm_out=torch.float32, linear_out=torch.bfloat16,
                softmax_in=torch.bfloat16, softmax_out=torch.bfloat16, gelu_out=torch.bfloat16,
                residual_addend=torch.bfloat16, residual_sum=torch.float32)
    assert seen == want, seen
    return ",".join(f"{k}:{str(v).replace('torch.', '')}" for k, v in seen.items())


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(SEED)
    model = torch_vit.build(torch, CFG)
    init_weights(model, gen)
    model.eval()
    images = (2 * torch.rand(BATCH, CFG["channels"], CFG["image_size"], CFG["image_size"], generator=gen,
                             dtype=torch.float64) - 1).float()
    with torch.no_grad():
        z32 = torch.stack(model(images))
        zs = torch.stack(strict_forward(model, images))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            za = torch.stack([z.float() for z in model(images)])
    dtypes = autocast_dtypes(model, images)
    scale = z32.abs().max().item()
    for name, z in (("strict", zs), ("autocast", za)):
        d = (z - z32).abs().max().item()
        print(f"{name:8s} vs float32: max |diff| {d:.4g} = {d / scale:.3g} of the largest |logit| ({scale:.3g})")
    d = (za - zs).abs().max().item()
    print(f"autocast vs strict: max |diff| {d:.4g} = {d / scale:.3g} of the largest |logit|")

    st = StWriter()
    st.meta.update({k: (",".join(map(str, v)) if isinstance(v, list) else repr(v) if isinstance(v, float)
                        else str(v)) for k, v in CFG.items()})
    st.meta.update(batch=str(BATCH), torch_version=torch.__version__, autocast_dtypes=dtypes,
                   generator=os.path.basename(__file__))
    st.add("images", images)
    st.add("labels", (torch.arange(BATCH) % CFG["classes"]).to(torch.int32))  # unused; parity_batch reads them
    for n, p in model.named_parameters():
        st.add("param." + n, p.detach())
    st.add("logits32", z32)
    st.add("logits_strict", zs)
    st.add("logits_autocast", za)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bf16_fixture.safetensors")
    st.write(out)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    sys.exit(main())
