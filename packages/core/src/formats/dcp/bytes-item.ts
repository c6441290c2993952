import { CorruptCheckpointError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { chain } from "../globals-chain.js";
import { numpyGlobals } from "../numpy/numpy-globals.js";
import { unpickle } from "../pickle/unpickler.js";
import { readTorchZip } from "../torch/read-torch-zip.js";
import { torchGlobals } from "../torch/torch-globals.js";
import type { SafetyMode } from "../format.js";

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
const PICKLE_PROTO = 0x80;

/**
 * The value of a DCP bytes item (optimizer hyper-parameters, Megatron's extra state): DCP
 * `torch.save`s such values into the file, so a torch zip is decoded with the torch reader and a
 * bare pickle with the same allow-list; anything else (a `BytesIO` a module saved itself) stays
 * the bytes it is. In a folder savepoint wrote (`zipOnly`: its metadata checksum was verified),
 * every item is a torch zip, so anything else is damage, not raw bytes.
 */
export async function readBytesItem(segment: ByteSource, options: { where: string; safe: SafetyMode; verify: boolean; zipOnly?: boolean }): Promise<unknown> {
  const bytes = await segment.read(0, segment.size);
  if (ZIP_MAGIC.every((b, i) => bytes[i] === b)) return readTorchZip(segment, options);
  if (options.zipOnly) {
    throw new CorruptCheckpointError(`${options.where} is damaged: savepoint wrote it as a torch zip, but it does not start like one. Restore the checkpoint folder from a copy.`, { subject: options.where });
  }
  if (bytes[0] === PICKLE_PROTO) {
    const numpy = numpyGlobals(options.where);
    try {
      const { value, end } = unpickle(bytes, { where: options.where, safe: options.safe, globals: chain(torchGlobals(options.where), numpy) });
      if (end === bytes.length) return numpy.finish(value);
    } catch (err) {
      // Only "this is not a pickle" keeps the bytes; a refused global (strict mode) still stops the load.
      if (!(err instanceof CorruptCheckpointError)) throw err;
    }
  }
  return bytes;
}
