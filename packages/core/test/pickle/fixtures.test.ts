/**
 * Every pickle inside the real checkpoints of /work/shared/fixtures (torch zip data.pkl, the five
 * pickles of legacy files, DCP .metadata) is read by our machine and by CPython's own unpickler
 * with the same placeholder rules; both must give the same value and the same end offsets.
 */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { asTuple } from "../../src/tree/python-values.js";
import { unpickle } from "../../src/formats/pickle/unpickler.js";
import { runPython } from "../helpers/python.js";
import { canon, normalize, PY_CANON } from "./canonical.js";

const FIXTURES = process.env.SAVEPOINT_FIXTURES ?? "/work/shared/fixtures";

interface Sample {
  file: string;
  data: string;
  ranges: [number, number][];
  canon: unknown[];
}

function samples(): Sample[] {
  const out = runPython(
    `${PY_CANON}
import os, io, zipfile, _compat_pickle
REAL = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
        ("builtins", "bytearray"), ("builtins", "bytes"), ("_codecs", "encode")}
class Obj:
    def __new__(cls, *args, **kw):
        o = object.__new__(cls); o._args = list(args); o._state = None; return o
    def __init__(self, *a, **k): pass
    def __setstate__(self, state): self._state = state
    def append(self, x): pass
    def extend(self, xs): pass
    def __setitem__(self, k, v): pass
classes = {}
def recon(cls, base, state):
    if state is None or isinstance(state, (list, dict)): return cls.__new__(cls)
    return cls.__new__(cls, state)
class U(pickle._Unpickler):
    def find_class(self, module, name):
        if self.proto < 3:
            if (module, name) in _compat_pickle.NAME_MAPPING: module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING: module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in REAL: return super().find_class(module, name)
        if (module, name) == ("copyreg", "_reconstructor"): return recon
        if (module, name) not in classes:
            classes[(module, name)] = type("Stub", (Obj,), {"__module__": module, "__qualname__": name})
        return classes[(module, name)]
    def persistent_load(self, pid): return ["PID", pid]
def canon2(v):
    if isinstance(v, Obj): return ["obj", type(v).__module__, type(v).__qualname__, [canon2(a) for a in v._args], canon2(v._state)]
    return canon(v)
# canon from PY_CANON recurses into canon; route it through canon2 for placeholders
_base = canon
def canon(v):
    if isinstance(v, Obj): return canon2(v)
    return _base(v)
def run(data, count):
    f = io.BytesIO(data); ranges = []; values = []
    for _ in range(count):
        start = f.tell(); values.append(canon(U(f).load())); ranges.append([start, f.tell()])
    return ranges, values
res = []
root = sys.argv[1]
for dirpath, _, files in os.walk(root):
    for fn in sorted(files):
        path = os.path.join(dirpath, fn)
        rel = os.path.relpath(path, root)
        if fn.endswith(".distcp"): continue
        with open(path, "rb") as fh: head = fh.read(4)
        if fn == ".metadata":
            data = open(path, "rb").read(); ranges, values = run(data, 1)
        elif zipfile.is_zipfile(path) and head == b"PK\\x03\\x04":
            z = zipfile.ZipFile(path)
            names = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names: continue
            data = z.read(names[0]); ranges, values = run(data, 1)
        elif head == b"\\x80\\x02\\x8a\\x0a":
            data = open(path, "rb").read(); ranges, values = run(data, 5); data = data[:ranges[-1][1]]
        else:
            continue
        res.append({"file": rel, "data": base64.b64encode(data).decode(), "ranges": ranges, "canon": values})
print(json.dumps(res))`,
    [FIXTURES],
  );
  return JSON.parse(out) as Sample[];
}

describe.skipIf(!existsSync(FIXTURES))("unpickle: real checkpoints", () => {
  const all = samples();

  it("finds zip, legacy and DCP pickles", () => {
    expect(all.filter((s) => s.ranges.length === 5).length).toBeGreaterThan(2);
    expect(all.filter((s) => s.file.endsWith(".metadata")).length).toBeGreaterThan(0);
    expect(all.length).toBeGreaterThan(40);
  });

  for (const sample of all) {
    it(`reads ${sample.file} as CPython does`, () => {
      const bytes = new Uint8Array(Buffer.from(sample.data, "base64"));
      let offset = 0;
      sample.ranges.forEach(([start, end], i) => {
        expect(offset).toBe(start);
        const r = unpickle(bytes, { where: sample.file, persistentLoad: (pid) => ["PID", pid] }, offset);
        expect(r.end).toBe(end);
        expect(canon(r.value)).toEqual(normalize(sample.canon[i]));
        offset = r.end;
      });
    });
  }

  it("keeps a persistent id's tuple marked as a tuple", () => {
    const zip = all.find((s) => s.file.endsWith("linear.pt"));
    if (!zip) return;
    const pids: unknown[] = [];
    unpickle(new Uint8Array(Buffer.from(zip.data, "base64")), { where: zip.file, persistentLoad: (pid) => (pids.push(pid), null) });
    expect(pids.length).toBeGreaterThan(0);
    expect(canon(pids[0])[0]).toBe(canon(asTuple([]))[0]);
  });
});
