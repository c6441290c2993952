import { itemSize } from "../../dtype.js";
import { CorruptCheckpointError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { TorchStorageType, type StorageRef } from "../torch/torch-globals.js";

/** A storage as the legacy format stores it: a root storage with its own data section. */
interface RootStorage {
  readonly key: string;
  /** The type of the first reference; the data section counts elements of this type. */
  readonly type: TorchStorageType & { dtype: NonNullable<TorchStorageType["dtype"]> };
  readonly numel: number;
  /** Absolute offset of the first data byte, known once the headers are walked. */
  dataOffset?: number;
}

/**
 * The storages of a legacy (pre-zip) torch file. The object pickle names them by persistent id
 * `("storage", cls, root_key, location, root_numel, view_metadata)`; their bytes follow the last
 * pickle as `int64 numel` + raw bytes per key, in the order of the key list. References are
 * handed out while unpickling and resolve their offsets once `locate` has walked the headers;
 * tensor bytes are read only when a tensor is touched.
 */
export class LegacyStorages {
  readonly #roots = new Map<string, RootStorage>();
  /** One reference per root key and type, or per view key. */
  readonly #refs = new Map<string, StorageRef>();

  constructor(
    private readonly source: ByteSource,
    private readonly where: string,
  ) {}

  /** The pickle's `persistent_load`. */
  readonly load = (pid: unknown): unknown => {
    if (!Array.isArray(pid)) throw this.#corrupt("the object pickle has a persistent id that is not a tuple");
    // torch.save(module) records each module class with its source: ("module", cls, file, source).
    if (pid[0] === "module") return pid[1];
    if (pid[0] !== "storage" || (pid.length !== 6 && pid.length !== 5)) throw this.#corrupt(`the object pickle has the unknown persistent id kind ${JSON.stringify(String(pid[0]))}`);
    const [, type, key, , numel, view] = pid as unknown[];
    if (!(type instanceof TorchStorageType) || type.dtype === undefined || typeof key !== "string" || !Number.isSafeInteger(numel) || (numel as number) < 0) {
      throw this.#corrupt("the object pickle refers to a storage with a malformed persistent id");
    }
    let root = this.#roots.get(key);
    if (!root) {
      root = { key, type: type as RootStorage["type"], numel: numel as number };
      this.#roots.set(key, root);
    }
    const size = itemSize(type.dtype);
    const rootBytes = root.numel * itemSize(root.type.dtype);
    if (view === null || view === undefined) {
      const id = `${key}\n${type.name}`;
      let ref = this.#refs.get(id);
      if (!ref) {
        const r = root;
        ref = { type, numel: Math.floor(rootBytes / size), read: (o, l, into) => this.#read(r, o, l, into), where: `${this.where}:storage ${key}` };
        this.#refs.set(id, ref);
      }
      return ref;
    }
    // Old torch shared storages as views (view_key, offset, size) into a root storage.
    if (!Array.isArray(view) || typeof view[0] !== "string" || !Number.isSafeInteger(view[1]) || !Number.isSafeInteger(view[2])) {
      throw this.#corrupt(`storage ${key} has malformed view metadata`);
    }
    const [viewKey, offset, count] = view as [string, number, number];
    if (offset < 0 || count < 0 || (offset + count) * size > rootBytes) {
      throw this.#corrupt(`storage view ${viewKey} covers elements [${offset}, ${offset + count}) of storage ${key}, which holds ${root.numel}`);
    }
    let ref = this.#refs.get(`view\n${viewKey}`);
    if (!ref) {
      const r = root;
      ref = { type, numel: count, read: (o, l, into) => this.#read(r, offset * size + o, l, into), where: `${this.where}:storage ${key}[${offset}:${offset + count}]` };
      this.#refs.set(`view\n${viewKey}`, ref);
    }
    return ref;
  };

  /**
   * Finds each storage's data: walks the `numel` headers from `start` in key order, skipping the
   * data itself. Throws when a key is unknown, a count disagrees with the pickle, or the file is
   * shorter than the storages it announces.
   */
  async locate(keys: unknown, start: number): Promise<void> {
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) throw this.#corrupt("the storage key list is not a list of str");
    let pos = start;
    for (const key of keys as string[]) {
      const root = this.#roots.get(key);
      if (!root) throw this.#corrupt(`the key list names storage ${key}, which the object does not use`);
      if (root.dataOffset !== undefined) throw this.#corrupt(`the key list names storage ${key} twice`);
      if (pos + 8 > this.source.size) throw this.#truncated(key);
      const header = await this.source.read(pos, 8);
      const count = new DataView(header.buffer, header.byteOffset, 8).getBigInt64(0, true);
      if (count !== BigInt(root.numel)) throw this.#corrupt(`storage ${key} has ${count} elements in the file but ${root.numel} in the pickle`);
      root.dataOffset = pos + 8;
      pos = root.dataOffset + root.numel * itemSize(root.type.dtype);
      if (pos > this.source.size) throw this.#truncated(key);
    }
    for (const root of this.#roots.values()) {
      if (root.dataOffset === undefined) throw this.#corrupt(`storage ${root.key} is used by the object but has no data in the file`);
    }
  }

  async #read(root: RootStorage, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const bytes = root.numel * itemSize(root.type.dtype);
    if (root.dataOffset === undefined || offset < 0 || offset + length > bytes) {
      throw this.#corrupt(`a tensor reads bytes [${offset}, ${offset + length}) of storage ${root.key} (${bytes} bytes)`);
    }
    return this.source.read(root.dataOffset + offset, length, into);
  }

  #truncated(key: string): CorruptCheckpointError {
    return this.#corrupt(`the file ends inside the data of storage ${key} (${this.source.size} bytes in all); it is truncated`);
  }

  #corrupt(why: string): CorruptCheckpointError {
    return new CorruptCheckpointError(`${this.where}: ${why}. The legacy torch file is damaged; re-save or re-download it.`, { subject: this.where });
  }
}
