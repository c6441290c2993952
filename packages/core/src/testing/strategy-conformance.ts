import { describe, expect, it } from "vitest";
import { CheckpointNotFoundError, InvalidArgumentError, StrictLoadError } from "../errors.js";
import { Fabric } from "../fabric.js";
import { MemoryIO } from "../io/memory-io.js";
import type { Strategy } from "../strategies/strategy.js";
import { HostTensor, isStoredTensor } from "../tensor/stored-tensor.js";
import { TENSOR_SOURCE, type TensorSource } from "../tensor/tensor-source.js";
import { decodeCheckpointBytes } from "./back-door.js";

/** What {@link runStrategyConformance} needs from a strategy's test. */
export interface StrategyConformanceOptions {
  name: string;
  /** A fresh strategy (single process). */
  strategy(): Strategy;
}

/** A stateful object with tensors, standing in for a model without any tensor library. */
export class TinyModule {
  weight: HostTensor;
  bias: HostTensor;
  constructor(seed: number) {
    this.weight = HostTensor.fromValues("float32", [2, 3], [1, 2, 3, 4, 5, 6].map((x) => x * seed));
    this.bias = HostTensor.fromValues("float32", [3], [seed, -seed, 0.5]);
  }
  stateDict(): Record<string, unknown> {
    return { weight: this.weight, bias: this.bias };
  }
  async loadStateDict(sd: Record<string, unknown>, options?: { strict: boolean }): Promise<void> {
    const strict = options?.strict ?? true;
    for (const k of ["weight", "bias"] as const) {
      const v = sd[k];
      if (v === undefined) {
        if (strict) throw new StrictLoadError(`missing ${k}`);
        continue;
      }
      if (!isStoredTensor(v)) throw new Error(`${k} is not a tensor`);
      this[k] = new HostTensor(v.dtype, v.shape, await v.bytes());
    }
  }
}

function failingTensor(afterBytes: number): TensorSource {
  return {
    [TENSOR_SOURCE]: true,
    dtype: "float32",
    shape: [1 << 16],
    byteLength: 1 << 18,
    async *chunks() {
      yield new Uint8Array(afterBytes);
      throw new Error("device lost while streaming");
    },
  } as TensorSource;
}

/**
 * The contract every strategy meets in one process, checked through the bytes it writes: who
 * writes (one file at the path), layout (a torch file the format reads alone), atomicity (a
 * failed save leaves the previous checkpoint), strict and filter semantics, the remainder, and
 * the errors. Multi-rank strategies add their own multi-process checks on top.
 */
export function runStrategyConformance(options: StrategyConformanceOptions): void {
  describe(`Strategy conformance: ${options.name}`, () => {
    const make = () => {
      const io = new MemoryIO();
      return { io, fabric: new Fabric({ strategy: options.strategy(), io }) };
    };

    it("writes one file whose bytes hold the converted state", async () => {
      const { io, fabric } = make();
      await fabric.save("ck/a.ckpt", { model: new TinyModule(2), step: 7, hparams: { lr: 0.5, name: "x", layers: [1, 2] } });
      expect([...io.files.keys()]).toEqual(["ck/a.ckpt"]);
      const raw = (await decodeCheckpointBytes(io.files.get("ck/a.ckpt")!)) as Record<string, any>;
      expect(Object.keys(raw)).toEqual(["model", "step", "hparams"]);
      expect(raw.model.weight.raw).toEqual(new TinyModule(2).weight.raw);
      expect(raw.step).toBe(7);
      expect(raw.hparams).toEqual({ lr: 0.5, name: "x", layers: [1, 2] });
    });

    it("restores in place, replaces plain values and returns the remainder", async () => {
      const { fabric } = make();
      await fabric.save("a.ckpt", { model: new TinyModule(3), step: 9, extra: "kept" });
      const state = { model: new TinyModule(1), step: 0 };
      const remainder = await fabric.load("a.ckpt", state);
      expect(state.step).toBe(9);
      expect(state.model.weight.raw).toEqual(new TinyModule(3).weight.raw);
      expect(Object.keys(remainder)).toEqual(["extra"]);
      expect(remainder.extra).toBe("kept");
      const all = await fabric.load("a.ckpt");
      expect(Object.keys(all)).toEqual(["model", "step", "extra"]);
    });

    it("fails a strict load naming the missing key, and skips it with strict: false", async () => {
      const { fabric } = make();
      await fabric.save("a.ckpt", { step: 1 });
      const state = { step: 0, missing: 5 };
      await expect(fabric.load("a.ckpt", state)).rejects.toThrow(/"missing".*strict: false/s);
      await expect(fabric.load("a.ckpt", state)).rejects.toBeInstanceOf(StrictLoadError);
      expect(state.step).toBe(0);
      await fabric.load("a.ckpt", state, { strict: false });
      expect(state).toEqual({ step: 1, missing: 5 });
    });

    it("applies filters per key and drops keys whose items are all filtered out", async () => {
      const { io, fabric } = make();
      await fabric.save("f.ckpt", { model: new TinyModule(1), other: new TinyModule(2), step: 3 }, { filter: { model: (k) => k === "weight", other: () => false } });
      const raw = (await decodeCheckpointBytes(io.files.get("f.ckpt")!)) as Record<string, any>;
      expect(Object.keys(raw)).toEqual(["model", "step"]);
      expect(Object.keys(raw.model)).toEqual(["weight"]);
    });

    it("rejects a filter key not in the state, and a filter that is not a function, writing nothing", async () => {
      const { io, fabric } = make();
      await expect(fabric.save("f.ckpt", { step: 1 }, { filter: { nope: () => true } })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(fabric.save("f.ckpt", { step: 1 }, { filter: { step: 3 as never } })).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(io.files.size).toBe(0);
    });

    it("leaves the previous checkpoint intact when a save fails midway", async () => {
      const { io, fabric } = make();
      await fabric.save("a.ckpt", { step: 1 });
      const before = io.files.get("a.ckpt")!.slice();
      await expect(fabric.save("a.ckpt", { step: 2, t: failingTensor(1000) })).rejects.toThrow(/device lost/);
      expect([...io.files.keys()]).toEqual(["a.ckpt"]);
      expect(io.files.get("a.ckpt")).toEqual(before);
    });

    it("loads a bare state dict into one object with loadRaw", async () => {
      const { fabric } = make();
      await fabric.save("raw.pt", new TinyModule(4).stateDict());
      const m = new TinyModule(1);
      await fabric.loadRaw("raw.pt", m);
      expect(m.bias.raw).toEqual(new TinyModule(4).bias.raw);
    });

    it("reports a missing checkpoint with CheckpointNotFoundError", async () => {
      const { fabric } = make();
      await expect(fabric.load("nope.ckpt", { step: 0 })).rejects.toBeInstanceOf(CheckpointNotFoundError);
    });
  });
}
