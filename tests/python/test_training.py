"""envit.Trainer against `envit train` with the same flags: the same checkpoint bytes, the same
per-epoch validation accuracy; resume; Ctrl-C during fit."""
import os
import signal
import time

import numpy as np
import pytest

import envit
from conftest import LGVIT_FLAGS, TRAIN_FLAGS


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def test_fit_writes_the_programs_checkpoint_bytes(run, tmp_path):
    seen = []
    t = envit.Trainer(out=str(tmp_path / "py"), **TRAIN_FLAGS)
    assert (t.total_steps, t.steps_per_epoch) == (12, 6)
    hist = t.fit(callback=seen.append)
    assert t.done and t.step == 12
    assert [m["epoch"] for m in seen] == [1, 2] and seen == hist
    assert [m["val_acc"] for m in hist] == [line["val_acc"] for line in run["log"]]
    assert [m["loss"] for m in hist] == [line["loss"] for line in run["log"]]
    assert same_bytes(tmp_path / "py" / "last.safetensors", run["ckpt"])


def test_resume_continues_the_run_exactly(run, tmp_path):
    out = str(tmp_path / "py")
    t = envit.Trainer(out=out, **TRAIN_FLAGS)
    steps = []
    t.fit(epochs=1, callback=lambda m: steps.append(m["step"]), every=2)
    assert t.step == 6 and not t.done
    assert steps == [2, 4, 6, 6]  # every 2 steps, then the epoch
    t2 = envit.Trainer(out=out, resume=out + "/last.safetensors", **TRAIN_FLAGS)
    assert t2.step == 6
    t2.fit()
    assert same_bytes(out + "/last.safetensors", run["ckpt"])


def test_ctrl_c_saves_restores_the_handler_and_raises(tmp_path):
    out = str(tmp_path / "int")
    t = envit.Trainer(out=out, **TRAIN_FLAGS)

    def interrupt(m):
        if m["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="stopped after step 3"):
        t.fit(callback=interrupt, every=1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    m = envit.load(out + "/last.safetensors")
    assert m.metadata["train.step"] == "3"
    with pytest.raises(KeyboardInterrupt):  # Python's own handler is back
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)


def test_trainer_from_arrays(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 96).astype(np.int64)
    images = (rng.integers(0, 60, (96, 1, 16, 16)) + 60 * labels[:, None, None, None]).astype(np.uint8)
    t = envit.Trainer(train_images=images, train_labels=labels, test_images=images[:32], test_labels=labels[:32],
                      out=str(tmp_path / "arr"), dim=16, depth=2, heads=2, mlp=32, patch=8, exits=[1, 2],
                      epochs=3, batch=32, warmup=0, threads=1, seed=1, lr=3e-3)
    assert t.config["classes"] == 3 and t.config["image_size"] == 16
    hist = t.fit()
    assert len(hist) == 3 and hist[-1]["test_acc"][-1] > 0.5  # three separable classes
    m = envit.load(str(tmp_path / "arr" / "last.safetensors"))
    assert m.metadata["data.dataset"] == "arrays"
    pred, _ = m.predict(images[:32], float("inf"))
    assert np.mean(pred == labels[:32]) == hist[-1]["test_acc"][-1]


def test_save_writes_what_fit_writes(tmp_path):
    out = tmp_path / "py"
    t = envit.Trainer(out=str(out), **TRAIN_FLAGS)
    t.fit(epochs=1)
    t.save(str(tmp_path / "copy.safetensors"))
    assert same_bytes(tmp_path / "copy.safetensors", out / "last.safetensors")
    assert envit.load(str(tmp_path / "copy.safetensors")).metadata["train.step"] == "6"
    with pytest.raises(OSError, match="no-such-dir"):
        t.save(str(tmp_path / "no-such-dir" / "x.safetensors"))


def test_ctrl_c_restores_the_callers_own_handler(tmp_path):
    calls = []

    def mine(signum, frame):
        calls.append(signum)

    def interrupt(m):
        if m["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.signal(signal.SIGINT, mine)
    try:
        t = envit.Trainer(out=str(tmp_path / "int"), **TRAIN_FLAGS)
        with pytest.raises(KeyboardInterrupt, match="stopped after step 3"):
            t.fit(callback=interrupt, every=1)
        assert calls == []  # envit took that Ctrl-C
        assert signal.getsignal(signal.SIGINT) is mine
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(500):
            if calls:
                break
            time.sleep(0.01)
        assert calls == [signal.SIGINT]  # the caller's handler runs again
    finally:
        signal.signal(signal.SIGINT, before)


def test_lgvit_fit_writes_the_programs_checkpoint_bytes(lgvit_run, tmp_path):
    t = envit.Trainer(out=str(tmp_path / "lg"), **LGVIT_FLAGS)
    assert t.config["exit_head"] == "lgvit"
    hist = t.fit()
    assert [m["val_acc"] for m in hist] == [line["val_acc"] for line in lgvit_run["log"]]
    assert same_bytes(tmp_path / "lg" / "last.safetensors", lgvit_run["ckpt"])
