import { InvalidArgumentError } from "@savepoint/core";

/**
 * A checkpoint path as the segments of a browser store: `/` separated, `.` and empty segments
 * dropped. `..` is refused: browser stores have no parent of their root to climb to.
 */
export function pathParts(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new InvalidArgumentError(`path ${path} contains "..": browser storage paths are relative to the origin's root.`, { subject: path });
  return parts;
}

/** Marks in-progress writes; such names are hidden from listings. */
export const TMP_MARK = ".savepoint-tmp-";

/** A temporary name beside `name` for an atomic write. */
export function tempName(name: string): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return `${name}${TMP_MARK}${Date.now().toString(36)}-${rand}`;
}
