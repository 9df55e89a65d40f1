#!/usr/bin/python3
"""Writes scikit-learn's 8x8 handwritten digits (1,797 images, shipped with Debian's python3-sklearn:
no download) upsampled to 28x28 grey-scale, split 1,500 train / 297 test by a seeded permutation,
in the two forms `envit train --data DIR` reads:
  OUT/idx/{train,t10k}-{images-idx3,labels-idx1}-ubyte         IDX files, as MNIST
  OUT/folder/{train,test}/<digit>/<index>.png                   class folders of PNG files
Pixels: the 0..16 values scaled to 0..255, then bilinear upsampling (scipy.ndimage.zoom, order 1).
Usage: /usr/bin/python3 bench/digits_data.py OUT
"""
import os
import struct
import sys
import zlib

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits

N_TRAIN = 1500
SIZE = 28


def png_grey(path, img):
    """A minimal 8-bit grey-scale PNG (no filter, zlib level 9)."""
    h, w = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def idx_write(path, arr):
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def main():
    out = sys.argv[1]
    d = load_digits()
    x = d.images.astype(np.float64) * (255.0 / 16.0)                   # (1797, 8, 8)
    up = np.stack([zoom(im, SIZE / 8.0, order=1) for im in x])        # (1797, 28, 28)
    up = np.clip(np.rint(up), 0, 255).astype(np.uint8)
    perm = np.random.RandomState(0).permutation(len(up))
    splits = {"train": perm[:N_TRAIN], "test": perm[N_TRAIN:]}
    os.makedirs(out + "/idx", exist_ok=True)
    for name, idx in splits.items():
        pre = "train" if name == "train" else "t10k"
        idx_write(f"{out}/idx/{pre}-images-idx3-ubyte", up[idx])
        idx_write(f"{out}/idx/{pre}-labels-idx1-ubyte", d.target[idx])
        for i in idx:
            cdir = f"{out}/folder/{name}/{d.target[i]}"
            os.makedirs(cdir, exist_ok=True)
            png_grey(f"{cdir}/{i:04d}.png", up[i])
    print(f"{out}: {len(splits['train'])} train / {len(splits['test'])} test digits, {SIZE}x{SIZE} grey")


if __name__ == "__main__":
    main()
