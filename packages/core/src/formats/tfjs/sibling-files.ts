import { CheckpointNotFoundError } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { dirname, resolveInside } from "../../io/paths.js";
import type { FormatReadContext } from "../format.js";

/** Opens the files a manifest names (weight shards), which live in the manifest's folder. */
export interface SiblingFiles {
  /** The folder names are resolved in. */
  readonly folder: string;
  /**
   * Opens `relative` inside the folder. Names that escape it are refused with
   * `CorruptCheckpointError`, missing files raise `CheckpointNotFoundError`; both name `where`.
   */
  open(relative: string, where: string): Promise<ByteSource>;
}

/**
 * Manifests name files beside themselves; `ctx.open` resolves names in the checkpoint's folder,
 * refuses escapes and keeps handles only while the load runs. This adds the manifest entry to the
 * refusal and not-found messages.
 */
export function siblingFiles(ctx: FormatReadContext): SiblingFiles {
  const folder = ctx.info.kind === "directory" ? ctx.path : dirname(ctx.path);
  return {
    folder,
    async open(relative, where) {
      // Checked here too so the refusal names the manifest entry, not only the folder.
      const full = resolveInside(folder, relative, where);
      return notFoundNamesManifest(() => ctx.open(relative), full, relative, where);
    },
  };
}

async function notFoundNamesManifest(open: () => Promise<ByteSource>, full: string, relative: string, where: string): Promise<ByteSource> {
  try {
    return await open();
  } catch (err) {
    if (!(err instanceof CheckpointNotFoundError)) throw err;
    throw new CheckpointNotFoundError(
      `${where} names the file ${JSON.stringify(relative)}, but ${full} does not exist. Put the missing file back beside the manifest (or re-download / re-export the checkpoint).`,
      { cause: err, subject: full },
    );
  }
}
