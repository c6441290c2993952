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

/** What a DCP checkpoint folder holds: its metadata (and savepoint's checksum of it), the ranks' files, Lightning's meta.pt, temporaries. */
const DCP_ENTRY = /^(\.metadata|\.metadata\.crc32|meta\.pt|__\d+_\d+\.distcp|\..*savepoint-tmp-.*)$/;

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

/** The folders earlier saves of `target` left beside it: staging folders and set-aside old copies, by save id. */
async function leftovers(io: CheckpointIO, target: string): Promise<{ staging: Map<string, string>; old: Map<string, string> }> {
  const staging = new Map<string, string>();
  const old = new Map<string, string>();
  const parent = dirname(target);
  let names: string[];
  try {
    names = await io.list!(parent);
  } catch {
    return { staging, old }; // no folder yet: nothing left over
  }
  const prefix = `.${basename(target)}`;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    const path = parent === "." ? name : joinPath(parent, name);
    if (rest.startsWith(STAGING)) staging.set(rest.slice(STAGING.length), path);
    else if (rest.startsWith(OLD)) old.set(rest.slice(OLD.length), path);
  }
  return { staging, old };
}

/**
 * Where the checkpoint `target` is while a save's swap is cut short between its two renames (the
 * old folder set aside, the new one not yet in place): the complete staging folder, else the
 * complete old copy. Undefined when `target` exists or nothing complete is beside it.
 */
export async function interruptedDcpSwap(io: CheckpointIO, target: string): Promise<string | undefined> {
  if (!canStageDcpFolder(io) || (await io.stat(target))) return undefined;
  const { staging, old } = await leftovers(io, target);
  // Metadata goes in last, so a staging folder that has it was about to replace the old copy.
  for (const path of [...staging.values(), ...old.values()]) if (await complete(io, path)) return path;
  return undefined;
}

/** Removes a folder so that no moment shows it complete with files missing: its metadata goes first. */
export async function discardDcpFolder(io: CheckpointIO, folder: string): Promise<void> {
  await io.remove!(joinPath(folder, DCP_METADATA_FILE)).catch(() => {});
  await io.remove!(folder).catch(() => {});
}

/**
 * Run by rank 0 before save `keepId` writes: brings `target` back to what `load(target)` shows and
 * removes everything else earlier saves left beside it. A swap cut short between its renames is
 * finished (`target` missing: the complete staging folder, else the old copy, is renamed into
 * place); then staging folders (complete ones too: their save never returned and `target` is the
 * checkpoint load shows) and old copies are removed. Afterwards only save `keepId`'s folder is there.
 */
export async function recoverDcpFolder(io: CheckpointIO, target: string, keepId: string): Promise<void> {
  if (!canStageDcpFolder(io)) return;
  const interrupted = await interruptedDcpSwap(io, target);
  if (interrupted) await io.rename!(interrupted, target);
  const { staging, old } = await leftovers(io, target);
  const targetComplete = await complete(io, target);
  for (const [id, path] of staging) if (id !== keepId) await discardDcpFolder(io, path);
  // An old copy is the only checkpoint there is while target is incomplete (a folder of the user's).
  if (targetComplete) for (const [id, path] of old) if (id !== keepId) await discardDcpFolder(io, path);
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
  await discardDcpFolder(io, old);
}
