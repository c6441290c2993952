/**
 * Random-access reading of one stored file. Formats read headers and tensor records
 * through this, so nothing needs the whole file in memory.
 */
export interface ByteSource {
  /** A name for errors: usually the file path. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Reads exactly `length` bytes at `offset`. Throws `CorruptCheckpointError` naming the file when
   * the range passes the end. Fills `into` when given (it must hold `length` bytes).
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Releases the handle. Reading after close is an error. */
  close(): Promise<void>;
}

/** A sequential writer of bytes. */
export interface ByteSink {
  /** Bytes written so far. */
  readonly position: number;
  /** Appends `chunk`. The caller may reuse `chunk` once the promise resolves. */
  write(chunk: Uint8Array): Promise<void>;
}

/** A file being written that becomes visible only on `commit`. */
export interface AtomicWrite extends ByteSink {
  /** Flushes and publishes the file under its final name, replacing an older one atomically. */
  commit(): Promise<void>;
  /** Removes the partial file; the previous version at the path is untouched. */
  abort(): Promise<void>;
}
