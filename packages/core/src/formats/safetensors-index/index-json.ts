import { CorruptCheckpointError } from "../../errors.js";
import { parseStrictJson, StrictJsonError, type JsonValue } from "../safetensors/strict-json.js";

/** What a `*.safetensors.index.json` says: which shard file holds each tensor. */
export interface ShardIndex {
  /** `[tensor, shard file]` in the file's order. */
  readonly weightMap: readonly (readonly [string, string])[];
  /** `metadata.total_size` when present (informational: bytes of all tensors). */
  readonly totalSize?: number;
}

/** Indexes of the largest models are a few MB; more than this is not an index. */
export const MAX_INDEX_BYTES = 64 * 1024 * 1024;

/**
 * Parses index text. Duplicate keys are refused rather than resolved, since Python's json would
 * silently keep the last and two readers could disagree on where a tensor lives.
 */
export function parseShardIndex(text: string, file: string): ShardIndex {
  const fail = (what: string): never => {
    throw new CorruptCheckpointError(`${file} is not a valid sharded safetensors index: ${what}. Re-save the model (save_pretrained / save_torch_state_dict) or re-download the index.`, { subject: file });
  };
  let root: JsonValue;
  try {
    root = parseStrictJson(text);
  } catch (err) {
    if (err instanceof StrictJsonError) return fail(`it is not valid JSON (${err.message})`);
    throw err;
  }
  if (!(root instanceof Map)) return fail("it is not a JSON object");
  const metadata = root.get("metadata");
  if (metadata !== undefined && metadata !== null && !(metadata instanceof Map)) fail(`"metadata" is not an object`);
  const total = metadata instanceof Map ? metadata.get("total_size") : undefined;
  const weightMap = root.get("weight_map");
  if (!(weightMap instanceof Map)) return fail(`it has no "weight_map" object`);
  const entries: [string, string][] = [];
  for (const [tensor, shard] of weightMap) {
    if (typeof shard !== "string" || shard.length === 0) fail(`weight_map[${JSON.stringify(tensor)}] is ${JSON.stringify(shard)}, not a shard file name`);
    entries.push([tensor, shard as string]);
  }
  return { weightMap: entries, totalSize: typeof total === "number" ? total : undefined };
}

/**
 * The index text as transformers writes it (`json.dumps(..., indent=2, sort_keys=True)` plus a
 * newline): tensors sorted by code point, which is how Python sorts keys.
 */
export function encodeShardIndex(totalSize: number, weightMap: readonly (readonly [string, string])[]): string {
  const sorted = [...weightMap].sort((a, b) => compareCodePoints(a[0], b[0]));
  const lines = sorted.map(([t, s]) => `    ${JSON.stringify(t)}: ${JSON.stringify(s)}`);
  const map = lines.length ? `{\n${lines.join(",\n")}\n  }` : "{}";
  return `{\n  "metadata": {\n    "total_size": ${totalSize}\n  },\n  "weight_map": ${map}\n}\n`;
}

function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
