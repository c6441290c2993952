import { randomUUID } from "node:crypto";
import {
  agree,
  assembleDcpMetadata,
  canStageDcpFolder,
  checkDcpTarget,
  dcpStagingFolder,
  DCP_METADATA_FILE,
  discardDcpFolder,
  InvalidArgumentError,
  LIGHTNING_META_FILE,
  publishDcpFolder,
  recoverDcpFolder,
  SingleDeviceStrategy,
  strategyCollective,
  toWritableTree,
  withCheckpoint,
  writeCheckpoint,
  writeDcpMetadata,
  writeDcpShard,
  type Collective,
  type DcpWrittenItem,
  type DistributedStrategyOptions,
  type KeyMap,
  type Strategy,
  type StrategyContext,
  type StrategyLoadOptions,
  type StrategyLoadRawOptions,
  type StrategySaveOptions,
} from "@savepoint/core";
import { FullGather } from "./full-gather.js";
import { parameterInfos } from "./parameter-infos.js";
import { placeState } from "./placed-state.js";
import { optimizerGroupsByIndex, optimizerStateRows, restoreRows, weightRows } from "./rows-to-load.js";
import { layoutSharded, type ShardedLayout } from "./sharded-layout.js";
import { isShardedModel, ShardedModel, type LayersModelLike } from "./sharded-model.js";
import { shardedModelAdapter } from "./sharded-model-adapter.js";
import { verifyShare } from "./verify-share.js";

// Why a rank's write failed, as the other ranks report it.
const WRITE_FAILURE = "could not write its part of the checkpoint for";

/** How `save` lays a checkpoint out. */
export type StateDictType = "sharded" | "full";

/** Options of {@link FSDPStrategy}. */
export interface FSDPStrategyOptions extends DistributedStrategyOptions {
  /**
   * `"sharded"`: a folder as Lightning's FSDP strategy writes it (torch DCP `.metadata`, one
   * `__R_0.distcp` per rank written in parallel, `meta.pt`). `"full"`: one torch file gathered on
   * rank 0 piece by piece (the write's chunk size) as it is written. Loading reads either kind, saved by any number of ranks.
   * @default "sharded"
   */
  stateDictType?: StateDictType;
  /** How long ranks wait for the others' writes (and rank 0's gathers) in ms; a rank that dies is reported at once. @default 1800000 */
  writeTimeoutMs?: number;
}

/**
 * Fully sharded data parallel, with the checkpoints of Lightning's FSDP strategy. Wrap the model
 * with {@link FSDPStrategy.setupModule}: each rank then holds and trains its rows of every weight
 * (and the optimizer state for them). Every rank calls `save` and `load`:
 *
 * - `stateDictType: "sharded"` (default): every rank writes its rows to its own `__R_0.distcp`
 *   in parallel, rank 0 writes `meta.pt` (everything that is not model or optimizer state) and,
 *   last, the DCP `.metadata` that makes the folder a checkpoint. The folder is written beside
 *   the target and renamed into place, so a save that dies leaves the previous checkpoint.
 * - `stateDictType: "full"`: rank 0 writes one torch file, gathering each piece of a tensor from the
 *   ranks as the writer reads it (rank 0 holds one piece at a time, never a whole weight).
 *
 * Loading takes either kind, written by any number of ranks: each rank reads only the bytes of its
 * rows (the chunks of a sharded checkpoint that overlap them). Unlike Lightning, `strict: false`
 * applies to model and optimizer keys of sharded checkpoints, `filter` works with sharded saves,
 * and stateful objects in `meta.pt` are restored in place. Optimizer state is keyed by parameter
 * name in both kinds, as Lightning's FSDP checkpoints are. `save(..., { async: true })` is
 * accepted and completes before returning.
 *
 * Importing this package registers it as `"fsdp"`.
 *
 * @example
 * ```ts
 * const strategy = new FSDPStrategy({ stateDictType: "sharded" });
 * const fabric = new Fabric({ strategy });
 * const model = strategy.setupModule(buildModel());
 * const optimizer = tf.train.adam(1e-3);
 * await model.step(optimizer, () => lossOf(model.module, batch(fabric.globalRank)));
 * await fabric.save("ckpt/step-100", { model, optimizer, step: 100 }); // on every rank
 * ```
 */
export class FSDPStrategy implements Strategy {
  readonly name: string = "fsdp";
  readonly collective: Collective;
  readonly stateDictType: StateDictType;
  readonly #timeoutMs?: number;
  readonly #writeTimeoutMs: number;
  readonly #local: SingleDeviceStrategy;

  constructor(options: Collective | FSDPStrategyOptions = {}) {
    const parsed = strategyCollective<FSDPStrategyOptions>(options, "FSDPStrategy");
    const type = parsed.options.stateDictType ?? "sharded";
    if (type !== "sharded" && type !== "full") throw new InvalidArgumentError(`FSDPStrategy \`stateDictType\` must be "sharded" or "full", got ${JSON.stringify(type)}.`, { subject: "stateDictType" });
    this.stateDictType = type;
    ({ collective: this.collective, timeoutMs: this.#timeoutMs, writeTimeoutMs: this.#writeTimeoutMs } = parsed);
    this.#local = new SingleDeviceStrategy(this.collective);
  }

  get rank(): number {
    return this.collective.rank;
  }

  get worldSize(): number {
    return this.collective.worldSize;
  }

  /**
   * Wraps a tfjs-layers model so this rank holds and trains its rows of every weight. Build it
   * with the same initial weights on every rank (seeded initialisers), or load a checkpoint after.
   */
  setupModule<M extends LayersModelLike>(model: M): ShardedModel<M> {
    return new ShardedModel(model, this.collective);
  }

  /** The Fabric's context, with sharded models recognised. */
  #context(ctx: StrategyContext): StrategyContext {
    return { ...ctx, adapters: ctx.adapters.with([shardedModelAdapter]) };
  }

  async save(path: string, state: Record<string, unknown>, options: StrategySaveOptions, ctx: StrategyContext): Promise<void> {
    const c = this.#context(ctx);
    const target = path.replace(/(.)\/+$/, "$1");
    if (this.stateDictType === "full") await this.#saveFull(target, state, options, c);
    else await this.#saveSharded(target, state, options, c);
  }

  async #saveSharded(path: string, state: Record<string, unknown>, options: StrategySaveOptions, ctx: StrategyContext): Promise<void> {
    const { io } = ctx;
    const staged = canStageDcpFolder(io);
    // 1. Every rank converts and lays out its part; the ranks agree on rank 0's path, a save id and the layout.
    let layout: ShardedLayout | undefined;
    let local: unknown;
    try {
      layout = layoutSharded(await placeState(state, options.filter, ctx), this.rank, ctx.backend);
      if (this.rank === 0) {
        await checkDcpTarget(io, path);
        // Without renames the folder is written in place: first it stops being a checkpoint.
        if (!staged) await io.remove?.(`${path}/${DCP_METADATA_FILE}`);
      }
    } catch (err) {
      local = err;
    }
    const agreed = await agree<{ path: string; saveId: string; signature: string }>(this.collective, `save ${path}`, { path, saveId: this.rank === 0 ? randomUUID() : "", signature: layout?.signature ?? "" }, local, { timeoutMs: this.#timeoutMs });
    const { path: target, saveId } = agreed[0]!;
    const other = agreed.findIndex((o) => o.signature !== agreed[0]!.signature);
    if (other >= 0) {
      throw new InvalidArgumentError(
        `rank ${other} would save other model or optimizer entries than rank 0 (this is rank ${this.rank}; nothing was written). Every rank must save the same models and optimizers, with a filter that does not depend on tensor values (they differ between ranks).`,
        { subject: `rank ${other}` },
      );
    }
    const folder = staged ? dcpStagingFolder(target, saveId) : target;
    const removeFolder = async () => {
      if (staged) await discardDcpFolder(io, folder);
    };

    // 2. Every rank writes its file in parallel; rank 0 also meta.pt.
    let written: DcpWrittenItem[] = [];
    local = undefined;
    try {
      if (this.rank === 0 && staged) await recoverDcpFolder(io, target, saveId);
      await io.mkdir?.(folder);
      written = await writeDcpShard(layout!.items, { io, folder, file: `__${this.rank}_0.distcp`, chunkBytes: ctx.chunkBytes });
      if (this.rank === 0) await writeCheckpoint(layout!.meta, `${folder}/${LIGHTNING_META_FILE}`, ctx, "torch");
    } catch (err) {
      local = err;
    }
    let all: { written: DcpWrittenItem[] }[];
    try {
      all = await agree<{ written: DcpWrittenItem[] }>(this.collective, `save ${target}`, { written }, local, { timeoutMs: this.#writeTimeoutMs, failure: WRITE_FAILURE });
    } catch (err) {
      if (this.rank === 0) await removeFolder();
      throw err;
    }

    // 3. Rank 0 commits: the metadata last, then the folder into place. Nobody leaves before.
    local = undefined;
    if (this.rank === 0) {
      try {
        const md = assembleDcpMetadata(all.map((o) => o.written), { plannerData: layout!.plannerData, checkpointId: target, saveId });
        await writeDcpMetadata(md, { io, folder });
        if (staged) await publishDcpFolder(io, folder, target, saveId);
      } catch (err) {
        local = err;
        await removeFolder();
      }
    }
    await agree(this.collective, `commit ${target}`, {}, local, { timeoutMs: this.#writeTimeoutMs, failure: WRITE_FAILURE });
  }

  async #saveFull(path: string, state: Record<string, unknown>, options: StrategySaveOptions, ctx: StrategyContext): Promise<void> {
    const gather = new FullGather(this.collective, ctx.backend, this.#writeTimeoutMs);
    let tree: unknown;
    let local: unknown;
    try {
      tree = toWritableTree(gather.sources((await placeState(state, options.filter, ctx)).tree), ctx.backend);
    } catch (err) {
      local = err;
    }
    const agreed = await agree<{ path: string }>(this.collective, `save ${path}`, { path }, local, { timeoutMs: this.#timeoutMs });
    const target = agreed[0]!.path;
    local = undefined;
    if (this.rank === 0) {
      try {
        await writeCheckpoint(tree, target, ctx, options.format);
      } catch (err) {
        local = err;
      }
      try {
        await gather.finish();
      } catch (err) {
        local ??= err;
      }
    } else {
      try {
        await gather.serveGathers();
      } catch (err) {
        local = err;
      }
    }
    await agree(this.collective, `save ${target}`, {}, local, { timeoutMs: this.#writeTimeoutMs, failure: WRITE_FAILURE });
  }

  async load(path: string, state: Record<string, unknown> | undefined, options: StrategyLoadOptions, ctx: StrategyContext): Promise<Record<string, unknown>> {
    const c = this.#context(ctx);
    const restoring = state !== undefined && Object.keys(state).length > 0;
    let local: unknown;
    let readCtx = c;
    // A whole file: the ranks share the CRC checks, then each reads its rows unchecked.
    const split = restoring && this.worldSize > 1 && c.verify;
    if (split) {
      try {
        if ((await c.io.stat(path))?.kind === "file") {
          await verifyShare(path, Object.keys(state!), c, this.rank, this.worldSize);
          readCtx = { ...c, verify: false };
        }
      } catch (err) {
        local = err;
      }
      await agree(this.collective, `verify ${path}`, {}, local, { timeoutMs: this.#timeoutMs });
    }
    let result: Record<string, unknown> | undefined;
    try {
      result = await withCheckpoint(path, readCtx, async (checkpoint) => (restoring ? restoreRows(state!, checkpoint, options.strict, readCtx, path) : (checkpoint as Record<string, unknown>)));
    } catch (err) {
      local = err;
    }
    await agree(this.collective, `load ${path}`, {}, local, { timeoutMs: this.#timeoutMs });
    if (restoring) for (const [k, v] of Object.entries(state!)) if (isShardedModel(v)) await v.gather(`load ${path}: gather ${k}`);
    return result!;
  }

  async loadRaw(path: string, target: unknown, options: StrategyLoadRawOptions, ctx: StrategyContext): Promise<void> {
    const c = this.#context(ctx);
    let local: unknown;
    try {
      const rows = this.#rowsMap(target, options, c);
      const map: KeyMap | undefined = !rows ? options.map : !options.map ? rows : async (k, v) => {
        const r = await options.map!(k, v);
        if (r === null || r === undefined) return r;
        return typeof r === "string" ? rows(r, v) : rows(r.key, r.value);
      };
      await this.#local.loadRaw(path, target, { ...options, map }, c);
    } catch (err) {
      local = err;
    }
    await agree(this.collective, `loadRaw ${path}`, {}, local, { timeoutMs: this.#timeoutMs });
    if (isShardedModel(target)) await target.gather(`loadRaw ${path}: gather`);
  }

  /** For loadRaw: a key map cutting a sharded model's weights (or its optimizer's slots) to this rank's rows. */
  #rowsMap(target: unknown, options: StrategyLoadRawOptions, ctx: StrategyContext): ((key: string, value: unknown) => { key: string; value: unknown }) | undefined {
    if (isShardedModel(target)) return (key, value) => ({ key, value: weightRows(target, key, value, key) });
    if (ctx.adapters.find(target)?.kind !== "optimizer") return undefined;
    const params = parameterInfos({ ...options.context, target }, ctx.adapters, ctx.backend);
    return (key, value) => ({
      key,
      value: key === "state" ? optimizerStateRows(value, params, options.strict, "target") : key === "param_groups" ? optimizerGroupsByIndex(value, params, options.strict, "target") : value,
    });
  }
}
