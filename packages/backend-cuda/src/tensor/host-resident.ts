import { isStoredTensor, type TensorSource } from "@savepoint/core";

/** True for a source whose bytes already sit in host memory, so reading it cannot fail halfway. */
export function isHostResident(source: TensorSource): boolean {
  const raw = (source as { raw?: unknown }).raw;
  return isStoredTensor(source) && raw instanceof Uint8Array;
}
