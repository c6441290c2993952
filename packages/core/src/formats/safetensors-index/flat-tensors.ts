import { InvalidArgumentError } from "../../errors.js";
import { isTensorSource, type TensorSource } from "../../tensor/tensor-source.js";
import { checkDepth, isPlainObject } from "../../tree/plain.js";

/**
 * The named tensors of a state dict: top-level tensors, and nested objects flattened with `.`
 * (`{ fc: { weight } }` → `fc.weight`). A sharded safetensors checkpoint holds nothing else.
 */
export function flatTensors(tree: unknown): { name: string; tensor: TensorSource }[] {
  const useTorch = "Save it to a .pt/.ckpt file instead, or save only the model's tensors here.";
  if (!isPlainObject(tree)) {
    throw new InvalidArgumentError(`a sharded safetensors checkpoint stores an object of named tensors, got ${describe(tree)}. ${useTorch}`);
  }
  const out: { name: string; tensor: TensorSource }[] = [];
  const names = new Set<string>();
  const visit = (obj: Record<string, unknown>, prefix: string, depth: number): void => {
    checkDepth(depth, prefix);
    for (const [key, value] of Object.entries(obj)) {
      const name = prefix === "" ? key : `${prefix}.${key}`;
      if (isTensorSource(value)) {
        if (names.has(name)) throw new InvalidArgumentError(`two tensors flatten to the name ${JSON.stringify(name)}; rename one of them.`, { subject: name });
        names.add(name);
        out.push({ name, tensor: value });
      } else if (isPlainObject(value)) {
        visit(value, name, depth + 1);
      } else {
        throw new InvalidArgumentError(`${name} is ${describe(value)}, not a tensor: sharded safetensors checkpoints hold only tensors. ${useTorch}`, { subject: name });
      }
    }
  };
  visit(tree, "", 0);
  return out;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return `a ${v.constructor?.name ?? "object"}`;
  return `a ${typeof v}`;
}
