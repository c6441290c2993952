import { CorruptCheckpointError } from "../errors.js";

/** Joins path segments with `/`, collapsing duplicate separators. */
export function joinPath(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/").replace(/\/{2,}/g, "/");
}

/** The folder part of a path (`.` for a bare name). */
export function dirname(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/** The last segment of a path. */
export function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/**
 * Resolves `relative` inside the checkpoint folder `root`, refusing anything that could leave it
 * (absolute paths, `..`, backslashes, NUL): file names inside metadata come from the file.
 */
export function resolveInside(root: string, relative: string, where: string): string {
  const bad =
    relative === "" ||
    relative.startsWith("/") ||
    /^[A-Za-z]:/.test(relative) ||
    relative.includes("\\") ||
    relative.includes("\0") ||
    relative.split("/").some((s) => s === ".." || s === "." || s === "");
  if (bad) {
    throw new CorruptCheckpointError(`${where} names the file ${JSON.stringify(relative)}, which is outside the checkpoint folder ${root}; refusing to open it. The checkpoint is damaged or hostile.`, { subject: where });
  }
  return joinPath(root, relative);
}
