import { describe, expect, it } from "vitest";
import { SingleProcessCollective, type Collective } from "../collectives/collective.js";
import { createLocalGroup } from "../collectives/local-group.js";
import { CheckpointNotFoundError, CollectiveTimeoutError, InvalidArgumentError, StrictLoadError } from "../errors.js";
import { Fabric } from "../fabric.js";
import type { AtomicWrite } from "../io/byte-source.js";
import type { CheckpointIO } from "../io/checkpoint-io.js";
import { MemoryIO } from "../io/memory-io.js";
import type { Strategy } from "../strategies/strategy.js";
import { HostTensor, isStoredTensor } from "../tensor/stored-tensor.js";
import { TENSOR_SOURCE, type TensorSource } from "../tensor/tensor-source.js";
import { decodeCheckpointBytes, decodeCheckpointDirectory } from "./back-door.js";

/** What {@link runStrategyConformance} needs from a strategy's test. */
export interface StrategyConformanceOptions {
  name: string;
  /**
   * A fresh strategy for one rank, using `collective` (a single-process collective when
   * `worldSize` is 1, else one rank of an in-process group the suite creates).
   */
  strategy(collective: Collective): Strategy;
  /** Ranks to run every check on, concurrently in this process. @default 1 */
  worldSize?: number;
  /** Limit of each collective operation in the multi-rank checks, in ms. @default 1000 */
  timeoutMs?: number;
  /**
   * How the strategy lays a checkpoint out. `"file"`: one file, written by rank 0. `"directory"`:
   * a distributed checkpoint folder (torch DCP): every rank writes its own file in parallel, and
   * the folder becomes a checkpoint only when rank 0 commits its `.metadata`, last. The suite reads
   * either through its back door and holds both to the same semantics. @default "file"
   */
  layout?: "file" | "directory";
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

/** One rank's view of the shared storage: records who opened writes and when files were committed. */
function rankIO(io: MemoryIO, rank: number, log: Cluster["log"], slowCommitMs: number): CheckpointIO {
  return {
    name: `memory (rank ${rank})`,
    stat: (p) => io.stat(p),
    openRead: (p) => io.openRead(p),
    list: (d) => io.list(d),
    remove: (p) => io.remove(p),
    mkdir: () => io.mkdir(),
    rename: (a, b) => io.rename(a, b),
    async openWrite(path): Promise<AtomicWrite> {
      log.push({ event: "open", rank, path });
      const w = await io.openWrite(path);
      return {
        get position() {
          return w.position;
        },
        write: (chunk) => w.write(chunk),
        abort: () => w.abort(),
        async commit() {
          if (slowCommitMs > 0) await new Promise((r) => setTimeout(r, slowCommitMs));
          await w.commit();
          log.push({ event: "commit", rank, path });
        },
      };
    },
  };
}

interface Cluster {
  readonly worldSize: number;
  readonly io: MemoryIO;
  readonly fabrics: Fabric[];
  readonly log: { event: "open" | "commit" | "return"; rank: number; path: string }[];
  /** Runs `fn` on every rank concurrently; rejects with the first error (after every rank settled). */
  all<T>(fn: (fabric: Fabric, rank: number) => Promise<T>): Promise<T[]>;
  /** Runs `fn` on every rank concurrently and reports each rank's outcome. */
  settle<T>(fn: (fabric: Fabric, rank: number) => Promise<T>): Promise<PromiseSettledResult<T>[]>;
  close(): Promise<void>;
}

/**
 * The contract every strategy meets, checked through the bytes it writes: who writes (one file,
 * from rank 0, at rank 0's path), layout (a torch file the format reads alone), atomicity (a failed
 * save leaves the previous checkpoint), strict and filter semantics, the remainder, and the errors.
 * With `worldSize > 1` every check runs on all ranks at once (an in-process group), plus the
 * multi-rank ones: all ranks return together after the file is complete, and a rank that fails or
 * never calls `save`/`load` makes the others fail, naming it, instead of hanging.
 *
 * @example
 * ```ts
 * runStrategyConformance({ name: "ddp", worldSize: 3, strategy: (collective) => new DDPStrategy(collective) });
 * ```
 */
export function runStrategyConformance(options: StrategyConformanceOptions): void {
  const worldSize = options.worldSize ?? 1;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new Error(`runStrategyConformance: worldSize must be a positive integer, got ${worldSize}.`);
  const timeoutMs = options.timeoutMs ?? 1000;
  const multi = worldSize > 1;
  const ranks = Array.from({ length: worldSize }, (_, r) => r);
  const directory = options.layout === "directory";
  if (options.layout !== undefined && options.layout !== "file" && !directory) throw new Error(`runStrategyConformance: layout must be "file" or "directory", got ${String(options.layout)}.`);

  /**
   * What storage holds, by checkpoint: file paths (file layout), or the folders committed by a
   * `.metadata` (directory layout); any other file (a stray temporary, a folder never committed)
   * is listed as itself, so it shows up in the comparisons.
   */
  const checkpoints = (io: MemoryIO): string[] => {
    const keys = [...io.files.keys()];
    if (!directory) return keys;
    const roots = keys.filter((k) => k.endsWith("/.metadata")).map((k) => k.slice(0, -"/.metadata".length));
    return [...roots, ...keys.filter((k) => !roots.some((r) => k.startsWith(`${r}/`)))];
  };
  /** The bytes of one checkpoint: the file, or the folder's files by name. */
  const snapshot = (io: MemoryIO, path: string): Map<string, Uint8Array> => {
    const out = new Map<string, Uint8Array>();
    for (const [k, v] of io.files) {
      if (!directory && k === path) out.set("", v.slice());
      if (directory && k.startsWith(`${path}/`)) out.set(k.slice(path.length + 1), v.slice());
    }
    return out;
  };
  const decode = (io: MemoryIO, path: string) => (directory ? decodeCheckpointDirectory(snapshot(io, path)) : decodeCheckpointBytes(io.files.get(path)!));

  const make = (slowCommitMs = 0): Cluster => {
    const io = new MemoryIO();
    const log: Cluster["log"] = [];
    const collectives: Collective[] = multi ? createLocalGroup(worldSize, { timeoutMs }) : [new SingleProcessCollective()];
    const fabrics = collectives.map((c, r) => {
      const strategy = options.strategy(c);
      if (multi && (strategy.collective.worldSize !== worldSize || strategy.collective.rank !== r)) {
        throw new Error(`strategy(collective) must use the collective it is given: rank ${r} of ${worldSize} got a strategy whose collective is rank ${strategy.collective.rank} of ${strategy.collective.worldSize}.`);
      }
      return new Fabric({ strategy, io: rankIO(io, r, log, slowCommitMs) });
    });
    const settle = <T>(fn: (fabric: Fabric, rank: number) => Promise<T>) => Promise.allSettled(fabrics.map((f, r) => fn(f, r)));
    return {
      worldSize,
      io,
      fabrics,
      log,
      settle,
      async all(fn) {
        const results = await settle(fn);
        const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failed) throw failed.reason;
        return results.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof fn>>>).value);
      },
      async close() {
        await Promise.all(fabrics.map((f) => f.strategy.collective.close?.()));
      },
    };
  };
  const withCluster = (fn: (c: Cluster) => Promise<void>, slowCommitMs = 0) => async () => {
    const c = make(slowCommitMs);
    try {
      await fn(c);
    } finally {
      await c.close();
    }
  };
  const onEvery = multi ? ` (on all ${worldSize} ranks)` : "";

  describe(`Strategy conformance: ${options.name}${multi ? ` (${worldSize} ranks)` : ""}`, () => {
    const layoutTitle = directory
      ? `writes one checkpoint folder holding the converted state${multi ? ", every rank its own file," : ""} committed by its .metadata, written last`
      : `writes one file whose bytes hold the converted state${multi ? ", from rank 0 only" : ""}`;
    it(layoutTitle, withCluster(async ({ io, all, log }) => {
      await all((fabric) => fabric.save("ck/a.ckpt", { model: new TinyModule(2), step: 7, hparams: { lr: 0.5, name: "x", layers: [1, 2] } }));
      expect(checkpoints(io)).toEqual(["ck/a.ckpt"]);
      if (directory) {
        const commits = log.filter((e) => e.event === "commit");
        expect(commits.at(-1)?.path, "the last file committed").toMatch(/(^|\/)\.metadata$/);
        expect(commits.at(-1)?.rank).toBe(0);
        for (const r of ranks) expect(commits.some((e) => e.rank === r), `rank ${r} committed a file of its own`).toBe(true);
      } else {
        expect(log.filter((e) => e.event === "open").map((e) => e.rank)).toEqual([0]);
      }
      const raw = (await decode(io, "ck/a.ckpt")) as Record<string, any>;
      expect(Object.keys(raw)).toEqual(["model", "step", "hparams"]);
      expect(raw.model.weight.raw).toEqual(new TinyModule(2).weight.raw);
      expect(raw.step).toBe(7);
      expect(raw.hparams).toEqual({ lr: 0.5, name: "x", layers: [1, 2] });
    }));

    it(`restores in place, replaces plain values and returns the remainder${onEvery}`, withCluster(async ({ all }) => {
      await all((fabric) => fabric.save("a.ckpt", { model: new TinyModule(3), step: 9, extra: "kept" }));
      await all(async (fabric) => {
        const state = { model: new TinyModule(1), step: 0 };
        const remainder = await fabric.load("a.ckpt", state);
        expect(state.step).toBe(9);
        expect(state.model.weight.raw).toEqual(new TinyModule(3).weight.raw);
        expect(Object.keys(remainder)).toEqual(["extra"]);
        expect(remainder.extra).toBe("kept");
        const everything = await fabric.load("a.ckpt");
        expect(Object.keys(everything)).toEqual(["model", "step", "extra"]);
      });
    }));

    it(`fails a strict load naming the missing key, and skips it with strict: false${onEvery}`, withCluster(async ({ all }) => {
      await all((fabric) => fabric.save("a.ckpt", { step: 1 }));
      await all(async (fabric) => {
        const state = { step: 0, missing: 5 };
        await expect(fabric.load("a.ckpt", state)).rejects.toThrow(/"missing".*strict: false/s);
        await expect(fabric.load("a.ckpt", state)).rejects.toBeInstanceOf(StrictLoadError);
        expect(state.step).toBe(0);
        await fabric.load("a.ckpt", state, { strict: false });
        expect(state).toEqual({ step: 1, missing: 5 });
      });
    }));

    it("applies filters per key and drops keys whose items are all filtered out", withCluster(async ({ io, all }) => {
      await all((fabric) => fabric.save("f.ckpt", { model: new TinyModule(1), other: new TinyModule(2), step: 3 }, { filter: { model: (k) => k === "weight", other: () => false } }));
      const raw = (await decode(io, "f.ckpt")) as Record<string, any>;
      expect(Object.keys(raw)).toEqual(["model", "step"]);
      expect(Object.keys(raw.model)).toEqual(["weight"]);
    }));

    it("rejects a filter key not in the state, and a filter that is not a function, writing nothing", withCluster(async ({ io, all }) => {
      await all(async (fabric) => {
        await expect(fabric.save("f.ckpt", { step: 1 }, { filter: { nope: () => true } })).rejects.toBeInstanceOf(InvalidArgumentError);
        await expect(fabric.save("f.ckpt", { step: 1 }, { filter: { step: 3 as never } })).rejects.toBeInstanceOf(InvalidArgumentError);
      });
      expect(io.files.size).toBe(0);
    }));

    it(`leaves the previous checkpoint intact when a save fails midway${multi ? ", failing every rank" : ""}`, withCluster(async ({ io, all, settle }) => {
      await all((fabric) => fabric.save("a.ckpt", { step: 1 }));
      const before = snapshot(io, "a.ckpt");
      const results = await settle((fabric) => fabric.save("a.ckpt", { step: 2, t: failingTensor(1000) }));
      expect(results.map((r) => r.status)).toEqual(ranks.map(() => "rejected"));
      expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/device lost/);
      if (multi) for (const r of results.slice(1)) expect(String((r as PromiseRejectedResult).reason)).toMatch(/rank 0/);
      expect(checkpoints(io)).toEqual(["a.ckpt"]);
      expect(snapshot(io, "a.ckpt")).toEqual(before);
    }));

    it(`loads a bare state dict into one object with loadRaw${onEvery}`, withCluster(async ({ all }) => {
      await all((fabric) => fabric.save("raw.pt", new TinyModule(4).stateDict()));
      await all(async (fabric) => {
        const m = new TinyModule(1);
        await fabric.loadRaw("raw.pt", m);
        expect(m.bias.raw).toEqual(new TinyModule(4).bias.raw);
      });
    }));

    it(`reports a missing checkpoint with CheckpointNotFoundError${onEvery}`, withCluster(async ({ all }) => {
      await all(async (fabric) => {
        await expect(fabric.load("nope.ckpt", { step: 0 })).rejects.toBeInstanceOf(CheckpointNotFoundError);
      });
    }));

    if (!multi) return;
    const last = worldSize - 1;

    it(`returns on every rank only after rank 0 committed the ${directory ? "folder's .metadata" : "file"}`, withCluster(async ({ all, log }) => {
      await all(async (fabric, rank) => {
        await fabric.save("slow.ckpt", { model: new TinyModule(1), step: 1 });
        log.push({ event: "return", rank, path: "slow.ckpt" });
      });
      const commit = directory ? log.findIndex((e) => e.event === "commit" && /(^|\/)\.metadata$/.test(e.path)) : log.findIndex((e) => e.event === "commit");
      expect(commit).toBeGreaterThanOrEqual(0);
      expect(log[commit]!.rank).toBe(0);
      for (const r of ranks) expect(log.findIndex((e) => e.event === "return" && e.rank === r), `rank ${r} returned before the commit`).toBeGreaterThan(commit);
    }, 100));

    it("writes at the path given by rank 0, as Lightning does", withCluster(async ({ io, all, log }) => {
      await all((fabric, rank) => fabric.save(`ck/rank-${rank}.ckpt`, { step: 5 }));
      expect(checkpoints(io)).toEqual(["ck/rank-0.ckpt"]);
      const opens = log.filter((e) => e.event === "open").map((e) => `${e.rank}:${e.path}`);
      if (directory) expect(opens.filter((o) => /rank-[1-9]\d*\.ckpt/.test(o)), "files opened under another rank's path").toEqual([]);
      else expect(opens).toEqual(["0:ck/rank-0.ckpt"]);
      await all(async (fabric) => {
        const state = { step: 0 };
        await fabric.load("ck/rank-0.ckpt", state);
        expect(state.step).toBe(5);
      });
    }));

    it(`fails the others with CollectiveTimeoutError naming the rank that never calls save (rank ${last}), within the timeout`, withCluster(async ({ io, settle }) => {
      const started = Date.now();
      const results = await settle(async (fabric, rank) => {
        if (rank !== last) await fabric.save("ck/x.ckpt", { step: 1 });
      });
      const elapsed = Date.now() - started;
      for (const r of ranks.slice(0, last)) {
        const res = results[r]!;
        expect(res.status, `rank ${r} should fail`).toBe("rejected");
        const err = (res as PromiseRejectedResult).reason as Error;
        expect(err).toBeInstanceOf(CollectiveTimeoutError);
        expect(err.message).toMatch(/^\[savepoint\] /);
        expect(err.message).toMatch(new RegExp(`\\brank ${last}\\b`));
        expect(err.message).toContain("ck/x.ckpt");
      }
      expect(elapsed).toBeLessThan(timeoutMs + 5000);
      expect(checkpoints(io)).not.toContain("ck/x.ckpt");
    }));

    it(`fails the others naming the rank that never calls load (rank ${last})`, withCluster(async ({ all, settle }) => {
      await all((fabric) => fabric.save("l.ckpt", { step: 1 }));
      const results = await settle(async (fabric, rank) => {
        if (rank !== last) await fabric.load("l.ckpt", { step: 0 });
      });
      for (const r of ranks.slice(0, last)) {
        const err = (results[r] as PromiseRejectedResult).reason as Error;
        expect(err).toBeInstanceOf(CollectiveTimeoutError);
        expect(err.message).toMatch(new RegExp(`\\brank ${last}\\b`));
      }
    }));

    it(`fails every rank, naming it, when one rank's state cannot be saved (rank ${last}), writing nothing`, withCluster(async ({ io, settle }) => {
      const results = await settle((fabric, rank) => fabric.save("bad.ckpt", { step: 1, value: rank === last ? (() => 1) : 2 }));
      expect(results.map((r) => r.status)).toEqual(ranks.map(() => "rejected"));
      expect((results[last] as PromiseRejectedResult).reason).toBeInstanceOf(InvalidArgumentError);
      for (const r of ranks.slice(0, last)) expect(String((results[r] as PromiseRejectedResult).reason)).toMatch(new RegExp(`\\brank ${last}\\b`));
      expect(io.files.size).toBe(0);
    }));

    it(`fails every rank, naming it, when a load fails on one rank (rank ${last})`, withCluster(async ({ all, settle }) => {
      await all((fabric) => fabric.save("s.ckpt", { step: 1 }));
      const results = await settle((fabric, rank) => fabric.load("s.ckpt", rank === last ? { step: 0, missing: 1 } : { step: 0 }));
      expect(results.map((r) => r.status)).toEqual(ranks.map(() => "rejected"));
      expect((results[last] as PromiseRejectedResult).reason).toBeInstanceOf(StrictLoadError);
      for (const r of ranks.slice(0, last)) expect(String((results[r] as PromiseRejectedResult).reason)).toMatch(new RegExp(`\\brank ${last}\\b`));
    }));
  });
}
