import { InvalidArgumentError } from "../errors.js";

/**
 * How a managed folder is laid out: `step-000000100.ckpt` per checkpoint, a sidecar
 * `step-000000100.ckpt.meta.json` with its metrics, and the `latest` pointer. Names carry the step so
 * that a listing alone recovers the history, even when sidecars or the pointer are lost.
 */

/** The pointer file: JSON naming the newest committed checkpoint, for other processes to follow. */
export const POINTER_NAME = "latest";

const SIDECAR_SUFFIX = ".meta.json";
const PREFIX = "step-";
/** Nine digits keep names in step order in plain `ls` output up to a billion steps. */
const PAD = 9;

/** The file (or folder) name of the checkpoint of `step`. */
export function checkpointName(step: number, extension: string): string {
  return `${PREFIX}${String(step).padStart(PAD, "0")}${extension}`;
}

/** The sidecar holding the metrics of checkpoint `name`. */
export function sidecarName(name: string): string {
  return `${name}${SIDECAR_SUFFIX}`;
}

/** The step of a checkpoint name written with `extension`, or undefined for any other entry. */
export function parseCheckpointName(name: string, extension: string): number | undefined {
  if (!name.startsWith(PREFIX) || !name.endsWith(extension)) return undefined;
  const digits = name.slice(PREFIX.length, name.length - extension.length);
  if (!/^\d{1,16}$/.test(digits)) return undefined;
  const step = Number(digits);
  return Number.isSafeInteger(step) ? step : undefined;
}

/** The checkpoint name a sidecar belongs to, or undefined when `name` is not a sidecar of `extension`. */
export function parseSidecarName(name: string, extension: string): string | undefined {
  if (!name.endsWith(SIDECAR_SUFFIX)) return undefined;
  const base = name.slice(0, -SIDECAR_SUFFIX.length);
  return parseCheckpointName(base, extension) === undefined ? undefined : base;
}

/** Checks a user-given extension: it ends every name, so it must be a plain `.suffix`. */
export function checkExtension(extension: unknown): string {
  if (typeof extension !== "string" || !/^\.[A-Za-z0-9][A-Za-z0-9._-]*$/.test(extension) || extension.endsWith(SIDECAR_SUFFIX)) {
    throw new InvalidArgumentError(`\`extension\` must be a file extension such as ".ckpt" or ".safetensors", got ${JSON.stringify(extension)}.`);
  }
  return extension;
}
