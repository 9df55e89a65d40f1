#!/usr/bin/python3
"""Loads the README checkpoint (bash scripts/main.sh writes out/readme/last.safetensors), sweeps
early-exit thresholds on the Fashion-MNIST test set, checks real early exit at one threshold, and
plots test accuracy against MAC speed-up (eq. 19).
  PYTHONPATH=build/python /usr/bin/python3 examples/python/tradeoff.py [checkpoint] [out.png]"""
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import envit  # noqa: E402

ckpt = sys.argv[1] if len(sys.argv) > 1 else "out/readme/last.safetensors"
png = sys.argv[2] if len(sys.argv) > 2 else "tradeoff_python.png"
model = envit.load(ckpt)
print(f"{ckpt}: exits after blocks {model.exits}, MACs per exit {model.macs_per_exit}")
images, labels = model.test_set()  # uint8; normalised with the checkpoint's recorded statistics
sweep = model.sweep(images, labels, points=24)
print(f"per-exit test accuracy: {np.round(100 * sweep['exit_accuracy'], 2)}")
for t, acc, sp, h in zip(sweep["threshold"], sweep["accuracy"], sweep["speedup_macs"], sweep["histogram"]):
    print(f"  threshold {t:8.4g}  accuracy {100 * acc:6.2f}%  speed-up {sp:5.2f}x  exits {h.tolist()}")

# Real early exit at the calibrated threshold: the blocks after a sample's exit never run on it.
# Calibrated on the validation split carved at training time (--val N), when the run had one.
if int(model.metadata.get("data.val", "0")) > 0:
    cal = model.calibrate(*model.validation_set(), max_drop=0.005)
    t = cal["threshold"]
    print(f"calibrated (max drop 0.5 points on validation): threshold {t:.4g}, validation speed-up "
          f"{cal['speedup_macs']:.2f}x")
else:
    t = 0.9
pred, exit_ = model.predict(images, t)
print(f"real early exit at threshold {t:.4g}: accuracy {100 * np.mean(pred == labels):.2f}%, "
      f"exit histogram {np.bincount(exit_, minlength=model.num_exits).tolist()}")

plt.figure(figsize=(6, 4))
plt.plot(sweep["speedup_macs"], 100 * sweep["accuracy"], "o-", label=model.metadata.get("train.scheme", "model"))
plt.xlabel("speed-up (MACs, eq. 19)")
plt.ylabel("test accuracy (%)")
plt.title("Accuracy vs MAC speed-up")
plt.grid(alpha=0.3)
plt.legend()
plt.tight_layout()
plt.savefig(png, dpi=120)
print(f"wrote {png}")
