// The demo page: trains on WebGPU, checkpoints to OPFS every few steps, resumes after a reload,
// offers the checkpoint as a download. `window.demo` is what the Playwright test drives.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-webgpu";
import { Fabric, type CheckpointIO } from "@savepoint/core";
import { browserCheckpointIO, webgpuBackend } from "../../src/index.js";
import { runIOChecks, type IOCheckResult } from "./io-checks.js";
import { buildModel, buildOptimizer, trainStep, weightBits } from "./model.js";

const CHECKPOINT = "demo/latest.ckpt";
const params = new URLSearchParams(location.search);
const target = Number(params.get("steps") ?? 200);
const every = Number(params.get("every") ?? 10);
/** Pause when training reaches this step (tests reload the page there, like a closed tab). */
const pauseAt = Number(params.get("pauseAt") ?? -1);

const $ = (id: string) => document.getElementById(id)!;
const log = (line: string) => ($("log").textContent += `${line}\n`);
const show = (id: string, text: string | number) => ($(id).textContent = String(text));

let paused = false;
let io: CheckpointIO;
let fabric: Fabric;
// Built once WebGPU is up: tfjs refuses to make tensors before its backend is initialised.
let state: { model: ReturnType<typeof buildModel>; optimizer: ReturnType<typeof buildOptimizer>; step: number };
let resumedFrom: number | null = null;
let resumedBits: number[][] | null = null;

async function start(): Promise<void> {
  if (!(await tf.setBackend("webgpu"))) throw new Error("WebGPU is not available in this browser (tf.setBackend('webgpu') returned false).");
  const info = (tf.backend() as unknown as { adapterInfo?: { vendor?: string; architecture?: string } }).adapterInfo;
  show("backend", `webgpu${info?.architecture ? ` (${info.vendor} ${info.architecture})` : ""}`);
  io = await browserCheckpointIO();
  show("storage", io.name);
  fabric = new Fabric({ backend: webgpuBackend(), io });
  state = { model: buildModel(), optimizer: buildOptimizer(), step: 0 };
  if (await io.stat(CHECKPOINT)) {
    await fabric.load(CHECKPOINT, state);
    resumedFrom = state.step;
    resumedBits = await weightBits(state.model);
    show("resumed", `step ${state.step}`);
    log(`resumed from ${CHECKPOINT} at step ${state.step}`);
  } else {
    show("resumed", "nothing (fresh start)");
  }
  show("step", state.step);
}

async function train(): Promise<void> {
  show("status", "training");
  while (state.step < target) {
    if (paused) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const loss = await trainStep(state.model, state.optimizer, state.step);
    state.step++;
    show("step", state.step);
    show("loss", loss.toFixed(5));
    if (state.step % every === 0) {
      const t0 = performance.now();
      await fabric.save(CHECKPOINT, state);
      show("saved", `step ${state.step} (${(performance.now() - t0).toFixed(0)} ms)`);
      log(`step ${state.step}: loss ${loss.toFixed(5)}, checkpoint saved`);
    }
    if (state.step === pauseAt) setPaused(true);
  }
  show("status", `done (step ${state.step})`);
}

/** The committed checkpoint as a Blob, read in chunks (never more than one extra chunk at once). */
async function checkpointBlob(): Promise<Blob> {
  const src = await io.openRead(CHECKPOINT);
  try {
    const parts: Uint8Array[] = [];
    for (let off = 0; off < src.size; off += 1 << 20) parts.push(await src.read(off, Math.min(1 << 20, src.size - off)));
    return new Blob(parts as BlobPart[], { type: "application/octet-stream" });
  } finally {
    await src.close();
  }
}

function setPaused(value: boolean): void {
  paused = value;
  show("pause", paused ? "Resume" : "Pause");
  show("status", paused ? `paused at step ${state.step}` : "training");
}
$("pause").addEventListener("click", () => setPaused(!paused));
$("download").addEventListener("click", async () => {
  const url = URL.createObjectURL(await checkpointBlob());
  const a = Object.assign(document.createElement("a"), { href: url, download: "latest.ckpt" });
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
});
$("reset").addEventListener("click", async () => {
  await io.remove?.(CHECKPOINT);
  log("checkpoint deleted; reload to start fresh");
});

/** The test's handle on the page. */
const demo = {
  ready: start()
    .then(train)
    .then(() => "done")
    .catch((err: unknown) => {
      show("status", `failed: ${(err as Error).message}`);
      $("status").className = "error";
      return `failed: ${(err as Error).stack ?? err}`;
    }),
  resumedFrom: () => resumedFrom,
  resumedBits: () => resumedBits,
  step: () => state?.step ?? 0,
  paused: () => paused,
  weightBits: () => weightBits(state.model),
  /** Bits after training a fresh model from step 0 to `steps` without checkpoints. */
  async uninterruptedBits(steps: number): Promise<number[][]> {
    const model = buildModel();
    const optimizer = buildOptimizer();
    for (let s = 0; s < steps; s++) await trainStep(model, optimizer, s);
    const bits = await weightBits(model);
    model.dispose();
    optimizer.dispose();
    return bits;
  },
  /** Stores checkpoint bytes (base64) through the IO and loads them into a fresh model. */
  async importCheckpoint(base64: string): Promise<{ step: unknown; bits: number[][] }> {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const w = await io.openWrite("demo/imported.ckpt");
    for (let off = 0; off < bytes.byteLength; off += 65536) await w.write(bytes.subarray(off, off + 65536));
    await w.commit();
    const target = { model: buildModel(), optimizer: buildOptimizer(), step: -1 };
    await fabric.load("demo/imported.ckpt", target);
    return { step: target.step, bits: await weightBits(target.model) };
  },
  /** The CheckpointIO conformance checks, here or in a dedicated worker (sync access handles). */
  async ioChecks(kind: "opfs" | "indexeddb" | "opfs-worker"): Promise<IOCheckResult[]> {
    if (kind !== "opfs-worker") return runIOChecks(kind);
    const worker = new Worker(new URL("./io-worker.ts", import.meta.url), { type: "module" });
    try {
      return await new Promise<IOCheckResult[]>((resolve, reject) => {
        worker.onmessage = (e) => resolve(e.data as IOCheckResult[]);
        worker.onerror = (e) => reject(new Error(e.message));
        worker.postMessage("run");
      });
    } finally {
      worker.terminate();
    }
  },
};
(window as unknown as { demo: typeof demo }).demo = demo;
