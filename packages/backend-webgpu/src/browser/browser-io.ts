import type { CheckpointIO } from "@savepoint/core";
import { IndexedDbIO, type IndexedDbIOOptions } from "./indexeddb-io.js";
import { OpfsIO } from "./opfs-io.js";
import { opfsRoot } from "./opfs-types.js";

/**
 * The best checkpoint storage this browser offers: the Origin Private File System where it can be
 * opened (and its files renamed, which atomic commits need), IndexedDB otherwise.
 *
 * @example
 * ```ts
 * const fabric = new Fabric({ backend: webgpuBackend(), io: await browserCheckpointIO() });
 * ```
 */
export async function browserCheckpointIO(options: { indexedDb?: IndexedDbIOOptions } = {}): Promise<CheckpointIO> {
  const root = await opfsRoot();
  const canMove = typeof (globalThis as { FileSystemFileHandle?: { prototype?: { move?: unknown } } }).FileSystemFileHandle?.prototype?.move === "function";
  return root && canMove ? new OpfsIO({ root }) : new IndexedDbIO(options.indexedDb);
}
