#!/usr/bin/env bash
# tests/study_paper_path.sh ROOT ENVIT MAKE_IMAGE_FOLDER OUT — the study_paper_path ctest (tests/study.cmake):
# scripts/study.sh --design paper end to end on a tiny generated Hugging Face ViT directory and a tiny
# generated image folder (the path docs/results.md gives for Table 4 on ViT-B/16 + CIFAR-100), then a
# rerun that must come entirely from the cache.
set -euo pipefail
ROOT="$1" ENVIT="$2" MAKE_FOLDER="$3" OUT="$4"
fail() { echo "study_paper_path: FAIL: $*" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT" && cd "$OUT"
fm=/usr/share/datasets/fashion-mnist
# A 4-block ViT with one final exit, converted to a Hugging Face directory (config.json + model.safetensors).
"$ENVIT" train --depth 4 --patch 7 --dim 16 --heads 2 --mlp 32 --exits 4 --subset 64 --val 16 --batch 16 \
  --epochs 1 --steps 2 --lr 1e-3 --warmup-steps 1 --threads 1 --out pre > pre.log 2>&1 || { cat pre.log; fail "pretraining"; }
"$ENVIT" convert --to hf pre/last.safetensors --out hf > convert.log 2>&1 || { cat convert.log; fail "convert --to hf"; }
# 10 classes, 20 training and 3 evaluation images each: 200 - 40 held out = 160 images, one batch of 128.
"$MAKE_FOLDER" "$fm" photos 10 20 3 > folder.log 2>&1 || { cat folder.log; fail "make_image_folder"; }
run() {
  bash "$ROOT/scripts/study.sh" --design paper --init hf --data photos --image-size 28 --epochs 1 --val 40 \
    --schemes "vit-ee envit" --envit "$ENVIT" --out "$OUT/study" --docs "$OUT/docs" --jobs 2 "$@"
}
plan=$(run --plan 2>&1) || { echo "$plan"; fail "--plan"; }
[[ $(grep -c " to-train " <<< "$plan") == 2 ]] || { echo "$plan"; fail "--plan does not list 2 runs to train"; }
# 160 / 128 = 1 step x 45.3 s + (30 evaluation + 40 validation + 4,500 timing images) / 8.47 img/s = 585 s a run.
grep -q "estimated" <<< "$plan" && grep -q "(1170 s)" <<< "$plan" || { echo "$plan"; fail "--plan estimate"; }
run > run1.log 2>&1 || { cat run1.log; fail "first run"; }
D="$OUT/docs/paper"
for s in vit-ee envit; do
  for f in run.json log.jsonl eval.json sweep.csv; do [[ -s "$D/paper-$s-s0/$f" ]] || fail "$D/paper-$s-s0/$f missing"; done
  python3 - "$D/paper-$s-s0" "$s" <<'PY' || fail "run.json / eval.json of $s"
import json, sys
d, s = sys.argv[1], sys.argv[2]
r = json.load(open(d + "/run.json"))
f = r["flags"]
for want in ("--scheme " + s, "--dataset folder", "--lr 5e-5", "--batch 128", "--clip-mode weight-sum", "--alpha 0.5",
             "--tau 4", "--p-max 0.3", "--image-size 28", "--epochs 1", "--val 40", "--allow-new-heads", "/hf"):
    assert want in f, (want, f)
assert r["machine"]["cpu"] and r["machine"]["kernels"], r["machine"]
assert 0.0 < r["teacher_entropy_tau4"] <= 1.0, r["teacher_entropy_tau4"]
ev = json.load(open(d + "/eval.json"))["checkpoints"][0]
assert ev["exits"] == [2, 4], ev["exits"]          # every other block of the 4-block source
assert len(ev["calibration"]) == 3, ev["calibration"]
log = [json.loads(l) for l in open(d + "/log.jsonl")]
assert len(log) == 1 and log[0]["step"] == 1, log
PY
done
grep -q "loaded $OUT/hf (hf)" "$OUT/study/runs/"*/train.log || fail "the runs did not load the Hugging Face directory"
grep -q "data: folder:[^,]*, 160 train / 40 val samples" "$OUT/study/runs/"*/train.log || fail "folder split sizes"
grep -q "^| envit | 1 |" "$D/tables.md" || fail "tables.md has no envit row"
n=$(grep -c "^paper," "$D/runs.csv")
[[ $n == 10 ]] || fail "runs.csv has $n rows, expected 10 (2 runs x (2 exits + 3 points))"
run > run2.log 2>&1 || { cat run2.log; fail "second run"; }
[[ $(grep -c " cached: " run2.log) == 2 ]] || { cat run2.log; fail "second run did not come from the cache"; }
echo "study_paper_path: 1 passed, 0 failed"
