import type { DType } from "../dtype.js";
import type { TensorSource } from "../tensor/tensor-source.js";

/**
 * A tensor library's view of its tensors: how to recognise them, stream their bytes to the host,
 * and write checkpoint bytes back into existing variables. Core never asks which library it is.
 *
 * Required: `name`, `isTensor`, `describe`, `toSource`, `assign`, `create`.
 * Optional: `isAssignable` (tensors that can be updated in place, e.g. variables; default: none),
 * `assignAll` (many assigns at once, reading ahead), `dispose` (release a tensor made by `create`).
 */
export interface Backend {
  /** A short name for messages, e.g. `"cpu"`. */
  readonly name: string;
  /** True when `value` is a tensor of this backend. */
  isTensor(value: unknown): boolean;
  /** dtype and shape of a tensor of this backend, in savepoint's dtype names. */
  describe(tensor: unknown): { dtype: DType; shape: readonly number[] };
  /** A source streaming the tensor's bytes device → host in bounded chunks. */
  toSource(tensor: unknown): TensorSource;
  /**
   * Writes `source` into the existing `target` in place (a variable), converting dtype where the
   * backend stores another (float16 → float32 ...). Throws `StrictLoadError` on a shape mismatch,
   * naming `key`.
   */
  assign(target: unknown, source: TensorSource, key: string): Promise<void>;
  /** Creates a new backend tensor holding `source` (used where a plain tensor is replaced). */
  create(source: TensorSource, key: string): Promise<unknown>;
  /** True when `value` can be updated in place by `assign` (variables). */
  isAssignable?(value: unknown): boolean;
  /**
   * Does `assign` for every item in order, free to read later items while earlier ones are
   * written. It stops at the first failure: the targets before it hold their new values, it and
   * those after it are untouched. Without it, callers assign one item after another.
   */
  assignAll?(items: readonly AssignItem[]): Promise<void>;
}

/** One `assign` of {@link Backend.assignAll}. */
export interface AssignItem {
  readonly target: unknown;
  readonly source: TensorSource;
  /** Names the tensor in messages. */
  readonly key: string;
}

/** Assigns every item in order, through `assignAll` where the backend has it. */
export async function assignAll(backend: Backend, items: readonly AssignItem[]): Promise<void> {
  if (typeof backend.assignAll === "function") return backend.assignAll(items);
  for (const { target, source, key } of items) await backend.assign(target, source, key);
}

/** Names of the members every Backend must have, for {@link checkInterface}. */
export const BACKEND_REQUIRED = ["name", "isTensor", "describe", "toSource", "assign", "create"] as const;
export const BACKEND_OPTIONAL = ["isAssignable", "assignAll"] as const;
