/**
 * Typed errors. Every message starts with `[savepoint]`, names the offending key or file,
 * and says how to fix the problem, so a user can act on it without reading our code.
 */

/** Base class of every error savepoint throws on purpose. */
export class SavepointError extends Error {
  /** The file, key or rank the error is about, when there is one. */
  readonly subject?: string;
  constructor(message: string, options?: { cause?: unknown; subject?: string }) {
    super(message.startsWith("[savepoint]") ? message : `[savepoint] ${message}`, { cause: options?.cause });
    this.name = new.target.name;
    this.subject = options?.subject;
  }
}

/** The checkpoint path does not exist (or is not the kind of entry expected). */
export class CheckpointNotFoundError extends SavepointError {}

/** A requested key or parameter is missing, unexpected, or of the wrong shape under `strict`. */
export class StrictLoadError extends SavepointError {}

/** The bytes of a checkpoint contradict themselves: truncated, bad CRC, offsets past the end. */
export class CorruptCheckpointError extends SavepointError {}

/** The file is well formed but uses something savepoint does not read or write. */
export class UnsupportedFormatError extends SavepointError {}

/** A pickle referenced a global outside the allow-list while `safe: "strict"` was requested. */
export class UnsafeCheckpointError extends SavepointError {}

/** The caller passed arguments that cannot work (bad filter, wrong types, unknown names). */
export class InvalidArgumentError extends SavepointError {}

/** An adapter, backend, strategy or IO object lacks members its interface requires. */
export class InterfaceError extends SavepointError {}

/** Writing the checkpoint failed (disk full, permissions); the previous checkpoint is intact. */
export class CheckpointWriteError extends SavepointError {}

/** A collective operation did not complete on every rank in time. */
export class CollectiveTimeoutError extends SavepointError {}
