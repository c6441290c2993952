import { InvalidArgumentError } from "../errors.js";
import type { Collective, CollectiveOptions } from "./collective.js";

/** A numeric array all-reduced element-wise. */
export type ReducibleArray = Float32Array | Float64Array | Int32Array;

/**
 * Element-wise sum or mean of every rank's arrays (e.g. gradients), built on `allGather`: every
 * rank adds the contributions in rank order, so every rank gets bit-identical results. Meant for
 * small models (the arrays travel through the collective); returns new arrays of the input types.
 *
 * @example
 * ```ts
 * const [avgKernel, avgBias] = await allReduce(collective, `grads step ${step}`, [kernelGrad, biasGrad], "mean");
 * ```
 */
export async function allReduce<T extends ReducibleArray>(collective: Collective, tag: string, arrays: readonly T[], op: "sum" | "mean" = "sum", options?: CollectiveOptions): Promise<T[]> {
  if (!Array.isArray(arrays)) throw new InvalidArgumentError(`allReduce takes an array of typed arrays, got ${typeof arrays}.`);
  const all = await collective.allGather<readonly T[]>(tag, arrays, options);
  return arrays.map((mine, i) => {
    const out = new (mine.constructor as new (n: number) => T)(mine.length);
    for (let r = 0; r < all.length; r++) {
      const theirs = all[r]?.[i];
      if (!theirs || theirs.length !== mine.length || theirs.constructor !== mine.constructor) {
        throw new InvalidArgumentError(`allReduce \`${tag}\`: rank ${r} passed ${theirs ? `a ${theirs.constructor.name} of ${theirs.length}` : "nothing"} as array ${i}, rank ${collective.rank} a ${mine.constructor.name} of ${mine.length}. Every rank must pass arrays of the same types and lengths.`);
      }
      for (let k = 0; k < out.length; k++) out[k] = (out[k] as number) + (theirs[k] as number);
    }
    if (op === "mean") for (let k = 0; k < out.length; k++) out[k] = (out[k] as number) / all.length;
    return out;
  });
}
