import { randomUUID } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Collective } from "@savepoint/core";

/**
 * Whether the ranks of a collective can pass weights through files: each writes into its own
 * temporary folder and every other rank reads it, at page-cache speed, instead of every byte being
 * relayed twice by the collective's coordinator. True when the ranks run on one machine (or share
 * their temporary folder). Decided once per collective by a probe: every rank writes a random
 * token into a file, and files are used only if every rank reads every other rank's token back.
 */
const decided = new WeakMap<Collective, Promise<boolean>>();

/** A fresh file name in this rank's temporary folder, for what the other ranks will read. */
export function exchangeFile(): string {
  return join(tmpdir(), `savepoint-gather-${randomUUID()}`);
}

export function filesReachEveryRank(collective: Collective, tag: string): Promise<boolean> {
  let d = decided.get(collective);
  if (!d) {
    d = probe(collective, tag);
    decided.set(collective, d);
  }
  return d;
}

async function probe(collective: Collective, tag: string): Promise<boolean> {
  if (collective.worldSize === 1) return false;
  const mine = { file: exchangeFile(), token: randomUUID() };
  const wrote = await writeFile(mine.file, mine.token).then(
    () => true,
    () => false,
  );
  try {
    const all = await collective.allGather(`${tag}: probe files`, wrote ? mine : null);
    const reads = await Promise.all(all.map((o) => (o === null ? false : readFile(o.file, "utf8").then((t) => t === o.token, () => false))));
    const everyone = await collective.allGather(`${tag}: probe files read`, reads.every(Boolean));
    return everyone.every(Boolean);
  } finally {
    // Each reader has finished with this file once the second all-gather above returned (or failed).
    await rm(mine.file, { force: true });
  }
}
