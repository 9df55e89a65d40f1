"""Minimal safetensors writer for the fixture generators (no safetensors package needed):
tensors in insertion order, header padded with spaces to a multiple of 8, __metadata__ first and
left out when empty. F64, F32, F16, BF16 and I32 tensors."""
import json
import struct

import torch


class StWriter:
    DT = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int32: "I32"}

    def __init__(self):
        self.meta, self.items = {}, []

    def add(self, name, t):
        t = t.detach().contiguous().cpu()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        self.items.append((name, self.DT[t.dtype], list(t.shape), raw))

    def add_step(self, prefix, names, loss64, loss32, grad64, grad32, updated64):
        """One training step's references in the names tests/parity_testing.hpp reads:
        <prefix>.loss, .loss32, .grad.<n>, .grad32.<n>, .updated.<n> (64: torch float64, 32: float32)."""
        self.add(f"{prefix}.loss", loss64)
        self.add(f"{prefix}.loss32", loss32)
        for kind, tensors in (("grad", grad64), ("grad32", grad32), ("updated", updated64)):
            for n in names:
                self.add(f"{prefix}.{kind}.{n}", tensors[n])

    def write(self, path):
        header, off = ({"__metadata__": self.meta} if self.meta else {}), 0
        for name, dt, shape, data in self.items:
            header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
            off += len(data)
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for *_, data in self.items:
                f.write(data)
