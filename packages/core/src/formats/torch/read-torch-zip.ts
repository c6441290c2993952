import { itemSize } from "../../dtype.js";
import { CorruptCheckpointError, UnsupportedFormatError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import type { SafetyMode } from "../format.js";
import { chain } from "../globals-chain.js";
import { numpyGlobals } from "../numpy/numpy-globals.js";
import { unpickle } from "../pickle/unpickler.js";
import { readZip } from "../zip/reader.js";
import { StorageRecord } from "./storage-record.js";
import { torchGlobals, TorchStorageType, type StorageRef } from "./torch-globals.js";

export interface TorchZipReadOptions {
  /** Names the file (or the segment of one) in every message. */
  readonly where: string;
  readonly safe: SafetyMode;
  /** Check record CRCs while reading tensor bytes. */
  readonly verify: boolean;
}

/**
 * Decodes a `torch.save` zip from any byte source: a checkpoint file, or a segment of one (each
 * chunk of a DCP `.distcp` file is a complete small torch zip). Headers and `data.pkl` are read
 * now; tensors are lazy views over their `data/<key>` records.
 */
export async function readTorchZip(source: ByteSource, options: TorchZipReadOptions): Promise<unknown> {
  const where = options.where;
  const archive = await readZip(source);
  const first = archive.entries[0];
  if (!first) throw new CorruptCheckpointError(`${where} is an empty zip archive, not a torch checkpoint.`, { subject: where });
  const slash = first.name.indexOf("/");
  const prefix = slash < 0 ? "" : first.name.slice(0, slash + 1);
  const pkl = archive.get(`${prefix}data.pkl`);
  if (!pkl) throw new UnsupportedFormatError(`${where} is a zip archive without ${prefix}data.pkl, so not a torch checkpoint.`, { subject: where });
  const byteorder = archive.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(await source.read(byteorder.dataOffset, Math.min(byteorder.size, 16)));
    if (order !== "little") throw new UnsupportedFormatError(`${where} stores ${order}-endian tensors; savepoint reads little-endian files only.`, { subject: where });
  }
  const pklRecord = new StorageRecord(source, `${where}:${pkl.name}`, pkl.dataOffset, pkl.size, pkl.crc32, options.verify);
  const pklBytes = await pklRecord.read(0, pkl.size);
  const storages = new Map<string, StorageRef>();
  const numpy = numpyGlobals(where);
  const { value } = unpickle(pklBytes, {
    where: `${where}:${pkl.name}`,
    safe: options.safe,
    globals: chain(torchGlobals(where), numpy),
    persistentLoad: (pid) => {
      if (!Array.isArray(pid) || pid[0] !== "storage" || !(pid[1] instanceof TorchStorageType) || typeof pid[2] !== "string" || typeof pid[4] !== "number") {
        throw new CorruptCheckpointError(`${where}: data.pkl refers to a storage with a malformed persistent id.`, { subject: where });
      }
      const [, type, key, , count] = pid as [string, TorchStorageType, string, string, number];
      const cached = storages.get(key);
      if (cached) return cached;
      const name = `${prefix}data/${key}`;
      const entry = archive.get(name);
      if (!entry) throw new CorruptCheckpointError(`${where}: data.pkl refers to the record ${name}, which the archive lacks.`, { subject: name });
      const bytes = type.dtype ? count * itemSize(type.dtype) : count;
      if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > entry.size) {
        throw new CorruptCheckpointError(`${where}: storage ${name} claims ${count} elements (${bytes} bytes) but the record holds ${entry.size} bytes.`, { subject: name });
      }
      const record = new StorageRecord(source, `${where}:${name}`, entry.dataOffset, entry.size, entry.crc32, options.verify);
      const ref: StorageRef = { type, numel: count, read: (o, l, into) => record.read(o, l, into), where: `${where}:${name}` };
      storages.set(key, ref);
      return ref;
    },
  });
  return numpy.finish(value);
}
