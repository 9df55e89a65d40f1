"""Every bad input raises the named exception with envit's message, never a crash."""
import math
import os

import numpy as np
import pytest

import envit
from conftest import DATA, TRAIN_FLAGS


@pytest.fixture(scope="module")
def x(model):
    return model.normalize(model.test_set()[0][:4])


def test_load_errors(tmp_path):
    with pytest.raises(OSError, match="no-such.safetensors"):
        envit.load(str(tmp_path / "no-such.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(OSError, match="bad.safetensors"):
        envit.load(str(bad))
    with pytest.raises(ValueError, match="unknown weight format|format"):
        envit.load(os.path.join(DATA, "pretrained", "timm_f32.safetensors"), format="keras")
    with pytest.raises(ValueError, match="precision: unknown precision 'fp16' \\(expected fp32, bf16 or int8\\)"):
        envit.load(os.path.join(DATA, "pretrained", "timm_f32.safetensors"), precision="fp16")


def test_image_errors(model, x):
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\).*got shape \(4, 28, 28\)"):
        model.logits(x[:, 0])
    with pytest.raises(ValueError, match=r"got shape \(4, 3, 28, 28\)"):
        model.logits(np.repeat(x, 3, axis=1))
    with pytest.raises(ValueError, match="at least one"):
        model.logits(x[:0])
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[2, 0, 5, 7] = bad
        with pytest.raises(ValueError, match="image 2 holds a non-finite value"):
            model.logits(y)
        with pytest.raises(ValueError, match="non-finite"):
            model.predict(y, 0.9)
    with pytest.raises(ValueError, match="dtype int64"):
        model.logits(x.astype(np.int64))
    with pytest.raises(ValueError, match="batch 0"):
        model.logits(x, batch=0)


def test_threshold_errors(model, x):
    for t in (1.5, -0.1, math.nan):
        with pytest.raises(ValueError, match="threshold"):
            model.predict(x, t)
    with pytest.raises(ValueError, match="patience must be a whole number"):
        model.predict(x, 0, rule="patience")
    with pytest.raises(ValueError, match="patience must be a whole number"):
        model.predict(x, 2.5, rule="patience")
    with pytest.raises(ValueError, match="outside \\[0, 1\\] for rule entropy"):
        model.predict(x, 2.0, rule="entropy")
    with pytest.raises(ValueError, match="threshold must be a number or a sequence of numbers, got None"):
        model.predict(x, None)
    with pytest.raises(ValueError, match="unknown exit rule 'fastest'"):
        model.predict(x, 0.5, rule="fastest")
    with pytest.raises(ValueError, match="2 thresholds for 4 exits"):
        model.predict(x, [0.5, 0.6])
    with pytest.raises(ValueError, match="beem_weights: 2 values for 4 exits"):
        model.predict(x, 0.5, rule="beem", beem_weights=[1, 2])


def test_label_and_calibration_errors(model, x):
    with pytest.raises(ValueError, match=r"labels must be \(N,\) = \(4,\)"):
        model.sweep(x, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="label 10 of sample 1 is outside"):
        model.sweep(x, np.array([0, 10, 0, 0]))
    with pytest.raises(ValueError, match="exactly one of target_speedup and max_drop"):
        model.calibrate(x, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="max_drop 2 is outside"):
        model.calibrate(x, np.zeros(4, np.int64), max_drop=2)
    with pytest.raises(ValueError, match="target_speedup 0 is outside"):
        model.calibrate(x, np.zeros(4, np.int64), target_speedup=0)


def test_uint8_needs_a_recorded_normalisation():
    m = envit.load(os.path.join(DATA, "pretrained", "timm_f32.safetensors"), heads=2, ln_eps=1e-6)
    with pytest.raises(ValueError, match="records none"):
        m.logits(np.zeros((1, 3, 8, 8), np.uint8))


def test_trainer_errors(tmp_path):
    with pytest.raises(ValueError, match="--p-max"):
        envit.Trainer(out=str(tmp_path), p_max=1.5)
    with pytest.raises(ValueError, match="--no-such-flag"):
        envit.Trainer(out=str(tmp_path), no_such_flag=1)
    with pytest.raises(ValueError, match="--subset 70000 do not fit"):
        envit.Trainer(out=str(tmp_path), subset=70000)
    with pytest.raises(OSError, match="nothing.safetensors"):
        envit.Trainer(out=str(tmp_path), resume=str(tmp_path / "nothing.safetensors"), **TRAIN_FLAGS)
    with pytest.raises(ValueError, match="all of train_images"):
        envit.Trainer(train_images=np.zeros((4, 1, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="set_threads: 0"):
        envit.set_threads(0)
    with pytest.raises(ValueError, match="fit: epochs"):
        envit.Trainer(out=str(tmp_path / "e"), **TRAIN_FLAGS).fit(epochs=0)
