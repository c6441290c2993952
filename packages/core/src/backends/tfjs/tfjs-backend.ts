import * as tf from "@tensorflow/tfjs-core";
import type { DType } from "../../dtype.js";
import { itemSize } from "../../dtype.js";
import { InvalidArgumentError } from "../../errors.js";
import { DEFAULT_CHUNK_BYTES, numel, TENSOR_SOURCE, type TensorSource } from "../../tensor/tensor-source.js";
import { bytesOf } from "../../tensor/typed-arrays.js";
import type { AssignItem, Backend } from "../backend.js";
import { assignPipelined } from "./assign-pipeline.js";
import { copyIntoOwnStorage, snapshotOf } from "./in-place.js";
import { checkShape, dtypeOfTfjs, isTfjsTensor, isTfjsVariable, tfjsDTypeFor, valuesFor } from "./tfjs-tensors.js";

/**
 * Tensors of TensorFlow.js. Reading uses `dataSync()`, which on the CPU backend returns the
 * tensor's own storage, so saving streams views of it without a copy. Loading a CPU variable that
 * owns its storage (no other tensor shares it) reads the record into a reused host buffer and,
 * once it is complete and verified, copies it into the variable's storage, as torch's
 * `load_state_dict` copies into parameters; otherwise the record is read straight into a fresh
 * typed array that is assigned to the variable.
 */
export class TfjsBackend implements Backend {
  readonly name: string;

  /** @param name the tfjs backend this instance is for, for messages. @default "cpu" */
  constructor(name = "cpu") {
    this.name = name;
  }

  isTensor(value: unknown): boolean {
    return isTfjsTensor(value);
  }

  isAssignable(value: unknown): boolean {
    return isTfjsVariable(value);
  }

  describe(tensor: unknown): { dtype: DType; shape: readonly number[] } {
    const t = this.#tensor(tensor);
    return { dtype: dtypeOfTfjs(t.dtype, "tensor"), shape: t.shape };
  }

  toSource(tensor: unknown): TensorSource {
    const t = this.#tensor(tensor);
    const dtype = dtypeOfTfjs(t.dtype, "tensor");
    const byteLength = numel(t.shape) * itemSize(dtype);
    return {
      [TENSOR_SOURCE]: true,
      dtype,
      shape: t.shape,
      byteLength,
      async *chunks(chunkBytes = DEFAULT_CHUNK_BYTES) {
        if (t.isDisposed) throw new InvalidArgumentError(`a tensor in the state was disposed before the save finished; keep tensors alive until save() resolves.`);
        // bool is stored as one byte per element in tfjs, as in torch.
        const bytes = bytesOf(t.dataSync() as Float32Array | Int32Array | Uint8Array);
        for (let off = 0; off < bytes.byteLength; off += chunkBytes) yield bytes.subarray(off, Math.min(off + chunkBytes, bytes.byteLength));
      },
      snapshot() {
        return snapshotOf(t, dtype);
      },
    } as TensorSource;
  }

  async assign(target: unknown, source: TensorSource, key: string): Promise<void> {
    if (!isTfjsVariable(target)) throw new InvalidArgumentError(`${key} is not a tf.Variable; only variables can be loaded in place.`, { subject: key });
    checkShape(target.shape, source.shape, key);
    if (await copyIntoOwnStorage(target, source, key)) return;
    const values = await valuesFor(source, tfjsDTypeFor(dtypeOfTfjs(target.dtype, key)), key);
    const fresh = tf.tensor(values, target.shape, target.dtype);
    try {
      target.assign(fresh);
    } finally {
      fresh.dispose();
    }
  }

  /** Reads later records while earlier ones are copied into their variables (see assign-pipeline.ts). */
  async assignAll(items: readonly AssignItem[]): Promise<void> {
    await assignPipelined(items, ({ target, source, key }) => this.assign(target, source, key));
  }

  async create(source: TensorSource, key: string): Promise<tf.Tensor> {
    const dtype = tfjsDTypeFor(source.dtype);
    return tf.tensor(await valuesFor(source, dtype, key), [...source.shape], dtype);
  }

  #tensor(value: unknown): tf.Tensor {
    if (!isTfjsTensor(value)) throw new InvalidArgumentError(`expected a tfjs tensor, got ${typeof value}.`);
    return value;
  }
}

/**
 * The CPU backend: tensors of tfjs-core's `cpu` backend (`@tensorflow/tfjs-backend-cpu`).
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * const fabric = new Fabric({ backend: cpuBackend() });
 * ```
 */
export function cpuBackend(): Backend {
  return new TfjsBackend("cpu");
}
