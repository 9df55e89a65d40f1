#!/usr/bin/python3
"""Writes tests/data/pretrained/: tiny random ViTs in the three layouts envit imports, and what
PyTorch computes from them, for tests/weights/test_pretrained.cpp and tests/io/test_resample.cpp.

No transformers, timm or torchvision is needed (or installed): each layout is reproduced here as a
small torch module with exactly the upstream parameter names and forward math.
  hf_cls_f32/      ViTForImageClassification (transformers): config.json, model.safetensors (F32,
                   `vit.` prefix, separate query/key/value, `classifier`), preprocessor_config.json.
                   LayerNorm eps 1e-12 (HF's default).
  hf_base_bf16/    ViTModel (no prefix, with the unused `pooler`), BF16, config.json only.
  timm_f32.safetensors, timm_bf16.safetensors
                   timm VisionTransformer names (bench/torch_vit.py with one exit), eps 1e-6.
  tv_f32.safetensors, tv_f16.safetensors
                   torchvision vit_b_16-style state dict (`conv_proj`, `class_token`,
                   `encoder.pos_embedding`, nn.MultiheadAttention `in_proj_weight`, `mlp.0`/`mlp.3`,
                   `encoder.ln`, `heads.head`), eps 1e-6.
  reference.safetensors
    images (B,3,8,8) F32; <name>.logits (B,C) F32 for every model above, computed in float64 from
    the weights as stored (BF16/F16 weights widened exactly); hf_base_bf16.feature (B,D) is the
    final-LayerNorm class token (ViTModel has no classifier).
    images12 (B,3,12,12) and timm_f32.logits12: the timm model run at 12x12 after its position
    embedding is resampled to a 3x3 grid the way timm's resample_abs_pos_embed does.
    posemb.in (1,1+5*5,4), posemb.out7 (1,1+7*7,4), posemb.out3 (1,1+3*3,4): bicubic resampling
    (F.interpolate mode='bicubic', align_corners=False, antialias=False) with the class token kept.
    resize.in (2,3,9,7) with values 0..255, resize.out13x5, resize.out4x11, resize.out18x14:
    F.interpolate(mode='bilinear', align_corners=False), float32.
Model: image 8, patch 4 (2x2 grid, 5 tokens), 3 channels, dim 12, depth 2, heads 2, MLP 24,
4 classes. Run:  /usr/bin/python3 tests/data/gen_pretrained_fixtures.py
"""
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from st_writer import StWriter  # noqa: E402  tests/data/st_writer.py
import torch_vit  # noqa: E402

nn, F = torch.nn, torch.nn.functional
IMG, P, C_IN, D, L, H, FF, K, B = 8, 4, 3, 12, 2, 2, 24, 4, 2
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")


# ---- Hugging Face ViT (transformers.models.vit.modeling_vit, eval mode) -------------------------
class HfPatchEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.projection = nn.Conv2d(C_IN, D, kernel_size=P, stride=P)

    def forward(self, x):
        return self.projection(x).flatten(2).transpose(1, 2)


class HfEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, D))
        self.patch_embeddings = HfPatchEmbeddings()
        self.position_embeddings = nn.Parameter(torch.randn(1, (IMG // P) ** 2 + 1, D))

    def forward(self, x):
        e = self.patch_embeddings(x)
        e = torch.cat([self.cls_token.expand(e.shape[0], -1, -1), e], dim=1)
        return e + self.position_embeddings


class HfSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)

    def split(self, x):  # transpose_for_scores
        return x.view(x.shape[0], x.shape[1], H, D // H).permute(0, 2, 1, 3)

    def forward(self, x):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(D // H)
        ctx = torch.matmul(s.softmax(dim=-1), v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(x.shape[0], x.shape[1], D)


class HfSelfOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(D, D)

    def forward(self, x):
        return self.dense(x)


class HfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention, self.output = HfSelfAttention(), HfSelfOutput()

    def forward(self, x):
        return self.output(self.attention(x))


class HfIntermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(D, FF)

    def forward(self, x):
        return F.gelu(self.dense(x))  # hidden_act "gelu": exact erf


class HfOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(FF, D)

    def forward(self, x, residual):
        return self.dense(x) + residual


class HfLayer(nn.Module):
    def __init__(self, eps):
        super().__init__()
        self.attention, self.intermediate, self.output = HfAttention(), HfIntermediate(), HfOutput()
        self.layernorm_before = nn.LayerNorm(D, eps=eps)
        self.layernorm_after = nn.LayerNorm(D, eps=eps)

    def forward(self, x):
        h = self.attention(self.layernorm_before(x)) + x
        return self.output(self.intermediate(self.layernorm_after(h)), h)


class HfEncoder(nn.Module):
    def __init__(self, eps):
        super().__init__()
        self.layer = nn.ModuleList([HfLayer(eps) for _ in range(L)])

    def forward(self, x):
        for m in self.layer:
            x = m(x)
        return x


class HfPooler(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(D, D)


class HfViTModel(nn.Module):
    def __init__(self, eps, pooler):
        super().__init__()
        self.embeddings, self.encoder = HfEmbeddings(), HfEncoder(eps)
        self.layernorm = nn.LayerNorm(D, eps=eps)
        if pooler:
            self.pooler = HfPooler()

    def forward(self, x):
        return self.layernorm(self.encoder(self.embeddings(x)))


class HfViTForImageClassification(nn.Module):
    def __init__(self, eps):
        super().__init__()
        self.vit = HfViTModel(eps, pooler=False)
        self.classifier = nn.Linear(D, K)

    def forward(self, x):
        return self.classifier(self.vit(x)[:, 0, :])


def hf_config(arch, eps, labels):
    c = {"architectures": [arch], "model_type": "vit", "hidden_size": D, "num_hidden_layers": L,
         "num_attention_heads": H, "intermediate_size": FF, "hidden_act": "gelu",
         "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
         "layer_norm_eps": eps, "image_size": IMG, "patch_size": P, "num_channels": C_IN,
         "qkv_bias": True, "encoder_stride": P, "torch_dtype": "float32", "transformers_version": "4.35.2"}
    if labels:
        c["id2label"] = {str(i): f"class_{i}" for i in range(K)}
        c["label2id"] = {f"class_{i}": i for i in range(K)}
    return c


# ---- torchvision VisionTransformer (torchvision.models.vision_transformer) ----------------------
class TvBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(D, H, batch_first=True)
        self.ln_2 = nn.LayerNorm(D, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(D, FF), nn.GELU(), nn.Dropout(0.0), nn.Linear(FF, D), nn.Dropout(0.0))

    def forward(self, inp):
        x = self.ln_1(inp)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        x = x + inp
        return x + self.mlp(self.ln_2(x))


class TvEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.randn(1, (IMG // P) ** 2 + 1, D))
        self.layers = nn.Sequential()
        for i in range(L):
            self.layers.add_module(f"encoder_layer_{i}", TvBlock())
        self.ln = nn.LayerNorm(D, eps=1e-6)

    def forward(self, x):
        return self.ln(self.layers(x + self.pos_embedding))


class TvHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(D, K)


class TvViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.class_token = nn.Parameter(torch.randn(1, 1, D))
        self.conv_proj = nn.Conv2d(C_IN, D, kernel_size=P, stride=P)
        self.encoder = TvEncoder()
        self.heads = TvHeads()

    def forward(self, x):
        x = self.conv_proj(x).reshape(x.shape[0], D, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads.head(self.encoder(x)[:, 0])


# ---- helpers -------------------------------------------------------------------------------------
def randomise(model, gen):
    """Every parameter drawn so that LayerNorms, biases and embeddings all matter."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.3 if p.dim() >= 2 else 0.2
            base = 1.0 if name.endswith("weight") and p.dim() == 1 else 0.0
            p.copy_(base + scale * torch.randn(p.shape, generator=gen))


def quantised(model, dtype):
    """Rounds every parameter to dtype (in place) and returns the state dict in that dtype."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return {k: v.to(dtype) for k, v in model.state_dict().items()}


def save_state(path, sd, skip=()):
    w = StWriter()
    for k, v in sd.items():
        if k not in skip:
            w.add(k, v)
    w.write(path)


def resample_posemb(pe, new_grid):
    """timm.layers.resample_abs_pos_embed with one prefix token."""
    prefix, grid = pe[:, :1], pe[:, 1:]
    old = int(math.isqrt(grid.shape[1]))
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", antialias=False, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, -1)
    return torch.cat([prefix, grid], dim=1)


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    os.makedirs(OUT, exist_ok=True)
    ref = StWriter()
    images = torch.randn(B, C_IN, IMG, IMG, generator=gen)
    ref.add("images", images)

    # Hugging Face ViTForImageClassification, F32
    hf = HfViTForImageClassification(1e-12).eval()
    randomise(hf, gen)
    d = os.path.join(OUT, "hf_cls_f32")
    os.makedirs(d, exist_ok=True)
    save_state(os.path.join(d, "model.safetensors"), quantised(hf, torch.float32))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_config("ViTForImageClassification", 1e-12, True), f, indent=2)
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump({"do_normalize": True, "do_rescale": True, "do_resize": True,
                   "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                   "image_processor_type": "ViTImageProcessor", "resample": 2, "rescale_factor": 0.00392156862745098,
                   "size": {"height": IMG, "width": IMG}}, f, indent=2)
    ref.add("hf_cls_f32.logits", hf.double()(images.double()).float())

    # Hugging Face ViTModel (with pooler), BF16
    hb = HfViTModel(1e-12, pooler=True).eval()
    randomise(hb, gen)
    d = os.path.join(OUT, "hf_base_bf16")
    os.makedirs(d, exist_ok=True)
    save_state(os.path.join(d, "model.safetensors"), quantised(hb, torch.bfloat16))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_config("ViTModel", 1e-12, False), f, indent=2)
    ref.add("hf_base_bf16.feature", hb.double()(images.double())[:, 0, :].float())

    # timm, F32 and BF16
    cfg = {"image_size": IMG, "channels": C_IN, "patch": P, "dim": D, "depth": L, "heads": H,
           "mlp_hidden": FF, "classes": K, "exits": [L], "ln_eps": 1e-6}
    for dt, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        tm = torch_vit.build(torch, cfg).eval()
        randomise(tm, gen)
        save_state(os.path.join(OUT, f"timm_{tag}.safetensors"), quantised(tm, dt))
        tm = tm.double()
        ref.add(f"timm_{tag}.logits", tm(images.double())[-1].float())
        if tag == "f32":
            images12 = torch.randn(B, C_IN, 12, 12, generator=gen)
            ref.add("images12", images12)
            with torch.no_grad():
                pe = resample_posemb(tm.pos_embed.float(), 3).double()  # timm resamples in float32
            cfg12 = dict(cfg, image_size=12)
            t12 = torch_vit.build(torch, cfg12).double().eval()
            sd = {k: v for k, v in tm.state_dict().items() if k != "pos_embed"}
            sd["pos_embed"] = pe
            t12.load_state_dict(sd)
            ref.add("timm_f32.logits12", t12(images12.double())[-1].float())

    # torchvision, F32 and F16
    for dt, tag in ((torch.float32, "f32"), (torch.float16, "f16")):
        tv = TvViT().eval()
        randomise(tv, gen)
        save_state(os.path.join(OUT, f"tv_{tag}.safetensors"), quantised(tv, dt))
        ref.add(f"tv_{tag}.logits", tv.double()(images.double()).float())

    # position-embedding resampling alone
    pe = torch.randn(1, 1 + 25, 4, generator=gen)
    ref.add("posemb.in", pe)
    ref.add("posemb.out7", resample_posemb(pe, 7))
    ref.add("posemb.out3", resample_posemb(pe, 3))

    # bilinear resize
    x = torch.randint(0, 256, (2, 3, 9, 7), generator=gen).float()
    ref.add("resize.in", x)
    for h, w in ((13, 5), (4, 11), (18, 14)):
        ref.add(f"resize.out{h}x{w}", F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False))

    ref.write(os.path.join(OUT, "reference.safetensors"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
