#!/usr/bin/python3
"""Writes tests/data/baselines_fixture.safetensors: the losses of the baseline schemes BEEM, COSEE
and BYOT (three variants) on a small multi-exit ViT computed by PyTorch, with their gradients and
one plain SGD step, for envit's parity test (tests/test_baselines_parity.cpp).

Model, initialisation and file writer: tests/data/gen_train_step_fixture.py (bench/torch_vit.py),
here with an exit after every block (exits 1,2,3,4) so BYOT's hint and COSEE's exit weighting see
several exits. Features f_j = exit j's input class token (the raw block output), f_L = the last
block's. CE is averaged over the batch. Objectives (M exits, z_j logits, teacher z_L detached):
  beem          sum_j j CE_j / sum_j j                                  (j = 1..M)
  byot          CE_L + sum_{j<M} (0.7 CE_j + 0.3 softCE_3(z_j; z_L))       (released code)
  byot-legacy   CE_L + sum_{j<M} (0.9 CE_j + 0.1 * 9 KL_3 + 1e-6 sum_b |f_j - f_L|^2 / B)
  byot-mmrazor  CE_L + sum_{j<M} (0.7 CE_j + 0.3 * 9 softCE_3) + 0.03 sum_{j<M-1} ||f_j - f_L||_F
                (softCE_T(z; t) = -mean_b sum_c softmax(t/T) log_softmax(z/T); KL_3 'batchmean')
  cosee         L_cls + 0.1 L_R with thresholds THRESHOLDS (chosen among the observed signals so
                that samples leave at different exits) and progress PROGRESS (beta = 10 PROGRESS):
                s = sigmoid(-logsumexp(z)); k_b^r = first non-final exit with s < t_r, else M;
                W = softmax_j(-beta |k - j|); L_cls = mean_r mean_b sum_j W[k_b^r, j] CE_jb;
                L_R = mean over non-final exits with correct and wrong samples of
                      relu(mean s_correct - mean s_wrong + 0.3)
One step: loss.backward(), then w -= LR * grad (plain SGD, no clipping, no weight decay).
Each is computed in float32 and float64 from the same float32-representable inputs.
Stored: __metadata__ (config, batch, lr, schemes, thresholds, progress), images, labels,
param.<name> (F32), <scheme>.loss F64, <scheme>.loss32 F32, <scheme>.grad.<name> F64,
<scheme>.grad32.<name> F32, <scheme>.updated.<name> F64.
Run:  /usr/bin/python3 tests/data/gen_baselines_fixture.py   (torch 1.13, CPU)
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_train_step_fixture as base  # noqa: E402  model, init_weights, StWriter

F = torch.nn.functional
CFG = dict(base.CFG, exits=[1, 2, 3, 4])
BATCH = 6
LR = 0.5
PROGRESS = 0.4
SEED = 20261204
SCHEMES = ["beem", "byot", "byot-legacy", "byot-mmrazor", "cosee"]


def forward(model, images):
    feats = {}
    hooks = [blk.register_forward_hook(lambda m, i, o, l=l: feats.__setitem__(l, o[:, 0]))
             for l, blk in enumerate(model.blocks)]
    logits = model(images)
    for h in hooks:
        h.remove()
    return logits, [feats[s - 1] for s in CFG["exits"]]


def soft_ce(z, t, T):
    return -(F.softmax(t / T, dim=-1) * F.log_softmax(z / T, dim=-1)).sum(-1).mean()


def signals(z):
    return torch.sigmoid(-torch.logsumexp(z, dim=-1))


def objective(scheme, logits, feats, labels, thresholds):
    M = len(logits)
    if scheme == "beem":
        return sum((j + 1) * F.cross_entropy(z, labels) for j, z in enumerate(logits)) / (M * (M + 1) / 2)
    if scheme.startswith("byot"):
        t = logits[-1].detach()
        fL = feats[-1].detach()
        loss = F.cross_entropy(logits[-1], labels)
        for j, z in enumerate(logits[:-1]):
            if scheme == "byot":
                loss = loss + 0.7 * F.cross_entropy(z, labels) + 0.3 * soft_ce(z, t, 3.0)
            elif scheme == "byot-legacy":
                kl = F.kl_div(F.log_softmax(z / 3.0, -1), F.softmax(t / 3.0, -1), reduction="batchmean")
                hint = ((feats[j] - fL) ** 2).sum() / z.shape[0]
                loss = loss + 0.9 * F.cross_entropy(z, labels) + 0.1 * 9.0 * kl + 1e-6 * hint
            else:
                loss = loss + 0.7 * F.cross_entropy(z, labels) + 0.3 * 9.0 * soft_ce(z, t, 3.0)
                if j < M - 2:
                    loss = loss + 0.03 * torch.sqrt(((feats[j] - fL) ** 2).sum())
        return loss
    assert scheme == "cosee"
    B = labels.shape[0]
    s = torch.stack([signals(z) for z in logits])                                   # (M, B)
    ce = torch.stack([F.cross_entropy(z, labels, reduction="none") for z in logits])  # (M, B)
    idx = torch.arange(M, dtype=s.dtype)
    W = torch.softmax(-10.0 * PROGRESS * (idx[:, None] - idx[None, :]).abs(), dim=-1)  # (k, j)
    sd = s.detach()
    cls = 0
    for t in thresholds:
        k = torch.full((B,), M - 1, dtype=torch.long)
        for b in range(B):
            for j in range(M - 1):
                if sd[j, b] < t:
                    k[b] = j
                    break
        cls = cls + (W[k].T * ce).sum() / B                                           # W[k_b, j]
    cls = cls / len(thresholds)
    terms = []
    for j, z in enumerate(logits[:-1]):  # the non-final exits
        ok = z.argmax(-1) == labels
        if ok.any() and (~ok).any():
            terms.append(F.relu(s[j][ok].mean() - s[j][~ok].mean() + 0.3))
    calib = sum(terms) / len(terms) if terms else 0.0
    return cls + 0.1 * calib


def run(scheme, state, images, labels, thresholds, dtype):
    torch.manual_seed(0)
    model = base.MultiExitViT(CFG).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    model.zero_grad(set_to_none=True)
    logits, feats = forward(model, images.to(dtype))
    loss = objective(scheme, logits, feats, labels, thresholds)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        updated = {n: (p - LR * p.grad).clone() for n, p in model.named_parameters()}
    return loss.detach(), grads, updated


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    model = base.MultiExitViT(CFG)
    base.init_weights(model, gen)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    images = (2 * torch.rand(BATCH, CFG["channels"], CFG["image_size"], CFG["image_size"],
                             generator=gen, dtype=torch.float64) - 1).float()
    labels = torch.tensor([0, 3, 1, 4, 2, 3], dtype=torch.int64)

    # Thresholds among the observed non-final signals (midpoints), so exits vary across samples.
    with torch.no_grad():
        m64 = base.MultiExitViT(CFG).double()
        m64.load_state_dict({k: v.double() for k, v in state.items()})
        logits, _ = forward(m64, images.double())
        # Sample 5's label = the final exit's prediction, so the final exit has correct and wrong
        # samples and COSEE's calibration must leave it out to match (it covers non-final exits).
        labels[5] = int(logits[-1][5].argmax())
        s = torch.stack([signals(z) for z in logits[:-1]]).flatten().sort().values
        picks = [0.15, 0.35, 0.5, 0.65, 0.85]
        thresholds = [float((s[int(q * (len(s) - 1))] + s[int(q * (len(s) - 1)) + 1]) / 2) for q in picks]
        ok = [int((z.argmax(-1) == labels).sum()) for z in logits]
    print("signals", [round(float(v), 5) for v in s], "\nthresholds", thresholds, "\ncorrect per exit", ok)

    st = base.StWriter()
    st.meta.update({k: (",".join(map(str, v)) if isinstance(v, list) else repr(v) if isinstance(v, float)
                        else str(v)) for k, v in CFG.items()})
    st.meta.update(batch=str(BATCH), lr=repr(LR), progress=repr(PROGRESS), schemes=",".join(SCHEMES),
                   thresholds=",".join(repr(t) for t in thresholds), torch_version=torch.__version__,
                   generator=os.path.basename(__file__))
    st.add("images", images)
    st.add("labels", labels.to(torch.int32))
    names = [n for n, _ in model.named_parameters()]
    for n in names:
        st.add("param." + n, state[n])
    for scheme in SCHEMES:
        l64, g64, u64 = run(scheme, state, images, labels, thresholds, torch.float64)
        l32, g32, _ = run(scheme, state, images, labels, thresholds, torch.float32)
        gn = sum(float((g ** 2).sum()) for g in g64.values()) ** 0.5
        print(f"{scheme}: loss f64 {l64.item():.10f} f32 {l32.item():.8f}, grad norm {gn:.5f}")
        st.add_step(scheme, names, l64, l32, g64, g32, u64)
    out = os.path.join(HERE, "baselines_fixture.safetensors")
    st.write(out)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    sys.exit(main())
