"""envit.load / logits / predict / sweep / calibrate against the `envit` program on the same
checkpoint, and against PyTorch's logits on the shared fixtures."""
import os
import subprocess

import numpy as np
import pytest

import envit
from conftest import DATA, read_safetensors


def thr(t):
    return float("inf") if t is None else t  # eval.json writes the "never" threshold (inf) as null


def run_macs_full(model):
    # eq. 19's baseline: patch embedding, every block, the final head (include/envit/infer/macs.hpp)
    c = model.config
    n, d, f, k = (c["image_size"] // c["patch"]) ** 2 + 1, c["dim"], c["mlp_hidden"], c["classes"]
    embed = (n - 1) * d * c["channels"] * c["patch"] ** 2
    block = n * (4 * d * d + 2 * d * f) + 2 * n * n * d
    return embed + c["depth"] * block + d * k


def test_load_reports_config_exits_and_macs(run, model):
    assert model.exits == [1, 2, 3, 4]
    assert model.num_exits == 4 and model.classes == 10 and model.image_shape == (1, 28, 28)
    c = model.config
    assert (c["dim"], c["depth"], c["heads"], c["mlp_hidden"], c["patch"]) == (32, 4, 2, 64, 7)
    macs = model.macs_per_exit
    assert len(macs) == 4 and all(a < b for a, b in zip(macs, macs[1:]))
    assert model.macs_full == run_macs_full(model)
    assert model.metadata["train.scheme"] == "envit"
    assert model.macs_full == run["eval"]["macs_full"]


def test_logits_bitwise_equal_to_the_program(run, model):
    images, labels = model.test_set()
    assert images.dtype == np.uint8 and images.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(labels, run["logits"]["labels"])
    got = model.logits(images)
    want = run["logits"]["logits"]
    assert got.dtype == np.float32 and got.shape == want.shape == (4, 10000, 10)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), \
        f"largest difference {np.abs(got - want).max()}"


def test_input_conversions_give_the_same_logits(model):
    images, _ = model.test_set()
    x8 = images[:37]
    ref = model.logits(x8)
    x32 = model.normalize(x8)
    assert x32.dtype == np.float32 and x32.flags.c_contiguous
    assert np.array_equal(model.logits(x32), ref)
    assert np.array_equal(model.logits(x32.astype(np.float64)), ref)  # converted
    wide = np.zeros((37, 1, 28, 56), np.float32)
    wide[..., ::2] = x32
    assert not wide[..., ::2].flags.c_contiguous
    assert np.array_equal(model.logits(wide[..., ::2]), ref)  # strided view, copied
    assert np.array_equal(model.logits(x32, batch=5), ref)  # rows do not depend on the batch


def test_real_early_exit_histograms_equal_the_program(run, model):
    images, labels = model.test_set()
    sweep = run["eval"]["sweep"]
    assert len(sweep) >= 3 and run["eval"]["mismatches"] == 0
    for point in sweep:
        pred, exit_ = model.predict(images, thr(point["threshold"]))
        assert pred.dtype == np.int32 and exit_.dtype == np.int32
        hist = np.bincount(exit_, minlength=4).tolist()
        assert hist == point["histogram"], f"threshold {point['threshold']}"
        assert np.mean(pred == labels) == point["accuracy"]


def test_predict_batch_one_equals_batched(model):
    images, _ = model.test_set()
    x = images[:40]
    pred, exit_, lg = model.predict(x, 0.8, return_logits=True)
    for i in range(0, 40, 7):
        p1, e1, l1 = model.predict(x[i:i + 1], 0.8, return_logits=True)
        assert (p1[0], e1[0]) == (pred[i], exit_[i])
        assert np.array_equal(l1[0], lg[i])
    assert np.array_equal(lg, model.logits(x)[exit_, np.arange(40)])


def test_sweep_equals_the_program(run, model):
    images, labels = model.test_set()
    s = model.sweep(images, labels, points=8)
    ev = run["eval"]
    assert s["threshold"].tolist() == [thr(p["threshold"]) for p in ev["sweep"]]
    assert s["accuracy"].tolist() == [p["accuracy"] for p in ev["sweep"]]
    assert s["speedup_macs"].tolist() == [p["speedup_macs"] for p in ev["sweep"]]
    assert s["histogram"].tolist() == [p["histogram"] for p in ev["sweep"]]
    assert s["exit_accuracy"].tolist() == ev["exit_accuracy"]
    assert s["macs_full"] == ev["macs_full"]
    given = model.sweep(images, labels, thresholds=[0.5, float("inf")])
    assert given["histogram"][1].tolist() == [0, 0, 0, 10000]


def test_calibrate_equals_the_program(run, model):
    vi, vl = model.validation_set()
    assert vi.shape == (128, 1, 28, 28)
    want = {c["goal"]: c for c in run["eval"]["calibration"]}
    got_s = model.calibrate(vi, vl, target_speedup=1.3)
    got_d = model.calibrate(vi, vl, max_drop=0.02)
    for got, w in ((got_s, want["target speed-up"]), (got_d, want["max accuracy drop"])):
        assert got["met"] == w["met"]
        assert got["threshold"] == w["threshold"]
        assert got["accuracy"] == w["val_accuracy"]
        assert got["speedup_macs"] == w["val_speedup"]


@pytest.mark.parametrize("name, kw", [("timm_f32", dict(path="timm_f32.safetensors", heads=2, ln_eps=1e-6)),
                                      ("hf_cls_f32", dict(path="hf_cls_f32")),
                                      ("tv_f32", dict(path="tv_f32.safetensors", heads=2, ln_eps=1e-6))])
def test_pytorch_parity_on_the_pretrained_fixtures(name, kw):
    ref, _ = read_safetensors(os.path.join(DATA, "pretrained", "reference.safetensors"))
    kw = dict(kw)
    m = envit.load(os.path.join(DATA, "pretrained", kw.pop("path")), **kw)
    got = m.logits(ref["images"])[-1]
    want = ref[name + ".logits"]
    # tests/weights/test_pretrained.cpp's tolerance
    assert np.abs(got.astype(np.float64) - want).max() <= 1e-4


def test_threads_are_settable():
    n = envit.get_threads()
    envit.set_threads(1)
    assert envit.get_threads() == 1
    envit.set_threads(n)
    assert envit.get_threads() == n


def test_bf16_logits_bitwise_equal_to_the_program(run, program, tmp_path):
    import envit
    ev = tmp_path / "eval_bf16"
    subprocess.run([program, "eval", "--checkpoint", run["ckpt"], "--out", str(ev), "--precision", "bf16",
                    "--points", "4", "--time-samples", "0", "--stream-samples", "0", "--repeats", "1",
                    "--threads", "1"], check=True, capture_output=True)
    want = read_safetensors(ev / "logits_0.safetensors")[0]["logits"]
    m = envit.load(run["ckpt"], precision="bf16")
    assert m.precision == "bf16" and envit.load(run["ckpt"]).precision == "fp32"
    images, _ = m.test_set()
    got = m.logits(images)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), \
        f"largest difference {np.abs(got - want).max()}"
    fp32 = run["logits"]["logits"]
    assert not np.array_equal(got, fp32)  # bf16 really changes the products
    assert np.abs(got - fp32).max() < 0.05 * np.abs(fp32).max()


def test_lgvit_logits_and_early_exit_equal_the_program(lgvit_run, one_thread):
    m = envit.load(lgvit_run["ckpt"])
    assert m.config["exit_head"] == "lgvit"
    images, labels = m.test_set()
    got = m.logits(images)
    want = lgvit_run["logits"]["logits"]
    assert got.shape == want.shape == (4, 10000, 10)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), \
        f"largest difference {np.abs(got - want).max()}"
    sweep = lgvit_run["eval"]["sweep"]
    assert len(sweep) >= 3 and lgvit_run["eval"]["mismatches"] == 0
    for point in sweep:
        pred, exit_ = m.predict(images, thr(point["threshold"]))
        assert np.bincount(exit_, minlength=4).tolist() == point["histogram"], f"threshold {point['threshold']}"
        assert np.mean(pred == labels) == point["accuracy"]


@pytest.mark.parametrize("call", ["logits", "predict"])
def test_the_gil_is_released_while_a_model_computes(model, call, one_thread):
    import threading
    import time
    x = model.normalize(model.test_set()[0][:6000])
    work = (lambda: model.logits(x)) if call == "logits" else (lambda: model.predict(x, 0.99)[1])
    t0 = time.perf_counter()
    alone = work()
    alone_s = time.perf_counter() - t0
    ticks, res = [], {}
    th = threading.Thread(target=lambda: res.update(out=work(), threads=envit.get_threads()))
    th.start()
    while th.is_alive():  # a call that held the GIL would stop this loop for its whole length
        ticks.append(time.perf_counter())
        time.sleep(0.002)
    th.join()
    gaps = np.diff(ticks)
    assert len(gaps) >= 3 and gaps.max() < 0.5 * alone_s, \
        f"{call}: {alone_s:.3f} s alone, the Python thread's longest pause {gaps.max():.3f} s"
    # set_threads holds in every Python thread: the same count, the same bits
    assert res["threads"] == 1
    assert np.array_equal(res["out"], alone)


def test_int8_checkpoint_logits_bitwise_equal_to_the_program(run, program, tmp_path):
    # envit quantize's file runs in INT8 by itself, in the module as in envit eval
    q = tmp_path / "int8.safetensors"
    subprocess.run([program, "quantize", "--checkpoint", run["ckpt"], "--out", str(q)], check=True,
                   capture_output=True)
    ev = tmp_path / "eval_int8"
    subprocess.run([program, "eval", "--checkpoint", str(q), "--out", str(ev), "--points", "4",
                    "--time-samples", "0", "--stream-samples", "0", "--repeats", "1", "--threads", "1"],
                   check=True, capture_output=True)
    want = read_safetensors(ev / "logits_0.safetensors")[0]["logits"]
    m = envit.load(str(q))
    assert m.precision == "int8"
    images, _ = m.test_set()
    got = m.logits(images)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), \
        f"largest difference {np.abs(got - want).max()}"
    fp32 = run["logits"]["logits"]
    assert not np.array_equal(got, fp32)  # int8 really changes the products
    assert np.abs(got - fp32).max() < 0.05 * np.abs(fp32).max()
    # its dequantized weights in FP32 on request, and an unknown precision refused
    assert envit.load(str(q), precision="fp32").precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        envit.load(run["ckpt"], precision="int4")
