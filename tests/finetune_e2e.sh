#!/usr/bin/env bash
# The fine-tuning path end to end (docs/usage.md, "Pretrained weights"), tiny and fast:
#   1. pretrain a backbone without intermediate exits on Fashion-MNIST (28x28, a few steps),
#   2. convert it to a Hugging Face directory,
#   3. fine-tune it with exits through --init from that directory at 42x42 (position embedding
#      resampled, new exit heads reported, the source's normalisation used),
#   4. fine-tune it on an image folder (PNG/BMP/JPEG, 3 classes: --allow-new-heads required) and
#      evaluate the result on the folder's val/ split; without --init, the folder's own size and
#      channels (mixed sizes refused naming two files).
# Usage: finetune_e2e.sh ENVIT_BINARY MAKE_IMAGE_FOLDER_BINARY WORK_DIR
set -euo pipefail
envit=$1 make_folder=$2 work=$3
fm=/usr/share/datasets/fashion-mnist
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
common=(--steps 3 --batch 16 --epochs 1 --threads 2)
small=(--subset 96 --val 16)

"$envit" train --preset readme --exits 6 "${common[@]}" "${small[@]}" --out pre > pre.log 2>&1 || { cat pre.log; fail "pretraining"; }
"$envit" convert --to hf pre/last.safetensors --out hf > convert.log 2>&1 || { cat convert.log; fail "convert --to hf"; }
for f in config.json model.safetensors preprocessor_config.json; do [ -s "hf/$f" ] || fail "hf/$f not written"; done
grep -q '"envit_exits": \[' hf/config.json || fail "config.json lacks envit_exits"

"$envit" train --init hf --image-size 42 --exits 2,4,6 "${common[@]}" "${small[@]}" --out ft > ft.log 2>&1 ||
  { cat ft.log; fail "fine-tuning from the hf directory"; }
grep -q 'loaded hf (hf): 79 tensors, 80 renamed or fused from hf names' ft.log || { cat ft.log; fail "load report"; }
grep -q 'pos_embed \[1, 17, 96\] -> \[1, 37, 96\] (bicubic, grid 4x4 -> 6x6)' ft.log || fail "no resampling reported"
[ "$(grep -c '(new exit head)' ft.log)" = 8 ] || fail "expected 8 new exit-head tensors (2 exits x 4)"
grep -q 'resized to 1x42x42' ft.log || fail "no resize reported"
grep -q 'normalisation: recorded in hf/preprocessor_config.json' ft.log || fail "the source's normalisation not used"

"$make_folder" "$fm" photos 3 12 4
# Defaults that follow the data (no --init, no --image-size): the folder's one 35x30 JPEG among 28x28
# images is refused, naming both files and the flag; without it the images' own size is used, as 1
# channel when every image is grey (PNG only: stb_image_write's BMP and JPEG files are colour).
rc=0; "$envit" train --data photos --print-config > mixed.log 2>&1 || rc=$?
[ $rc = 2 ] || { cat mixed.log; fail "mixed sizes: exit $rc, expected 2"; }
grep -q "differ in size: '[^']*' is 28x28, '[^']*\.jpg' is 35x30 (W x H); set --image-size N" mixed.log ||
  { cat mixed.log; fail "mixed sizes: no message naming the files and --image-size"; }
cp -r photos grey && rm grey/train/*/*.jpg grey/train/*/*.bmp
"$envit" train --data grey --batch 8 --print-config > grey.log 2>&1 || { cat grey.log; fail "grey folder"; }
grep -q "data: folder:grey: [0-9]* images, 28x28 grey-scale; training at 1x28x28" grey.log || { cat grey.log; fail "grey: geometry not reported"; }
grep -q "^config.channels=1$" grey.log && grep -q "^config.image_size=28$" grey.log && grep -q "^config.patch=7$" grey.log ||
  { cat grey.log; fail "grey: not 28x28x1 with patch 7"; }
grep -q "^data.source=folder:grey$" grey.log || { cat grey.log; fail "grey: data.source"; }
cp -r photos colour && rm colour/train/*/*.jpg
"$envit" train --data colour --batch 8 --print-config > colour.log 2>&1 || { cat colour.log; fail "colour folder"; }
grep -q "^config.channels=3$" colour.log || { cat colour.log; fail "colour: BMP files present, expected 3 channels"; }
"$envit" train --data colour --channels 1 --batch 8 --print-config > colour1.log 2>&1 && grep -q "^config.channels=1$" colour1.log ||
  { cat colour1.log; fail "--channels 1 not applied"; }
if "$envit" train --init hf --dataset folder --data photos --image-size 42 --exits 3,6 "${common[@]}" \
     --out folder > refused.log 2>&1; then fail "a 10-class head was replaced without --allow-new-heads"; fi
grep -q 'pass --allow-new-heads' refused.log || { cat refused.log; fail "no --allow-new-heads hint"; }
"$envit" train --init hf --allow-new-heads --dataset folder --data photos --image-size 42 --exits 3,6 \
  --norm 0.29,0.35 --steps 3 --batch 12 --epochs 1 --threads 2 --out folder > folder.log 2>&1 ||
  { cat folder.log; fail "fine-tuning on the image folder"; }
grep -q 'replaces the source' folder.log || fail "classifier replacement not reported"
grep -q 'data: folder:photos, 36 train / 12 val samples' folder.log || { cat folder.log; fail "folder split sizes"; }
"$envit" eval --checkpoint folder/last.safetensors --data photos --time-samples 4 --stream-samples 0 --repeats 1 \
  > eval.log 2>&1 || { cat eval.log; fail "eval on the image folder"; }
grep -q 'per-exit test accuracy' eval.log || { cat eval.log; fail "eval output"; }
echo "fine-tuning path OK"
