import { flattenStateDict, isTensorSource, toWritableTree, type Backend, type DcpWriteItem, type TensorSource } from "@savepoint/core";
import { LocalRows, type PlacedState } from "./placed-state.js";

/** What one rank writes of a sharded checkpoint. */
export interface ShardedLayout {
  /** This rank's items for its `.distcp` file. */
  readonly items: DcpWriteItem[];
  /** Every flattened key and its path (the same on every rank). */
  readonly plannerData: Map<string, readonly (string | number)[]>;
  /** What goes into `meta.pt` (rank 0 writes it): everything that is not model or optimizer state. */
  readonly meta: Record<string, unknown>;
  /** Keys, kinds and full shapes: ranks whose layouts differ must not write one checkpoint. */
  readonly signature: string;
}

/**
 * Lays a placed state out the way Lightning's sharded FSDP checkpoint is: model and optimizer
 * state flattened to DCP items, each rank writing its rows of every sharded tensor as one chunk
 * (offsets `(start, 0, …)`), whole tensors and other values written once, by rank 0; the rest of
 * the state goes to `meta.pt`.
 */
export function layoutSharded(placed: PlacedState, rank: number, backend: Backend): ShardedLayout {
  const isTensor = (v: unknown) => v instanceof LocalRows || isTensorSource(v) || backend.isTensor(v);
  const source = (t: unknown): TensorSource => (isTensorSource(t) ? t : backend.toSource(t));
  const distributed: Record<string, unknown> = {};
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(placed.tree)) (placed.distributed.has(k) ? distributed : meta)[k] = v;

  const items: DcpWriteItem[] = [];
  const plannerData = new Map<string, readonly (string | number)[]>();
  const signature: string[] = [];
  for (const { key, path, value } of flattenStateDict(distributed, isTensor)) {
    plannerData.set(key, path);
    if (value instanceof LocalRows) {
      signature.push(`${key}:[${value.shape.join(",")}]`);
      // An empty share (more ranks than rows) writes no chunk; the others still cover the tensor.
      if (value.range.rows > 0) items.push({ kind: "tensor", key, size: value.shape, offsets: value.shape.map((_, d) => (d === 0 ? value.range.start : 0)), source: source(value.local) });
    } else if (isTensor(value)) {
      const s = source(value);
      signature.push(`${key}:whole[${s.shape.join(",")}]`);
      if (rank === 0) items.push({ kind: "tensor", key, size: s.shape, offsets: s.shape.map(() => 0), source: s });
    } else {
      signature.push(`${key}:value`);
      if (rank === 0) items.push({ kind: "bytes", key, value: toWritableTree(value, backend, key) });
    }
  }
  return { items, plannerData, meta: toWritableTree(meta, backend) as Record<string, unknown>, signature: signature.join("\n") };
}
