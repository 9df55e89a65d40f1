#!/usr/bin/python3
"""Writes tests/data/bf16_fixture.safetensors: every exit's logits of a small multi-exit ViT computed
by PyTorch three ways, for envit's BF16 inference test (tests/infer/test_infer_bf16.cpp).

The model is bench/torch_vit.py's (timm's names and layouts, as the training-step fixture,
tests/data/gen_train_step_fixture.py). Three forwards of the same weights and images:
  logits32       float32 throughout.
  logits_strict  both operands of every matrix product (patch-embedding convolution, qkv / proj /
                 fc1 / fc2 / head Linear, attention's Q K^T and P V) rounded to bfloat16 (nearest
                 even), everything else float32: envit's --precision bf16, written out in torch. Each
                 product and each element-wise op (LayerNorm, softmax, GELU) is computed in float64
                 and rounded once to float32: the correctly rounded FP32 value. BF16 rounding is
                 discontinuous, so an FP32 implementation that is off by one ulp (torch's float32
                 GELU is, at a few points of this model) flips the BF16 operand of the next product
                 where a value sits on a rounding boundary and moves the logits by up to ~5e-3 of
                 their scale (measured: float32 vs correctly rounded GELU); the correctly rounded
                 reference keeps such flips to those of envit's own FP32 arithmetic.
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
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from st_writer import StWriter  # noqa: E402  tests/data/st_writer.py
import torch_vit  # noqa: E402  bench/torch_vit.py
from gen_train_step_fixture import init_weights as train_step_init  # noqa: E402

CFG = dict(image_size=16, channels=3, patch=4, dim=32, depth=4, heads=2, mlp_hidden=64, classes=10,
           exits=[1, 2, 4], ln_eps=1e-6)
BATCH = 16
SEED = 20261207
F = torch.nn.functional


def init_weights(model, gen):
    """The training-step fixture's values (fan-in scaled weights, non-trivial norms and biases), with
    the exit heads' weights 2.5x larger so the logits spread over a few units."""
    train_step_init(model, gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("head.weight"):
                p.mul_(2.5)


def r(t):
    """float32 -> nearest-even bfloat16 -> float32 (torch's cast rounds to nearest even)."""
    return t.to(torch.bfloat16).to(torch.float32)


def strict_forward(model, img):
    """envit's BF16 semantics: BF16 operands, FP32 results, FP32 elsewhere; every product and
    element-wise op correctly rounded to float32 (computed in float64, rounded once)."""
    c = CFG
    d = torch.float64

    def mm(a, b):  # exact products of BF16 values, summed in float64, rounded once
        return (r(a).to(d) @ r(b).to(d)).float()

    def ln(m, t):
        return F.layer_norm(t.to(d), m.normalized_shape, m.weight.to(d), m.bias.to(d), m.eps).float()

    B, D, H = img.shape[0], c["dim"], c["heads"]
    E = D // H
    pe = model.patch_embed.proj
    x = F.conv2d(r(img).to(d), r(pe.weight).to(d), stride=c["patch"]).float() + pe.bias.view(1, -1, 1, 1)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([model.cls_token.expand(B, -1, -1), x], dim=1) + model.pos_embed
    N = x.shape[1]

    def lin(m, t):
        return mm(t, m.weight.T) + m.bias

    logits = []
    for l, blk in enumerate(model.blocks):
        a = blk.attn
        qkv = lin(a.qkv, ln(blk.norm1, x)).reshape(B, N, 3, H, E).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = (mm(q, k.transpose(-2, -1)) * a.scale).to(d).softmax(dim=-1).float()
        x = x + lin(a.proj, mm(att, v).transpose(1, 2).reshape(B, N, D))
        x = x + lin(blk.mlp.fc2, F.gelu(lin(blk.mlp.fc1, ln(blk.norm2, x)).to(d)).float())
        j = model.exit_at.get(l)
        if j is not None:
            norm, head = (model.norm, model.head) if j == model.last else (model.exits[j].norm, model.exits[j].head)
            logits.append(lin(head, ln(norm, x[:, 0])))
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
