import { asOrderedDict, asTuple, PyGlobal } from "../../src/index.js";
import { pickle } from "../../src/formats/pickle/pickler.js";

/** A tensor in a hand-built legacy file: a view of `storage` (by key), optionally a storage view. */
export class LegacyTensor {
  constructor(
    readonly storage: string,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    /** Old torch's storage views: (view_key, element offset, element count) into the root. */
    readonly view?: [string, number, number],
  ) {}
}

export interface LegacyStorageSpec {
  readonly cls: string;
  readonly numel: number;
  readonly bytes: Uint8Array;
}

/**
 * Writes a legacy (pre-1.6) torch file by hand, the way torch's `_legacy_save` lays it out: five
 * pickles, then per storage key an int64 element count and the raw bytes.
 */
export function buildLegacy(object: unknown, storages: Record<string, LegacyStorageSpec>, opts: { littleEndian?: boolean; rebuild?: string } = {}): Uint8Array {
  const parts: Uint8Array[] = [
    pickle(0x1950a86a20f9469cfc6cn),
    pickle(1001),
    pickle({ protocol_version: 1001, little_endian: opts.littleEndian ?? true, type_sizes: { short: 2, int: 4, long: 4 } }),
    pickle(object, {
      persistentId: (v) => {
        if (!(v instanceof StorageMarker)) return undefined;
        const s = storages[v.tensor.storage]!;
        return asTuple(["storage", new PyGlobal("torch", s.cls), v.tensor.storage, "cpu", s.numel, v.tensor.view ? asTuple([...v.tensor.view]) : null]);
      },
      reduce: (v) => {
        if (!(v instanceof LegacyTensor)) return undefined;
        const args: unknown[] = [new StorageMarker(v), v.offset, asTuple([...v.shape]), asTuple([...v.stride])];
        if ((opts.rebuild ?? "_rebuild_tensor_v2") === "_rebuild_tensor_v2") args.push(false, asOrderedDict({}));
        return { module: "torch._utils", name: opts.rebuild ?? "_rebuild_tensor_v2", args };
      },
    }),
    pickle(Object.keys(storages)),
  ];
  for (const s of Object.values(storages)) {
    const count = new Uint8Array(8);
    new DataView(count.buffer).setBigInt64(0, BigInt(s.numel), true);
    parts.push(count, s.bytes);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

class StorageMarker {
  constructor(readonly tensor: LegacyTensor) {}
}

export function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}
