// tests/onnx/onnx_parity.mjs — the exported graphs in ONNX Runtime (npm onnxruntime-node, CPU)
// against envit's own answers written by onnx_reference:
//   all exits:  every exit's logits within 1e-4 as max |a-b|/(1+|b|) of envit's evaluator, at a
//               batch of 100 (dynamic batch) and at batch 1;
//   early exit: for every threshold of the sweep and every image, the prediction and exit index
//               identical to envit's real early exit, except for samples whose score at an exit
//               they reached lies within 1e-5 of the threshold (counted and reported); the returned
//               logits within 1e-4 of that exit's. The sweep must make at least two exits used.
//   node onnx_parity.mjs NODE_MODULES ALL.onnx EARLY.onnx REFERENCE.safetensors
// Exits 1 with the first failing sample's values on failure.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const [nodeModules, allPath, earlyPath, refPath] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nodeModules), "noop.js"));
const ort = require("onnxruntime-node");

// safetensors: u64 header length, JSON header, then the tensors' bytes (offsets from the data start).
function readSafetensors(file) {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const base = 8 + n, out = {};
  const types = { F32: Float32Array, F64: Float64Array, I32: Int32Array };
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [b, e] = t.data_offsets;
    const bytes = buf.subarray(base + b, base + e);
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    out[name] = { shape: t.shape, data: new types[t.dtype](copy.buffer) };
  }
  out.meta = header.__metadata__ || {};
  return out;
}

const ref = readSafetensors(refPath);
const [M, n, C] = ref.logits.shape;
const [, CH, S] = ref.images.shape;
const img = CH * S * S;
const tol = 1e-4, near = 1e-5;
const rel = (a, b) => Math.abs(a - b) / (1 + Math.abs(b));
let failed = false;
const fail = (msg) => { console.error("FAIL " + msg); failed = true; };

const opts = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: "all" };
const all = await ort.InferenceSession.create(allPath, opts);
const early = await ort.InferenceSession.create(earlyPath, opts);

// 1. All exits: batches of 100, then images 0..2 at batch 1.
let worst = { r: 0 };
async function runAll(start, count) {
  const x = new ort.Tensor("float32", ref.images.data.slice(start * img, (start + count) * img), [count, CH, S, S]);
  const out = await all.run({ image: x });
  for (let j = 0; j < M; ++j) {
    const z = out[`logits_${j}`].data;
    for (let b = 0; b < count; ++b)
      for (let c = 0; c < C; ++c) {
        const want = ref.logits.data[(j * n + start + b) * C + c], got = z[b * C + c];
        const r = rel(got, want);
        if (!(r <= worst.r)) worst = { r, j, i: start + b, c, got, want };
      }
  }
}
for (let s = 0; s < n; s += 100) await runAll(s, Math.min(100, n - s));
for (let s = 0; s < 3; ++s) await runAll(s, 1);
console.log(`all exits: ${M} exits x ${n} images, max |a-b|/(1+|b|) = ${worst.r.toExponential(3)}` +
            (worst.r > 0 ? ` (exit ${worst.j}, image ${worst.i}, class ${worst.c}: onnx ${worst.got}, envit ${worst.want})` : ""));
if (!(worst.r <= tol)) fail(`all-exits logits differ by ${worst.r} > ${tol}`);

// 2. Early exit over the threshold sweep.
const K = ref.thresholds.shape[0];
let mixed = false;
for (let k = 0; k < K; ++k) {
  const t = ref.thresholds.data[k];
  const hist = new Array(M).fill(0);
  let nearCount = 0, compared = 0, mismatches = 0, worstLogit = 0, firstBad = "";
  for (let i = 0; i < n; ++i) {
    const x = new ort.Tensor("float32", ref.images.data.slice(i * img, (i + 1) * img), [1, CH, S, S]);
    const out = await early.run({ image: x, threshold: new ort.Tensor("float32", Float32Array.of(t), []) });
    const gotExit = Number(out.exit.data[0]), gotPred = Number(out.prediction.data[0]);
    const wantExit = ref.exit.data[k * n + i], wantPred = ref.pred.data[k * n + i];
    hist[gotExit] += 1;
    let isNear = false;
    for (let j = 0; j < Math.min(Math.max(gotExit, wantExit) + 1, M - 1); ++j)
      if (Math.abs(ref.scores.data[j * n + i] - t) <= near) isNear = true;
    if (isNear) { ++nearCount; continue; }
    ++compared;
    if (gotExit !== wantExit || gotPred !== wantPred) {
      ++mismatches;
      if (!firstBad) firstBad = `image ${i}: onnx exit ${gotExit} pred ${gotPred}, envit exit ${wantExit} pred ${wantPred}`;
      continue;
    }
    for (let c = 0; c < C; ++c)
      worstLogit = Math.max(worstLogit, rel(out.logits.data[c], ref.logits.data[(gotExit * n + i) * C + c]));
  }
  if (hist.filter((h) => h > 0).length >= 2) mixed = true;
  console.log(`early exit (${ref.meta.rule}) threshold ${t}: ${compared} compared, ${mismatches} differ, ` +
              `${nearCount} within ${near} of the threshold (not compared); exits ${hist.join("/")}; ` +
              `logits max rel ${worstLogit.toExponential(3)}`);
  if (mismatches) fail(`threshold ${t}: ${mismatches} samples differ, first ${firstBad}`);
  if (!(worstLogit <= tol)) fail(`threshold ${t}: early-exit logits differ by ${worstLogit} > ${tol}`);
}
if (!mixed) fail("no threshold of the sweep used two different exits: the test would not exercise the If nodes");
process.exit(failed ? 1 : 0);
