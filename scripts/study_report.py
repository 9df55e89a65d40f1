#!/usr/bin/env python3
"""scripts/study_report.py — summarises the runs of scripts/study.sh (standard library only).

Reads OUT/manifest.tsv and each listed run's run.json and eval.json; writes into DOCS:
  runs.csv      one row per run and exit, and per run and calibrated operating point
  tables.md     Table 4 analogue (per-exit test accuracy, mean +- std over seeds, paired t-test of
                each scheme against vit-ee) and Table 2 analogue (test accuracy at the operating
                points calibrated on the validation split), per setting
  fig3_<setting>.svg   test accuracy against MAC speed-up, mean over seeds with a +-1 std band
  hist2x_<setting>.svg exits taken at the 2x operating point, mean fraction of test samples per exit

Other modes (each regenerates a block of docs/results.md from files in the repository):
  --analyse docs/study/runs.csv   the first study's checks: the interaction envit - envit-sd - envit-kd
                                  + vit-ee per exit against the paper's Table 4, COSEE's and BEEM's exit-1
                                  counts, the MAC model and BEEM's speed-up cap, the Fig. 3 ranges
  --design D --docs docs/study    a design of scripts/study.sh other than the first, from the files its
                                  runs copied to docs/study/D/<run>/ (run.json, eval.json, log.jsonl,
                                  sweep.csv); for `regime`, also the preconditions and the verdict
  --teacher-entropy LOGITS --tau T  the final exit's mean normalised entropy of softmax(z / T) over the
                                  samples of an `envit eval` logits file
"""
import argparse
import csv
import json
import math
import os
import struct
import sys

BASE = "vit-ee"
GOALS = [("1.5x", "target speed-up", 1.5), ("2x", "target speed-up", 2.0), ("default", "max accuracy drop", None)]
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]


# ---- statistics --------------------------------------------------------------------------------
def mean(v):
    return sum(v) / len(v)


def std(v):  # sample standard deviation (n - 1); 0 for one value
    if len(v) < 2:
        return 0.0
    m = mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def betacf(a, b, x):
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-15:
            break
    return h


def betai(a, b, x):
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1.0 - x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """Student's t distribution function with df degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * betai(0.5 * df, 0.5, x)
    return 1.0 - tail if t >= 0 else tail


def paired_t(a, b):
    """Two-sided paired t-test of a - b: (mean difference, t, p); p is None with fewer than 2 pairs
    or identical differences."""
    d = [x - y for x, y in zip(a, b)]
    if len(d) < 2:
        return mean(d), None, None
    s = std(d)
    if s == 0.0:
        return mean(d), None, None
    t = mean(d) / (s / math.sqrt(len(d)))
    return mean(d), t, 2.0 * (1.0 - t_cdf(abs(t), len(d) - 1))


# ---- the paper's Table 4 (CIFAR-100, ViT-B/16), exits 1-6 ----------------------------------------
PAPER_T4 = {
    "vit-ee": [60.48, 75.61, 83.13, 87.21, 88.85, 89.40],
    "envit-sd": [60.51, 76.23, 83.57, 87.19, 89.12, 89.88],
    "envit-kd": [61.37, 78.05, 83.46, 86.51, 87.68, 87.73],
    "envit": [61.94, 79.02, 84.67, 87.72, 88.85, 89.94],
}


def interaction(a):
    """envit - envit-sd - envit-kd + vit-ee, element-wise over exits (a: scheme -> per-exit list)."""
    return [e - sd - kd + b for e, sd, kd, b in zip(a["envit"], a["envit-sd"], a["envit-kd"], a["vit-ee"])]


def paper_interaction():
    return interaction(PAPER_T4)


def one_sample_t(v):
    """Two-sided t-test of mean(v) = 0 (the paired test of (envit - envit-sd) against
    (envit-kd - vit-ee) when v are the per-seed interactions): (mean, p); p None with < 2 values."""
    _, _, p = paired_t(v, [0.0] * len(v))
    return mean(v), p


def signs(v):
    return "".join("+" if x > 0 else ("−" if x < 0 else "0") for x in v)


def exit_acc_csv(path):
    """setting -> scheme -> seed -> per-exit test accuracy (%) from a runs.csv."""
    acc = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["row"] != "exit":
                continue
            d = acc.setdefault(r["setting"], {}).setdefault(r["scheme"], {}).setdefault(int(r["seed"]), [])
            d.append(float(r["test_accuracy"]))
    return acc


def exit_acc_runs(runs):
    acc = {}
    for r in runs:
        acc.setdefault(r["setting"], {}).setdefault(r["scheme"], {})[r["seed"]] = [
            100 * x for x in r["ev"]["exit_accuracy"]]
    return acc


def interaction_rows(acc, settings):
    """Markdown rows: per setting and exit, the interaction's mean ± std over seeds, its per-seed
    signs, the t-test p, and the paper's value."""
    paper = paper_interaction()
    out = ["| setting | exit | mean ± std (points) | per-seed signs | p | paper (Table 4) |", "|---|---|---|---|---|---|"]
    per_seed_mean = {}
    for st in settings:
        a = acc.get(st, {})
        if not all(s in a for s in PAPER_T4):
            continue
        seeds = sorted(set.intersection(*[set(a[s]) for s in PAPER_T4]))
        if not seeds:
            continue
        inter = {k: interaction({s: a[s][k] for s in PAPER_T4}) for k in seeds}
        M = len(inter[seeds[0]])
        for j in range(M):
            v = [inter[k][j] for k in seeds]
            m, p = one_sample_t(v)
            pj = "%+.2f" % paper[j] if M == len(paper) else "—"
            out.append("| %s | %d | %+.2f ± %.2f | %s | %s | %s |" % (st, j + 1, m, std(v), signs(v), fmt_p(p), pj))
        per_seed_mean[st] = {k: mean(inter[k]) for k in seeds}
    return out, per_seed_mean


# ---- MACs of the study's model (infer/macs.hpp, linear exit heads) -------------------------------
def study_macs(image=28, patch=7, dim=64, mlp=128, depth=12, exits=(2, 4, 6, 8, 10, 12), classes=10, channels=1):
    """(full, [C_j]): eq. 19's baseline (every block, the final head) and the cost of leaving at
    exit j (embedding, blocks 1..s_j, heads 0..j), matrix-product MACs per sample."""
    n_p = (image // patch) ** 2
    n, k = n_p + 1, channels * patch * patch
    embed = n_p * k * dim
    block = n * (4 * dim * dim + 2 * dim * mlp) + 2 * n * n * dim
    head = dim * classes
    return embed + depth * block + head, [embed + s * block + (j + 1) * head for j, s in enumerate(exits)]


def speedup_of(hist, full, to_exit):
    return full * sum(hist) / sum(h * c for h, c in zip(hist, to_exit))


# ---- loading ------------------------------------------------------------------------------------
def load(out):
    runs = []
    man = os.path.join(out, "manifest.tsv")
    if not os.path.exists(man):
        sys.exit("study_report: %s not found (run scripts/study.sh first)" % man)
    with open(man) as f:
        for line in f:
            setting, scheme, seed, key = line.rstrip("\n").split("\t")[:4]
            rj = os.path.join(out, "runs", key, "run.json")
            if not os.path.exists(rj):
                continue
            with open(rj) as g:
                meta = json.load(g)
            ej = os.path.join(out, "runs", key, meta["eval"], "eval.json")
            if not os.path.exists(ej):
                continue
            with open(ej) as g:
                ev = json.load(g)["checkpoints"][0]
            meta.update(key=key, ev=ev)
            runs.append(meta)
    return runs


def calib(ev, goal, target):
    for c in ev.get("calibration", []):
        if c["goal"] == goal and (target is None or abs(c.get("target", target) - target) < 1e-9):
            return c
    return None


# ---- outputs --------------------------------------------------------------------------------------
def write_csv(path, runs):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["setting", "scheme", "seed", "threads", "rule", "row", "exit", "block", "test_accuracy",
                    "calibrated_threshold", "val_accuracy", "val_speedup_macs", "test_speedup_macs",
                    "test_speedup_wall", "exit_histogram"])
        for r in runs:
            ev = r["ev"]
            for j, (blk, acc) in enumerate(zip(ev["exits"], ev["exit_accuracy"])):
                w.writerow([r["setting"], r["scheme"], r["seed"], r["threads"], r["rule"], "exit", j + 1, blk,
                            "%.4f" % (100 * acc), "", "", "", "", "", ""])
            for name, goal, target in GOALS:
                c = calib(ev, goal, target)
                if c is None:
                    continue
                w.writerow([r["setting"], r["scheme"], r["seed"], r["threads"], r["rule"], "at " + name, "", "",
                            "%.4f" % (100 * c["test_accuracy"]), ("%.6g" % c["threshold"]) if c["threshold"] is not None else "inf",
                            "%.4f" % (100 * c["val_accuracy"]), "%.4f" % c["val_speedup"],
                            "%.4f" % c["test_speedup"], "%.4f" % c["test_speedup_wall"],
                            "/".join(str(h) for h in c["histogram"])])


def pm(v, digits=2):
    return ("%.*f ± %.*f" % (digits, mean(v), digits, std(v))) if v else "—"


def fmt_p(p):
    return "—" if p is None else ("%.3f" % p if p >= 0.001 else "<0.001")


def tables(runs, schemes, settings, missing):
    out = []
    for setting in settings:
        rs = [r for r in runs if r["setting"] == setting]
        if not rs:
            out.append("### %s: no finished run\n" % setting)
            continue
        M = len(rs[0]["ev"]["exits"])
        blocks = rs[0]["ev"]["exits"]
        by = {}
        for r in rs:
            by.setdefault(r["scheme"], {})[r["seed"]] = r
        present = [s for s in schemes if s in by]
        seeds_of = {s: sorted(by[s]) for s in present}
        out.append("### Table 4 analogue, %s: test accuracy (%%) per exit, mean ± std over seeds\n" % setting)
        out.append("| scheme | seeds | " + " | ".join("exit %d (block %d)" % (j + 1, b) for j, b in enumerate(blocks)) + " |")
        out.append("|---|---|" + "---|" * M)
        for s in present:
            cells = [pm([100 * by[s][k]["ev"]["exit_accuracy"][j] for k in seeds_of[s]]) for j in range(M)]
            out.append("| %s | %d | %s |" % (s, len(seeds_of[s]), " | ".join(cells)))
        for s in schemes:
            if s not in by:
                out.append("| %s | 0 | %s |" % (s, " | ".join(["missing" if s in missing else "not run"] * M)))
        out.append("")
        if BASE in by:
            out.append("Difference from %s (points): mean ± std of the per-seed differences (same seed, same data "
                       "order), two-sided paired t-test p in brackets:\n" % BASE)
            out.append("| scheme | pairs | " + " | ".join("exit %d" % (j + 1) for j in range(M)) + " |")
            out.append("|---|---|" + "---|" * M)
            for s in present:
                if s == BASE:
                    continue
                common = [k for k in seeds_of[s] if k in by[BASE]]
                cells = []
                for j in range(M):
                    a = [100 * by[s][k]["ev"]["exit_accuracy"][j] for k in common]
                    b = [100 * by[BASE][k]["ev"]["exit_accuracy"][j] for k in common]
                    if not common:
                        cells.append("—")
                        continue
                    d, _, p = paired_t(a, b)
                    sd = std([x - y for x, y in zip(a, b)])
                    cells.append("%+.2f ± %.2f (%s)" % (d, sd, fmt_p(p)))
                out.append("| %s | %d | %s |" % (s, len(common), " | ".join(cells)))
            out.append("")
        out.append("### Fig. 3 read-out, %s: test accuracy (%%) at fixed MAC speed-ups\n" % setting)
        out.append("Each seed's test sweep interpolated linearly at the speed-up, mean ± std over seeds; "
                   "below, envit minus each scheme with paired t-test p (— where a sweep does not reach "
                   "the speed-up).\n")
        xs = [1.5, 2.0, 2.5, 3.0]
        out.append("| scheme | " + " | ".join("%.1fx" % x for x in xs) + " |")
        out.append("|---|" + "---|" * len(xs))
        at = {}
        for s in present:
            for x in xs:
                at[(s, x)] = {k: curve_at(by[s][k]["ev"]["sweep"], x) for k in seeds_of[s]}
            cells = []
            for x in xs:
                v = [y for y in at[(s, x)].values() if y is not None]
                cells.append(pm(v) if len(v) == len(seeds_of[s]) else "—")
            out.append("| %s | %s |" % (s, " | ".join(cells)))
        out.append("")
        if "envit" in by:
            out.append("| envit minus | " + " | ".join("%.1fx" % x for x in xs) + " |")
            out.append("|---|" + "---|" * len(xs))
            for s in present:
                if s == "envit":
                    continue
                cells = []
                for x in xs:
                    common = [k for k in seeds_of[s] if k in by["envit"] and at[(s, x)][k] is not None
                              and at[("envit", x)][k] is not None]
                    if not common:
                        cells.append("—")
                        continue
                    d, _, p = paired_t([at[("envit", x)][k] for k in common], [at[(s, x)][k] for k in common])
                    cells.append("%+.2f (%s)" % (d, fmt_p(p)))
                out.append("| %s | %s |" % (s, " | ".join(cells)))
            out.append("")
        out.append("### Table 2 analogue, %s: test accuracy (%%) at operating points calibrated on the validation split\n" % setting)
        out.append("Each cell: test accuracy mean ± std over seeds, then the test MAC speed-up and the measured "
                   "wall-clock speed-up (means). 1.5x/2x: the most accurate threshold on validation whose MAC "
                   "speed-up reaches the target; default: the fastest threshold within 1 point of the final "
                   "exit's validation accuracy, each scheme with its own exit rule.\n")
        out.append("| scheme | rule | final exit | at 1.5x | at 2x | default |")
        out.append("|---|---|---|---|---|---|")
        for s in present:
            cells = []
            for name, goal, target in GOALS:
                cs = [calib(by[s][k]["ev"], goal, target) for k in seeds_of[s]]
                cs = [c for c in cs if c is not None]
                if not cs:
                    cells.append("—")
                    continue
                met = "" if all(c["met"] for c in cs) else " (target not met)"
                cells.append("%s @ %.2fx MACs, %.2fx wall%s" % (pm([100 * c["test_accuracy"] for c in cs]),
                                                                mean([c["test_speedup"] for c in cs]),
                                                                mean([c["test_speedup_wall"] for c in cs]), met))
            fin = pm([100 * by[s][k]["ev"]["full_accuracy"] for k in seeds_of[s]])
            out.append("| %s | %s | %s | %s |" % (s, by[s][seeds_of[s][0]]["rule"], fin, " | ".join(cells)))
        out.append("")
    return "\n".join(out)


def curve_at(sweep, x):
    """Accuracy of a sweep (points of MAC speed-up -> accuracy) at speed-up x, linear interpolation on
    the upper envelope; None outside the sweep's range."""
    pts = sorted((p["speedup_macs"], 100 * p["accuracy"]) for p in sweep)
    if not pts or x < pts[0][0] - 1e-12 or x > pts[-1][0] + 1e-12:
        return None
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1] if abs(x - pts[-1][0]) < 1e-9 else pts[0][1]


def svg_fig3(path, setting, runs, schemes):
    rs = [r for r in runs if r["setting"] == setting]
    W, H, L, R, T, B = 760, 480, 70, 190, 40, 55
    series = []
    for i, s in enumerate(schemes):
        sw = [r["ev"]["sweep"] for r in rs if r["scheme"] == s]
        if not sw:
            continue
        lo = max(min(p["speedup_macs"] for p in w) for w in sw)
        hi = min(max(p["speedup_macs"] for p in w) for w in sw)
        xs = [lo + (hi - lo) * k / 60 for k in range(61)]
        mu, sd = [], []
        for x in xs:
            ys = [curve_at(w, x) for w in sw]
            ys = [y for y in ys if y is not None]
            mu.append(mean(ys))
            sd.append(std(ys))
        series.append((s, COLORS[i % len(COLORS)], xs, mu, sd, len(sw)))
    if not series:
        return
    xmin = 1.0
    xmax = max(max(x) for _, _, x, _, _, _ in series)
    ymin = min(min(m - d for m, d in zip(mu, sd)) for _, _, _, mu, sd, _ in series)
    ymax = max(max(m + d for m, d in zip(mu, sd)) for _, _, _, mu, sd, _ in series)
    pad = 0.05 * (ymax - ymin or 1)
    ymin, ymax = ymin - pad, ymax + pad
    X = lambda x: L + (x - xmin) / (xmax - xmin or 1) * (W - L - R)
    Y = lambda y: T + (ymax - y) / (ymax - ymin) * (H - T - B)
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="14">Test accuracy vs MAC speed-up, %s (mean over seeds, band: ±1 std)</text>' % (L, setting)]
    for k in range(6):
        y = ymin + (ymax - ymin) * k / 5
        o.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (L, W - R, Y(y), Y(y)))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>' % (L - 6, Y(y) + 4, y))
    for k in range(6):
        x = xmin + (xmax - xmin) * k / 5
        o.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>' % (X(x), X(x), T, H - B))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%.2fx</text>' % (X(x), H - B + 16, x))
    o.append('<text x="%d" y="%d" text-anchor="middle">speed-up (MACs, eq. 19)</text>' % ((L + W - R) // 2, H - 12))
    o.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">test accuracy (%%)</text>' % ((T + H - B) // 2, (T + H - B) // 2))
    for s, c, xs, mu, sd, n in series:
        up = " ".join("%.1f,%.1f" % (X(x), Y(m + d)) for x, m, d in zip(xs, mu, sd))
        dn = " ".join("%.1f,%.1f" % (X(x), Y(m - d)) for x, m, d in reversed(list(zip(xs, mu, sd))))
        o.append('<polygon points="%s %s" fill="%s" fill-opacity="0.15" stroke="none"/>' % (up, dn, c))
        o.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"/>' % (
            " ".join("%.1f,%.1f" % (X(x), Y(m)) for x, m in zip(xs, mu)), c))
    for i, (s, c, _, _, _, n) in enumerate(series):
        y = T + 10 + 18 * i
        o.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>' % (W - R + 12, W - R + 32, y, y, c))
        o.append('<text x="%d" y="%d">%s (%d seed%s)</text>' % (W - R + 38, y + 4, s, n, "" if n == 1 else "s"))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def svg_hist(path, setting, runs, schemes):
    rs = [r for r in runs if r["setting"] == setting]
    rows = []
    for i, s in enumerate(schemes):
        hs = [calib(r["ev"], "target speed-up", 2.0) for r in rs if r["scheme"] == s]
        hs = [h["histogram"] for h in hs if h is not None]
        if hs:
            M = len(hs[0])
            rows.append((s, COLORS[i % len(COLORS)], [mean([h[j] / sum(h) for h in hs]) for j in range(M)], len(hs)))
    if not rows:
        return
    M = len(rows[0][2])
    cw, ch, L, T = 250, 150, 40, 50
    cols = 3
    nrow = (len(rows) + cols - 1) // cols
    W, H = L + cols * cw, T + nrow * ch + 10
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="20" font-size="14">Exits taken at the 2x operating point, %s</text>' % setting,
         '<text x="10" y="36">threshold calibrated on validation; fraction of test samples per exit, mean over seeds</text>']
    for i, (s, c, fr, n) in enumerate(rows):
        x0, y0 = L + (i % cols) * cw, T + (i // cols) * ch
        bw = (cw - 40) / M
        o.append('<text x="%d" y="%d">%s (%d seed%s)</text>' % (x0, y0 + 12, s, n, "" if n == 1 else "s"))
        base = y0 + ch - 30
        o.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#999"/>' % (x0, x0 + cw - 40, base, base))
        for j, f in enumerate(fr):
            h = f * (ch - 68)
            o.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>' % (x0 + j * bw + 2, base - h, bw - 4, h, c))
            o.append('<text x="%.1f" y="%.1f" text-anchor="middle">%.0f%%</text>' % (x0 + (j + 0.5) * bw, base - h - 3, 100 * f))
            o.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (x0 + (j + 0.5) * bw, base + 13, j + 1))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


# ---- the first study's checks (--analyse) ---------------------------------------------------------
def fig3_minus_ranges(tables_md):
    """From a tables.md: setting -> baseline -> (min, max) of envit minus baseline over the Fig. 3
    read-out speed-ups (the 'envit minus' tables)."""
    out, setting, inside = {}, None, False
    for line in open(tables_md):
        if line.startswith("### Fig. 3 read-out, "):
            setting = line.split(", ")[1].split(":")[0]
        if line.startswith("| envit minus |"):
            inside = True
            continue
        if inside and line.startswith("|---"):
            continue
        if inside and line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            vals = [float(c.split()[0]) for c in cells[1:] if c != "—"]
            out.setdefault(setting, {})[cells[0]] = (min(vals), max(vals))
            continue
        inside = False
    return out


def analyse(csv_path, tables_md):
    acc = exit_acc_csv(csv_path)
    rows = list(csv.DictReader(open(csv_path)))
    settings = [st for st in ("scratch", "finetune") if st in acc]
    o = ["Generated by `python3 scripts/study_report.py --analyse docs/study/runs.csv --results docs/results.md` "
         "from [study/runs.csv](study/runs.csv) (and, where marked, [study/tables.md](study/tables.md)).", ""]

    # EnViT against ViT-EE, per exit and seed.
    o.append("**EnViT minus ViT-EE** (points; mean over seeds, then the per-seed signs):\n")
    o.append("| setting | " + " | ".join("exit %d" % (j + 1) for j in range(6)) + " |")
    o.append("|---|" + "---|" * 6)
    below = 0
    for st in settings:
        a = acc[st]
        seeds = sorted(set(a["envit"]) & set(a["vit-ee"]))
        cells = []
        for j in range(6):
            d = [a["envit"][k][j] - a["vit-ee"][k][j] for k in seeds]
            cells.append("%+.2f %s" % (mean(d), signs(d)))
        below += sum(all(a["envit"][k][j] < a["vit-ee"][k][j] for j in range(1, 6)) for k in seeds)
        o.append("| %s | %s |" % (st, " | ".join(cells)))
    o.append("\nEnViT is below ViT-EE at every one of exits 2-6 in %d of %d seed-setting pairs.\n" % (
        below, sum(len(set(acc[st]["envit"]) & set(acc[st]["vit-ee"])) for st in settings)))

    # The interaction.
    rows_i, _ = interaction_rows(acc, settings)
    o.append("**Interaction** envit − envit-sd − envit-kd + vit-ee per exit (points): mean ± std of the "
             "per-seed values, their signs, the two-sided t-test of mean 0 (= the paired test of "
             "envit − envit-sd against envit-kd − vit-ee), and the value the paper's Table 4 implies:\n")
    o += rows_i
    o.append("")

    # Fig. 3 ranges (from tables.md: the sweeps it was computed from are not in the repository).
    if tables_md and os.path.exists(tables_md):
        fr = fig3_minus_ranges(tables_md)
        o.append("**EnViT minus each baseline at 1.5x-3x fewer MACs** (Fig. 3 read-out; range over the four "
                 "speed-ups, points). Read from study/tables.md: the per-seed sweeps it was computed from "
                 "are not in the repository, so these ranges cannot be regenerated from it.\n")
        o.append("| baseline | " + " | ".join(settings) + " |")
        o.append("|---|" + "---|" * len(settings))
        for b in ["vit-ee", "sdn", "byot", "beem", "lgvit", "cosee", "envit-sd", "envit-kd"]:
            cells = []
            for st in settings:
                lo, hi = fr.get(st, {}).get(b, (None, None))
                cells.append("—" if lo is None else "%+.2f to %+.2f" % (lo, hi))
            o.append("| %s | %s |" % (b, " | ".join(cells)))
        o.append("")

    # Exit 1 at the calibrated operating points: COSEE and BEEM.
    o.append("**Test images leaving at exit 1** (of 10,000) at the calibrated operating points, per seed, "
             "with the mean test accuracy and MAC speed-up:\n")
    o.append("| setting | scheme | point | exit 1, seeds 0/1/2 | accuracy | MAC speed-up |")
    o.append("|---|---|---|---|---|---|")
    for st in settings:
        for sc in ("cosee", "beem"):
            for pt in ("at 1.5x", "at 2x", "at default"):
                rs = sorted((r for r in rows if r["setting"] == st and r["scheme"] == sc and r["row"] == pt),
                            key=lambda r: int(r["seed"]))
                if not rs:
                    continue
                e1 = "/".join(r["exit_histogram"].split("/")[0] for r in rs)
                o.append("| %s | %s | %s | %s | %.2f | %.2fx |" % (
                    st, sc, pt[3:], e1, mean([float(r["test_accuracy"]) for r in rs]),
                    mean([float(r["test_speedup_macs"]) for r in rs])))
    o.append("")

    # The MAC model, checked against every recorded speed-up, and BEEM's cap.
    full, to_exit = study_macs()
    err = 0.0
    n = 0
    for r in rows:
        if r["row"] == "exit" or r["scheme"] == "lgvit":
            continue
        h = [int(x) for x in r["exit_histogram"].split("/")]
        err = max(err, abs(speedup_of(h, full, to_exit) - float(r["test_speedup_macs"])))
        n += 1
    beem = [float(r["test_speedup_macs"]) for r in rows if r["scheme"] == "beem" and r["row"] != "exit"]
    # Loss-weight sums (the quantity --clip-mode weight-sum scales the clipping threshold by).
    p_exit = [j / 5 * 0.3 for j in range(6)]  # exit-aware p at the exits' blocks (eq. 10), p_M 0.3
    w_envit = sum(1 / (1 - p) for p in p_exit) / 6
    o.append("**Loss-weight sums** of the objectives (the gradient each scheme's clipping threshold 1.0 "
             "meets scales with them): vit-ee 6 (six summed exit losses), envit and envit-sd %.2f "
             "((1/6) sum_j 1/(1 - p_sj), p_sj = 0, 0.06, ..., 0.3), envit-kd 1.00, beem 1.\n" % w_envit)
    o.append("**MACs** of the study's model (infer/macs.hpp; linear heads): %s per image without exits, "
             "%s to leave at exits 1-6. They reproduce all %d MAC speed-ups of the non-LGViT operating "
             "points in runs.csv from their exit histograms (largest difference %.1e). Leaving at exit 1 "
             "is a %.2fx speed-up, at exit 2 %.2fx: a rule that never exits at exit 1 is capped at "
             "**%.2fx**. BEEM's calibrated points reach %.2f-%.2fx.\n" % (
                 "{:,}".format(full), ", ".join("{:,}".format(c) for c in to_exit), n, err,
                 full / to_exit[0], full / to_exit[1], full / to_exit[1], min(beem), max(beem)))
    rf, rc = study_macs(dim=96, mlp=192, depth=6, exits=(2, 4, 6))  # the README model (preset readme)
    o.append("The README model (preset `readme`: dim 96, 6 blocks, exits after blocks 2, 4, 6) costs %s MACs "
             "without exits and %s to leave at exit 2: there the cap is **%.2fx** (exit 1 alone: %.2fx).\n" % (
                 "{:,}".format(rf), "{:,}".format(rc[1]), rf / rc[1], rf / rc[0]))
    return "\n".join(o)


def replace_block(path, name, body):
    begin, end = "<!-- %s begin -->" % name, "<!-- %s end -->" % name
    with open(path) as f:
        text = f.read()
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        sys.exit("study_report: %s has no '%s' ... '%s' block" % (path, begin, end))
    text = text[:i + len(begin)] + "\n" + body.rstrip("\n") + "\n" + text[j:]
    with open(path, "w") as f:
        f.write(text)


# ---- teacher softness (--teacher-entropy) ---------------------------------------------------------
def read_safetensors_f32(path, name):
    """One float32 tensor of a safetensors file: (shape, flat list)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        t = head[name]
        assert t["dtype"] == "F32", t["dtype"]
        lo, hi = t["data_offsets"]
        f.seek(8 + n + lo)
        data = f.read(hi - lo)
    return t["shape"], list(struct.unpack("<%df" % ((hi - lo) // 4), data))


def teacher_entropy(path, tau):
    """Mean over samples of H(softmax(z / tau)) / log C for the final exit's logits z."""
    (M, N, C), v = read_safetensors_f32(path, "logits")
    base = (M - 1) * N * C
    tot = 0.0
    for i in range(N):
        z = [x / tau for x in v[base + i * C: base + (i + 1) * C]]
        m = max(z)
        e = [math.exp(x - m) for x in z]
        s = sum(e)
        tot += -sum((x / s) * math.log(x / s) for x in e if x > 0)
    return tot / N / math.log(C)


# ---- designs after the first (--design), from the files under docs/study/<design>/ ----------------
def load_design(ddir):
    """Runs copied by scripts/study.sh to ddir/<setting>-<scheme>-s<seed>/ (run.json, eval.json,
    log.jsonl): the same records as load(), with the log's epochs under "log"."""
    runs = []
    if not os.path.isdir(ddir):
        return runs
    for name in sorted(os.listdir(ddir)):
        d = os.path.join(ddir, name)
        if not os.path.exists(os.path.join(d, "run.json")) or not os.path.exists(os.path.join(d, "eval.json")):
            continue
        with open(os.path.join(d, "run.json")) as g:
            meta = json.load(g)
        with open(os.path.join(d, "eval.json")) as g:
            meta["ev"] = json.load(g)["checkpoints"][0]
        meta["log"] = []
        if os.path.exists(os.path.join(d, "log.jsonl")):
            meta["log"] = [json.loads(l) for l in open(os.path.join(d, "log.jsonl")) if l.strip()]
        meta["key"] = name
        runs.append(meta)
    return runs


def slope(y):
    """Least-squares slope of y against 0, 1, ..., len(y) - 1."""
    n = len(y)
    xm, ym = (n - 1) / 2.0, mean(y)
    return sum((i - xm) * (v - ym) for i, v in enumerate(y)) / sum((i - xm) ** 2 for i in range(n))


def regime_verdict(runs, seeds_req):
    """The regime study's preconditions, criteria and verdict, as written in docs/results.md before
    the runs (section "The regime study")."""
    acc = exit_acc_runs(runs)
    by = {}
    for r in runs:
        by.setdefault((r["setting"], r["scheme"]), {})[r["seed"]] = r
    o = []
    L, S = acc.get("long", {}), acc.get("short", {})
    need = ["vit-ee", "envit-sd", "envit-kd", "envit"]
    have = {st: sorted(set.intersection(*[set(a.get(s, {})) for s in need])) for st, a in (("long", L), ("short", S))}
    o.append("Seeds with all four schemes: LONG %s, SHORT %s (seeds requested: %s)." % (
        " ".join(map(str, have["long"])) or "none", " ".join(map(str, have["short"])) or "none", " ".join(seeds_req)))
    if len(have["long"]) < len(seeds_req) or len(have["short"]) < len(seeds_req):
        o.append("\n**Verdict: not yet determined** — the design is incomplete (criteria need every seed).")
        return o
    seeds = have["long"]
    # Preconditions on ViT-EE in LONG.
    vit = by[("long", "vit-ee")]
    tr = [100 * vit[k]["log"][-1]["train_acc"][-1] for k in seeds]
    val = [[100 * e["val_acc"][-1] for e in vit[k]["log"]] for k in seeds]
    n_ep = min(len(v) for v in val)
    last10 = [mean([v[i] for v in val]) for i in range(max(0, n_ep - 10), n_ep)]
    sl = slope(last10) if len(last10) > 1 else 0.0
    gap = mean([L["vit-ee"][k][-1] - L["vit-ee"][k][0] for k in seeds])
    p1 = mean(tr) >= 97.0 and sl <= 0.05
    p2 = gap >= 6.0
    o.append("\n**Preconditions** (ViT-EE, LONG): final-exit training accuracy in the last epoch %.2f%% "
             "(mean; per seed %s), slope of the mean final-exit validation accuracy over the last 10 epochs "
             "%+.3f points per epoch: saturation **%s**; test gap exit 6 − exit 1 %.2f points: **%s**." % (
                 mean(tr), " / ".join("%.2f" % x for x in tr), sl, "holds" if p1 else "fails", gap,
                 "holds" if p2 else "fails"))
    d = {st: {k: [acc[st]["envit"][k][j] - acc[st]["vit-ee"][k][j] for j in range(6)] for k in seeds}
         for st in ("long", "short")}
    c1 = []
    for j in (0, 1):
        v = [d["long"][k][j] for k in seeds]
        m, _, p = paired_t([acc["long"]["envit"][k][j] for k in seeds], [acc["long"]["vit-ee"][k][j] for k in seeds])
        ok = m >= 1.0 and sum(x > 0 for x in v) >= 4 and p is not None and p < 0.05
        c1.append(ok)
        o.append("- exit %d: EnViT − ViT-EE %+.2f ± %.2f, signs %s, p %s: %s" % (
            j + 1, m, std(v), signs(v), fmt_p(p), "met" if ok else "not met"))
    c2 = []
    for j in (3, 4, 5):
        m = mean([d["long"][k][j] for k in seeds])
        c2.append(m >= -0.3)
        o.append("- exit %d: EnViT − ViT-EE %+.2f (no worse than −0.3: %s)" % (j + 1, m, "met" if m >= -0.3 else "not met"))
    inter = {k: mean(interaction({s: acc["long"][s][k] for s in need})) for k in seeds}
    c3 = sum(v > 0 for v in inter.values()) >= 4
    o.append("- interaction (mean over exits) per seed: %s, positive in %d of %d: %s" % (
        " / ".join("%+.2f" % inter[k] for k in seeds), sum(v > 0 for v in inter.values()), len(seeds),
        "met" if c3 else "not met"))
    dl, ds = mean([mean(d["long"][k]) for k in seeds]), mean([mean(d["short"][k]) for k in seeds])
    c4 = dl > ds
    o.append("- EnViT − ViT-EE over all exits: LONG %+.2f, SHORT %+.2f: %s" % (dl, ds, "met" if c4 else "not met"))
    low = sum(mean(d["long"][k][:2]) <= 0 for k in seeds)
    o.append("- seeds with EnViT at or below ViT-EE at exits 1-2 (mean of the two) in LONG: %d of %d" % (low, len(seeds)))
    if not (p1 and p2):
        v = "inconclusive: a precondition fails (%s), so the regime is not the paper's" % (
            "saturation" if not p1 else "the exit-1 gap")
    elif all(c1) and all(c2) and c3 and c4:
        v = "confirms the paper in this regime"
    elif low >= 4:
        v = "refutes the paper in this regime"
    else:
        v = "inconclusive: neither the confirming nor the refuting criteria are met"
    o.append("\n**Verdict: %s.**" % v)
    return o


def clipping_rows(absolute, weightsum, settings):
    """The clipping confound measured: each scheme's mean difference from vit-ee per exit under
    absolute clipping (the first study's runs.csv) and under weight-sum clipping (the rerun)."""
    o = ["Scheme minus vit-ee per exit (points, mean over seeds), absolute clipping (the first study) → "
         "weight-sum clipping (the rerun):\n",
         "| setting | scheme | " + " | ".join("exit %d" % (j + 1) for j in range(6)) + " |",
         "|---|---|" + "---|" * 6]
    for st in settings:
        a, w = absolute.get(st, {}), weightsum.get(st, {})
        for sc in sorted(set(a) & set(w)):
            if sc == "vit-ee" or "vit-ee" not in a or "vit-ee" not in w:
                continue
            cells = []
            for j in range(6):
                da = mean([a[sc][k][j] - a["vit-ee"][k][j] for k in a[sc] if k in a["vit-ee"]])
                dw = [w[sc][k][j] - w["vit-ee"][k][j] for k in w[sc] if k in w["vit-ee"]]
                cells.append("%+.2f → %s" % (da, "%+.2f" % mean(dw) if dw else "—"))
            o.append("| %s | %s | %s |" % (st, sc, " | ".join(cells)))
    return o


def design_report(design, docs, schemes, seeds, settings, results):
    ddir = os.path.join(docs, design)
    runs = [r for r in load_design(ddir) if r["scheme"] in schemes and r["setting"] in settings]
    runs.sort(key=lambda r: (settings.index(r["setting"]), schemes.index(r["scheme"]), r["seed"]))
    o = ["Generated by `python3 scripts/study_report.py --design %s --docs docs/study --results docs/results.md` "
         "from the runs under docs/study/%s/ (each run's run.json, eval.json, log.jsonl, sweep.csv): %d." % (
             design, design, len(runs)), ""]
    if not runs:
        o.append("No run of this design has finished yet.")
    else:
        os.makedirs(ddir, exist_ok=True)
        write_csv(os.path.join(ddir, "runs.csv"), runs)
        body = tables(runs, schemes, settings, [])
        with open(os.path.join(ddir, "tables.md"), "w") as f:
            f.write("# Study tables, design %s\n\n%s\n" % (design, body))
        for st in settings:
            svg_fig3(os.path.join(ddir, "fig3_%s.svg" % st), st, runs, schemes)
            svg_hist(os.path.join(ddir, "hist2x_%s.svg" % st), st, runs, schemes)
        machines = {}
        for r in runs:
            m = r.get("machine", {})
            machines[(m.get("cpu", "?"), m.get("kernels", "?"))] = machines.get((m.get("cpu", "?"), m.get("kernels", "?")), 0) + 1
        o.append("Machines: " + "; ".join("%s, %s (%d runs)" % (c, k, n) for (c, k), n in sorted(machines.items())) + ".")
        o.append("Training CPU time: %.2f core-hours over %d runs (run.json)." % (
            sum(r["train_seconds"] * r["threads"] for r in runs) / 3600, len(runs)))
        o.append("")
        te = {}
        for r in runs:
            if r.get("teacher_entropy_tau4") is not None:
                te.setdefault((r["setting"], r["scheme"]), []).append(r["teacher_entropy_tau4"])
        if te:
            o.append("Mean normalised entropy of the final exit's softmax(z / 4) on the test set (how soft the "
                     "soft labels are; 0 one-hot, 1 uniform), mean ± std over seeds: " + "; ".join(
                         "%s %s %s" % (st, sc, pm(v, 3)) for (st, sc), v in te.items()) + ".")
            o.append("")
        rows_i, _ = interaction_rows(exit_acc_runs(runs), settings)
        o.append("Interaction envit − envit-sd − envit-kd + vit-ee per exit (as for the first study):\n")
        o += rows_i
        o.append("")
        if design == "regime":
            o += regime_verdict(runs, seeds)
            acc = exit_acc_runs(runs)
            one, multi = acc.get("long-x12", {}).get("vit-ee", {}), acc.get("long", {}).get("vit-ee", {})
            common = sorted(set(one) & set(multi))
            if common:
                m, _, p = paired_t([one[k][-1] for k in common], [multi[k][-1] for k in common])
                o.append("- single-exit model minus ViT-EE's final exit (LONG, %d seeds): %+.2f points (p %s)" % (
                    len(common), m, fmt_p(p)))
            o.append("")
        first = os.path.join(docs, "runs.csv")
        if design == "rerun-weightsum" and os.path.exists(first):
            o += clipping_rows(exit_acc_csv(first), exit_acc_runs(runs), settings)
            o.append("")
        o.append(body.replace("### ", "#### "))
    if results:
        replace_block(results, "%s results" % design, "\n".join(o))
    print("study_report: design %s, %d runs -> %s" % (design, len(runs), ddir))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out")
    ap.add_argument("--docs")
    ap.add_argument("--schemes")
    ap.add_argument("--seeds")
    ap.add_argument("--settings")
    ap.add_argument("--results", default="", help="a Markdown file whose block between the markers "
                    "<!-- study tables begin --> and <!-- study tables end --> is replaced by tables.md")
    ap.add_argument("--analyse", help="a runs.csv of the first study: write its checks (--results: the "
                    "<!-- study analysis --> block)")
    ap.add_argument("--tables", default="", help="with --analyse: the tables.md of the same study")
    ap.add_argument("--design", help="report a design of scripts/study.sh from DOCS/DESIGN/")
    ap.add_argument("--teacher-entropy", help="an envit eval logits_0.safetensors file")
    ap.add_argument("--tau", type=float, default=4.0)
    a = ap.parse_args()
    if a.teacher_entropy:
        print("%.6f" % teacher_entropy(a.teacher_entropy, a.tau))
        return
    if a.analyse:
        body = analyse(a.analyse, a.tables or os.path.join(os.path.dirname(a.analyse), "tables.md"))
        if a.results:
            replace_block(a.results, "study analysis", body)
        else:
            print(body)
        return
    if a.design:
        defaults = {"regime": ("vit-ee envit-sd envit-kd envit envit-p0.1", "0 1 2 3 4", "long short long-x12"),
                    "rerun-weightsum": ("vit-ee sdn byot lgvit beem cosee envit-sd envit-kd envit", "0 1 2",
                                        "scratch finetune"),
                    "paper": ("vit-ee envit-sd envit-kd envit", "0", "paper")}[a.design]
        design_report(a.design, a.docs or "docs/study", (a.schemes or defaults[0]).split(),
                      (a.seeds or defaults[1]).split(), (a.settings or defaults[2]).split(), a.results)
        return
    for req in ("out", "docs", "schemes", "seeds", "settings"):
        if getattr(a, req) is None:
            ap.error("--%s is required" % req)
    schemes, settings = a.schemes.split(), a.settings.split()
    runs = [r for r in load(a.out) if r["scheme"] in schemes and r["setting"] in settings]
    runs.sort(key=lambda r: (settings.index(r["setting"]), schemes.index(r["scheme"]), r["seed"]))
    missing = []
    mp = os.path.join(a.out, "missing.txt")
    if os.path.exists(mp):
        missing = [l.strip() for l in open(mp) if l.strip()]
    os.makedirs(a.docs, exist_ok=True)
    write_csv(os.path.join(a.docs, "runs.csv"), runs)
    head = ["# Study tables", "",
            "Generated by `scripts/study_report.py` from the runs of `scripts/study.sh`; seeds requested: %s; "
            "%d runs finished." % (a.seeds, len(runs))]
    if missing:
        head.append("Schemes the program does not know (missing): %s." % ", ".join(missing))
    expect = {(st, s) for st in settings for s in schemes if s not in missing}
    got = {}
    for r in runs:
        got[(r["setting"], r["scheme"])] = got.get((r["setting"], r["scheme"]), 0) + 1
    nseeds = len(a.seeds.split())
    short = ["%s/%s (%d of %d seeds)" % (st, s, got.get((st, s), 0), nseeds)
             for st in settings for s in schemes if (st, s) in expect and got.get((st, s), 0) < nseeds]
    if short:
        head.append("Incomplete: " + ", ".join(short) + ".")
    body = tables(runs, schemes, settings, missing)
    with open(os.path.join(a.docs, "tables.md"), "w") as f:
        f.write("\n".join(head) + "\n\n" + body + "\n")
    if a.results:
        begin, end = "<!-- study tables begin -->", "<!-- study tables end -->"
        with open(a.results) as f:
            text = f.read()
        i, j = text.find(begin), text.find(end)
        if i < 0 or j < i:
            sys.exit("study_report: %s has no '%s' ... '%s' block" % (a.results, begin, end))
        text = text[:i + len(begin)] + "\n" + "\n".join(head[2:]) + "\n\n" + body.replace("### ", "#### ") + "\n" + text[j:]
        with open(a.results, "w") as f:
            f.write(text)
    for st in settings:
        svg_fig3(os.path.join(a.docs, "fig3_%s.svg" % st), st, runs, schemes)
        svg_hist(os.path.join(a.docs, "hist2x_%s.svg" % st), st, runs, schemes)
    print("study_report: %d runs -> %s/{runs.csv, tables.md, fig3_*.svg, hist2x_*.svg}" % (len(runs), a.docs))


if __name__ == "__main__":
    main()
