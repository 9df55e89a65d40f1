"""The low-level step from Python (Trainer.forward / objective / backward / zero_grads /
clip_grad_norm / adamw_step): a numpy loss drives envit's kernels bit for bit as the library's own
objective does, its gradients match finite differences, the caller's masks are respected, bad input
raises ValueError, and a numpy-loss training loop learns and saves a checkpoint envit.load reads."""
import numpy as np
import pytest

import envit

B = 8  # the batch of every step here


def data(n=96, seed=0):
    """Three separable classes of 16x16 grey images (uint8), as test_training.py's arrays."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n).astype(np.int64)
    images = (rng.integers(0, 60, (n, 1, 16, 16)) + 60 * labels[:, None, None, None]).astype(np.uint8)
    return images, labels


def trainer(tmp_path, name, scheme="vit-ee", **kw):
    images, labels = data()
    flags = dict(out=str(tmp_path / name), dim=16, depth=3, heads=2, mlp=32, patch=8, exits=[1, 2, 3],
                 epochs=40, batch=B, warmup=0, threads=1, seed=1, lr=3e-3, scheme=scheme)
    flags.update(kw)
    return envit.Trainer(train_images=images, train_labels=labels, test_images=images[:32],
                         test_labels=labels[:32], **flags)


# Samples 1 and 3 skip block 2; samples 2, 3 and 6 skip block 3 (the first block runs everything).
MASKS = [np.arange(B), np.array([0, 2, 4, 5, 6, 7]), np.array([0, 1, 4, 5, 7])]


def cross_entropy(z, lab, scale):
    """(loss, dL/dz) of scale * sum_r CE(z_r, lab_r), in float32 with the operations and order of
    envit's cross-entropy kernel (ops/cross_entropy.hpp: row max, exp, sequential row sum, multiply
    by the reciprocal), so its gradient is envit's bit for bit. exp is taken in float64 and rounded,
    the correctly rounded float32 exp that the C library's expf gives."""
    n, C = z.shape
    m = z[:, 0].copy()
    for c in range(1, C):
        m = np.maximum(m, z[:, c])
    e = np.exp((z - m[:, None]).astype(np.float64)).astype(np.float32)
    s = e[:, 0].copy()
    for c in range(1, C):
        s = s + e[:, c]
    p = e * (np.float32(1) / s)[:, None]
    dz = np.float32(scale) * p
    dz[np.arange(n), lab] -= np.float32(scale)
    loss = scale * float(np.sum(np.log(s.astype(np.float64)) - (z[np.arange(n), lab] - m).astype(np.float64)))
    return loss, dz


def numpy_vit_ee(outs):
    """Deep supervision (vit-ee): each exit's mean CE over the batch, summed over the exits."""
    loss, grads = 0.0, []
    for o in outs:
        l, g = cross_entropy(o["logits"], o["labels"], np.float32(1) / np.float32(B))
        loss += l
        grads.append(g)
    return loss, grads


def test_numpy_loss_equals_the_library_objective_bitwise(tmp_path):
    images, labels = data()
    x, y = images[:B], labels[:B]
    a, b = trainer(tmp_path, "a"), trainer(tmp_path, "b")  # the same seed: the same initial parameters
    for k in a.parameters():
        assert np.array_equal(a.parameters()[k], b.parameters()[k])

    # a: the loss in numpy; b: the trainer's own vit-ee objective. Same images, same masks.
    a.zero_grads()
    outs = a.forward(x, labels=y, masks=MASKS)
    loss_a, dz = numpy_vit_ee(outs)
    a.backward(dz)
    b.zero_grads()
    b.forward(x, masks=MASKS)
    ob = b.objective(y)
    assert ob["dfeature"] == [None, None, None]
    for j in range(3):
        assert dz[j].tobytes() == ob["dlogits"][j].tobytes(), f"exit {j}: dlogits differ"
    assert loss_a == pytest.approx(ob["loss"], rel=1e-6)
    b.backward(ob["dlogits"])
    ga, gb = a.gradients(), b.gradients()
    differ = [k for k in ga if ga[k].tobytes() != gb[k].tobytes()]
    assert not differ, f"gradients differ in {differ}"
    assert any(np.abs(g).sum() > 0 for g in ga.values())

    # One optimiser step each: identical checkpoints (parameters, AdamW moments, step, metadata).
    assert a.clip_grad_norm(1.0) == b.clip_grad_norm(1.0)
    a.adamw_step()
    b.adamw_step()
    assert a.step == b.step == 1
    a.save(str(tmp_path / "a.safetensors"))
    b.save(str(tmp_path / "b.safetensors"))
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_gradient_matches_finite_differences(tmp_path):
    """L = sum_j sum(w_j * z_j) + sum_j sum(r_j * f_j) on logits z_j and features f_j, with the
    caller's masks; dL/dz = w, dL/df = r. Central differences in float32 parameters, loosely."""
    images, _ = data()
    x = images[:B]
    t = trainer(tmp_path, "fd")
    rng = np.random.default_rng(5)
    outs = t.forward(x, masks=MASKS, features=True)
    w = [rng.uniform(-1, 1, o["logits"].shape).astype(np.float32) for o in outs]
    r = [rng.uniform(-1, 1, o["feature"].shape).astype(np.float32) for o in outs]
    t.zero_grads()
    t.backward(w, r)

    def loss():
        o = t.forward(x, masks=MASKS, features=True)
        return sum(float(np.sum(w[j].astype(np.float64) * o[j]["logits"]) +
                         np.sum(r[j].astype(np.float64) * o[j]["feature"])) for j in range(3))

    P, G = t.parameters(), t.gradients()
    checked = 0
    for name, idx in [("blocks.0.attn.qkv.weight", (3, 5)), ("blocks.1.mlp.fc1.weight", (7, 2)),
                      ("patch_embed.proj.weight", (4, 0, 3, 3)), ("exits.0.head.weight", (1, 4)),
                      ("blocks.2.norm2.weight", (6,)), ("blocks.1.attn.proj.weight", (2, 9))]:
        want = float(G[name][idx])
        h = 1e-2
        old = P[name][idx]
        P[name][idx] = old + h
        lp = loss()
        P[name][idx] = old - h
        lm = loss()
        P[name][idx] = old
        fd = (lp - lm) / (2 * h)
        assert fd == pytest.approx(want, rel=1e-2, abs=2e-5), f"{name}{idx}: backward {want}, finite differences {fd}"
        checked += abs(want) > 1e-4
    assert checked == 6  # every entry carries a gradient well above the tolerance


def test_callers_masks_are_respected_and_draws_are_the_schemes(tmp_path):
    images, labels = data()
    x = images[:B]
    t = trainer(tmp_path, "masks", scheme="envit", p_max=0.5)
    outs = t.forward(x, labels=labels[:B], masks=MASKS)
    for j, o in enumerate(outs):
        assert o["block"] == j + 1
        assert np.array_equal(o["rows"], MASKS[j])  # exit j follows block j + 1
        assert np.array_equal(o["labels"], labels[:B][MASKS[j]])
        assert o["logits"].shape == (len(MASKS[j]), 3) and o["logits"].dtype == np.float32
    # A block no sample runs: its exit (and later ones fed by it) gets no rows.
    outs = t.forward(x, masks=[np.arange(B), np.array([], dtype=np.int64), np.array([], dtype=np.int64)])
    assert [o["logits"].shape for o in outs] == [(B, 3), (0, 3), (0, 3)]
    t.backward([np.zeros((B, 3), np.float32), None, np.zeros((0, 3), np.float32)])
    # None: every sample runs every block.
    assert all(np.array_equal(o["rows"], np.arange(B)) for o in t.forward(x, masks=None))
    # 'draw': EnViT's exit-aware dropout keyed by (seed, step): the same step draws the same masks,
    # the first block is never dropped, and with p_max 0.5 the last block drops someone.
    d1 = [o["rows"] for o in t.forward(x)]
    d2 = [o["rows"] for o in t.forward(x)]
    assert all(np.array_equal(p, q) for p, q in zip(d1, d2))
    assert np.array_equal(d1[0], np.arange(B))
    assert sum(len(r) for r in d1) < 3 * B


def test_bad_input_raises_value_error(tmp_path):
    images, labels = data()
    x = images[:B]
    t = trainer(tmp_path, "bad")
    with pytest.raises(ValueError, match="no forward to differentiate"):
        t.backward([np.zeros((B, 3), np.float32)] * 3)
    with pytest.raises(ValueError, match="no forward to take the objective of"):
        t.objective(labels[:B])
    with pytest.raises(ValueError, match=r"masks.exec\[1\] \(block 2\) position 1: not sorted, sample 0 after 2"):
        t.forward(x, masks=[np.arange(B), np.array([2, 0]), np.arange(B)])
    with pytest.raises(ValueError, match=r"masks.exec\[2\] \(block 3\) position 1: duplicate sample 1"):
        t.forward(x, masks=[np.arange(B), np.arange(B), np.array([1, 1])])
    with pytest.raises(ValueError, match=r"position 0: sample 8 out of range, expected 0..7"):
        t.forward(x, masks=[np.array([8]), np.arange(B), np.arange(B)])
    with pytest.raises(ValueError, match="masks for 2 blocks, the model has 3"):
        t.forward(x, masks=[np.arange(B), np.arange(B)])
    with pytest.raises(ValueError, match="must be a 1-D array of integer"):
        t.forward(x, masks=[np.arange(B), np.ones((2, 2), np.int64), np.arange(B)])
    with pytest.raises(ValueError, match="masks must be 'draw', None or"):
        t.forward(x, masks="all")
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\)"):
        t.forward(x[:, :, :8])
    t.forward(x, masks=MASKS)
    with pytest.raises(ValueError, match="dlogits must be a list of 3 arrays"):
        t.backward([np.zeros((B, 3), np.float32)] * 2)
    with pytest.raises(ValueError, match=r"dlogits\[1\] must be \(n, 3\) = \(6, 3\).*got shape \(8, 3\)"):
        t.backward([np.zeros((B, 3), np.float32)] * 3)
    with pytest.raises(ValueError, match=r"dlogits\[0\] is None, but 8 rows reached exit 0"):
        t.backward([None, np.zeros((6, 3)), np.zeros((5, 3))])
    with pytest.raises(ValueError, match=r"dfeat\[2\] must be \(n, 16\) = \(5, 16\)"):
        t.backward([np.zeros((8, 3)), np.zeros((6, 3)), np.zeros((5, 3))], [None, None, np.zeros((5, 3))])
    bad = np.zeros((5, 3), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"dlogits\[2\] holds a non-finite value"):
        t.backward([np.zeros((8, 3)), np.zeros((6, 3)), bad])
    with pytest.raises(ValueError, match="label 5 of sample 0 is outside"):
        t.objective(np.full(B, 5))
    t.zero_grads()
    t.backward([np.zeros((8, 3)), np.zeros((6, 3)), np.zeros((5, 3))])  # float64 is converted
    with pytest.raises(ValueError, match="no forward to differentiate"):  # one backward per forward
        t.backward([np.zeros((8, 3)), np.zeros((6, 3)), np.zeros((5, 3))])
    with pytest.raises(ValueError, match="max_norm 0 must be a finite number > 0"):
        t.clip_grad_norm(0.0)
    with pytest.raises(ValueError, match="lr -1 must be a finite number >= 0"):
        t.adamw_step(-1.0)
    G = t.gradients()
    G["head.bias"][0] = np.inf
    before = t.parameters()["head.bias"].copy()
    with pytest.raises(ValueError, match="gradient 'head.bias'.*parameters unchanged"):
        t.adamw_step()
    assert np.array_equal(t.parameters()["head.bias"], before) and t.step == 0
    s = trainer(tmp_path, "cosee", scheme="cosee")
    s.forward(x)
    with pytest.raises(ValueError, match="scheme cosee keeps per-step state"):
        s.objective(labels[:B])


def test_numpy_loss_training_loop_learns_and_saves(tmp_path):
    images, labels = data()
    t = trainer(tmp_path, "loop", scheme="envit", p_max=0.3)
    rng = np.random.default_rng(2)
    losses = []
    for step in range(60):
        idx = rng.choice(len(images), B, replace=False)
        t.zero_grads()
        outs = t.forward(images[idx], labels=labels[idx])  # EnViT's dropout masks, drawn per step
        loss, dz = numpy_vit_ee(outs)
        t.backward(dz)
        t.clip_grad_norm(1.0)
        t.adamw_step(3e-3)
        losses.append(loss)
    assert t.step == 60
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), losses
    path = str(tmp_path / "loop.safetensors")
    t.save(path)
    m = envit.load(path)
    assert m.metadata["train.step"] == "60"
    # The inference path on the saved model agrees with the training forward (every block run).
    outs = t.forward(images[:32], masks=None)
    lg = m.logits(images[:32])
    for j in range(3):
        assert np.allclose(lg[j], outs[j]["logits"], rtol=1e-4, atol=1e-4)
    pred, _ = m.predict(images[:32], float("inf"))
    assert np.mean(pred == labels[:32]) > 0.8  # three separable classes


@pytest.mark.parametrize("scheme", ["vit-ee", "envit"])
def test_one_step_equals_trainer_fit_bitwise(tmp_path, scheme):
    """Trainer.fit's step (train_step) against the low-level step on the same batch. The training
    set is one image repeated B times, so fit's batch is known whatever its sample order, and
    augmentation is off. vit-ee: the loss in numpy; envit: the trainer's objective (KD from the
    final exit) with the masks drawn as fit draws them. One step each, identical checkpoint bytes."""
    images, labels = data()
    one, lab = np.repeat(images[:1], B, axis=0), np.repeat(labels[:1], B)

    def make(name):
        return envit.Trainer(train_images=one, train_labels=lab, test_images=images[:16], test_labels=labels[:16],
                             classes=3, out=str(tmp_path / name), dim=16, depth=3, heads=2, mlp=32, patch=8,
                             exits=[1, 2, 3], epochs=1, batch=B, warmup=0, threads=1, seed=1, lr=3e-3, clip=1.0,
                             scheme=scheme)

    a = make("fit")
    a.fit()
    b = make("low")
    b.zero_grads()
    outs = b.forward(one, labels=lab)  # masks="draw"
    if scheme == "vit-ee":
        assert [len(o["rows"]) for o in outs] == [B, B, B]
        b.backward(numpy_vit_ee(outs)[1])
    else:
        assert sum(len(o["rows"]) for o in outs) < 3 * B  # the draw dropped someone
        ob = b.objective(lab)
        b.backward(ob["dlogits"], ob["dfeature"])
    b.clip_grad_norm(1.0)
    b.adamw_step()
    assert a.step == b.step == 1
    b.save(str(tmp_path / "low.safetensors"))
    assert (tmp_path / "fit" / "last.safetensors").read_bytes() == (tmp_path / "low.safetensors").read_bytes()


def test_the_program_evaluates_a_model_trained_by_the_low_level_step(program, tmp_path):
    """A few numpy-loss steps on the conftest run's data set, saved; `envit eval` reads the
    checkpoint and its real early exit agrees with the module's on the same file."""
    import json
    import subprocess

    from conftest import TRAIN_FLAGS
    t = envit.Trainer(**dict(TRAIN_FLAGS, out=str(tmp_path / "run")))
    images, labels = envit.load_dataset("fashion-mnist", "train")
    rng = np.random.default_rng(0)
    for _ in range(4):
        idx = rng.choice(len(images), TRAIN_FLAGS["batch"], replace=False)
        t.zero_grads()
        outs = t.forward(images[idx], labels=labels[idx])
        t.backward([cross_entropy(o["logits"], o["labels"], np.float32(1) / np.float32(len(idx)))[1] for o in outs])
        t.clip_grad_norm(1.0)
        t.adamw_step()
    ckpt = str(tmp_path / "low.safetensors")
    t.save(ckpt)
    ev = tmp_path / "eval"
    subprocess.run([program, "eval", "--checkpoint", ckpt, "--out", str(ev), "--points", "4", "--time-samples", "0",
                    "--stream-samples", "0", "--repeats", "1", "--threads", "1"], check=True, capture_output=True)
    with open(ev / "eval.json") as f:
        sweep = json.load(f)["checkpoints"][0]["sweep"]
    m = envit.load(ckpt)
    assert m.metadata["train.step"] == "4"
    x, y = m.test_set()
    assert len(sweep) >= 3
    for point in sweep:
        thr = float("inf") if point["threshold"] is None else point["threshold"]  # null: never exit early
        pred, exit_ = m.predict(x, thr)
        assert np.bincount(exit_, minlength=4).tolist() == point["histogram"]
        assert np.mean(pred == y) == point["accuracy"]


def test_lgvit_heads_features_and_their_gradients(tmp_path):
    """With LGViT exit heads, `feature` is the head's own (n, F) feature and a gradient on it reaches
    the parameters; the lgvit scheme's objective (per-stage state) is refused."""
    images, labels = data()
    x = images[:B]
    t = trainer(tmp_path, "lg", scheme="lgvit")
    outs = t.forward(x, masks=MASKS, features=True)
    assert [o["feature"].shape[0] for o in outs] == [len(m) for m in MASKS]
    assert all(o["feature"].dtype == np.float32 and o["feature"].shape[1] > 0 for o in outs)
    dz = [np.ones_like(o["logits"]) for o in outs]
    t.zero_grads()
    t.backward(dz)
    without = {k: v.copy() for k, v in t.gradients().items()}
    t.forward(x, masks=MASKS, features=True)
    t.zero_grads()
    t.backward(dz, [np.ones_like(o["feature"]) for o in outs])
    changed = [k for k, v in t.gradients().items() if not np.array_equal(v, without[k])]
    assert changed and "head.weight" not in changed  # the features' gradient flows below the heads
    t.forward(x)
    with pytest.raises(ValueError, match="scheme lgvit keeps per-step state"):
        t.objective(labels[:B])
