import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isStoredTensor, PyObject, type StoredTensor } from "../../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const REPO = resolve(here, "../../../..");
/** ../shared/fixtures beside the repository (CI lays a copy there). */
export const FIXTURES = resolve(REPO, "../shared/fixtures");

export interface ExpectedTensor {
  dtype: string;
  shape: number[];
  sum: number;
  nonfinite: number;
}
export type ExpectedEntry = ExpectedTensor | { value: unknown };
export interface ExpectedFile {
  entries: Record<string, ExpectedEntry>;
  reader: string;
  refused?: string;
}

export function loadExpected(): Record<string, ExpectedFile> {
  const file = join(FIXTURES, "expected.json");
  if (!existsSync(file)) throw new Error(`[test setup] ${file} is missing: the fixtures from ../shared/fixtures are required.`);
  return JSON.parse(readFileSync(file, "utf8"));
}

/** Flattens a loaded tree to dotted paths as expected.json names them. */
export function flatten(tree: unknown, prefix = "", out = new Map<string, unknown>()): Map<string, unknown> {
  if (isStoredTensor(tree)) out.set(prefix, tree);
  else if (Array.isArray(tree)) tree.forEach((v, i) => flatten(v, prefix ? `${prefix}.${i}` : String(i), out));
  else if (tree instanceof Map) for (const [k, v] of tree) flatten(v, prefix ? `${prefix}.${String(k)}` : String(k), out);
  else if (tree instanceof PyObject) {
    // Placeholders keep their data; walk it so tensors inside stay reachable.
    flatten(tree.state, prefix, out);
    tree.args.forEach((a, i) => flatten(a, `${prefix}#arg${i}`, out));
    tree.items?.forEach((a, i) => flatten(a, `${prefix}.${i}`, out));
    tree.entries?.forEach(([k, v]) => flatten(v, `${prefix}.${String(k)}`, out));
  } else if (tree !== null && typeof tree === "object" && !(tree instanceof Uint8Array) && Object.getPrototypeOf(tree) === Object.prototype) {
    for (const [k, v] of Object.entries(tree)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, tree);
  return out;
}

/** dtype, shape, float64 sum of finite values and count of non-finite ones, as expected.json records. */
export async function summarize(t: StoredTensor): Promise<ExpectedTensor> {
  const data = await t.data();
  let sum = 0;
  let nonfinite = 0;
  for (let i = 0; i < data.length; i++) {
    const v = Number(data[i]!);
    if (Number.isFinite(v)) sum += v;
    else nonfinite++;
  }
  return { dtype: t.dtype, shape: [...t.shape], sum, nonfinite };
}

/** Relative closeness for sums of float data. */
export function closeTo(a: number, b: number, rel = 1e-5): boolean {
  return Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));
}
