import { InvalidArgumentError } from "../../errors.js";
import { isTensorSource } from "../../tensor/tensor-source.js";
import { checkDepth, isPlainObject } from "../../tree/plain.js";
import { isTuple } from "../../tree/python-values.js";

/** One leaf of a flattened state: DCP's key (`optimizer.state.fc1.weight.exp_avg`) and its path. */
export interface FlatEntry {
  readonly key: string;
  /** The nesting the key came from (`planner_data`): names for dict steps, indices for list steps. */
  readonly path: readonly (string | number)[];
  readonly value: unknown;
}

type Mapping = Record<string, unknown> | Map<unknown, unknown>;

function isMapping(v: unknown): v is Mapping {
  return v instanceof Map || isPlainObject(v);
}

function entriesOf(v: Mapping): [string, unknown][] {
  return v instanceof Map ? [...v].map(([k, x]) => [String(k), x]) : Object.entries(v);
}

/**
 * torch's `flatten_state_dict`: dicts are walked (keys become strings, an empty dict leaves
 * nothing), a list is walked by index only when it holds a tensor or something walkable (so
 * `param_groups` is, `betas` and `params` are not), tuples and everything else are leaves. The key
 * is the path joined with dots; `planner_data` keeps the path so a reader can nest it back.
 *
 * @param isTensor which leaves are tensors (they make a list walkable). @default isTensorSource
 */
export function flattenStateDict(state: Record<string, unknown>, isTensor: (v: unknown) => boolean = isTensorSource): FlatEntry[] {
  const out: FlatEntry[] = [];
  const seen = new Map<string, readonly (string | number)[]>();

  const isTerminal = (v: unknown, depth: number): boolean => {
    checkDepth(depth, "the state");
    if (isMapping(v)) return false;
    if (!Array.isArray(v) || isTuple(v)) return true;
    return !v.some((x) => isTensor(x) || ((isMapping(x) || (Array.isArray(x) && !isTuple(x))) && !isTerminal(x, depth + 1)));
  };

  const visit = (path: (string | number)[], v: unknown): void => {
    checkDepth(path.length, path.join("."));
    if (!isTensor(v) && isMapping(v)) {
      for (const [k, x] of entriesOf(v)) visit([...path, k], x);
      return;
    }
    if (isTensor(v) || isTerminal(v, path.length)) {
      const key = path.join(".");
      const clash = seen.get(key);
      if (clash) {
        throw new InvalidArgumentError(`the state paths (${clash.join(", ")}) and (${path.join(", ")}) both flatten to the key "${key}", which a distributed checkpoint cannot tell apart. Rename one of them.`, { subject: key });
      }
      seen.set(key, path);
      out.push({ key, path, value: v });
      return;
    }
    (v as unknown[]).forEach((x, i) => visit([...path, i], x));
  };

  for (const [k, v] of Object.entries(state)) visit([k], v);
  return out;
}
