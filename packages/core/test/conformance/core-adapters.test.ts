import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll } from "vitest";
import { cpuBackend, MemoryIO, NodeFileIO, SingleDeviceStrategy, type DType } from "../../src/index.js";
import { runBackendConformance, runIOConformance, runStrategyConformance } from "../../src/testing.js";
import { tf, useCpu } from "../helpers/tfjs.js";

beforeAll(useCpu);

runIOConformance({
  name: "NodeFileIO",
  async setup() {
    const root = mkdtempSync(join(tmpdir(), "savepoint-io-"));
    return { io: new NodeFileIO(), root, cleanup: async () => rmSync(root, { recursive: true, force: true }) };
  },
  async readRaw(path) {
    try {
      return new Uint8Array(readFileSync(path));
    } catch {
      return null;
    }
  },
});

let memory: MemoryIO;
runIOConformance({
  name: "MemoryIO",
  async setup() {
    memory = new MemoryIO();
    return { io: memory, root: "mem" };
  },
  async readRaw(path) {
    return memory.files.get(path) ?? null;
  },
});

const tfDtype = (d: DType) => d as "float32" | "int32" | "bool";
runBackendConformance({
  name: "cpu (tfjs-backend-cpu)",
  backend: cpuBackend,
  dtypes: ["float32", "int32", "bool"],
  tensor: (d, shape, values) => tf.tensor(values, shape, tfDtype(d)),
  variable: (d, shape, values) => tf.variable(tf.tensor(values, shape, tfDtype(d))),
  values: async (t) => Array.from(await (t as tf.Tensor).data(), Number),
});

runStrategyConformance({ name: "SingleDeviceStrategy", strategy: () => new SingleDeviceStrategy() });
