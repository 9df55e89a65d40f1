#!/usr/bin/python3
"""A loss written in numpy drives envit's kernels through the low-level step: deep supervision with
learned exit weights (Kendall, Gal and Cipolla's uncertainty weighting, L = sum_j exp(-s_j) CE_j + s_j,
one learned s_j per exit; examples/library/learned_exit_weights.cpp is the same scheme in C++),
on EnViT's exit-aware block dropout as the library draws it. Then the saved model's early-exit
trade-off, read back with envit.load.
  PYTHONPATH=build/python /usr/bin/python3 examples/python/numpy_loss.py [out_dir] [steps]"""
import os
import sys

import numpy as np

import envit

out = sys.argv[1] if len(sys.argv) > 1 else "out/python_numpy_loss"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 300
# The Trainer holds the model, AdamW state, the dropout schedule (scheme envit, p_max) and the
# learning-rate schedule; fit() is not called, the loop below is the training.
t = envit.Trainer(preset="readme", scheme="envit", subset=6000, val=1000, steps=steps, seed=0, out=out)
images, labels = envit.load_dataset("fashion-mnist", "train")  # uint8: forward normalises as training does
B, M = 128, len(t.config["exits"])
rng = np.random.default_rng(0)


def cross_entropy(z, y):
    """Mean-over-the-batch CE of logits z (n, C) against labels y, and its gradient on z."""
    z = z.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = np.arange(len(y))
    ce = -np.log(p[n, y]).sum() / B
    p[n, y] -= 1
    return ce, p / B


s = np.zeros(M)  # log-variance per exit, learned alongside the model
for k in range(steps):
    idx = rng.choice(len(images), B, replace=False)
    t.zero_grads()
    exits = t.forward(images[idx], labels=labels[idx])  # masks="draw": EnViT's dropout at this step
    loss, dz, ce = 0.0, [], np.zeros(M)
    for j, e in enumerate(exits):  # e["rows"]: the batch positions that reached exit j
        ce[j], g = cross_entropy(e["logits"], e["labels"])
        loss += np.exp(-s[j]) * ce[j] + s[j]
        dz.append((np.exp(-s[j]) * g).astype(np.float32))
    t.backward(dz)
    norm = t.clip_grad_norm(1.0)
    t.adamw_step()  # the schedule's learning rate at this step; t.step advances
    s -= 1e-2 * (1.0 - np.exp(-s) * ce)  # dL/ds_j
    if (k + 1) % 50 == 0 or k + 1 == steps:
        print(f"step {t.step:4d}: loss {loss:.4f}, grad norm {norm:.3f}, exit weights "
              + " ".join(f"{w:.2f}" for w in np.exp(-s)))

os.makedirs(out, exist_ok=True)
t.save(out + "/numpy_loss.safetensors")
model = envit.load(out + "/numpy_loss.safetensors")
test_images, test_labels = model.test_set()
sw = model.sweep(test_images, test_labels, points=6)
for thr, acc, sp in zip(sw["threshold"], sw["accuracy"], sw["speedup_macs"]):
    print(f"threshold {thr:8.4g}: test accuracy {100 * acc:6.2f}% at {sp:4.2f}x fewer MACs")
