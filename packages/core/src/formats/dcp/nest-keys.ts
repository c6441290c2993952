import { CorruptCheckpointError } from "../../errors.js";
import { isPlainObject, setOwn } from "../../tree/plain.js";

/**
 * Rebuilds the nested state from DCP's flattened keys the way torch's `unflatten_state_dict`
 * does: each key goes to its path (from `planner_data`), string steps making dicts and integer
 * steps lists (`("optimizer", "param_groups", 0, "lr")`).
 */
export function nestKeys(entries: Iterable<[readonly (string | number)[], unknown]>, where: string, maxIndex: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  const clash = (path: readonly (string | number)[]) =>
    new CorruptCheckpointError(`${where}: the key path (${path.map(String).join(", ")}) collides with another key's value. The checkpoint's metadata is damaged.`, { subject: where });
  for (const [path, value] of entries) {
    let container: Record<string, unknown> | unknown[] = root;
    for (let i = 0; i < path.length; i++) {
      const step = path[i]!;
      if (typeof step === "number" && step > maxIndex) {
        throw new CorruptCheckpointError(`${where}: the key path (${path.map(String).join(", ")}) uses the list index ${step}, more than the checkpoint has items.`, { subject: where });
      }
      if (Array.isArray(container) && typeof step !== "number") throw clash(path);
      const last = i === path.length - 1;
      const existing = get(container, step);
      if (last) {
        if (existing !== undefined) throw clash(path);
        put(container, step, value);
        break;
      }
      if (existing === undefined) {
        const fresh: Record<string, unknown> | unknown[] = typeof path[i + 1] === "number" ? [] : {};
        put(container, step, fresh);
        container = fresh;
      } else if (Array.isArray(existing) || isPlainObject(existing)) {
        container = existing;
      } else {
        throw clash(path);
      }
    }
  }
  return root;
}

function get(container: Record<string, unknown> | unknown[], step: string | number): unknown {
  // torch pads lists with None; a padded slot is free.
  if (Array.isArray(container)) return typeof step === "number" ? (container[step] ?? undefined) : undefined;
  const k = String(step);
  return Object.hasOwn(container, k) ? container[k] : undefined;
}

function put(container: Record<string, unknown> | unknown[], step: string | number, value: unknown): void {
  if (Array.isArray(container)) {
    const index = step as number; // nestKeys refuses names inside lists
    while (container.length < index) container.push(null);
    container[index] = value;
  } else {
    setOwn(container, String(step), value);
  }
}
