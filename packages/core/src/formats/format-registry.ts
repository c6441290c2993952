import { checkInterface } from "../capabilities.js";
import { CheckpointNotFoundError, InvalidArgumentError, UnsupportedFormatError } from "../errors.js";
import type { CheckpointIO } from "../io/checkpoint-io.js";
import type { Format, FormatProbe } from "./format.js";
import { FORMAT_OPTIONAL, FORMAT_REQUIRED } from "./format.js";

/** Chooses the format for a path: by extension when writing, by content when reading. */
export class FormatRegistry {
  readonly formats: readonly Format[];

  /** @param formats in order of preference; the first writable one is the default for unknown extensions. */
  constructor(formats: readonly Format[]) {
    for (const f of formats) checkInterface("Format", f, FORMAT_REQUIRED, FORMAT_OPTIONAL);
    this.formats = formats;
  }

  /** The format to write `path` with: by its extension, else the first writable format (torch). */
  forWrite(path: string, name?: string): Format {
    if (name !== undefined) {
      const f = this.formats.find((x) => x.name === name && x.write);
      if (!f) throw new InvalidArgumentError(`no writable format named "${name}"; writable formats: ${this.#writable().join(", ")}.`);
      return f;
    }
    const lower = path.toLowerCase();
    const byExt = this.formats
      .filter((f) => f.write)
      .flatMap((f) => f.extensions.map((e) => [e, f] as const))
      .sort((a, b) => b[0].length - a[0].length)
      .find(([e]) => lower.endsWith(e));
    const f = byExt?.[1] ?? this.formats.find((x) => x.write);
    if (!f) throw new InvalidArgumentError(`no writable format is registered.`);
    return f;
  }

  /** Inspects what is at `path` and returns the format that reads it. */
  async forRead(io: CheckpointIO, path: string): Promise<{ format: Format; probe: FormatProbe }> {
    const info = await io.stat(path);
    if (!info) throw new CheckpointNotFoundError(`no checkpoint at ${path}: nothing exists there. Check the path.`, { subject: path });
    let probe: FormatProbe;
    if (info.kind === "file") {
      const src = await io.openRead(path);
      try {
        probe = { path, info, head: await src.read(0, Math.min(64, src.size)) };
      } finally {
        await src.close();
      }
    } else {
      probe = { path, info, entries: io.list ? await io.list(path) : undefined };
    }
    const format = this.formats.find((f) => f.read && f.detect(probe));
    if (!format) {
      const readable = this.formats.filter((f) => f.read).map((f) => f.name);
      const what = info.kind === "directory" ? "a directory that is not a checkpoint savepoint reads" : info.size === 0 ? "an empty file" : "a file in no format savepoint reads";
      throw new UnsupportedFormatError(`${path} is ${what} (readable formats: ${readable.join(", ")}).`, { subject: path });
    }
    return { format, probe };
  }

  #writable(): string[] {
    return this.formats.filter((f) => f.write).map((f) => f.name);
  }
}
