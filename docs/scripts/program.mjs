// Turns the TypeScript blocks of a page into programs: consecutive blocks join into one module,
// so a later block uses what an earlier one declared, as a reader following the page would.
// Every block may show its own imports; they are merged at the top (ES imports are hoisted
// anyway), so repeating `import { Fabric } from "@savepoint/core"` in two blocks is fine.
import ts from "typescript";

/**
 * @typedef {import("./markdown.mjs").Block} Block
 * @typedef {{ file: string, line: number }} Origin
 */

/** The compiler options tutorials are checked with: what a strict Node 20 ESM project uses. */
export const COMPILER_OPTIONS = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
  types: ["node"],
  strict: true,
  skipLibCheck: true,
  noEmit: true,
  esModuleInterop: true,
  isolatedModules: true,
};

/** One parsed import clause, keyed by the local name it binds. */
function importsOf(sf) {
  const out = [];
  for (const st of sf.statements) {
    if (!ts.isImportDeclaration(st)) continue;
    const from = /** @type {ts.StringLiteral} */ (st.moduleSpecifier).text;
    const clause = st.importClause;
    const range = [st.getFullStart(), st.getEnd()];
    const start = st.getStart(sf);
    if (!clause) {
      out.push({ range, start, from, bindings: [] });
      continue;
    }
    const bindings = [];
    const typeOnly = clause.isTypeOnly;
    if (clause.name) bindings.push({ local: clause.name.text, kind: "default", typeOnly });
    const nb = clause.namedBindings;
    if (nb && ts.isNamespaceImport(nb)) bindings.push({ local: nb.name.text, kind: "namespace", typeOnly });
    if (nb && ts.isNamedImports(nb)) {
      for (const el of nb.elements) bindings.push({ local: el.name.text, kind: "named", imported: el.propertyName?.text ?? el.name.text, typeOnly: typeOnly || el.isTypeOnly });
    }
    out.push({ range, start, from, bindings });
  }
  return out;
}

/** Replaces `[start, end)` of `text` with blank lines, so every later line keeps its number. */
function blank(text, start, end) {
  return text.slice(0, start) + text.slice(start, end).replace(/[^\n]/g, "") + text.slice(end);
}

/**
 * Where the program waits for the doc test runner to run a shell or Python block: it tells the
 * parent process (over the IPC channel) and resumes when answered. Without a parent listening
 * (no IPC channel) it returns at once.
 */
const PAUSE = "async function __doctestPause(at: number): Promise<void> { if (!process.send) return; process.send({ doctestPause: at }); await new Promise<void>((resume) => process.once(\"message\", () => resume())); }";

/**
 * Joins blocks into one TypeScript module. Returns its source and, for each of its lines, the
 * markdown line it came from. Before block `i` for each `i` in `pauses`, the program pauses
 * (see PAUSE) so that the runner can run what the page shows between the blocks.
 * @param {Block[]} blocks
 * @param {Set<number>} [pauses]
 * @returns {{ source: string, origins: Origin[] }}
 */
export function assemble(blocks, pauses = new Set()) {
  /** @type {Map<string, { from: string, kind: string, imported?: string, typeOnly: boolean, origin: Origin }>} */
  const bound = new Map();
  /** @type {Map<string, Origin>} */
  const sideEffects = new Map();
  const bodies = [];
  for (const block of blocks) {
    const sf = ts.createSourceFile("block.ts", block.code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
    let body = block.code;
    // Ranges go back to front, so blanking one leaves the offsets of the others valid.
    for (const imp of importsOf(sf).reverse()) {
      const line = sf.getLineAndCharacterOfPosition(imp.start).line;
      const origin = { file: block.file, line: block.line + 1 + line };
      if (imp.bindings.length === 0 && !sideEffects.has(imp.from)) sideEffects.set(imp.from, origin);
      for (const b of imp.bindings) {
        const seen = bound.get(b.local);
        if (seen && (seen.from !== imp.from || seen.kind !== b.kind || seen.imported !== b.imported)) {
          throw new Error(`${origin.file}:${origin.line}: "${b.local}" is imported from "${imp.from}" here and from "${seen.from}" at line ${seen.origin.line}; use another name in one of them`);
        }
        if (!seen) bound.set(b.local, { from: imp.from, kind: b.kind, imported: b.imported, typeOnly: b.typeOnly, origin });
        else if (!b.typeOnly) seen.typeOnly = false;
      }
      body = blank(body, imp.range[0], imp.range[1]);
    }
    bodies.push({ block, body });
  }

  const lines = [];
  /** @type {Origin[]} */
  const origins = [];
  const emit = (text, origin) => {
    lines.push(text);
    origins.push(origin);
  };
  // Side-effect imports first, in page order: `import "@tensorflow/tfjs-backend-cpu"` must run
  // before code that needs a backend, as it does when a reader pastes the blocks in order.
  for (const [from, origin] of sideEffects) emit(`import ${JSON.stringify(from)};`, origin);
  const byModule = new Map();
  for (const [local, b] of bound) {
    if (!byModule.has(b.from)) byModule.set(b.from, []);
    byModule.get(b.from).push({ local, ...b });
  }
  for (const [from, list] of byModule) {
    const spec = JSON.stringify(from);
    for (const b of list.filter((x) => x.kind === "namespace")) emit(`import ${b.typeOnly ? "type " : ""}* as ${b.local} from ${spec};`, b.origin);
    for (const b of list.filter((x) => x.kind === "default")) emit(`import ${b.typeOnly ? "type " : ""}${b.local} from ${spec};`, b.origin);
    const named = list.filter((x) => x.kind === "named");
    if (named.length > 0) {
      const parts = named.map((b) => `${b.typeOnly ? "type " : ""}${b.imported === b.local ? b.local : `${b.imported} as ${b.local}`}`);
      emit(`import { ${parts.join(", ")} } from ${spec};`, named[0].origin);
    }
  }
  if (pauses.size > 0) emit(PAUSE, { file: blocks[0].file, line: blocks[0].line });
  for (const [i, { block, body }] of bodies.entries()) {
    emit(`// ${block.file}:${block.line}`, { file: block.file, line: block.line });
    if (pauses.has(i)) emit(`await __doctestPause(${i});`, { file: block.file, line: block.line });
    body.split("\n").forEach((text, i) => emit(text, { file: block.file, line: block.line + 1 + i }));
  }
  // `export {}` keeps a program without imports a module (top-level await needs one).
  emit("export {};", origins[origins.length - 1] ?? { file: "?", line: 0 });
  return { source: `${lines.join("\n")}\n`, origins };
}

/** TypeScript to an ES module for Node, with an inline source map back to `fileName`. */
export function transpile(source, fileName) {
  const out = ts.transpileModule(source, {
    fileName,
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, inlineSourceMap: true, inlineSources: true, esModuleInterop: true },
  });
  return out.outputText;
}
