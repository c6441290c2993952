/**
 * Fuzzing the pickle machine: any bytes (random, opcode soup, or mutated real pickles from
 * Python's protocols 0–5 and torch files) give a value or one of savepoint's errors, never a crash,
 * a stack overflow or a hang; and every tree our pickler writes reads back unchanged.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Op } from "../../src/formats/pickle/opcodes.js";
import { pickle } from "../../src/formats/pickle/pickler.js";
import { unpickle } from "../../src/formats/pickle/unpickler.js";
import { torchGlobals } from "../../src/formats/torch/torch-globals.js";
import { asOrderedDict, asTuple, isOrderedDict, isTuple, withIntKeys } from "../../src/tree/python-values.js";
import { TIMEOUT_MS, corpus, mutated, outcome, params } from "./harness.js";

const seeds = corpus("pickle");

/** Opcodes with short random arguments: reaches states that mutation of real files rarely does. */
const opcodeSoup = fc
  .array(fc.tuple(fc.constantFrom(...Object.values(Op)), fc.uint8Array({ maxLength: 9 })), { maxLength: 60 })
  .map((ops) => {
    const parts = ops.flatMap(([op, arg]) => [op, ...arg]);
    return new Uint8Array([0x80, 2, ...parts, Op.STOP]);
  });

const input = fc.oneof({ weight: 5, arbitrary: mutated(seeds) }, { weight: 2, arbitrary: opcodeSoup }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) });

describe("fuzz: pickle machine", () => {
  it("hostile bytes: a value or a savepoint error, within a second", async () => {
    // The seeds themselves must load (they are the real-world baseline).
    for (const s of seeds) unpickle(s, { where: "seed", persistentLoad: (pid) => ({ pid }) });
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(input, fc.boolean(), fc.constantFrom("placeholder", "strict") as fc.Arbitrary<"placeholder" | "strict">, async (bytes, torch, safe) => {
        const r = await outcome(() =>
          unpickle(bytes, { where: "fuzz.pkl", safe, globals: torch ? torchGlobals("fuzz.pkl") : undefined, persistentLoad: (pid) => ({ pid }) }),
        );
        if ("error" in r) expect(r.error.message).toContain("fuzz.pkl");
        else accepted++;
      }),
      params(60_000),
    );
    // The inputs must reach the accepting paths too, not only the refusals.
    expect(accepted).toBeGreaterThan(0);
  }, TIMEOUT_MS);

  // Trees of what the pickler supports: None, bools, ints (to ±2^80), floats, str, bytes, lists,
  // tuples, dicts with str keys (plain or ordered) and int keys.
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof({ depthSize: "small", withCrossShrink: true }, tie("leaf"), tie("list"), tie("tuple"), tie("dict"), tie("intDict")),
    leaf: fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.bigInt({ min: -(1n << 80n), max: 1n << 80n }).filter((b) => b < -(2n ** 53n) || b > 2n ** 53n),
      fc.double({ noNaN: false }).filter((d) => !Object.is(d, -0)),
      fc.string({ unit: "grapheme" }),
      fc.uint8Array({ maxLength: 16 }),
    ),
    list: fc.array(tie("tree"), { maxLength: 4 }),
    tuple: fc.array(tie("tree"), { maxLength: 4 }).map((a) => asTuple(a)),
    dict: fc.tuple(fc.dictionary(fc.string({ unit: "grapheme" }).filter((k) => !/^(0|-?[1-9]\d*)$/.test(k)), tie("tree"), { maxKeys: 4 }), fc.boolean()).map(([d, ordered]) => (ordered ? asOrderedDict(d) : d)),
    intDict: fc.dictionary(fc.integer({ min: -1000, max: 1000 }).map(String), tie("tree"), { maxKeys: 3 }).map((d) => withIntKeys(d, Object.keys(d))),
  }));

  it("round trip: what the pickler writes, the machine reads back the same", async () => {
    await fc.assert(
      fc.asyncProperty(tree, async (value) => {
        const back = unpickle(pickle(value), { where: "roundtrip.pkl" }).value;
        expect(normalise(back)).toEqual(normalise(value));
      }),
      params(15_000),
    );
  }, TIMEOUT_MS);
});

/**
 * Tuple and OrderedDict marks are invisible to toEqual; make them part of the value. Integral
 * numbers compare by value: JS has one number type, so 2^53 goes out as a Python int and comes
 * back as a bigint (exact), and 1.0 goes out as the int 1.
 */
function normalise(v: unknown): unknown {
  if ((typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint") return `int:${BigInt(v)}`;
  if (Array.isArray(v)) return { [isTuple(v) ? "tuple" : "list"]: v.map(normalise) };
  if (v instanceof Uint8Array) return { bytes: Array.from(v) };
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = normalise(x);
    return { [isOrderedDict(v) ? "ordered" : "dict"]: o };
  }
  return v;
}
