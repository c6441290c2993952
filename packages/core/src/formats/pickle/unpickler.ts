/**
 * A bounded pickle machine (protocols 0–5) that never executes anything from the file: globals
 * resolve only through allow-listed handlers, everything else becomes an inert placeholder (or an
 * error in strict mode). Every length is checked against the bytes left before anything is
 * allocated, the memo is a Map (a huge index costs one entry), and the loop is iterative.
 */
import {
  CorruptCheckpointError,
  InvalidArgumentError,
  SavepointError,
  UnsafeCheckpointError,
  UnsupportedFormatError,
} from "../../errors.js";
import { asTuple, intKeysOf, isTuple, PyGlobal, PyObject } from "../../tree/python-values.js";
import { builtinGlobal } from "./builtins.js";
import { isPlainObject, setDictItem, type PyDict } from "./dict-items.js";
import { finishTree } from "./finish-tree.js";
import type { GlobalHandler } from "./global-handler.js";
import { markNewObj } from "./newobj-mark.js";
import { HIGHEST_PROTOCOL, Op } from "./opcodes.js";
import { python3Name } from "./py2-names.js";
import { pyStateOf, setPyState } from "./py-state.js";
import { decodePy2String, decodeUtf8, escapeDecode, latin1, rawUnicodeEscape } from "./strings.js";

export type { GlobalHandler } from "./global-handler.js";

export interface UnpickleOptions {
  /** Extra allow-listed globals (torch's, DCP's), consulted before the built-in ones. */
  globals?: (module: string, name: string) => GlobalHandler | undefined;
  /** BINPERSID / PERSID. Without it a persistent id is a CorruptCheckpointError. */
  persistentLoad?: (pid: unknown) => unknown;
  /** "placeholder" (default): unknown globals become inert PyGlobal / PyObject. "strict": UnsafeCheckpointError naming module.name and the file. */
  safe?: "placeholder" | "strict";
  /** File or record name for every error message. */
  where: string;
  /** Nesting limit of the resulting containers. @default 1000 */
  maxDepth?: number;
}

/** Runs one pickle starting at `start`; returns the value and the offset just after STOP. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions, start = 0): { value: unknown; end: number } {
  if (!(bytes instanceof Uint8Array)) {
    throw new InvalidArgumentError(`unpickle expects a Uint8Array of pickle bytes for ${options?.where ?? "its input"}.`);
  }
  if (!Number.isSafeInteger(start) || start < 0 || start > bytes.length) {
    throw new InvalidArgumentError(
      `${options.where}: unpickle start offset ${start} is outside the ${bytes.length} bytes given; pass an offset within the data.`,
    );
  }
  const maxDepth = options.maxDepth ?? 1000;
  if (!Number.isSafeInteger(maxDepth) || maxDepth < 1) {
    throw new InvalidArgumentError(`${options.where}: maxDepth must be a positive integer, got ${String(maxDepth)}.`);
  }
  return new Machine(bytes, options, maxDepth).run(start);
}

/** Python's `setstate` hook on values produced by handlers. */
const SET_STATE = Symbol.for("savepoint.pySetState");
/** Python refuses to convert longer decimal ints (sys.int_info.default_max_str_digits). */
const MAX_INT_DIGITS = 4300;

const OP_NAMES = new Map<number, string>(Object.entries(Op).map(([name, code]) => [code, name]));
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

interface GlobalInfo {
  module: string;
  name: string;
  handler: GlobalHandler;
}

class Machine {
  private readonly view: DataView;
  private readonly end: number;
  private readonly where: string;
  private pos = 0;
  /** Offset of the opcode being run, for messages. */
  private at = 0;
  private readonly stack: unknown[] = [];
  /** Stack lengths at each open MARK. */
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();
  /** Pushed value of each global already looked up, by "module\nname". */
  private readonly globalValues = new Map<string, unknown>();
  /** Which allow-listed global a pushed value stands for. */
  private readonly classes = new WeakMap<object, GlobalInfo>();
  /**
   * Copying work done on the file's behalf (handler arguments, state merges). Each legitimate
   * copy is paid for by the bytes that built its source once; a file that copies the same list
   * again and again is cut off, so time and memory stay linear in the file size.
   */
  private work = 0;
  private readonly budget: number;
  /** Dicts that became Maps after being referenced: resolved on every read, fixed in the result at STOP. */
  private readonly replaced = new Map<object, object>();

  constructor(
    private readonly bytes: Uint8Array,
    private readonly options: UnpickleOptions,
    private readonly maxDepth: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = bytes.length;
    this.where = options.where;
    this.budget = 16 * bytes.length + 1_000_000;
  }

  run(start: number): { value: unknown; end: number } {
    const bytes = this.bytes;
    const stack = this.stack;
    this.pos = start;
    for (;;) {
      if (this.pos >= this.end) throw this.truncated();
      const at = (this.at = this.pos);
      const op = bytes[this.pos++] as number;
      switch (op) {
        case Op.PROTO: {
          const version = this.u8();
          if (version > HIGHEST_PROTOCOL) {
            throw new UnsupportedFormatError(
              `${this.where}: pickle protocol ${version} (byte ${at}) is newer than the protocol 5 savepoint reads; re-save with protocol ≤ 5.`,
              { subject: this.where },
            );
          }
          break;
        }
        case Op.FRAME:
          this.length64(); // frames are an I/O hint; only their size needs checking
          break;
        case Op.STOP: {
          const value = this.pop();
          return { value: finishTree(value, this.maxDepth, this.replaced, this.where), end: this.pos };
        }

        case Op.MARK:
          if (this.marks.length >= this.maxDepth) throw this.tooDeep();
          this.marks.push(stack.length);
          break;
        case Op.POP:
          // Python pops the mark itself when nothing follows it.
          if (stack.length > this.base()) stack.pop();
          else if (this.marks.length > 0) this.popMark();
          else throw this.underflow();
          break;
        case Op.POP_MARK:
          this.popMark();
          break;
        case Op.DUP:
          stack.push(this.peek());
          break;

        case Op.NONE:
          stack.push(null);
          break;
        case Op.NEWTRUE:
          stack.push(true);
          break;
        case Op.NEWFALSE:
          stack.push(false);
          break;
        case Op.INT: {
          const text = this.asciiLine().trim();
          stack.push(text === "00" ? false : text === "01" ? true : this.parseInt(text));
          break;
        }
        case Op.LONG: {
          const text = this.asciiLine().trim();
          stack.push(this.parseInt(text.endsWith("L") ? text.slice(0, -1) : text));
          break;
        }
        case Op.BININT:
          stack.push(this.view.getInt32(this.take(4), true));
          break;
        case Op.BININT1:
          stack.push(this.u8());
          break;
        case Op.BININT2:
          stack.push(this.view.getUint16(this.take(2), true));
          break;
        case Op.LONG1: {
          const n = this.u8();
          stack.push(this.decodeLong(this.take(n), n));
          break;
        }
        case Op.LONG4: {
          const n = this.length32(true);
          stack.push(this.decodeLong(this.take(n), n));
          break;
        }
        case Op.FLOAT:
          stack.push(this.parseFloat(this.asciiLine()));
          break;
        case Op.BINFLOAT:
          stack.push(this.view.getFloat64(this.take(8), false));
          break;

        case Op.STRING: {
          const [s, e] = this.line();
          const quote = bytes[s];
          if (e - s < 2 || (quote !== 0x27 && quote !== 0x22) || bytes[e - 1] !== quote) {
            throw this.corrupt("a STRING argument is not quoted");
          }
          const raw = escapeDecode(bytes, s + 1, e - 1);
          if (raw === null) throw this.corrupt("a STRING argument has an invalid escape");
          stack.push(decodePy2String(raw, 0, raw.length));
          break;
        }
        case Op.BINSTRING: {
          const n = this.length32(true);
          const s = this.take(n);
          stack.push(decodePy2String(bytes, s, s + n));
          break;
        }
        case Op.SHORT_BINSTRING: {
          const n = this.u8();
          const s = this.take(n);
          stack.push(decodePy2String(bytes, s, s + n));
          break;
        }
        case Op.UNICODE: {
          const [s, e] = this.line();
          const text = rawUnicodeEscape(bytes, s, e);
          if (text === null) throw this.corrupt("a UNICODE argument has an invalid \\u escape");
          stack.push(text);
          break;
        }
        case Op.BINUNICODE:
          stack.push(this.utf8(this.length32(false)));
          break;
        case Op.SHORT_BINUNICODE:
          stack.push(this.utf8(this.u8()));
          break;
        case Op.BINUNICODE8:
          stack.push(this.utf8(this.length64()));
          break;
        case Op.BINBYTES:
          stack.push(this.copy(this.length32(false)));
          break;
        case Op.SHORT_BINBYTES:
          stack.push(this.copy(this.u8()));
          break;
        case Op.BINBYTES8:
        case Op.BYTEARRAY8:
          stack.push(this.copy(this.length64()));
          break;
        case Op.NEXT_BUFFER:
        case Op.READONLY_BUFFER:
          throw new UnsupportedFormatError(
            `${this.where}: the pickle uses out-of-band buffers (protocol 5 ${this.opName(op)} at byte ${at}), which a checkpoint file cannot carry; re-save it with torch.save or pickle protocol ≤ 4.`,
            { subject: this.where },
          );

        case Op.EMPTY_TUPLE:
          stack.push(asTuple([]));
          break;
        case Op.TUPLE:
          stack.push(asTuple(this.popMark()));
          break;
        case Op.TUPLE1:
        case Op.TUPLE2:
        case Op.TUPLE3: {
          const n = op - Op.TUPLE1 + 1;
          if (stack.length - n < this.base()) throw this.underflow();
          stack.push(asTuple(this.resolveAll(stack.splice(stack.length - n, n))));
          break;
        }
        case Op.EMPTY_LIST:
          stack.push([]);
          break;
        case Op.LIST:
          stack.push(this.popMark());
          break;
        case Op.EMPTY_DICT:
          stack.push({});
          break;
        case Op.DICT: {
          const items = this.popMark();
          if (items.length % 2 !== 0) throw this.corrupt("DICT has a key without a value");
          let dict: PyDict = {};
          for (let i = 0; i < items.length; i += 2) dict = setDictItem(dict, items[i], items[i + 1]);
          stack.push(dict);
          break;
        }
        case Op.EMPTY_SET:
          stack.push(new Set());
          break;
        case Op.FROZENSET:
          stack.push(new Set(this.popMark()));
          break;

        case Op.APPEND: {
          const item = this.pop();
          this.append(this.peek(), [item], op);
          break;
        }
        case Op.APPENDS: {
          const items = this.popMark();
          this.append(this.peek(), items, op);
          break;
        }
        case Op.SETITEM: {
          const value = this.pop();
          const key = this.pop();
          this.setItems([key, value], op);
          break;
        }
        case Op.SETITEMS:
          this.setItems(this.popMark(), op);
          break;
        case Op.ADDITEMS: {
          const items = this.popMark();
          const target = this.peek();
          if (target instanceof Set) for (const item of items) target.add(item);
          else if (target instanceof PyObject) pushAll((target.items ??= []), items);
          else throw this.corrupt(`ADDITEMS adds to ${describe(target)}, not a set`);
          break;
        }

        case Op.GLOBAL: {
          const module = this.utf8Line();
          const name = this.utf8Line();
          stack.push(this.global(module, name));
          break;
        }
        case Op.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== "string" || typeof name !== "string") {
            throw this.corrupt("STACK_GLOBAL names a global with values that are not strings");
          }
          stack.push(this.global(module, name));
          break;
        }
        case Op.REDUCE: {
          const args = this.pop();
          const callee = this.pop();
          stack.push(this.call(callee, this.argsTuple(args, op)));
          break;
        }
        case Op.NEWOBJ: {
          const args = this.pop();
          const cls = this.pop();
          stack.push(this.construct(cls, this.argsTuple(args, op)));
          break;
        }
        case Op.NEWOBJ_EX: {
          const kwargs = this.pop();
          const args = this.pop();
          const cls = this.pop();
          if (!isPlainObject(kwargs)) throw this.corrupt("NEWOBJ_EX keyword arguments are not a dict of str");
          stack.push(this.construct(cls, this.argsTuple(args, op), kwargs));
          break;
        }
        case Op.INST: {
          const module = this.utf8Line();
          const name = this.utf8Line();
          const args = this.popMark();
          stack.push(this.instantiate(this.global(module, name), args));
          break;
        }
        case Op.OBJ: {
          const args = this.popMark();
          if (args.length === 0) throw this.corrupt("OBJ has no class");
          const cls = args.shift();
          stack.push(this.instantiate(cls, args));
          break;
        }
        case Op.BUILD: {
          const state = this.pop();
          this.build(this.peek(), state);
          break;
        }
        case Op.PERSID:
          stack.push(this.persistent(this.asciiLine()));
          break;
        case Op.BINPERSID:
          stack.push(this.persistent(this.pop()));
          break;

        case Op.PUT: {
          const index = this.parseInt(this.asciiLine().trim());
          if (typeof index !== "number" || index < 0) throw this.corrupt(`PUT has an invalid memo index`);
          this.memo.set(index, this.peek());
          break;
        }
        case Op.BINPUT:
          this.memo.set(this.u8(), this.peek());
          break;
        case Op.LONG_BINPUT:
          this.memo.set(this.view.getUint32(this.take(4), true), this.peek());
          break;
        case Op.MEMOIZE:
          this.memo.set(this.memo.size, this.peek());
          break;
        case Op.GET: {
          const index = this.parseInt(this.asciiLine().trim());
          stack.push(this.recall(typeof index === "number" ? index : -1));
          break;
        }
        case Op.BINGET:
          stack.push(this.recall(this.u8()));
          break;
        case Op.LONG_BINGET:
          stack.push(this.recall(this.view.getUint32(this.take(4), true)));
          break;

        case Op.EXT1:
        case Op.EXT2:
        case Op.EXT4:
          throw new UnsupportedFormatError(
            `${this.where}: the pickle uses the copyreg extension registry (${this.opName(op)} at byte ${at}), which depends on the writing process's registrations; savepoint cannot resolve it. Re-save without copyreg.add_extension.`,
            { subject: this.where },
          );
        default:
          throw this.corrupt(`unknown pickle opcode 0x${op.toString(16).padStart(2, "0")}`);
      }
    }
  }

  // ---- reading arguments -------------------------------------------------------------------

  /** Checks that `n` bytes remain and returns where they start. */
  private take(n: number): number {
    if (n > this.end - this.pos) throw this.truncated();
    const start = this.pos;
    this.pos += n;
    return start;
  }

  private u8(): number {
    return this.bytes[this.take(1)] as number;
  }

  /** A 4-byte length, checked against the bytes left (signed for the Python 2 opcodes). */
  private length32(signed: boolean): number {
    const p = this.take(4);
    const n = signed ? this.view.getInt32(p, true) : this.view.getUint32(p, true);
    if (n < 0) throw this.corrupt(`${this.opName(this.bytes[this.at] as number)} has a negative length`);
    return this.checkLength(n);
  }

  /** An 8-byte length, checked against the bytes left before it becomes a number. */
  private length64(): number {
    const n = this.view.getBigUint64(this.take(8), true);
    if (n > BigInt(this.end - this.pos)) throw this.tooLong(n);
    return Number(n);
  }

  private checkLength(n: number): number {
    if (n > this.end - this.pos) throw this.tooLong(n);
    return n;
  }

  private tooLong(claimed: number | bigint): CorruptCheckpointError {
    return this.corrupt(
      `${this.opName(this.bytes[this.at] as number)} claims ${claimed} bytes but only ${this.end - this.pos} remain (truncated or corrupt file)`,
    );
  }

  /** The bytes of one text line (without its newline) as [start, end). */
  private line(): [number, number] {
    const nl = this.bytes.indexOf(0x0a, this.pos);
    if (nl < 0) throw this.truncated();
    const start = this.pos;
    this.pos = nl + 1;
    return [start, nl];
  }

  private asciiLine(): string {
    const [s, e] = this.line();
    for (let i = s; i < e; i++) if ((this.bytes[i] as number) >= 0x80) throw this.corrupt("a text argument is not ASCII");
    return latin1(this.bytes, s, e);
  }

  private utf8Line(): string {
    const [s, e] = this.line();
    const text = decodeUtf8(this.bytes, s, e);
    if (text === null) throw this.corrupt("a global name is not valid UTF-8");
    return text;
  }

  private utf8(n: number): string {
    const s = this.take(n);
    const text = decodeUtf8(this.bytes, s, s + n);
    if (text === null) throw this.corrupt("a str is not valid UTF-8");
    return text;
  }

  /** bytes are immutable in Python; a copy keeps them from aliasing the file buffer. */
  private copy(n: number): Uint8Array {
    const s = this.take(n);
    return this.bytes.slice(s, s + n);
  }

  private parseInt(text: string): number | bigint {
    const m = /^([+-]?)0*(\d+)$/.exec(text);
    if (!m) throw this.corrupt(`${JSON.stringify(text.slice(0, 40))} is not an integer`);
    const digits = m[2] as string;
    if (digits.length > MAX_INT_DIGITS) {
      throw new UnsupportedFormatError(
        `${this.where}: an integer at byte ${this.at} has ${digits.length} digits, more than Python's limit of ${MAX_INT_DIGITS}; the file is not a checkpoint savepoint reads.`,
        { subject: this.where },
      );
    }
    if (digits.length <= 15) return Number(text);
    return narrow(BigInt(m[1] + digits));
  }

  private parseFloat(text: string): number {
    const t = text.trim();
    if (/^[+-]?(nan|inf|infinity)$/i.test(t)) {
      const neg = t.startsWith("-");
      return /nan/i.test(t) ? NaN : neg ? -Infinity : Infinity;
    }
    if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) throw this.corrupt(`${JSON.stringify(t.slice(0, 40))} is not a float`);
    return Number(t);
  }

  /** A little-endian two's-complement integer of `n` bytes (LONG1 / LONG4). */
  private decodeLong(start: number, n: number): number | bigint {
    const bytes = this.bytes;
    if (n === 0) return 0;
    const negative = ((bytes[start + n - 1] as number) & 0x80) !== 0;
    if (n <= 6) {
      let v = 0;
      for (let i = n - 1; i >= 0; i--) v = v * 256 + (bytes[start + i] as number);
      return negative ? v - 2 ** (8 * n) : v;
    }
    const parts: string[] = new Array<string>(n);
    for (let i = 0; i < n; i++) parts[i] = HEX[bytes[start + n - 1 - i] as number] as string;
    let v = BigInt(`0x${parts.join("")}`);
    if (negative) v -= 1n << BigInt(8 * n);
    return narrow(v);
  }

  // ---- stack and memo ----------------------------------------------------------------------

  /** Bottom of the current frame: items below the last MARK are out of reach. */
  private base(): number {
    return this.marks.length > 0 ? (this.marks[this.marks.length - 1] as number) : 0;
  }

  private pop(): unknown {
    if (this.stack.length <= this.base()) throw this.underflow();
    return this.resolve(this.stack.pop());
  }

  private peek(): unknown {
    if (this.stack.length <= this.base()) throw this.underflow();
    return this.resolve(this.stack[this.stack.length - 1]);
  }

  private popMark(): unknown[] {
    const mark = this.marks.pop();
    if (mark === undefined) throw this.corrupt(`${this.opName(this.bytes[this.at] as number)} has no MARK before it`);
    return this.resolveAll(this.stack.splice(mark));
  }

  private recall(index: number): unknown {
    if (!this.memo.has(index)) throw this.corrupt(`memo entry ${index} is read before it was written`);
    return this.resolve(this.memo.get(index));
  }

  /**
   * A dict that became a Map may still sit on the stack or in the memo under its old identity;
   * every read from either goes through here, so the old object never escapes (no stack scans).
   */
  private resolve(value: unknown): unknown {
    return this.replaced.size > 0 && typeof value === "object" && value !== null ? (this.replaced.get(value) ?? value) : value;
  }

  private resolveAll(items: unknown[]): unknown[] {
    if (this.replaced.size > 0) for (let i = 0; i < items.length; i++) items[i] = this.resolve(items[i]);
    return items;
  }

  /** Merges a dict state into a dict (Python's `__dict__.update`), recording a Map conversion. */
  private merge(target: PyDict, state: PyDict): PyDict {
    let dict = target;
    this.spend(sizeOf(state));
    if (state instanceof Map) {
      for (const [k, v] of state) dict = setDictItem(dict, k, v);
    } else {
      const ints = intKeysOf(state);
      for (const k of Object.keys(state)) dict = setDictItem(dict, ints.has(k) ? intOf(k) : k, state[k]);
    }
    if (dict !== target) this.replaced.set(target, dict);
    return dict;
  }

  // ---- containers --------------------------------------------------------------------------

  private append(target: unknown, items: unknown[], op: number): void {
    if (Array.isArray(target)) pushAll(target, items);
    else if (target instanceof PyObject) pushAll((target.items ??= []), items);
    else throw this.corrupt(`${this.opName(op)} appends to ${describe(target)}, not a list`);
  }

  private setItems(items: unknown[], op: number): void {
    if (items.length % 2 !== 0) throw this.corrupt(`${this.opName(op)} has a key without a value`);
    const target = this.peek();
    if (target instanceof PyObject) {
      const entries = (target.entries ??= []);
      for (let i = 0; i < items.length; i += 2) entries.push([items[i], items[i + 1]]);
      return;
    }
    if (!(target instanceof Map) && !isPlainObject(target)) {
      throw this.corrupt(`${this.opName(op)} sets items on ${describe(target)}, not a dict`);
    }
    let dict: PyDict = target;
    for (let i = 0; i < items.length; i += 2) dict = setDictItem(dict, items[i], items[i + 1]);
    if (dict !== target) this.replaced.set(target, dict);
  }

  // ---- globals and objects -----------------------------------------------------------------

  private global(rawModule: string, rawName: string): unknown {
    const [module, name] = python3Name(rawModule, rawName);
    const key = `${module}\n${name}`;
    if (this.globalValues.has(key)) return this.globalValues.get(key);
    const handler =
      this.options.globals?.(module, name) ??
      builtinGlobal(module, name, { where: this.where, construct: (cls, args) => this.construct(cls, args) });
    let value: unknown;
    if (handler) {
      value = handler.value !== undefined ? handler.value : handler;
      if ((typeof value === "object" && value !== null) || typeof value === "function") {
        this.classes.set(value, { module, name, handler });
      }
    } else if (this.options.safe === "strict") {
      throw new UnsafeCheckpointError(
        `${this.where}: the pickle references ${module}.${name} (byte ${this.at}), which is not on savepoint's allow-list. ` +
          `Nothing was run. Load it with safe: "placeholder" to keep it as an inert placeholder, and only if you trust the file.`,
        { subject: this.where },
      );
    } else {
      value = new PyGlobal(module, name);
    }
    this.globalValues.set(key, value);
    return value;
  }

  private info(value: unknown): GlobalInfo | undefined {
    return (typeof value === "object" && value !== null) || typeof value === "function" ? this.classes.get(value) : undefined;
  }

  /** REDUCE: `callee(*args)`. */
  private call(callee: unknown, args: unknown[]): unknown {
    const info = this.info(callee);
    if (info) {
      const call = info.handler.call;
      return call ? this.invoke(info, () => call.call(info.handler, args), args) : new PyObject(info.module, info.name, args);
    }
    if (callee instanceof PyGlobal) return new PyObject(callee.module, callee.name, args);
    throw this.corrupt(`REDUCE calls ${describe(callee)}, which is not a class or function`);
  }

  /** NEWOBJ: `cls.__new__(cls, *args, **kwargs)`. */
  private construct(cls: unknown, args: unknown[], kwargs?: Record<string, unknown>): unknown {
    const info = this.info(cls);
    if (info) {
      const construct = info.handler.construct;
      if (construct) return this.invoke(info, () => construct.call(info.handler, args, kwargs), args);
      return markNewObj(new PyObject(info.module, info.name, args), kwargs);
    }
    if (cls instanceof PyGlobal) return markNewObj(new PyObject(cls.module, cls.name, args), kwargs);
    throw this.corrupt(`an object is created from ${describe(cls)}, which is not a class`);
  }

  /** INST / OBJ: Python calls the class when there are arguments, else only `__new__`. */
  private instantiate(cls: unknown, args: unknown[]): unknown {
    const handler = this.info(cls)?.handler;
    if (args.length === 0 && (handler === undefined || handler.construct !== undefined)) return this.construct(cls, args);
    return this.call(cls, args);
  }

  private build(target: unknown, state: unknown): void {
    const setState = (typeof target === "object" && target !== null) || typeof target === "function"
      ? (target as Record<symbol, unknown>)[SET_STATE]
      : undefined;
    if (typeof setState === "function") {
      const info = this.info(target) ?? { module: "?", name: describe(target), handler: {} };
      this.invoke(info, () => (setState as (s: unknown) => unknown).call(target, state), [state]);
      return;
    }
    if (target instanceof PyObject) {
      if ((isPlainObject(target.state) || target.state instanceof Map) && (isPlainObject(state) || state instanceof Map)) {
        target.state = this.merge(target.state, state);
      } else {
        target.state = state;
      }
      return;
    }
    // Dicts (an OrderedDict with torch's _metadata) and everything else: Python sets attributes,
    // not items, so the state is kept beside the value.
    if (typeof target === "object" && target !== null) {
      const previous = pyStateOf(target);
      const mergeable = (v: unknown): v is PyDict => isPlainObject(v) || v instanceof Map;
      setPyState(target, mergeable(previous) && mergeable(state) ? this.merge(previous, state) : state);
    }
  }

  private persistent(pid: unknown): unknown {
    const load = this.options.persistentLoad;
    if (!load) {
      throw this.corrupt(
        "the pickle refers to external data (a persistent id) but nothing to resolve it was given; read it as part of its checkpoint",
      );
    }
    return this.invoke({ module: "persistent_load", name: "", handler: {} }, () => load(pid), [pid]);
  }

  private argsTuple(args: unknown, op: number): unknown[] {
    if (!Array.isArray(args)) throw this.corrupt(`${this.opName(op)} arguments are ${describe(args)}, not a tuple`);
    return args;
  }

  /** Runs handler code; its own typed errors pass through, anything else names the global. */
  private invoke<T>(info: GlobalInfo, fn: () => T, args: readonly unknown[] = []): T {
    for (const arg of args) this.spend(sizeOf(arg));
    try {
      return fn();
    } catch (err) {
      if (err instanceof SavepointError) throw err;
      const what = info.name ? `${info.module}.${info.name}` : info.module;
      throw new CorruptCheckpointError(
        `${this.where}: ${what} could not use the data at byte ${this.at}: ${(err as Error)?.message ?? String(err)}. ` +
          `The checkpoint is corrupt or was written by a version savepoint does not read.`,
        { cause: err, subject: this.where },
      );
    }
  }

  private spend(units: number): void {
    this.work += units;
    if (this.work > this.budget) {
      throw new UnsupportedFormatError(
        `${this.where}: the pickle asks for far more copying than its ${this.bytes.length} bytes justify (the same data copied over and over, byte ${this.at}); ` +
          `savepoint stops to bound memory and time. torch.save never writes such files; do not load it.`,
        { subject: this.where },
      );
    }
  }

  // ---- errors ------------------------------------------------------------------------------

  private opName(op: number): string {
    return OP_NAMES.get(op) ?? `0x${op.toString(16)}`;
  }

  private corrupt(what: string): CorruptCheckpointError {
    return new CorruptCheckpointError(
      `${this.where}: ${what} (pickle byte ${this.at}). The file is damaged or not a pickle savepoint can read; re-save or re-download it.`,
      { subject: this.where },
    );
  }

  private truncated(): CorruptCheckpointError {
    return new CorruptCheckpointError(
      `${this.where}: the pickle ends at byte ${this.end} before its STOP opcode (truncated inside the opcode at byte ${this.at}). ` +
        `The file is incomplete; re-save or re-download it.`,
      { subject: this.where },
    );
  }

  private underflow(): CorruptCheckpointError {
    return this.corrupt(`${this.opName(this.bytes[this.at] as number)} needs a value but the pickle stack is empty`);
  }

  private tooDeep(): UnsupportedFormatError {
    return new UnsupportedFormatError(
      `${this.where}: the pickle nests containers deeper than ${this.maxDepth} levels (byte ${this.at}); savepoint refuses it to protect the stack. ` +
        `If the checkpoint is genuine, pass a larger maxDepth.`,
      { subject: this.where },
    );
  }
}

function intOf(key: string): number | bigint {
  const n = Number(key);
  return Number.isSafeInteger(n) ? n : BigInt(key);
}

/** How many elements copying `value` may touch. */
function sizeOf(value: unknown): number {
  if (Array.isArray(value) || typeof value === "string" || value instanceof Uint8Array) return value.length + 1;
  if (value instanceof Set || value instanceof Map) return value.size + 1;
  if (isPlainObject(value)) return Object.keys(value).length + 1;
  return 1;
}

function pushAll(target: unknown[], items: unknown[]): void {
  for (const item of items) target.push(item);
}

function narrow(v: bigint): number | bigint {
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

function describe(value: unknown): string {
  if (value === null) return "None";
  if (Array.isArray(value)) return isTuple(value) ? "a tuple" : "a list";
  if (value instanceof Map || isPlainObject(value)) return "a dict";
  if (value instanceof Set) return "a set";
  if (value instanceof Uint8Array) return "bytes";
  if (value instanceof PyGlobal) return `${value.module}.${value.name}`;
  if (value instanceof PyObject) return `a ${value.module}.${value.name} object`;
  if (typeof value === "string") return "a str";
  if (typeof value === "number" || typeof value === "bigint") return "a number";
  if (typeof value === "boolean") return "a bool";
  return "a value";
}
