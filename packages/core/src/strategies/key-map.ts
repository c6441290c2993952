import { InvalidArgumentError } from "../errors.js";
import { isPlainObject } from "../tree/plain.js";
import { asOrderedDict, isOrderedDict } from "../tree/python-values.js";

/**
 * Renames or transforms the entries of a state dict before it is loaded: return the new key, or
 * `{ key, value }` to also replace the value (a transposed tensor), or `null` to drop the entry.
 *
 * @example
 * ```ts
 * // A PyTorch Linear (out × in) into a tfjs Dense kernel (in × out).
 * const map: KeyMap = async (key, value) =>
 *   key === "fc.weight" ? { key: "dense.kernel", value: await transpose2d(value as StoredTensor) }
 *   : key === "fc.bias" ? "dense.bias" : null;
 * ```
 */
export type KeyMap = (key: string, value: unknown) => string | { key: string; value: unknown } | null | undefined | Promise<string | { key: string; value: unknown } | null | undefined>;

/** Applies a {@link KeyMap} to the top-level entries of a state dict. */
export async function applyKeyMap(stateDict: unknown, map: KeyMap, where: string): Promise<Record<string, unknown>> {
  if (!isPlainObject(stateDict)) throw new InvalidArgumentError(`${where} is not a dictionary, so \`map\` cannot rename its keys.`, { subject: where });
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(stateDict)) {
    const r = await map(k, v);
    if (r === null || r === undefined) continue;
    const [key, value] = typeof r === "string" ? [r, v] : [r.key, r.value];
    if (typeof key !== "string") throw new InvalidArgumentError(`\`map\` returned a non-string key for "${k}".`, { subject: k });
    if (key in out) throw new InvalidArgumentError(`\`map\` maps two entries to "${key}" (the second is "${k}").`, { subject: key });
    out[key] = value;
  }
  return isOrderedDict(stateDict) ? asOrderedDict(out) : out;
}
