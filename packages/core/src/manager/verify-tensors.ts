import { isStoredTensor, type StoredTensor } from "../tensor/stored-tensor.js";

const CHUNK = 8 << 20;

/**
 * Reads every stored tensor among `values` (nested in plain objects and arrays) once, in bounded
 * chunks. A load replaces plain values with lazy tensors that read their bytes only when touched,
 * so a damaged record would otherwise surface in the middle of training instead of in `restore`;
 * reading a record to its end checks its CRC.
 */
export async function readAllTensors(values: readonly unknown[]): Promise<void> {
  const seen = new Set<unknown>();
  const todo: unknown[] = [...values];
  while (todo.length > 0) {
    const v = todo.pop();
    if (typeof v !== "object" || v === null || seen.has(v)) continue;
    seen.add(v);
    if (isStoredTensor(v)) {
      await drain(v);
    } else if (Array.isArray(v)) {
      todo.push(...v);
    } else if (v instanceof Map) {
      todo.push(...v.values());
    } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      todo.push(...Object.values(v));
    }
  }
}

async function drain(t: StoredTensor): Promise<void> {
  // The chunks themselves are dropped at once: only the reading (and its CRC check) matters.
  for await (const chunk of t.chunks(CHUNK)) void chunk;
}
