import { UnsupportedFormatError } from "../../errors.js";
import { isPlainObject } from "../../tree/plain.js";
import type { Format, FormatProbe, FormatReadContext } from "../format.js";
import { chain } from "../globals-chain.js";
import { numpyGlobals } from "../numpy/numpy-globals.js";
import { unpickle } from "../pickle/unpickler.js";
import { legacyTorchGlobals } from "./legacy-globals.js";
import { LegacyStorages } from "./legacy-storages.js";
import { PickleStream } from "./pickle-stream.js";

const MAGIC = 0x1950a86a20f9469cfc6cn;
const PROTOCOL = 1001;
/** The first pickle, `pickle.dumps(MAGIC, 2)`: PROTO 2, LONG1 of 10 bytes, the magic little-endian. */
const HEAD = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/**
 * The format `torch.save` wrote before torch 1.6 (and still writes with
 * `_use_new_zipfile_serialization=False`): five pickles in a row (magic number, protocol version,
 * sys info, the object, the storage keys), then each storage's element count and raw bytes.
 * Read only: savepoint writes torch's zip format.
 */
export const torchLegacyFormat: Format = {
  name: "torch-legacy",
  // Never chosen for writing: it has no `write`, and no extension of its own.
  extensions: [],

  detect(probe: FormatProbe): boolean {
    return probe.info.kind === "file" && !!probe.head && HEAD.every((b, i) => probe.head![i] === b);
  },

  async read(ctx: FormatReadContext): Promise<unknown> {
    const where = ctx.path;
    const source = await ctx.open();
    const stream = new PickleStream(source, where);
    const numpy = numpyGlobals(where);
    const globals = chain(legacyTorchGlobals(where), numpy);
    const storages = new LegacyStorages(source, where);
    const load = async (what: string, persistentLoad?: (pid: unknown) => unknown): Promise<unknown> =>
      unpickle(await stream.next(what), { where: `${where} (${what} pickle)`, safe: ctx.safe, globals, persistentLoad }).value;

    if ((await load("magic number")) !== MAGIC) throw unsupported(where, "does not start with torch's magic number");
    const protocol = await load("protocol version");
    if (protocol !== PROTOCOL) throw unsupported(where, `has legacy protocol version ${String(protocol)}; savepoint reads version ${PROTOCOL}`);
    const sysInfo = await load("sys info");
    if (!isPlainObject(sysInfo) || sysInfo.little_endian !== true) {
      throw unsupported(where, "was written on a big-endian machine (or says nothing about its byte order); savepoint reads little-endian files");
    }
    const object = await load("object", storages.load);
    const keys = await load("storage keys");
    await storages.locate(keys, stream.position);
    return numpy.finish(object);
  },
};

function unsupported(where: string, why: string): UnsupportedFormatError {
  return new UnsupportedFormatError(`${where} ${why}. Re-save it with a current PyTorch (torch.save) to read it.`, { subject: where });
}
