import { CheckpointNotFoundError, CorruptCheckpointError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { crc32, crcHex } from "../zip/crc32.js";

/**
 * DCP's `.metadata` is a bare pickle: torch keeps no checksum of it, and a flipped byte in it can
 * move a chunk or change a dtype without any error. savepoint writes the CRC-32 of the `.metadata`
 * it commits into this file beside it (8 hex digits), before the metadata itself, and checks it on
 * load when it is there. torch and Lightning ignore the file; folders without it load unchecked.
 */
export const DCP_METADATA_CRC_FILE = ".metadata.crc32";

/** The sidecar's content for metadata `bytes`. */
export function metadataChecksum(bytes: Uint8Array): Uint8Array {
  return new TextEncoder().encode(`${crcHex(crc32(bytes))}\n`);
}

/**
 * Throws CorruptCheckpointError when the folder's `.metadata.crc32` (opened by `open`) disagrees
 * with the metadata `bytes` read from `where`. Resolves to whether there was one to check: a
 * folder savepoint wrote, or (false) one torch or Lightning wrote.
 */
export async function checkMetadataChecksum(bytes: Uint8Array, where: string, open: () => Promise<ByteSource>): Promise<boolean> {
  let sidecar: ByteSource;
  try {
    sidecar = await open();
  } catch (err) {
    if (err instanceof CheckpointNotFoundError) return false;
    throw err;
  }
  const text = new TextDecoder().decode(await sidecar.read(0, Math.min(sidecar.size, 64))).trim();
  const actual = crcHex(crc32(bytes));
  if (!/^[0-9a-f]{8}$/.test(text) || text !== actual) {
    throw new CorruptCheckpointError(
      `${where} is damaged: its CRC-32 is ${actual} but ${DCP_METADATA_CRC_FILE} beside it records ${JSON.stringify(text.slice(0, 16))}. Restore the checkpoint folder from a copy (or load with verify: false to read it anyway).`,
      { subject: where },
    );
  }
  return true;
}
