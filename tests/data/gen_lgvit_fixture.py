#!/usr/bin/python3
"""Writes tests/data/lgvit_fixture.safetensors: LGViT's heads and both training stages computed by
PyTorch, for envit's parity test (tests/test_lgvit_parity.cpp).

The backbone is bench/torch_vit.py's multi-exit ViT (timm names); its early-exit heads are replaced
by LGViT heads written here from the description in docs/method.md (names as the authors'
DeiTHighway_v2: exits.{j}.mlp.* and exits.{j}.classifier.*): on the raw block output h,
  X = patch tokens on the G x G grid, cls = h[:, 0]
  conv1_1: U = BN(GELU(Conv1x1(X))); U = BN(GELU(DWConv3x3(U))); Y = BN(Conv1x1(U)) + X
  conv2_1: U = BN(GELU(Conv1x1(X)));                               Y = BN(Conv1x1(U)) + X
  attn_rs: Y = 8-head attention (qkv without bias) on X[::s, ::s]
  logits = classifier(mean_tokens(Y) + cls)
Config: 20x20x1 images, patch 4 (5x5 grid), dim 16, depth 5, exits after blocks 1..5 (heads
conv1_1, conv2_1, attn_r2, attn_r3, then the final LayerNorm + Linear head), batch 3.

Stored, each computed in float64 and in float32 (suffix 32) from the same float32 inputs:
  images, labels, param.<name> (all parameters and BatchNorm buffers, F32)
  eval.logits.<j>       every exit's logits with the heads in eval mode (running statistics)
  stage1.loss           one stage-1 odd step: (sum_k s_k CE_k + L CE_final) / (sum_k s_k + L)
  stage1.updated.<name> after one SGD step (lr 0.1) of every parameter; running statistics after
                        the train-mode forward (momentum 0.1); stored for exits.* and a few backbone
                        tensors (patch_embed.proj.weight, blocks.0.attn.qkv.weight, head.weight)
  stage2.logits.<k>, stage2.feat.<k>   the heads' train-mode logits and features Y
  stage2.loss           (1-a) sum_k CE_k + a sum_k T^2 KD_k + b_het sum H + b_hom (sum G_loc + sum G_glob)
                        with the authors' code's choices (KD / (B*K), teacher without the final
                        LayerNorm, homogeneous targets not detached); T = 2, a = 0.3, b = 0.01
  stage2.updated.<name> exits.* after one SGD step (lr 0.1) of the heads alone
Run:  /usr/bin/python3 tests/data/gen_lgvit_fixture.py   (torch 1.13, CPU)
"""
import copy
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import torch_vit  # noqa: E402
from st_writer import StWriter  # noqa: E402  tests/data/st_writer.py

CFG = dict(image_size=20, channels=1, patch=4, dim=16, depth=5, heads=2, mlp_hidden=16, classes=4,
           exits=[1, 2, 3, 4, 5], ln_eps=1e-5)
KINDS = ["conv1_1", "conv2_1", "attn_r2", "attn_r3"]
BATCH, LR, T, A, HET, HOM = 3, 0.1, 2.0, 0.3, 0.01, 0.01
SEED = 20261204


class ConvHead(nn.Module):
    def __init__(self, d, dw):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(d, d, 1), nn.GELU(), nn.BatchNorm2d(d, eps=1e-5))
        self.dw = dw
        if dw:
            self.proj = nn.Conv2d(d, d, 3, 1, 1, groups=d)
            self.proj_bn = nn.BatchNorm2d(d, eps=1e-5)
        self.conv2 = nn.Sequential(nn.Conv2d(d, d, 1), nn.BatchNorm2d(d, eps=1e-5))

    def forward(self, x, g):
        B, N, C = x.shape
        u = self.conv1(x.permute(0, 2, 1).reshape(B, C, g, g))
        if self.dw:
            u = self.proj_bn(F.gelu(self.proj(u)))
        return self.conv2(u).flatten(2).permute(0, 2, 1) + x


class AttnHead(nn.Module):
    def __init__(self, d, s):
        super().__init__()
        self.s, self.h = s, 8
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d)

    def forward(self, x, g):
        B, N, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, g, g)[:, :, ::self.s, ::self.s].flatten(2).transpose(1, 2)
        n = x.shape[1]
        qkv = self.qkv(x).reshape(B, n, 3, self.h, C // self.h).permute(2, 0, 3, 1, 4)
        att = ((qkv[0] @ qkv[1].transpose(-2, -1)) * (C // self.h) ** -0.5).softmax(-1)
        return self.proj((att @ qkv[2]).transpose(1, 2).reshape(B, n, C))


class Head(nn.Module):
    def __init__(self, kind, d, c):
        super().__init__()
        self.mlp = ConvHead(d, kind == "conv1_1") if kind.startswith("conv") else AttnHead(d, int(kind[-1]))
        self.classifier = nn.Linear(d, c)

    def forward(self, h, g):
        y = self.mlp(h[:, 1:], g)
        return self.classifier(y.mean(1) + h[:, 0]), y


def build():
    m = torch_vit.build(torch, CFG)
    m.exits = nn.ModuleList([Head(k, CFG["dim"], CFG["classes"]) for k in KINDS])
    return m


def block_outputs(m, img):
    x = m.patch_embed(img)
    x = torch.cat([m.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + m.pos_embed
    hs = []
    for blk in m.blocks:
        x = blk(x)
        hs.append(x)
    return hs


def all_logits(m, img):
    g = CFG["image_size"] // CFG["patch"]
    hs = block_outputs(m, img)
    out = [m.exits[k](hs[k], g) for k in range(len(KINDS))]
    return hs, out, m.head(m.norm(hs[-1][:, 0]))


def stage1(m, img, lab):
    _, out, zf = all_logits(m, img)
    L = CFG["depth"]
    num = sum(s * F.cross_entropy(z, lab) for s, (z, _) in zip(CFG["exits"][:-1], out)) + L * F.cross_entropy(zf, lab)
    return num / (sum(CFG["exits"][:-1]) + L)


def gram(y):
    return y.transpose(-1, -2) @ y


def stage2(m, img, lab):
    g = CFG["image_size"] // CFG["patch"]
    with torch.no_grad():
        hs = block_outputs(m, img)
        zt = m.head(hs[-1][:, 0])  # the code's teacher: no final LayerNorm
    out = [m.exits[k](hs[k], g) for k in range(len(KINDS))]
    loss = 0
    for z, _ in out:
        kd = F.kl_div(F.log_softmax(z / T, 1), F.log_softmax(zt / T, 1), reduction="sum", log_target=True) * T * T / z.numel()
        loss = loss + (1 - A) * F.cross_entropy(z, lab) + A * kd
    hl = hs[-1][:, 1:]
    B, N, C = hl.shape

    def sub(x, s):
        return x.transpose(1, 2).reshape(B, C, g, g)[:, :, ::s, ::s].flatten(2).transpose(1, 2)

    def hete(s, t):
        return F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), reduction="batchmean", log_target=True)

    ys = [y for _, y in out]
    H = hete(ys[0], hl) + hete(ys[1], hl) + hete(ys[3], sub(hl, 3)) + hete(ys[2], sub(hl, 2))
    G = F.mse_loss(ys[0], ys[1]) + F.mse_loss(gram(ys[2]), gram(ys[3]))
    return loss + HET * H + HOM * G, out


def stored(name):
    return name.startswith("exits.") or name in ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "head.weight")


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    base = build()
    with torch.no_grad():
        for name, t in base.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            r = torch.rand(t.shape, generator=gen, dtype=torch.float64) * 2 - 1
            if name.endswith("running_var"):
                v = 1 + 0.5 * r
            elif name.endswith("running_mean"):
                v = 0.2 * r
            elif ("norm" in name or ".conv1.2." in name or "proj_bn" in name or ".conv2.1." in name) and name.endswith("weight"):
                v = 1 + 0.3 * r
            else:
                v = 0.4 * r
            t.copy_(v.float())
    img = (torch.rand(BATCH, 1, CFG["image_size"], CFG["image_size"], generator=gen) * 2 - 1).float()
    lab = torch.tensor([1, 3, 0], dtype=torch.int64)
    w = StWriter()
    w.meta = {k: str(v) if not isinstance(v, list) else ",".join(map(str, v)) for k, v in CFG.items()}
    w.meta.update(exit_head="lgvit", batch=str(BATCH), lr=str(LR), tau=str(T), alpha=str(A), het=str(HET), hom=str(HOM))
    w.add("images", img)
    w.add("labels", lab.int())
    for name, t in base.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            w.add("param." + name, t)
    for dt, sfx in ((torch.float64, ""), (torch.float32, "32")):
        x = img.to(dt)
        m = copy.deepcopy(base).to(dt).eval()
        with torch.no_grad():
            _, out, zf = all_logits(m, x)
        for k, (z, _) in enumerate(out):
            w.add(f"eval.logits{sfx}.{k}", z)
        w.add(f"eval.logits{sfx}.{len(out)}", zf)
        # stage 1, odd step: every parameter trains
        m = copy.deepcopy(base).to(dt).train()
        loss = stage1(m, x, lab)
        loss.backward()
        with torch.no_grad():
            for p in m.parameters():
                p -= LR * p.grad
        w.add(f"stage1.loss{sfx}", loss.detach().reshape(()))
        for name, t in m.state_dict().items():
            if stored(name) and not name.endswith("num_batches_tracked"):
                w.add(f"stage1.updated{sfx}.{name}", t)
        # stage 2: heads only
        m = copy.deepcopy(base).to(dt).train()
        for name, p in m.named_parameters():
            p.requires_grad_(name.startswith("exits."))
        loss, out = stage2(m, x, lab)
        loss.backward()
        with torch.no_grad():
            for p in m.parameters():
                if p.requires_grad:
                    p -= LR * p.grad
        w.add(f"stage2.loss{sfx}", loss.detach().reshape(()))
        for k, (z, y) in enumerate(out):
            w.add(f"stage2.logits{sfx}.{k}", z)
            w.add(f"stage2.feat{sfx}.{k}", y)
        for name, t in m.state_dict().items():
            if name.startswith("exits.") and not name.endswith("num_batches_tracked"):
                w.add(f"stage2.updated{sfx}.{name}", t)
        print(f"{dt}: stage1 loss {stage1(copy.deepcopy(base).to(dt).train(), x, lab).item():.6f}, stage2 loss {loss.item():.6f}")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lgvit_fixture.safetensors")
    w.write(path)
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
