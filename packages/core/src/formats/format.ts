import type { ByteSource } from "../io/byte-source.js";
import type { CheckpointIO, PathInfo } from "../io/checkpoint-io.js";

/** How much a reader trusts a file's pickles: inert placeholders, or refuse unknown globals. */
export type SafetyMode = "placeholder" | "strict";

/** What a format's reader gets: where the checkpoint is and how to open its files. */
export interface FormatReadContext {
  readonly io: CheckpointIO;
  /** The checkpoint path (a file, or a directory for directory formats). */
  readonly path: string;
  readonly info: PathInfo;
  /**
   * Opens the checkpoint file, or with `relative` a file in the checkpoint's folder (inside a
   * directory checkpoint, or beside a file checkpoint such as a manifest). Files stay open while
   * the load runs and reopen per read afterwards. Relative paths that escape the folder are
   * refused with `CorruptCheckpointError`.
   */
  open(relative?: string): Promise<ByteSource>;
  /** Unknown pickle globals: inert placeholders (default) or an `UnsafeCheckpointError`. */
  readonly safe: SafetyMode;
  /** Check record CRCs while reading tensor bytes. @default true */
  readonly verify: boolean;
}

/** What a format's writer gets. */
export interface FormatWriteContext {
  readonly io: CheckpointIO;
  readonly path: string;
  /** Streaming chunk size in bytes. */
  readonly chunkBytes: number;
}

/** What detection sees: the path, what is there, and the first bytes of a file. */
export interface FormatProbe {
  readonly path: string;
  readonly info: PathInfo;
  /** Up to 64 leading bytes (files only). */
  readonly head?: Uint8Array;
  /** Directory entry names (directories only, when the IO can list). */
  readonly entries?: readonly string[];
}

/**
 * A checkpoint file format. Trees are nested plain objects and arrays whose leaves are numbers,
 * strings, booleans, null, bigints, Uint8Arrays, Python placeholders and tensors: formats write
 * `TensorSource` leaves and read back `LazyTensor` leaves whose bytes load on demand.
 *
 * Required: `name`, `extensions`, `detect`. Capabilities: `read`, `write`.
 */
export interface Format {
  readonly name: string;
  /** Lower-case file extensions (with dot) this format writes by default, e.g. `[".pt"]`. */
  readonly extensions: readonly string[];
  /** True when the probe looks like this format (magic bytes first, extension as a fallback). */
  detect(probe: FormatProbe): boolean;
  /** Decodes lazily: headers and metadata now, tensor bytes when touched. */
  read?(ctx: FormatReadContext): Promise<unknown>;
  /** Encodes a tree whose tensor leaves are `TensorSource`s, streaming, atomically. */
  write?(tree: unknown, ctx: FormatWriteContext): Promise<void>;
}

export const FORMAT_REQUIRED = ["name", "extensions", "detect"] as const;
export const FORMAT_OPTIONAL = ["read", "write"] as const;
