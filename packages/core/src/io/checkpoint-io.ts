import type { AtomicWrite, ByteSource } from "./byte-source.js";

/** What is stored at a path. */
export interface PathInfo {
  readonly kind: "file" | "directory";
  /** Size in bytes (files). */
  readonly size: number;
  /** Modification time in ms, when the storage knows it. */
  readonly mtimeMs?: number;
}

/**
 * Where checkpoint bytes go: local files, memory, browser storage, later object storage.
 * Implementations write streams and read ranges. Paths use `/` separators.
 *
 * Required: `stat`, `openRead`, `openWrite`. Optional capabilities are declared by presence:
 * `list`, `remove`, `mkdir` (directory checkpoints and the CheckpointManager need them).
 */
export interface CheckpointIO {
  /** A short name for messages, e.g. `"local files"`. */
  readonly name: string;
  /** Information about `path`, or `null` when nothing is there. */
  stat(path: string): Promise<PathInfo | null>;
  /** Opens a file for ranged reads. Throws `CheckpointNotFoundError` when missing. */
  openRead(path: string): Promise<ByteSource>;
  /** Starts an atomic write of `path`: nothing is visible there until `commit()`. */
  openWrite(path: string): Promise<AtomicWrite>;
  /** Names (not paths) of the entries of a directory. */
  list?(dir: string): Promise<string[]>;
  /** Removes a file or a directory tree. Missing paths are not an error. */
  remove?(path: string): Promise<void>;
  /** Creates a directory and its parents. */
  mkdir?(dir: string): Promise<void>;
  /** Renames atomically within the storage (directory commits). */
  rename?(from: string, to: string): Promise<void>;
  /**
   * The path with every symbolic link resolved, for storages that have links (local files), so
   * that a file named inside a checkpoint cannot lead out of its folder through a link.
   */
  realPath?(path: string): Promise<string>;
}
