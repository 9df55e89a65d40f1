#!/usr/bin/python3
"""A short EnViT training from Python, configured like `envit train` (keyword = flag), with a live
per-epoch print and a progress line every 20 steps; then the trained model's early-exit trade-off.
Ctrl-C writes the checkpoint and raises KeyboardInterrupt; rerun with resume= to continue.
  PYTHONPATH=build/python /usr/bin/python3 examples/python/train.py [out_dir]"""
import sys

import envit

out = sys.argv[1] if len(sys.argv) > 1 else "out/python"
t = envit.Trainer(preset="readme", scheme="envit", subset=6000, val=1000, epochs=3, seed=0, out=out)
print(f"model {t.config}; {t.total_steps} steps of {t.steps_per_epoch} per epoch")


def show(m):
    if m["kind"] == "step":
        print(f"  step {m['step']:5d}  loss {m['loss']:.4f}  lr {m['lr']:.2e}", end="\r", flush=True)
        return
    acc = " ".join(f"{100 * a:5.2f}%" for a in m["val_acc"])
    print(f"epoch {m['epoch']}: loss {m['loss']:.4f}, validation accuracy per exit {acc} "
          f"({m['images_per_s']:.0f} img/s)")


t.fit(callback=show, every=20)
model = envit.load(out + "/last.safetensors")
images, labels = model.test_set()
s = model.sweep(images, labels, points=6)
for thr, acc, sp in zip(s["threshold"], s["accuracy"], s["speedup_macs"]):
    print(f"threshold {thr:8.4g}: test accuracy {100 * acc:6.2f}% at {sp:4.2f}x fewer MACs")
