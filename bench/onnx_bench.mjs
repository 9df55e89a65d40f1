// bench/onnx_bench.mjs — ONNX Runtime (npm onnxruntime-node, CPU, FP32) on envit's exported graphs:
// the all-exits graph at batch 1 and batch B, and the early-exit graph (batch 1) at a threshold
// against the all-exits graph at batch 1, timed alternately (paired ratios, median), as `envit eval`
// times its own early exit against its full model.
//   node onnx_bench.mjs NODE_MODULES ALL.onnx EARLY.onnx IMAGES.safetensors THRESHOLD THREADS BATCH N REPEATS
// IMAGES.safetensors: `images` F32 (n, C, H, W), normalised (onnx_reference writes it).
// Prints one JSON line.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const [mods, allPath, earlyPath, imgPath, thrText, threadsText, batchText, nText, repText] = process.argv.slice(2);
const ort = createRequire(path.join(path.resolve(mods), "noop.js"))("onnxruntime-node");
const threads = Number(threadsText), B = Number(batchText), repeats = Number(repText), thr = Number(thrText);

const buf = readFileSync(imgPath);
const hlen = Number(buf.readBigUInt64LE(0));
const header = JSON.parse(buf.subarray(8, 8 + hlen).toString("utf8"));
const t = header.images, [, CH, S] = t.shape, img = CH * S * S;
const bytes = buf.subarray(8 + hlen + t.data_offsets[0], 8 + hlen + t.data_offsets[1]);
const images = new Float32Array(new Uint8Array(bytes).buffer);
const N = Math.min(Number(nText), t.shape[0]);

const opts = { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" };
const all = await ort.InferenceSession.create(allPath, opts);
const early = await ort.InferenceSession.create(earlyPath, opts);
const one = (i) => new ort.Tensor("float32", images.subarray(i * img, (i + 1) * img), [1, CH, S, S]);
const threshold = new ort.Tensor("float32", Float32Array.of(thr), []);
const now = () => Number(process.hrtime.bigint()) / 1e9;

async function allBatched() {
  for (let s = 0; s < N; s += B) {
    const b = Math.min(B, N - s);
    await all.run({ image: new ort.Tensor("float32", images.subarray(s * img, (s + b) * img), [b, CH, S, S]) });
  }
}
async function allStream() { for (let i = 0; i < N; ++i) await all.run({ image: one(i) }); }
const hist = [];
async function earlyStream() {
  hist.length = 0;
  for (let i = 0; i < N; ++i) {
    const r = await early.run({ image: one(i), threshold });
    const e = Number(r.exit.data[0]);
    hist[e] = (hist[e] || 0) + 1;
  }
}
async function time(f) { const t0 = now(); await f(); return now() - t0; }

await allStream(); await allBatched(); await earlyStream();  // warm-up
let best = { batched: Infinity, stream: Infinity };
const ratios = [];
for (let r = 0; r < repeats; ++r) {
  best.batched = Math.min(best.batched, await time(allBatched));
  const full = await time(allStream);
  const ee = await time(earlyStream);
  best.stream = Math.min(best.stream, full);
  ratios.push(full / ee);
}
ratios.sort((a, b) => a - b);
const median = ratios.length % 2 ? ratios[(ratios.length - 1) / 2] : (ratios[ratios.length / 2 - 1] + ratios[ratios.length / 2]) / 2;
console.log(JSON.stringify({
  runtime: `onnxruntime-node ${ort.env.versions?.common ?? ""}`.trim(), threads, images: N, batch: B,
  all_exits_batch_img_per_s: N / best.batched, all_exits_batch1_ms_per_img: 1e3 * best.stream / N,
  threshold: thr, early_exit_speedup_batch1: median, early_exit_histogram: Array.from(hist, (h) => h || 0),
}));
