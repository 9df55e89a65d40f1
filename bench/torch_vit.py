"""The multi-exit ViT and the EnViT objective in plain PyTorch (no timm), shared by
bench/torch_model_bench.py (the side-by-side benchmark) and tests/data/gen_train_step_fixture.py
(the one-step parity fixture). timm's parameter names and layouts: Conv2d patch embedding, one class
token, learned position embedding, pre-LN blocks with a fused qkv projection
(qkv.reshape(B, N, 3, H, E)), exact (erf) GELU, and exit heads = LayerNorm + Linear on the class
token after the configured blocks (final exit `norm`/`head`, intermediate exits
`exits.{j}.norm`/`exits.{j}.head`).

`torch` is passed in (not imported here) so that callers can report a missing torch themselves.
Config keys (VitConfig::to_map's names): image_size, channels, patch, dim, depth, heads,
mlp_hidden, classes, exits (1-based block indices, last = depth), ln_eps.
"""


def build(torch, c):
    """An uninitialised MultiExitViT for config dict c (parameters as torch's defaults leave them)."""
    nn = torch.nn
    F = torch.nn.functional

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = c["heads"]
            self.scale = (c["dim"] // c["heads"]) ** -0.5
            self.qkv = nn.Linear(c["dim"], 3 * c["dim"])
            self.proj = nn.Linear(c["dim"], c["dim"])

        def forward(self, x):
            B, N, D = x.shape
            qkv = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            att = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            return self.proj((att @ v).transpose(1, 2).reshape(B, N, D))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(c["dim"], c["mlp_hidden"])
            self.fc2 = nn.Linear(c["mlp_hidden"], c["dim"])

        def forward(self, x):
            return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU (torch's default)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(c["dim"], eps=c["ln_eps"])
            self.attn = Attention()
            self.norm2 = nn.LayerNorm(c["dim"], eps=c["ln_eps"])
            self.mlp = Mlp()

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class ExitHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(c["dim"], eps=c["ln_eps"])
            self.head = nn.Linear(c["dim"], c["classes"])

        def forward(self, x):
            return self.head(self.norm(x[:, 0]))

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(c["channels"], c["dim"], kernel_size=c["patch"], stride=c["patch"])

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)  # (B, Np, D), patches row-major

    class MultiExitViT(nn.Module):
        def __init__(self):
            super().__init__()
            exits = list(c["exits"])
            n_tok = (c["image_size"] // c["patch"]) ** 2 + 1
            self.cls_token = nn.Parameter(torch.zeros(1, 1, c["dim"]))
            self.pos_embed = nn.Parameter(torch.zeros(1, n_tok, c["dim"]))
            self.patch_embed = PatchEmbed()
            self.blocks = nn.ModuleList([Block() for _ in range(c["depth"])])
            self.exits = nn.ModuleList([ExitHead() for _ in exits[:-1]])
            self.norm = nn.LayerNorm(c["dim"], eps=c["ln_eps"])
            self.head = nn.Linear(c["dim"], c["classes"])
            self.exit_at = {s - 1: j for j, s in enumerate(exits)}  # 0-based block -> exit index
            self.last = len(exits) - 1

        def forward(self, img):
            x = self.patch_embed(img)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
            logits = []
            for l, blk in enumerate(self.blocks):
                x = blk(x)
                j = self.exit_at.get(l)
                if j is not None:
                    logits.append(self.head(self.norm(x[:, 0])) if j == self.last else self.exits[j](x))
            return logits

    return MultiExitViT()


def decays(name):
    """AdamW weight decay applies: weight matrices and the conv weight; not biases, norms,
    cls_token, pos_embed (as envit)."""
    return name.endswith(".weight") and ".norm" not in name and not name.startswith("norm")


def objective(torch, scheme, logits, labels, alpha=0.5, tau=4.0):
    """vit-ee: sum_j CE_j. envit / envit-kd at p_M = 0:
    (1/M) [ sum_{j<M} ((1-alpha) CE_j + alpha tau^2 KL(teacher || student_j)) + CE_M ],
    teacher = softmax(z_M / tau) detached; CE averaged over the batch, KL 'batchmean'."""
    F = torch.nn.functional
    if scheme == "vit-ee":
        return sum(F.cross_entropy(z, labels) for z in logits)
    if scheme not in ("envit", "envit-kd"):
        raise ValueError(f"scheme {scheme}: only vit-ee, envit and envit-kd are implemented here")
    M = len(logits)
    teacher = F.softmax(logits[-1].detach() / tau, dim=-1)
    total = F.cross_entropy(logits[-1], labels)
    for z in logits[:-1]:
        kl = F.kl_div(F.log_softmax(z / tau, dim=-1), teacher, reduction="batchmean")
        total = total + (1 - alpha) * F.cross_entropy(z, labels) + alpha * tau * tau * kl
    return total / M
