import { genericStatefulAdapter } from "./adapters/generic-stateful.js";
import { ADAPTER_REQUIRED, AdapterRegistry, type StatefulAdapter } from "./adapters/stateful-adapter.js";
import { layersModelAdapter } from "./adapters/tfjs/layers-model-adapter.js";
import { tfjsOptimizerAdapter } from "./adapters/tfjs/optimizer-adapter.js";
import { BACKEND_OPTIONAL, BACKEND_REQUIRED, type Backend } from "./backends/backend.js";
import { cpuBackend } from "./backends/tfjs/tfjs-backend.js";
import { checkInterface, describe } from "./capabilities.js";
import { COLLECTIVE_REQUIRED } from "./collectives/collective.js";
import { InvalidArgumentError } from "./errors.js";
import type { Format, SafetyMode } from "./formats/format.js";
import { FormatRegistry } from "./formats/format-registry.js";
import { defaultFormats } from "./formats/default-formats.js";
import type { CheckpointIO } from "./io/checkpoint-io.js";
import { NodeFileIO } from "./io/node-fs-io.js";
import { createBackend, createStrategy, registerBackend, registerStrategy } from "./registry.js";
import type { KeyMap } from "./strategies/key-map.js";
import { SingleDeviceStrategy } from "./strategies/single-device.js";
import { validateFilter, type SaveFilter } from "./strategies/state-conversion.js";
import { STRATEGY_REQUIRED, type Strategy, type StrategyContext } from "./strategies/strategy.js";
import { DEFAULT_CHUNK_BYTES } from "./tensor/tensor-source.js";
import { StagingPool } from "./tensor/staging-pool.js";
import { AsyncSave } from "./async-save.js";

registerStrategy("single-device", () => new SingleDeviceStrategy());
registerBackend("cpu", () => cpuBackend());

const IO_REQUIRED = ["name", "stat", "openRead", "openWrite"] as const;
const IO_OPTIONAL = ["list", "remove", "mkdir", "rename"] as const;

/** Options of {@link Fabric}. */
export interface FabricOptions {
  /** Who writes and reads what. A name looks up a registered strategy. @default "single-device" */
  strategy?: Strategy | string;
  /** Which tensors are saved and how they reach the host. @default cpuBackend() */
  backend?: Backend | string;
  /** Where bytes go. @default new NodeFileIO() (local files, atomic) */
  io?: CheckpointIO;
  /** File formats, in order of preference. @default torch zip, safetensors, and the read-only formats */
  formats?: Format[];
  /** Extra adapters for your own stateful types, consulted before the built-in ones. @default [] */
  adapters?: StatefulAdapter[];
  /** Unknown Python globals in pickles: inert placeholders, or refuse the file. @default "placeholder" */
  safe?: SafetyMode;
  /**
   * Check checksums on load: the CRC-32 of every torch zip record, and the header and tensor CRC-32s
   * savepoint writes into safetensors files (files from other writers have none). A mismatch throws
   * `CorruptCheckpointError`; `false` reads damaged bytes as they are. @default true
   */
  verify?: boolean;
  /** Streaming chunk size in bytes. @default 8 MiB */
  chunkBytes?: number;
}

/** Options of {@link Fabric.save}. */
export interface SaveOptions {
  /** Per state key, a predicate over the items of its state dict; keys it rejects are not saved. @default undefined */
  filter?: SaveFilter;
  /** Format name, overriding the choice by extension (`"torch"`, `"safetensors"`). @default by extension */
  format?: string;
  /**
   * Return once the state is copied to host memory and write in the background; the result's
   * `done` settles when the file is committed. A later save or load waits for it first.
   * @default false
   */
  async?: boolean;
}

/** Options of {@link Fabric.load}. */
export interface LoadOptions {
  /** Fail when a requested key or parameter is missing or unexpected. @default true */
  strict?: boolean;
}

/** Options of {@link Fabric.loadRaw}. */
export interface LoadRawOptions {
  /** Parameter names must match the target exactly. @default true */
  strict?: boolean;
  /** Renames and transforms entries first, e.g. a PyTorch Linear into a Dense kernel. @default undefined */
  map?: KeyMap;
  /** For an optimizer: the model whose parameters its state is indexed by. @default undefined */
  model?: unknown;
}

/**
 * Saves and restores training state with the semantics of Lightning Fabric, in files PyTorch reads.
 *
 * @example
 * ```ts
 * const fabric = new Fabric();
 * const state = { model, optimizer, iteration: 0 };
 * await fabric.save("ckpt/last.ckpt", state);
 * const remainder = await fabric.load("ckpt/last.ckpt", state); // model, optimizer in place
 * ```
 */
export class Fabric {
  readonly strategy: Strategy;
  readonly backend: Backend;
  readonly io: CheckpointIO;
  readonly formats: FormatRegistry;
  readonly adapters: AdapterRegistry;
  readonly #ctx: StrategyContext;
  readonly #staging = new StagingPool();
  #inflight: AsyncSave | undefined;

  constructor(options: FabricOptions = {}) {
    if (typeof options !== "object" || options === null) throw new InvalidArgumentError(`Fabric options must be an object, got ${describe(options)}.`);
    this.strategy = typeof options.strategy === "string" ? createStrategy(options.strategy) : (options.strategy ?? new SingleDeviceStrategy());
    this.backend = typeof options.backend === "string" ? createBackend(options.backend) : (options.backend ?? cpuBackend());
    this.io = options.io ?? new NodeFileIO();
    checkInterface("Strategy", this.strategy, STRATEGY_REQUIRED);
    checkInterface("Collective", this.strategy.collective, COLLECTIVE_REQUIRED);
    checkInterface("Backend", this.backend, BACKEND_REQUIRED, BACKEND_OPTIONAL);
    checkInterface("CheckpointIO", this.io, IO_REQUIRED, IO_OPTIONAL);
    for (const a of options.adapters ?? []) checkInterface("StatefulAdapter", a, ADAPTER_REQUIRED);
    this.formats = new FormatRegistry(options.formats ?? defaultFormats());
    this.adapters = new AdapterRegistry([...(options.adapters ?? []), layersModelAdapter, tfjsOptimizerAdapter, genericStatefulAdapter]);
    const safe = options.safe ?? "placeholder";
    if (safe !== "placeholder" && safe !== "strict") throw new InvalidArgumentError(`\`safe\` must be "placeholder" or "strict", got ${describe(safe)}.`);
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 4096 || chunkBytes > 1 << 30) throw new InvalidArgumentError(`\`chunkBytes\` must be an integer between 4 KiB and 1 GiB, got ${chunkBytes}.`);
    this.#ctx = { backend: this.backend, io: this.io, formats: this.formats, adapters: this.adapters, safe, verify: options.verify ?? true, chunkBytes };
  }

  /** This process's rank (0 on a single device). */
  get globalRank(): number {
    return this.strategy.collective.rank;
  }

  /** Number of processes taking part. */
  get worldSize(): number {
    return this.strategy.collective.worldSize;
  }

  /** True on rank 0. */
  get isGlobalZero(): boolean {
    return this.globalRank === 0;
  }

  /**
   * Saves `state`: models, optimizers and stateful objects become their state dicts, everything
   * else is stored as is. The format follows the extension (`.safetensors`; torch zip otherwise).
   *
   * @example
   * ```ts
   * await fabric.save("ckpt.pt", { model, optimizer, step }, { filter: { model: (k) => k.includes("kernel") } });
   * ```
   */
  async save(path: string, state: Record<string, unknown>, options: SaveOptions & { async: true }): Promise<AsyncSave>;
  async save(path: string, state: Record<string, unknown>, options?: SaveOptions): Promise<void>;
  async save(path: string, state: Record<string, unknown>, options: SaveOptions = {}): Promise<void | AsyncSave> {
    checkPath(path);
    validateFilter(options.filter, state);
    await this.#settlePrevious();
    const base = { filter: options.filter, format: options.format };
    if (!options.async) {
      await this.strategy.save(path, state, base, this.#ctx);
      return;
    }
    let staged!: () => void;
    const stagedSignal = new Promise<void>((resolve) => (staged = resolve));
    const written = this.strategy.save(
      path,
      state,
      {
        ...base,
        stage: async (tree) => {
          const s = await this.#staging.stage(tree);
          staged();
          return s;
        },
      },
      this.#ctx,
    );
    // A strategy without async support simply finishes the whole save before "staging" ends.
    await Promise.race([stagedSignal, written]);
    const handle = new AsyncSave(path, written);
    this.#inflight = handle;
    return handle;
  }

  /** Waits for an async save in flight; rethrows its failure if nobody awaited `done`. */
  async #settlePrevious(): Promise<void> {
    const prev = this.#inflight;
    if (!prev) return;
    this.#inflight = undefined;
    await prev.settled();
  }

  /** Host memory kept for reuse by async saves (released with {@link Fabric.releaseStaging}). */
  get stagingBytes(): number {
    return this.#staging.pooledBytes;
  }

  /** Frees the host buffers async saves keep for reuse. */
  releaseStaging(): void {
    this.#staging.clear();
  }

  /**
   * Without `state`: returns the whole checkpoint as a nested object; tensors are
   * {@link LazyTensor}s that read their bytes when touched.
   * With `state`: restores models, optimizers and stateful objects in place, replaces plain values
   * in `state`, and returns what the checkpoint holds beyond the requested keys.
   *
   * @example
   * ```ts
   * const state = { model, optimizer, iteration: 0 };
   * const remainder = await fabric.load("ckpt.pt", state);
   * state.iteration; // the saved value
   * ```
   */
  async load(path: string, state?: Record<string, unknown>, options: LoadOptions = {}): Promise<Record<string, unknown>> {
    checkPath(path);
    if (state !== undefined && (typeof state !== "object" || state === null || Array.isArray(state))) {
      throw new InvalidArgumentError(`the state to load into must be an object of named values, got ${describe(state)}. To load into one model use loadRaw(path, model).`);
    }
    await this.#settlePrevious();
    return this.strategy.load(path, state, { strict: options.strict ?? true }, this.#ctx);
  }

  /**
   * Loads a bare state-dict file (e.g. a PyTorch `model.state_dict()`) into one model, optimizer
   * or stateful object.
   *
   * @example
   * ```ts
   * await fabric.loadRaw("pytorch_model.pt", model, { strict: false });
   * ```
   */
  async loadRaw(path: string, target: unknown, options: LoadRawOptions = {}): Promise<void> {
    checkPath(path);
    if (options.map !== undefined && typeof options.map !== "function") throw new InvalidArgumentError(`\`map\` must be a function (key, value) => newKey | { key, value } | null, got ${describe(options.map)}.`);
    await this.#settlePrevious();
    await this.strategy.loadRaw(path, target, { strict: options.strict ?? true, map: options.map, context: options.model ? { model: options.model } : undefined }, this.#ctx);
  }

  /** Waits for every rank. */
  async barrier(tag = "barrier"): Promise<void> {
    await this.strategy.collective.barrier(tag);
  }
}

function checkPath(path: unknown): asserts path is string {
  if (typeof path !== "string" || path.length === 0) throw new InvalidArgumentError(`the checkpoint path must be a non-empty string, got ${describe(path)}.`);
}
