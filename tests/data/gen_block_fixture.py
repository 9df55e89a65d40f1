#!/usr/bin/python3
"""Generate tests/data/vit_block_fixture.txt: golden values for envit's ViT block and patch
embedding, computed by PyTorch (1.13) in float64.

The block is a plain-torch copy of timm's vision_transformer.Block (pre-LN, fused qkv Attention,
Mlp with nn.GELU(), LayerNorm eps 1e-6, no dropout / drop-path / layer-scale / qk-norm).
The patch embedding is timm's PatchEmbed (Conv2d, kernel = stride = patch, flatten(2).transpose(1, 2))
followed by VisionTransformer._pos_embed (prepend the class token, add pos_embed).
For each, loss = sum(out * R) with a fixed random R, so dL/dout = R.

Format (one tensor per line, '#' lines are comments):
    name ndim d0 ... d{ndim-1} v0 v1 ...        values row-major, '%.17g' (round-trips float64)
Run:  /usr/bin/python3 tests/data/gen_block_fixture.py   (rewrites the fixture next to this script)
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(20260101)
torch.set_default_dtype(torch.float64)


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class PatchEmbed(nn.Module):
    def __init__(self, chans, patch, dim, num_patches):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))

    def forward(self, img):
        x = self.proj(img).flatten(2).transpose(1, 2)          # (B, Np, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed


def randomise(module):
    """Non-trivial values everywhere (torch's defaults leave LayerNorm at 1/0 and cls/pos at 0)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias") or "token" in name or "pos" in name:
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))


lines = []


def put(name, t):
    t = torch.as_tensor(t).detach().to(torch.float64).contiguous()
    dims = list(t.shape)
    vals = " ".join("%.17g" % v for v in t.reshape(-1).tolist())
    lines.append("%s %d %s %s" % (name, len(dims), " ".join(str(d) for d in dims), vals))


# ---- block: B=2, N=5, D=12, H=3, F=48
B, N, D, H, Fh = 2, 5, 12, 3, 48
blk = Block(D, H, Fh)
randomise(blk)
x = torch.randn(B, N, D, requires_grad=True)
R = torch.randn(B, N, D)
y = blk(x)
(y * R).sum().backward()
put("block.shape", [B, N, D, H, Fh])
put("block.eps", [1e-6])
put("block.x", x)
put("block.R", R)
names = [("norm1_w", blk.norm1.weight), ("norm1_b", blk.norm1.bias),
         ("qkv_w", blk.attn.qkv.weight), ("qkv_b", blk.attn.qkv.bias),
         ("proj_w", blk.attn.proj.weight), ("proj_b", blk.attn.proj.bias),
         ("norm2_w", blk.norm2.weight), ("norm2_b", blk.norm2.bias),
         ("fc1_w", blk.mlp.fc1.weight), ("fc1_b", blk.mlp.fc1.bias),
         ("fc2_w", blk.mlp.fc2.weight), ("fc2_b", blk.mlp.fc2.bias)]
for n, p in names:
    put("block." + n, p)
put("block.y", y)
put("block.dx", x.grad)
for n, p in names:
    put("block.d" + n, p.grad)

# ---- patch embedding: B=2, C=3, 8x12 images, P=4 (grid 2x3, Np=6), D=12
B, C, Hi, Wi, P, D = 2, 3, 8, 12, 4, 12
Np = (Hi // P) * (Wi // P)
pe = PatchEmbed(C, P, D, Np)
randomise(pe)
img = torch.randn(B, C, Hi, Wi)
R = torch.randn(B, Np + 1, D)
tok = pe(img)
(tok * R).sum().backward()
put("patch.shape", [B, C, Hi, Wi, P, D])
put("patch.images", img)
put("patch.R", R)
pnames = [("w", pe.proj.weight), ("b", pe.proj.bias), ("cls", pe.cls_token.reshape(D)),
          ("pos", pe.pos_embed.reshape(Np + 1, D))]
for n, p in pnames:
    put("patch." + n, p)
put("patch.tokens", tok)
put("patch.dw", pe.proj.weight.grad)
put("patch.db", pe.proj.bias.grad)
put("patch.dcls", pe.cls_token.grad.reshape(D))
put("patch.dpos", pe.pos_embed.grad.reshape(Np + 1, D))

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vit_block_fixture.txt")
with open(out, "w") as f:
    f.write("# envit ViT block + patch-embedding golden values, float64, from gen_block_fixture.py "
            "(torch %s). Format: name ndim dims... values...\n" % torch.__version__)
    f.write("\n".join(lines) + "\n")
print("wrote", out, len(lines), "tensors")
