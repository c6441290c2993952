import { CheckpointWriteError } from "../../errors.js";
import type { CheckpointIO } from "../../io/checkpoint-io.js";
import { basename, dirname, joinPath } from "../../io/paths.js";
import { DCP_METADATA_FILE } from "./dcp-metadata.js";

/**
 * A DCP checkpoint is a folder written by several ranks. Writing it in place would let a save
 * that dies half-way spoil the checkpoint already at that path, so the ranks write into a hidden
 * sibling folder, the metadata goes in last, and the folder is then renamed into place. Storages
 * without `rename` get the folder written in place instead (the metadata still last).
 */

const STAGING = ".savepoint-dcp-";
const OLD = ".savepoint-old-";

function sibling(target: string, mark: string, id: string): string {
  const parent = dirname(target);
  const name = `.${basename(target)}${mark}${id}`;
  return parent === "." ? name : joinPath(parent, name);
}

/** True when `io` can stage a folder and rename it into place. */
export function canStageDcpFolder(io: CheckpointIO): boolean {
  return typeof io.rename === "function" && typeof io.remove === "function" && typeof io.list === "function";
}

/** The hidden sibling folder the ranks of save `saveId` write `target` into. */
export function dcpStagingFolder(target: string, saveId: string): string {
  return sibling(target, STAGING, saveId);
}

/** What a DCP checkpoint folder holds: its metadata, the ranks' files, Lightning's meta.pt, temporaries. */
const DCP_ENTRY = /^(\.metadata|meta\.pt|__\d+_\d+\.distcp|\..*savepoint-tmp-.*)$/;

/**
 * Refuses a target that a checkpoint folder must not replace: a file, or a folder holding
 * anything but a DCP checkpoint's files (a folder of the user's, named by mistake).
 */
export async function checkDcpTarget(io: CheckpointIO, target: string): Promise<void> {
  const existing = await io.stat(target);
  if (!existing) return;
  if (existing.kind === "file") {
    throw new CheckpointWriteError(`cannot save the sharded checkpoint folder ${target}: a file is there. Remove it, or choose another path.`, { subject: target });
  }
  const foreign = io.list ? (await io.list(target)).filter((n) => !DCP_ENTRY.test(n)) : [];
  if (foreign.length > 0) {
    throw new CheckpointWriteError(
      `cannot save the sharded checkpoint folder ${target}: the folder there holds other files (${foreign.slice(0, 3).map((n) => JSON.stringify(n)).join(", ")}${foreign.length > 3 ? ", …" : ""}), and saving would replace it. Choose another path.`,
      { subject: target },
    );
  }
}

async function complete(io: CheckpointIO, folder: string): Promise<boolean> {
  return (await io.stat(joinPath(folder, DCP_METADATA_FILE)))?.kind === "file";
}

/**
 * Removes what earlier saves of `target` left beside it, except the folders of save `keepId`: a
 * staging folder without metadata (a save that died), and an old copy set aside by a swap once the
 * target is a complete checkpoint again. A complete staging folder (a swap interrupted before it
 * was renamed into place) is left alone: it may be the newest checkpoint there is.
 */
export async function removeStaleDcpFolders(io: CheckpointIO, target: string, keepId: string): Promise<void> {
  if (!canStageDcpFolder(io)) return;
  const parent = dirname(target);
  let names: string[];
  try {
    names = await io.list!(parent);
  } catch {
    return; // no folder yet: nothing stale
  }
  const prefix = `.${basename(target)}`;
  const targetComplete = await complete(io, target);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    const path = parent === "." ? name : joinPath(parent, name);
    const stale = rest.startsWith(STAGING) ? rest.slice(STAGING.length) !== keepId && !(await complete(io, path)) : rest.startsWith(OLD) ? rest.slice(OLD.length) !== keepId && targetComplete : false;
    if (stale) await io.remove!(path).catch(() => {});
  }
}

/**
 * Puts the complete folder `staging` (metadata written) at `target`: a rename when nothing is
 * there; over an older checkpoint folder, the old one is renamed aside first and removed after.
 */
export async function publishDcpFolder(io: CheckpointIO, staging: string, target: string, saveId: string): Promise<void> {
  await checkDcpTarget(io, target);
  if (!(await io.stat(target))) {
    await io.rename!(staging, target);
    return;
  }
  const old = sibling(target, OLD, saveId);
  await io.rename!(target, old);
  await io.rename!(staging, target);
  await io.remove!(old);
}
