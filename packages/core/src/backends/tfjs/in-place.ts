import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../errors.js";
import type { DType } from "../../dtype.js";
import { isPinned } from "../../tensor/staging-pool.js";
import { HostTensor, isStoredTensor } from "../../tensor/stored-tensor.js";
import type { TensorSource } from "../../tensor/tensor-source.js";
import { IdleSpare } from "../../tensor/idle-spare.js";

/**
 * Loading into a variable of tfjs's CPU backend without allocating: the record is read (and its
 * CRC checked) into a reused staging buffer, then copied into the storage the variable already
 * has. A fresh array per variable would cost an allocation, page faults and, above all, garbage
 * collections triggered by the external memory, several times the read itself.
 *
 * Only where it cannot be observed: the variable is on the `cpu` backend, its dtype matches the
 * record's (float32 or int32), and no other tensor shares its storage (tfjs reference count 1), so
 * no immutable tensor changes. Like torch's `param.copy_()`, an array obtained earlier from the
 * variable's `dataSync()` shows the new values.
 */

/** Records up to this size go through the staging buffer; bigger ones take a fresh array. */
export const IN_PLACE_MAX_BYTES = 64 << 20;
/** Staging buffers are dropped after this long unused. */
const STAGING_IDLE_MS = 2000;

const spares = new IdleSpare<Uint8Array>(STAGING_IDLE_MS, (b) => b.byteLength);

function takeStaging(size: number): Uint8Array {
  // Grow in powers of two so a model's mix of sizes settles on one buffer quickly.
  return spares.take(size, () => {
    let n = 1 << 16;
    while (n < size) n *= 2;
    return new Uint8Array(Math.min(n, IN_PLACE_MAX_BYTES));
  });
}

interface CpuBackendLike {
  refCount(dataId: object): number;
  data: { get(dataId: object): { values?: unknown } | undefined };
}

/** The CPU storage of a float32/int32 tensor of this tfjs, or undefined (another backend, or tfjs copy). */
function cpuStorage(t: tf.Tensor): { values: Float32Array | Int32Array; owners: number } | undefined {
  if ((t.dtype !== "float32" && t.dtype !== "int32") || t.isDisposed) return undefined;
  // Looked up without initialising anything: the tensor's backend must be the registered `cpu` one.
  const engine = tf.engine() as unknown as { registry?: Record<string, unknown>; state?: { tensorInfo?: { get(id: object): { backend?: unknown } | undefined } } };
  const cpu = engine.registry?.cpu as CpuBackendLike | undefined;
  if (!cpu || typeof cpu.refCount !== "function" || typeof cpu.data?.get !== "function") return undefined;
  const info = engine.state?.tensorInfo?.get(t.dataId);
  if (!info || info.backend !== cpu) return undefined;
  const values = cpu.data.get(t.dataId)?.values;
  const Expected = t.dtype === "float32" ? Float32Array : Int32Array;
  if (!(values instanceof Expected) || values.length !== t.size) return undefined;
  return { values, owners: cpu.refCount(t.dataId) };
}

/**
 * The storage of a float32 or int32 variable of tfjs's CPU backend, when it may be written in
 * place: no other tensor shares it and no async save holds it. Writing it changes the variable's
 * values at once (and those of arrays obtained from its `dataSync()`), without allocating; this is
 * how loads fill variables, and how sharded strategies gather full weights. Undefined for any
 * other backend or dtype, or when the variable must be assigned a fresh tensor instead.
 *
 * @example
 * ```ts
 * const bytes = writableStorage(variable);
 * if (bytes) bytes.set(newBytes); // same length: variable.size * 4
 * else variable.assign(tf.tensor(newValues, variable.shape));
 * ```
 */
export function writableStorage(variable: tf.Variable): Uint8Array | undefined {
  const storage = cpuStorage(variable);
  // Shared with another tensor, or held by an async save in flight: never written in place.
  if (!storage || storage.owners !== 1 || isPinned(storage.values.buffer)) return undefined;
  const { values } = storage;
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** The variable's own storage as bytes, when `source` may be written into it in place; else undefined. */
export function ownStorage(variable: tf.Variable, source: TensorSource): Uint8Array | undefined {
  if (variable.dtype !== source.dtype) return undefined;
  const bytes = writableStorage(variable);
  return bytes && bytes.byteLength === source.byteLength ? bytes : undefined;
}

/**
 * The current bytes of a tfjs CPU tensor, without copying, for async saves: tfjs never writes a
 * tensor's storage again (ops make new tensors; a variable's assign switches to new storage), and
 * loading in place leaves storage alone while a save holds it (`isPinned`).
 */
export function snapshotOf(t: tf.Tensor, dtype: DType): HostTensor | undefined {
  const storage = cpuStorage(t);
  if (!storage) return undefined;
  const { values } = storage;
  return new HostTensor(dtype, t.shape, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}

/**
 * Copies `source` into the storage of `variable` when that is safe (see above); returns false
 * (having changed nothing) when the caller must assign a fresh tensor instead. The variable is
 * written only after the whole record was read and verified, so a damaged record never reaches it.
 */
export async function copyIntoOwnStorage(variable: tf.Variable, source: TensorSource, key: string): Promise<boolean> {
  if (source.byteLength === 0 || !ownStorage(variable, source)) return false;
  if (source instanceof HostTensor) {
    // Bytes already in memory: nothing can fail halfway.
    ownStorage(variable, source)!.set(source.raw);
    return true;
  }
  if (source.byteLength > IN_PLACE_MAX_BYTES) return false;
  const staging = takeStaging(source.byteLength);
  try {
    const view = staging.subarray(0, source.byteLength);
    let bytes: Uint8Array = view;
    if (isStoredTensor(source)) {
      bytes = await source.readRange(0, source.byteLength, view);
    } else {
      let off = 0;
      for await (const chunk of source.chunks()) {
        if (off + chunk.byteLength > view.byteLength) break;
        view.set(chunk, off);
        off += chunk.byteLength;
      }
      if (off !== source.byteLength) throw new InvalidArgumentError(`${key}: the tensor streamed ${off === view.byteLength ? "more than" : off} of its ${source.byteLength} bytes; its chunks() disagrees with its dtype and shape.`, { subject: key });
    }
    writeVerified(variable, source, bytes.subarray(0, source.byteLength));
    return true;
  } finally {
    spares.give(staging);
  }
}

/**
 * Writes a record's verified bytes (exactly `source.byteLength`) into the variable's own storage,
 * checked again here because the variable may have been reassigned (or its storage shared) while
 * the record was being read; then it is assigned a fresh copy instead.
 */
export function writeVerified(variable: tf.Variable, source: TensorSource, bytes: Uint8Array): void {
  const storage = ownStorage(variable, source);
  if (storage) {
    storage.set(bytes);
    return;
  }
  const copy = bytes.slice().buffer;
  const fresh = tf.tensor(variable.dtype === "float32" ? new Float32Array(copy) : new Int32Array(copy), variable.shape, variable.dtype);
  try {
    variable.assign(fresh);
  } finally {
    fresh.dispose();
  }
}
