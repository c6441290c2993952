// Stand-ins for the Python blocks that write files, for machines without PyTorch outside CI
// (under CI the Python runs). Each writes the same files as its block, with savepoint's own torch
// writer, so the TypeScript that follows has something to read. Named by the block's `fallback=`.
import { join } from "node:path";
import { Fabric, HostTensor } from "@savepoint/core";

/** Deterministic numbers in [-1, 1): enough to stand in for torch.randn and initial weights. */
function numbers(count, seed) {
  let s = seed >>> 0;
  return Array.from({ length: count }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** y = x · wᵀ + b for row-major x [n, in] and w [out, in]. */
function linear(x, n, w, b, inputs, outputs) {
  const y = new Float32Array(n * outputs);
  for (let r = 0; r < n; r++) for (let o = 0; o < outputs; o++) {
    let sum = b[o];
    for (let i = 0; i < inputs; i++) sum += x[r * inputs + i] * w[o * inputs + i];
    y[r * outputs + o] = sum;
  }
  return y;
}

/** pytorch-weights.md: torch_model.pt (a Linear 4→16, ReLU, Linear 16→3 state dict) and expected.pt. */
export async function torchLinearModel(dir) {
  const f32 = (values) => Float32Array.from(values);
  const w0 = f32(numbers(64, 1).map((v) => v / 2));
  const b0 = f32(numbers(16, 2).map((v) => v / 2));
  const w2 = f32(numbers(48, 3).map((v) => v / 4));
  const b2 = f32(numbers(3, 4).map((v) => v / 4));
  const x = f32(numbers(20, 5));
  const hidden = linear(x, 5, w0, b0, 4, 16).map((v) => Math.max(0, v));
  const y = linear(hidden, 5, w2, b2, 16, 3);
  const fabric = new Fabric();
  await fabric.save(join(dir, "torch_model.pt"), {
    "0.weight": HostTensor.fromValues("float32", [16, 4], w0),
    "0.bias": HostTensor.fromValues("float32", [16], b0),
    "2.weight": HostTensor.fromValues("float32", [3, 16], w2),
    "2.bias": HostTensor.fromValues("float32", [3], b2),
  });
  await fabric.save(join(dir, "expected.pt"), { x: HostTensor.fromValues("float32", [5, 4], x), y: HostTensor.fromValues("float32", [5, 3], y) });
}
