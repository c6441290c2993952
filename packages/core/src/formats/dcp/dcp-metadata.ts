import type { DType } from "../../dtype.js";

/**
 * The model of a torch.distributed.checkpoint (DCP) checkpoint's `.metadata`, validated and
 * independent of the pickle it came from, so a writer can produce it as well as a reader consume
 * it. Keys are DCP's flattened state-dict keys (`model.fc1.weight`,
 * `optimizer.param_groups.0.lr`).
 */

/** Where one stored item's bytes are: `[offset, offset + length)` of a file in the checkpoint folder. */
export interface DcpStorageLocation {
  /** File name relative to the checkpoint folder, e.g. `__0_0.distcp` (checked not to escape it). */
  readonly file: string;
  readonly offset: number;
  readonly length: number;
  /** Transforms newer DCP applies to the bytes (e.g. compression); empty for plain data. */
  readonly transforms: readonly string[];
}

/** A box of a tensor saved by one rank: `sizes` elements from `offsets`, per dimension. */
export interface DcpChunk {
  readonly offsets: readonly number[];
  readonly sizes: readonly number[];
  readonly storage: DcpStorageLocation;
}

/** A tensor stored as chunks that together cover it exactly. */
export interface DcpTensorItem {
  readonly kind: "tensor";
  readonly key: string;
  readonly dtype: DType;
  /** The full (global) shape. */
  readonly size: readonly number[];
  readonly requiresGrad: boolean;
  readonly chunks: readonly DcpChunk[];
}

/** Anything else (optimizer hyper-parameters, extra state): a `torch.save` blob. */
export interface DcpBytesItem {
  readonly kind: "bytes";
  readonly key: string;
  readonly storage: DcpStorageLocation;
}

export type DcpItem = DcpTensorItem | DcpBytesItem;

export interface DcpMetadata {
  /** Every item by flattened key, in the order `.metadata` lists them. */
  readonly items: ReadonlyMap<string, DcpItem>;
  /**
   * How each flattened key nests (`"model.fc1.weight" → ["model", "fc1.weight"]`); integers are
   * list indices. Absent when the writer recorded none.
   */
  readonly plannerData?: ReadonlyMap<string, readonly (string | number)[]>;
  /** `StorageMeta.checkpoint_id`: where the writer saved it. */
  readonly checkpointId?: string;
  readonly saveId?: string;
  /** DCP's metadata version, e.g. "1.0.0". */
  readonly version?: string;
}

/** Name of the file that commits a DCP checkpoint (written last). */
export const DCP_METADATA_FILE = ".metadata";
/** Lightning's file beside the DCP data with everything but model and optimizer state. */
export const LIGHTNING_META_FILE = "meta.pt";
