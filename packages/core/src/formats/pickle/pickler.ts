/**
 * Writes a value tree as a protocol-2 pickle using only the opcodes `torch.load(weights_only=True)`
 * accepts. The walk is iterative (one generator per open container), so deep trees cannot
 * overflow the stack; objects met twice are written once and recalled through the memo, the
 * memo PUT being spliced in after the fact so unshared objects cost nothing.
 */
import { InvalidArgumentError } from "../../errors.js";
import { intKeysOf, isOrderedDict, isTuple, PyGlobal, PyObject } from "../../tree/python-values.js";
import { ByteWriter } from "./byte-writer.js";
import { isPlainObject } from "./dict-items.js";
import { isNewObj, newObjKwargs } from "./newobj-mark.js";
import { Op } from "./opcodes.js";
import { SETITEMS_BATCH as BATCH, writeInt, writeLong1 } from "./op-writer.js";
import { pyStateOf } from "./py-state.js";

export interface ReduceSpec {
  module: string;
  name: string;
  args: unknown[];
  state?: unknown;
}

export interface PickleOptions {
  /** Return a non-undefined value to write `value` as a persistent id (BINPERSID of that value). */
  persistentId?: (value: unknown) => unknown;
  /** Return a spec to write `value` as GLOBAL module.name + args tuple + REDUCE (+ BUILD state). */
  reduce?: (value: unknown) => ReduceSpec | undefined;
  where?: string;
}

/** Pickles `value` (protocol 2). Throws InvalidArgumentError naming the key path of anything unsupported. */
export function pickle(value: unknown, options: PickleOptions = {}): Uint8Array {
  return new Pickler(options).dump(value);
}

/** LONG1 holds at most 255 bytes: integers in [-2^2039, 2^2039). LONG4 is not accepted by torch. */
const LONG1_LIMIT = 1n << 2039n;
const LONE_SURROGATE = /\p{Cs}/u;
const INT_KEY = /^(0|-?[1-9]\d*)$/;
const encoder = new TextEncoder();

/** How a child was reached: a dict key, a list index, or a fixed description. */
type Label = string | number | { text: string };
interface Child {
  value: unknown;
  label: Label;
  /** The persistent id itself is not offered to persistentId again. */
  noPid: boolean;
}
type Steps = Generator<Child, void, undefined>;
interface Frame {
  steps: Steps;
  obj: object | undefined;
  label: Label | null;
  /** Output offset right after `obj` was created. */
  memo: number;
}

const OPEN = -1;

const PID_LABEL = { text: "(persistent id)" };
const STATE_LABEL = { text: ".state" };
const KEY_LABEL = { text: " (a key)" };

class Pickler {
  private readonly w = new ByteWriter();
  private readonly frames: Frame[] = [];
  /**
   * Every object met so far: OPEN while its frame is open (meeting it again is a cycle), then
   * the output offset right after it was created, where a PUT goes if it turns out to be shared.
   */
  private readonly seen = new Map<object, number>();
  /** Memo slots, by object, or by a global's `module\nname\n`. */
  private readonly memoId = new Map<unknown, number>();
  /** Globals written so far: the output offset right after each, for a memo PUT when met again. */
  private readonly globals = new Map<string, number>();
  private readonly puts: { offset: number; data: Uint8Array }[] = [];
  private readonly prefix: string;

  constructor(private readonly options: PickleOptions) {
    this.prefix = options.where ? `${options.where}: ` : "";
  }

  dump(root: unknown): Uint8Array {
    this.w.byte2(Op.PROTO, 2);
    const first = this.open(root, null, false);
    if (first) this.frames.push(first);
    while (this.frames.length > 0) {
      const top = this.frames[this.frames.length - 1] as Frame;
      const step = top.steps.next();
      if (step.done) {
        this.frames.pop();
        if (top.obj) this.seen.set(top.obj, top.memo);
        continue;
      }
      const child = step.value;
      const frame = this.open(child.value, child.label, child.noPid);
      if (frame) this.frames.push(frame);
    }
    this.w.byte(Op.STOP);
    return this.w.finish(this.puts);
  }

  /** Writes a leaf value at once, or returns the frame that writes a container. */
  private open(value: unknown, label: Label | null, noPid: boolean): Frame | undefined {
    const isObject = (typeof value === "object" && value !== null) || typeof value === "function";
    if (isObject) {
      const seen = this.seen.get(value);
      if (seen === OPEN) throw this.cycle(label);
      if (seen !== undefined) {
        this.recall(value, seen);
        return undefined;
      }
    }
    const { persistentId, reduce } = this.options;
    if (!noPid && persistentId) {
      const pid = persistentId(value);
      if (pid !== undefined) return this.frame(value, label, this.persistent(value, pid));
    }
    if (reduce) {
      const spec = reduce(value);
      if (spec !== undefined) return this.frame(value, label, this.reduced(value, spec));
    }
    switch (typeof value) {
      case "boolean":
        this.w.byte(value ? Op.NEWTRUE : Op.NEWFALSE);
        return undefined;
      case "number":
        if (Number.isInteger(value) && !Object.is(value, -0)) this.int(value);
        else {
          this.w.byte(Op.BINFLOAT);
          this.w.f64be(value);
        }
        return undefined;
      case "bigint":
        this.long(value, label);
        return undefined;
      case "string":
        this.string(value, label);
        return undefined;
      case "object":
        break;
      default:
        throw this.unsupported(label, value);
    }
    if (value === null) {
      this.w.byte(Op.NONE);
      return undefined;
    }
    if (Array.isArray(value)) {
      return this.frame(value, label, isTuple(value) ? this.tuple(value, (i) => i, true) : this.list(value));
    }
    if (value instanceof Uint8Array) {
      this.bytes(value);
      this.seen.set(value, this.w.length);
      return undefined;
    }
    if (value instanceof PyGlobal) {
      this.global(value.module, value.name, label);
      this.seen.set(value, this.w.length);
      return undefined;
    }
    if (value instanceof Map) return this.frame(value, label, this.mapDict(value));
    if (value instanceof Set) return this.frame(value, label, this.set(value));
    if (value instanceof PyObject) return this.frame(value, label, this.pyObject(value));
    if (isPlainObject(value)) return this.frame(value, label, this.objectDict(value));
    throw this.unsupported(label, value);
  }

  private frame(value: unknown, label: Label | null, steps: Steps): Frame {
    const obj = (typeof value === "object" && value !== null) || typeof value === "function" ? (value as object) : undefined;
    if (obj) this.seen.set(obj, OPEN);
    return { steps, obj, label, memo: OPEN };
  }

  // ---- memo --------------------------------------------------------------------------------

  /** Marks the point right after the open frame's object was created. */
  private memoAt(): void {
    (this.frames[this.frames.length - 1] as Frame).memo = this.w.length;
  }

  /** A second reference: give the object a memo slot (PUT spliced in at its creation) and GET it. */
  private recall(obj: unknown, offset: number): void {
    let id = this.memoId.get(obj);
    if (id === undefined) {
      id = this.memoId.size;
      this.memoId.set(obj, id);
      const data = id < 256 ? Uint8Array.of(Op.BINPUT, id) : Uint8Array.of(Op.LONG_BINPUT, id & 0xff, (id >> 8) & 0xff, (id >> 16) & 0xff, id >>> 24);
      this.puts.push({ offset, data });
    }
    if (id < 256) this.w.byte2(Op.BINGET, id);
    else {
      this.w.byte(Op.LONG_BINGET);
      this.w.u32le(id);
    }
  }

  // ---- leaves ------------------------------------------------------------------------------

  private int(v: number): void {
    writeInt(this.w, v);
  }

  /** LONG1: torch.load(weights_only=True) accepts no LONG4, so at most 255 bytes. */
  private long(v: bigint, label: Label | null): void {
    if (v >= LONG1_LIMIT || v < -LONG1_LIMIT) {
      throw new InvalidArgumentError(
        `${this.prefix}the integer at ${this.path(label)} needs more than 255 bytes; torch.load(weights_only=True) cannot read such integers. Store it as a string.`,
        { subject: this.options.where },
      );
    }
    writeLong1(this.w, v);
  }

  private string(s: string, label: Label | null): void {
    if (LONE_SURROGATE.test(s)) {
      throw new InvalidArgumentError(
        `${this.prefix}the string at ${this.path(label)} contains a lone UTF-16 surrogate, which is not valid UTF-8. Fix the string (String.prototype.toWellFormed) before saving.`,
        { subject: this.options.where },
      );
    }
    this.w.byte(Op.BINUNICODE);
    this.w.utf8WithLength(s);
  }

  /** bytes as Python 3 writes them under protocol 2: `_codecs.encode(latin-1 str, "latin1")`. */
  private bytes(data: Uint8Array): void {
    this.global("_codecs", "encode", null);
    let high = 0;
    for (const b of data) if (b >= 0x80) high++;
    const utf8 = new Uint8Array(data.length + high);
    let n = 0;
    for (const b of data) {
      if (b < 0x80) utf8[n++] = b;
      else {
        utf8[n++] = 0xc0 | (b >> 6);
        utf8[n++] = 0x80 | (b & 0x3f);
      }
    }
    this.w.byte(Op.BINUNICODE);
    this.w.u32le(utf8.length);
    this.w.bytes(utf8);
    this.string("latin1", null);
    this.w.byte(Op.TUPLE2);
    this.w.byte(Op.REDUCE);
  }

  /** GLOBAL once per class, as CPython writes it; later uses recall it from the memo. */
  private global(module: unknown, name: unknown, label: Label | null): void {
    const key = `${String(module)}\n${String(name)}\n`;
    const at = this.globals.get(key);
    if (at !== undefined) {
      this.recall(key, at);
      return;
    }
    if (typeof module !== "string" || typeof name !== "string" || !module || !name || /[\n\r]/.test(module + name)) {
      throw new InvalidArgumentError(
        `${this.prefix}the global ${String(module)}.${String(name)} at ${this.path(label)} is not a valid Python module and name.`,
        { subject: this.options.where },
      );
    }
    this.w.byte(Op.GLOBAL);
    this.w.bytes(encoder.encode(key));
    this.globals.set(key, this.w.length);
  }

  // ---- containers --------------------------------------------------------------------------

  private *list(items: unknown[]): Steps {
    this.w.byte(Op.EMPTY_LIST);
    this.memoAt();
    const c: Child = { value: undefined, label: 0, noPid: false };
    const count = items.length;
    for (let i = 0; i < count; i++) {
      this.batchStart(i, count);
      c.value = items[i];
      c.label = i;
      yield c;
      this.batchEnd(i, count, Op.APPEND, Op.APPENDS);
    }
  }

  /** A tuple of `items`; `memoise` when it is the frame's value (not a call's arguments). */
  private *tuple(items: unknown[], label: (i: number) => Label, memoise = false): Steps {
    const n = items.length;
    const c: Child = { value: undefined, label: 0, noPid: false };
    if (n === 0) this.w.byte(Op.EMPTY_TUPLE);
    else {
      if (n > 3) this.w.byte(Op.MARK);
      for (let i = 0; i < n; i++) {
        c.value = items[i];
        c.label = label(i);
        yield c;
      }
      this.w.byte(n === 1 ? Op.TUPLE1 : n === 2 ? Op.TUPLE2 : n === 3 ? Op.TUPLE3 : Op.TUPLE);
    }
    if (memoise) this.memoAt();
  }

  private dictStart(dict: object): void {
    if (isOrderedDict(dict)) {
      this.global("collections", "OrderedDict", null);
      this.w.byte(Op.EMPTY_TUPLE);
      this.w.byte(Op.REDUCE);
    } else {
      this.w.byte(Op.EMPTY_DICT);
    }
    this.memoAt();
  }

  private *objectDict(dict: Record<string, unknown>): Steps {
    this.dictStart(dict);
    const ints = intKeysOf(dict);
    const keys = Object.keys(dict);
    const count = keys.length;
    const c: Child = { value: undefined, label: "", noPid: false };
    for (let i = 0; i < count; i++) {
      const key = keys[i] as string;
      this.batchStart(i, count);
      if (ints.has(key) && INT_KEY.test(key)) {
        const n = Number(key);
        if (Number.isSafeInteger(n)) this.int(n);
        else this.long(BigInt(key), key);
      } else {
        this.string(key, key);
      }
      c.value = dict[key];
      c.label = key;
      yield c;
      this.batchEnd(i, count, Op.SETITEM, Op.SETITEMS);
    }
    yield* this.dictState(dict);
  }

  private *mapDict(map: Map<unknown, unknown>): Steps {
    this.dictStart(map);
    yield* this.pairs(map.entries(), map.size, "dict");
    yield* this.dictState(map);
  }

  /** An OrderedDict's attributes (torch's `_metadata`), as read; a plain dict cannot have any. */
  private *dictState(dict: object): Steps {
    const state = pyStateOf(dict);
    if (state === undefined || state === null || !isOrderedDict(dict)) return;
    yield { value: state, label: STATE_LABEL, noPid: false };
    this.w.byte(Op.BUILD);
  }

  /** Key/value pairs, batched as SETITEMS. */
  private *pairs(entries: Iterator<[unknown, unknown]>, count: number, what: string): Steps {
    const c: Child = { value: undefined, label: "", noPid: false };
    for (let i = 0; i < count; i++) {
      const next = entries.next();
      if (next.done) break;
      const [key, value] = next.value;
      this.batchStart(i, count);
      this.hashable(key, what);
      c.value = key;
      c.label = KEY_LABEL;
      yield c;
      c.value = value;
      c.label = typeof key === "string" || typeof key === "number" ? key : { text: `[${String(key)}]` };
      yield c;
      this.batchEnd(i, count, Op.SETITEM, Op.SETITEMS);
    }
  }

  private *set(set: Set<unknown>): Steps {
    this.global("builtins", "set", null);
    this.w.byte(Op.EMPTY_LIST);
    const c: Child = { value: undefined, label: 0, noPid: false };
    const count = set.size;
    let i = 0;
    for (const item of set) {
      this.batchStart(i, count);
      this.hashable(item, "set");
      c.value = item;
      c.label = i;
      yield c;
      this.batchEnd(i, count, Op.APPEND, Op.APPENDS);
      i++;
    }
    this.w.byte(Op.TUPLE1);
    this.w.byte(Op.REDUCE);
    this.memoAt();
  }

  private *pyObject(obj: PyObject): Steps {
    if (newObjKwargs(obj) !== undefined) {
      throw new InvalidArgumentError(
        `${this.prefix}the ${obj.module}.${obj.name} object at ${this.path(null)} was created with keyword arguments (NEWOBJ_EX), which protocol 2 cannot express. Remove it or convert it to plain data.`,
        { subject: this.options.where },
      );
    }
    this.global(obj.module, obj.name, null);
    yield* this.tuple(obj.args, (i) => ({ text: `.args[${i}]` }));
    // Made by cls.__new__ when read: NEWOBJ again, so __init__ is not called with missing args.
    this.w.byte(isNewObj(obj) ? Op.NEWOBJ : Op.REDUCE);
    this.memoAt();
    const c: Child = { value: undefined, label: 0, noPid: false };
    const items = obj.items ?? [];
    for (let i = 0; i < items.length; i++) {
      this.batchStart(i, items.length);
      c.value = items[i];
      c.label = { text: `.items[${i}]` };
      yield c;
      this.batchEnd(i, items.length, Op.APPEND, Op.APPENDS);
    }
    const entries = obj.entries ?? [];
    yield* this.pairs(entries[Symbol.iterator](), entries.length, `${obj.module}.${obj.name}`);
    if (obj.state !== undefined && obj.state !== null) {
      c.value = obj.state;
      c.label = STATE_LABEL;
      yield c;
      this.w.byte(Op.BUILD);
    }
  }

  private *persistent(value: unknown, pid: unknown): Steps {
    yield { value: pid, label: PID_LABEL, noPid: true };
    this.w.byte(Op.BINPERSID);
    this.memoAt();
  }

  private *reduced(value: unknown, spec: ReduceSpec): Steps {
    if (typeof spec !== "object" || spec === null || !Array.isArray(spec.args)) {
      throw new InvalidArgumentError(
        `${this.prefix}the reduce hook returned an invalid spec for ${this.path(null)}: it needs { module, name, args: unknown[] }.`,
        { subject: this.options.where },
      );
    }
    this.global(spec.module, spec.name, null);
    yield* this.tuple(spec.args, (i) => ({ text: `(${spec.module}.${spec.name} argument ${i})` }));
    this.w.byte(Op.REDUCE);
    this.memoAt();
    if (spec.state !== undefined) {
      yield { value: spec.state, label: STATE_LABEL, noPid: false };
      this.w.byte(Op.BUILD);
    }
  }

  private batchStart(i: number, count: number): void {
    if (i % BATCH === 0 && count - i > 1) this.w.byte(Op.MARK);
  }

  private batchEnd(i: number, count: number, single: number, many: number): void {
    if ((i + 1) % BATCH === 0 || i + 1 === count) this.w.byte(i % BATCH === 0 ? single : many);
  }

  /** Python dict keys and set items must be hashable: lists, dicts and sets are not. */
  private hashable(key: unknown, what: string): void {
    if ((Array.isArray(key) && !isTuple(key)) || key instanceof Map || key instanceof Set || isPlainObject(key)) {
      throw new InvalidArgumentError(
        `${this.prefix}a ${what} at ${this.path(null)} has a key or item that is a ${Array.isArray(key) ? "list" : key instanceof Set ? "set" : "dict"}, which Python cannot hash. Use a tuple (asTuple) or a string instead.`,
        { subject: this.options.where },
      );
    }
  }

  // ---- errors ------------------------------------------------------------------------------

  /** The key path of the value being written (the open frames, then `label`). */
  private path(label: Label | null): string {
    const labels: Label[] = [];
    for (const f of this.frames) if (f.label !== null) labels.push(f.label);
    if (label !== null) labels.push(label);
    if (labels.length === 0) return "the top level";
    let out = "";
    for (const l of labels) {
      if (typeof l === "number") out += `[${l}]`;
      else if (typeof l === "string") out += out === "" ? l : `.${l}`;
      else out += out === "" && l.text.startsWith(".") ? l.text.slice(1) : l.text;
    }
    return out;
  }

  private cycle(label: Label | null): InvalidArgumentError {
    return new InvalidArgumentError(
      `${this.prefix}the value at ${this.path(label)} contains itself (a reference cycle). A checkpoint must be a tree; shared sub-objects are fine, cycles are not. Break the cycle before saving.`,
      { subject: this.options.where },
    );
  }

  private unsupported(label: Label | null, value: unknown): InvalidArgumentError {
    return new InvalidArgumentError(
      `${this.prefix}cannot save ${describe(value)} at ${this.path(label)}. Checkpoint values may be null, booleans, numbers, ` +
        `bigints, strings, Uint8Array, arrays (tuples via asTuple), plain objects, Maps, Sets, PyObject and PyGlobal, ` +
        `or what the format handles itself (tensors). Convert it, or leave it out${value === undefined ? " (use null for None)" : ""}.`,
      { subject: this.options.where },
    );
  }
}

function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "function") return `a function${value.name ? ` (${value.name})` : ""}`;
  if (typeof value === "symbol") return "a symbol";
  if (typeof value === "object" && value !== null) {
    const ctor = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name;
    return ctor ? `an instance of ${ctor}` : "an object";
  }
  return typeof value;
}
