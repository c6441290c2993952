/**
 * The Origin Private File System members used here, typed structurally: TypeScript's DOM library
 * lacks `move`, the async iterators and (outside worker typings) sync access handles.
 */
export interface OpfsFileHandle {
  readonly kind: "file";
  readonly name: string;
  getFile(): Promise<Blob & { readonly lastModified: number }>;
  createWritable(options?: { keepExistingData?: boolean }): Promise<OpfsWritable>;
  /** Dedicated workers only. */
  createSyncAccessHandle?(): Promise<OpfsSyncHandle>;
  /** Chromium: renames, replacing an existing file atomically. */
  move?(parent: OpfsDirectoryHandle, name: string): Promise<void>;
}

export interface OpfsDirectoryHandle {
  readonly kind: "directory";
  readonly name: string;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDirectoryHandle>;
  removeEntry(name: string, options?: { recursive?: boolean }): Promise<void>;
  entries(): AsyncIterable<[string, OpfsFileHandle | OpfsDirectoryHandle]>;
}

export interface OpfsWritable {
  write(data: ArrayBufferView | Blob): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}

export interface OpfsSyncHandle {
  write(data: ArrayBufferView, options?: { at?: number }): number;
  read(into: ArrayBufferView, options?: { at?: number }): number;
  getSize(): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}

/** The origin's OPFS root, or null where the browser has none (or refuses it, e.g. private windows). */
export async function opfsRoot(): Promise<OpfsDirectoryHandle | null> {
  const storage = (globalThis as { navigator?: { storage?: { getDirectory?: () => Promise<unknown> } } }).navigator?.storage;
  if (typeof storage?.getDirectory !== "function") return null;
  try {
    return (await storage.getDirectory()) as OpfsDirectoryHandle;
  } catch {
    return null;
  }
}

/** True for the DOMException OPFS throws for a missing entry or one of the other kind. */
export function isMissing(err: unknown): boolean {
  const name = (err as { name?: string } | null)?.name;
  return name === "NotFoundError" || name === "TypeMismatchError";
}
