"""Shared fixtures of the envit Python tests: the built `envit` program (ENVIT_PROGRAM), a tiny run
it trains on a Fashion-MNIST subset and evaluates once per pytest run (session-scoped fixtures), and a numpy safetensors reader
(independent of envit's own, so the comparisons check envit's files)."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest

SRC = os.environ.get("ENVIT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(SRC, "tests", "data")

# A tiny ViT (4 blocks, an exit after each) for a few steps: seconds, as tests/cli_baselines.sh.
TRAIN_FLAGS = dict(subset=512, val=128, batch=64, dim=32, depth=4, heads=2, mlp=64, patch=7,
                   exits=[1, 2, 3, 4], epochs=2, steps=12, warmup=0, threads=1, eval_batch=128, seed=3)


def as_argv(flags):
    out = []
    for k, v in flags.items():
        out.append("--" + k.replace("_", "-"))
        if v is not True:
            out.append(",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
    return out


def read_safetensors(path):
    """(tensors as numpy arrays, metadata) of a safetensors file."""
    dtypes = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8,
              "F16": np.float16}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(body[lo:hi], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out, meta


@pytest.fixture(scope="session")
def program():
    p = os.environ.get("ENVIT_PROGRAM")
    assert p and os.access(p, os.X_OK), "ENVIT_PROGRAM must name the built envit program (ctest sets it)"
    return p


def program_run(program, d, flags):
    """The program's run in directory d: train with `flags`, then eval (sweep, calibration,
    logits_0.safetensors)."""
    out = d / "train"
    subprocess.run([program, "train", "--out", str(out), *as_argv(flags)], check=True, capture_output=True)
    ckpt = out / "last.safetensors"
    ev = d / "eval"
    subprocess.run([program, "eval", "--checkpoint", str(ckpt), "--out", str(ev), "--points", "8",
                    "--time-samples", "0", "--stream-samples", "0", "--repeats", "1", "--threads", "1",
                    "--target-speedup", "1.3", "--max-drop", "0.02"], check=True, capture_output=True)
    with open(ev / "eval.json") as f:
        ej = json.load(f)
    logs = [json.loads(line) for line in open(out / "log.jsonl")]
    return dict(dir=d, ckpt=str(ckpt), eval=ej["checkpoints"][0], logits=read_safetensors(ev / "logits_0.safetensors")[0],
                log=logs)


@pytest.fixture(scope="session")
def run(program, tmp_path_factory):
    """The program's tiny run (TRAIN_FLAGS)."""
    return program_run(program, tmp_path_factory.mktemp("program"), TRAIN_FLAGS)


# The same tiny model with LGViT heads (exits 1, 2, 3: conv1_1, attn_r2, attn_r3), both stages.
LGVIT_FLAGS = dict(TRAIN_FLAGS, scheme="lgvit", lgvit_stage1_frac=0.5)


@pytest.fixture(scope="session")
def lgvit_run(program, tmp_path_factory):
    """The program's tiny LGViT run (LGVIT_FLAGS)."""
    return program_run(program, tmp_path_factory.mktemp("program_lgvit"), LGVIT_FLAGS)


@pytest.fixture
def one_thread():
    """envit on one thread for the test (as the program's runs above), the count restored after."""
    import envit
    n = envit.get_threads()
    envit.set_threads(1)
    yield
    envit.set_threads(n)


@pytest.fixture(scope="session")
def model(run):
    import envit
    return envit.load(run["ckpt"])
