#!/usr/bin/env bash
# tests/study_quick.sh ROOT ENVIT OUT — the study_quick ctest (see tests/study.cmake).
set -euo pipefail
ROOT="$1" ENVIT="$2" OUT="$3"
fail() { echo "study_quick: FAIL: $*" >&2; exit 1; }
rm -rf "$OUT"
run() { bash "$ROOT/scripts/study.sh" --quick --envit "$ENVIT" --out "$OUT" --schemes "vit-ee envit no-such-scheme"; }
run > "$OUT.log1" 2>&1 || { cat "$OUT.log1"; fail "first run exited non-zero"; }
R="$OUT/report"
for f in runs.csv tables.md fig3_scratch.svg fig3_finetune.svg hist2x_scratch.svg hist2x_finetune.svg; do
  [[ -s "$R/$f" ]] || fail "$R/$f missing or empty"
done
# 2 settings x 2 schemes x (6 exits + 3 operating points) rows, plus the header.
rows=$(wc -l < "$R/runs.csv")
[[ $rows == 37 ]] || fail "runs.csv has $rows lines, expected 37"
for st in scratch finetune; do
  for s in vit-ee envit; do
    n=$(grep -c "^$st,$s,0,1,confidence,exit," "$R/runs.csv" || true)
    [[ $n == 6 ]] || fail "$st/$s: $n exit rows, expected 6"
    for op in "at 1.5x" "at 2x" "at default"; do
      grep -q "^$st,$s,0,1,confidence,$op," "$R/runs.csv" || fail "$st/$s: no '$op' row"
    done
  done
done
grep -q "missing): no-such-scheme" "$R/tables.md" || fail "tables.md does not name the missing scheme"
grep -q "^| envit | 1 |" "$R/tables.md" || fail "tables.md has no envit row"
grep -q "<polygon" "$R/fig3_scratch.svg" || fail "fig3_scratch.svg has no seed band"
# Every accuracy is a percentage.
awk -F, 'NR > 1 && ($9 < 0 || $9 > 100) { exit 1 }' "$R/runs.csv" || fail "accuracy outside [0, 100]"
# Resuming: nothing is trained or evaluated again, and the report is byte-identical.
cp "$R/runs.csv" "$OUT.runs1.csv"
run > "$OUT.log2" 2>&1 || { cat "$OUT.log2"; fail "second run exited non-zero"; }
n=$(grep -c " cached: " "$OUT.log2" || true)
[[ $n == 4 ]] || { cat "$OUT.log2"; fail "second run: $n runs from the cache, expected 4"; }
grep -q " trained: " "$OUT.log2" && fail "second run trained again"
cmp -s "$R/runs.csv" "$OUT.runs1.csv" || fail "runs.csv changed on a rerun from the cache"
# The paired t-test's distribution function against tabulated quantiles of Student's t.
python3 - "$ROOT/scripts" <<'PY' || fail "t distribution"
import sys
sys.path.insert(0, sys.argv[1])
import study_report as r
for t, df, p in [(12.706, 1, 0.05), (4.303, 2, 0.05), (2.776, 4, 0.05), (9.925, 2, 0.01), (1.0, 1, 0.5)]:
    got = 2 * (1 - r.t_cdf(t, df))
    assert abs(got - p) < 2e-4, (t, df, got, p)
assert abs(r.t_cdf(0.0, 3) - 0.5) < 1e-12
m, t, p = r.paired_t([1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
assert abs(m - 1.5) < 1e-12 and abs(t - 5.196152) < 1e-5 and abs(p - 0.035098) < 1e-4, (m, t, p)
PY
# The first study's checks from the committed runs.csv, and the regime study's verdict on synthetic runs.
python3 - "$ROOT/scripts" "$ROOT/docs/study/runs.csv" <<'PY' || fail "study_report checks"
import sys
sys.path.insert(0, sys.argv[1])
import study_report as r
want = [0.54, 0.35, 0.77, 1.23, 0.90, 1.73]  # the paper's Table 4: envit - envit-sd - envit-kd + vit-ee
assert all(abs(a - b) < 1e-9 for a, b in zip(r.paper_interaction(), want)), r.paper_interaction()
full, to_exit = r.study_macs()
assert full == 7179392 and to_exit[0] == 1238912 and to_exit[1] == 2427648, (full, to_exit)
acc = r.exit_acc_csv(sys.argv[2])
rows, per_seed = r.interaction_rows(acc, ["scratch", "finetune"])
ft1 = [l for l in rows if l.startswith("| finetune | 1 |")][0]
assert "-1.68 ± 0.64 | −−− | 0.045 | +0.54" in ft1, ft1
text = r.analyse(sys.argv[2], "")
assert "9998/10000/10000 | 80.98 | 5.79x" in text and "capped at **2.96x**" in text, text

def run(setting, scheme, seed, exits, train_final=0.99):
    log = [{"train_acc": [0.9] * 5 + [train_final], "val_acc": [0.8] * 6} for _ in range(60)]
    return {"setting": setting, "scheme": scheme, "seed": seed, "ev": {"exit_accuracy": exits}, "log": log}

def design(long_delta, short_delta, train_final=0.99):
    base = [0.70, 0.75, 0.78, 0.80, 0.81, 0.82]
    runs = []
    for k in range(5):
        e = 0.001 * (k - 2)
        for st, d in (("long", long_delta), ("short", short_delta)):
            runs.append(run(st, "vit-ee", k, base, train_final))
            runs.append(run(st, "envit-sd", k, base))
            runs.append(run(st, "envit-kd", k, base))
            runs.append(run(st, "envit", k, [b + x + e for b, x in zip(base, d)]))
    return runs

seeds = "0 1 2 3 4".split()
v = r.regime_verdict(design([0.02, 0.02, 0.01, 0, 0, 0], [-0.01] * 6), seeds)[-1]
assert "confirms" in v, v
v = r.regime_verdict(design([-0.01] * 6, [-0.01] * 6), seeds)[-1]
assert "refutes" in v, v
v = r.regime_verdict(design([0.02, 0.02, 0.01, 0, 0, 0], [-0.01] * 6, train_final=0.90), seeds)[-1]
assert "inconclusive: a precondition fails (saturation)" in v, v
v = r.regime_verdict(design([0.02, 0.02, 0.01, -0.01, 0, 0], [-0.01] * 6), seeds)[-1]
assert "inconclusive: neither" in v, v
v = r.regime_verdict(design([0.02] * 6, [-0.01] * 6)[:-1], seeds)[-1]
assert "not yet determined" in v, v
PY
# Across machines: a design after the first copies each run's files to DOCS/<design>/; on a machine
# whose OUT is empty, a run committed there under the same key is neither trained nor evaluated
# again, and no backbone is trained for it.
O2="$OUT-rerun" D2="$OUT-rerun-docs"
rm -rf "$O2" "$D2"
run2() { bash "$ROOT/scripts/study.sh" --quick --design rerun-weightsum --envit "$ENVIT" --out "$O2" --docs "$D2" \
           --schemes vit-ee; }
run2 > "$O2.log1" 2>&1 || { cat "$O2.log1"; fail "rerun-weightsum: first run exited non-zero"; }
for st in scratch finetune; do
  grep -q '"key":"' "$D2/rerun-weightsum/$st-vit-ee-s0/run.json" || fail "$st: run.json has no key"
done
cp "$D2/rerun-weightsum/scratch-vit-ee-s0/eval.json" "$O2.eval1.json"
rm -rf "$O2"
run2 > "$O2.log2" 2>&1 || { cat "$O2.log2"; fail "rerun-weightsum: second run exited non-zero"; }
n=$(grep -c " committed: " "$O2.log2" || true)
[[ $n == 2 ]] || { cat "$O2.log2"; fail "second machine: $n runs taken from DOCS, expected 2"; }
grep -q -E " (trained|cached): |backbone seed" "$O2.log2" && { cat "$O2.log2"; fail "second machine trained again"; }
cmp -s "$D2/rerun-weightsum/scratch-vit-ee-s0/eval.json" "$O2.eval1.json" || fail "a committed run's eval.json changed"
# A run whose committed key differs (other flags, numerics or thread count) is trained again.
sed -i 's/"key":"[0-9a-f]*"/"key":"0"/' "$D2/rerun-weightsum/scratch-vit-ee-s0/run.json"
run2 > "$O2.log3" 2>&1 || { cat "$O2.log3"; fail "rerun-weightsum: third run exited non-zero"; }
grep -q " trained: scratch vit-ee seed 0" "$O2.log3" || { cat "$O2.log3"; fail "a stale committed run was not retrained"; }
n=$(grep -c " committed: " "$O2.log3" || true)
[[ $n == 1 ]] || { cat "$O2.log3"; fail "third run: $n committed, expected 1 (finetune)"; }
echo "study_quick: 1 passed, 0 failed"
