import { CheckpointNotFoundError } from "../errors.js";
import type { CheckpointIO } from "../io/checkpoint-io.js";
import { joinPath } from "../io/paths.js";
import { decodeMetrics, encodeMetrics, type Metrics } from "./metrics.js";
import { checkpointName, parseCheckpointName, parseSidecarName, POINTER_NAME, sidecarName } from "./naming.js";
import { writeBytesAtomically } from "../io/write-atomically.js";

/** One committed checkpoint of a managed folder. */
export interface CheckpointInfo {
  readonly step: number;
  /** Path of the checkpoint (file or directory), as passed to `fabric.load`. */
  readonly path: string;
  /** Metrics saved with it; `{}` when none were given or its sidecar is missing or damaged. */
  readonly metrics: Metrics;
  /** When it was saved (ISO 8601), when its sidecar says so. */
  readonly savedAt?: string;
}

/** Sidecars and the pointer are a few hundred bytes; anything large is not ours. */
const MAX_SMALL_FILE = 1 << 20;

/**
 * The files of a managed folder seen through `fabric.io`: what is committed, the sidecars, the
 * pointer. Stateless: every call reads the folder again, so several processes see one truth.
 */
export class ManagedFolder {
  constructor(
    readonly io: CheckpointIO,
    readonly dir: string,
    readonly extension: string,
    readonly warn: (message: string) => void,
  ) {}

  pathOf(step: number): string {
    return joinPath(this.dir, checkpointName(step, this.extension));
  }

  sidecarOf(step: number): string {
    return joinPath(this.dir, sidecarName(checkpointName(step, this.extension)));
  }

  get pointerPath(): string {
    return joinPath(this.dir, POINTER_NAME);
  }

  /** Entry names, or none when the folder does not exist yet. */
  async names(): Promise<string[]> {
    try {
      return await this.io.list!(this.dir);
    } catch (err) {
      if (err instanceof CheckpointNotFoundError) return [];
      throw err;
    }
  }

  /**
   * Committed checkpoints in step order, and the sidecars whose checkpoint is gone (left by a save
   * that died before its commit, or by a removal that died half way).
   */
  async scan(): Promise<{ checkpoints: CheckpointInfo[]; orphanSidecars: string[] }> {
    const names = await this.names();
    const present = new Set(names);
    const steps: { step: number; name: string }[] = [];
    const orphanSidecars: string[] = [];
    for (const name of names) {
      const step = parseCheckpointName(name, this.extension);
      if (step !== undefined) steps.push({ step, name });
      const owner = parseSidecarName(name, this.extension);
      if (owner !== undefined && !present.has(owner)) orphanSidecars.push(joinPath(this.dir, name));
    }
    steps.sort((a, b) => a.step - b.step);
    const checkpoints = await Promise.all(
      steps.map(async ({ step, name }): Promise<CheckpointInfo> => {
        const meta = present.has(sidecarName(name)) ? await this.#readSidecar(joinPath(this.dir, sidecarName(name)), step) : undefined;
        return { step, path: joinPath(this.dir, name), metrics: meta?.metrics ?? {}, ...(meta?.savedAt ? { savedAt: meta.savedAt } : {}) };
      }),
    );
    return { checkpoints, orphanSidecars };
  }

  async writeSidecar(step: number, metrics: Metrics, savedAt: string): Promise<void> {
    await this.#writeJson(this.sidecarOf(step), { step, metrics: encodeMetrics(metrics), savedAt });
  }

  /** Points `latest` at `step`; atomic through the IO's temp-and-rename write. */
  async writePointer(step: number): Promise<void> {
    await this.#writeJson(this.pointerPath, { step, checkpoint: checkpointName(step, this.extension) });
  }

  /** The step the pointer names, or undefined when it is missing or unreadable. */
  async readPointer(): Promise<number | undefined> {
    const value = await this.#readJson(this.pointerPath);
    const step = (value as { step?: unknown } | undefined)?.step;
    return typeof step === "number" && Number.isSafeInteger(step) && step >= 0 ? step : undefined;
  }

  async #readSidecar(path: string, step: number): Promise<{ metrics: Metrics; savedAt?: string } | undefined> {
    const value = (await this.#readJson(path)) as { step?: unknown; metrics?: unknown; savedAt?: unknown } | undefined;
    if (value === undefined || value.step !== step) {
      this.warn(`[savepoint] the metrics of ${this.pathOf(step)} are unreadable (${path} is damaged); it is kept, but ranks last for keepBest.`);
      return undefined;
    }
    return { metrics: decodeMetrics(value.metrics), ...(typeof value.savedAt === "string" ? { savedAt: value.savedAt } : {}) };
  }

  async #readJson(path: string): Promise<unknown> {
    try {
      const src = await this.io.openRead(path);
      try {
        if (src.size > MAX_SMALL_FILE) return undefined;
        return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await src.read(0, src.size)));
      } finally {
        await src.close();
      }
    } catch {
      // Missing or damaged: callers fall back to what the listing shows.
      return undefined;
    }
  }

  async #writeJson(path: string, value: unknown): Promise<void> {
    await writeBytesAtomically(this.io, path, new TextEncoder().encode(`${JSON.stringify(value)}\n`));
  }
}
