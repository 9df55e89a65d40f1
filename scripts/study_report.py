#!/usr/bin/env python3
"""scripts/study_report.py — summarises the runs of scripts/study.sh (standard library only).

Reads OUT/manifest.tsv and each listed run's run.json and eval.json; writes into DOCS:
  runs.csv      one row per run and exit, and per run and calibrated operating point
  tables.md     Table 4 analogue (per-exit test accuracy, mean +- std over seeds, paired t-test of
                each scheme against vit-ee) and Table 2 analogue (test accuracy at the operating
                points calibrated on the validation split), per setting
  fig3_<setting>.svg   test accuracy against MAC speed-up, mean over seeds with a +-1 std band
  hist2x_<setting>.svg exits taken at the 2x operating point, mean fraction of test samples per exit
"""
import argparse
import csv
import json
import math
import os
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--schemes", required=True)
    ap.add_argument("--seeds", required=True)
    ap.add_argument("--settings", required=True)
    ap.add_argument("--results", default="", help="a Markdown file whose block between the markers "
                    "<!-- study tables begin --> and <!-- study tables end --> is replaced by tables.md")
    a = ap.parse_args()
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
