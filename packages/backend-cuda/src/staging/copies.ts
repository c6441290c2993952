import type { StagingSlot } from "./staging-pool.js";

/**
 * Starts copying bytes `[offset, offset + into.byteLength)` of one device tensor into `into` (a
 * view of `slot`'s buffer) on the slot's stream; resolves when the bytes are there. The addon
 * provides it in production, host `memcpy` in tests.
 */
export type CopyToHost = (offset: number, into: Uint8Array, slot: StagingSlot) => Promise<void>;

/** Starts copying `from` (a view of `slot`'s buffer) to byte `offset` of one device tensor. */
export type CopyToDevice = (from: Uint8Array, offset: number, slot: StagingSlot) => Promise<void>;

/** A started copy whose outcome is awaited later: never an unhandled rejection meanwhile. */
export interface InFlight {
  readonly slot: StagingSlot;
  readonly length: number;
  readonly done: Promise<unknown>;
}

/** Wraps a copy's promise so a failure is held as a value until someone awaits it. */
export function settle(p: Promise<void>): Promise<unknown> {
  return p.then(
    () => undefined,
    (error: unknown) => ({ failed: error }),
  );
}

/** Throws the held failure of a settled copy, if it failed. */
export function rethrow(outcome: unknown): void {
  if (typeof outcome === "object" && outcome !== null && "failed" in outcome) throw (outcome as { failed: unknown }).failed;
}
