// Child of peak-rss.test.ts: builds a tfjs-layers model of the given size, saves it to disk and
// loads it back in place, and prints its peak resident memory (VmHWM) around each step.
import { readFileSync, writeFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import { Fabric } from "../../../src/index.js";

const [path = "", gibText = "1"] = process.argv.slice(2);
const gib = Number(gibText);

function mem(): { rss: number; hwm: number } {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)![1]) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}
/** Peak RSS from here on (Linux: writing 5 to clear_refs resets VmHWM to the current RSS). */
function resetPeak(): void {
  writeFileSync("/proc/self/clear_refs", "5");
}
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

await tf.setBackend("cpu");
gc();
const base = mem().rss;

// 16 MiB kernels ([2048, 2048] float32), filled so every page is resident.
const layers = Math.round(gib * 64);
const model = tfl.sequential({ layers: Array.from({ length: layers }, (_, i) => tfl.layers.dense({ units: 2048, useBias: false, inputShape: i === 0 ? [2048] : undefined, kernelInitializer: "zeros" })) });
let sample = 0;
for (const [i, w] of model.weights.entries()) {
  const values = new Float32Array(w.read().size);
  for (let j = 0; j < values.length; j++) values[j] = ((i * 7919 + j) % 1000) / 1000;
  sample += values[12345]!;
  const t = tf.tensor(values, [...w.shape] as number[]);
  (w.read() as tf.Variable).assign(t);
  t.dispose();
}
const stateBytes = model.weights.reduce((n, w) => n + w.read().size * 4, 0);
gc();
const built = mem().rss;

resetPeak();
await new Fabric().save(path, { model, step: 1 });
const savePeak = mem().hwm;

// Wipe the weights in place (no new memory), then load them back into the same variables.
for (const w of model.weights) (w.read().dataSync() as Float32Array).fill(0);
gc();
resetPeak();
await new Fabric().load(path, { model, step: 0 });
const loadPeak = mem().hwm;
const restored = model.weights.reduce((n, w) => n + (w.read().dataSync() as Float32Array)[12345]!, 0);

console.log(`RESULT ${JSON.stringify({ stateBytes, base, built, savePeak, loadPeak, restored: Math.abs(restored - sample) < 1e-3 })}`);
