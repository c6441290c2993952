#!/usr/bin/env node
// The packages as a user gets them: `npm pack` every workspace package, install the tarballs into
// a new project in the system's temp folder (outside the workspace, no links), with their peer
// dependencies from the registry, then in that project:
//   - import every export of every package, as ES module and as CommonJS;
//   - run `savepoint --help` through the installed bin;
//   - check that optional heavy dependencies that are not installed (webgpu, ioredis) fail with
//     the npm install line that fixes it, and only when used;
//   - run the core README's example and the "Saving and loading" tutorial (docs/).
// Usage: node scripts/pack-smoke.mjs   (after npm run build). SMOKE_KEEP=1 keeps the project.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { readPage } from "../docs/scripts/markdown.mjs";
import { assemble, transpile } from "../docs/scripts/program.mjs";
import { runDoctests } from "../docs/scripts/doctest.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const run = promisify(execFile);
const started = Date.now();
const say = (line) => process.stdout.write(`${line}\n`);
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;

/** Runs a command; on failure throws with its output, so the report says what went wrong. */
async function sh(cmd, args, options = {}) {
  try {
    return await run(cmd, args, { maxBuffer: 64 << 20, ...options, env: { ...process.env, NO_COLOR: "1", ...options.env } });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${err.code}):\n${err.stdout ?? ""}${err.stderr ?? ""}`);
  }
}

/** Every workspace package with its package.json. */
function workspacePackages() {
  return readdirSync(join(ROOT, "packages"))
    .filter((d) => existsSync(join(ROOT, "packages", d, "package.json")))
    .map((d) => ({ dir: join(ROOT, "packages", d), pkg: JSON.parse(readFileSync(join(ROOT, "packages", d, "package.json"), "utf8")) }))
    .filter(({ pkg }) => !pkg.private);
}

/** The import specifiers a package offers: its name and every subpath of `exports` but package.json. */
function specifiers(pkg) {
  const exp = pkg.exports && typeof pkg.exports === "object" && Object.keys(pkg.exports).every((k) => k.startsWith(".")) ? Object.keys(pkg.exports) : ["."];
  return exp.filter((k) => !k.endsWith(".json")).map((k) => (k === "." ? pkg.name : `${pkg.name}/${k.slice(2)}`));
}

const CI = process.env.CI === "true" || process.env.CI === "1";
const all = workspacePackages();
const unbuilt = all.filter(({ dir }) => !existsSync(join(dir, "dist")));
if (unbuilt.length > 0) {
  // Outside CI a package being written may not build yet; it is left out, loudly. In CI, never.
  say(`${CI ? "FAIL" : "warning"}: not built: ${unbuilt.map((p) => p.pkg.name).join(", ")} (run npm run build first)${CI ? "" : "; left out"}`);
  if (CI || unbuilt.length === all.length) process.exit(1);
}
const packages = all.filter((p) => !unbuilt.includes(p));

const base = mkdtempSync(join(tmpdir(), "savepoint-pack-"));
const tarballs = join(base, "tarballs");
const project = join(base, "project");
mkdirSync(tarballs);
mkdirSync(project);
let ok = false;
try {
  // 1. Pack. npm pack runs each package's own `files` and `exports` rules, as publishing would.
  const { stdout } = await sh("npm", ["pack", ...packages.flatMap(({ pkg }) => ["--workspace", pkg.name]), "--pack-destination", tarballs, "--json"], { cwd: ROOT });
  const packed = JSON.parse(stdout);
  for (const p of packed) say(`packed ${p.name}@${p.version}: ${p.entryCount} files, ${(p.size / 1024).toFixed(0)} KiB`);

  // 2. A fresh project: the tarballs, and the peer dependencies the packages ask for, from the
  // registry (the npm cache when warm). Optional peers stay out, except those the README example
  // and the tutorial use (tfjs-layers, the CPU backend); @types/node is for type-checking them.
  const peers = new Map([
    ["@tensorflow/tfjs-layers", "^4.0.0"],
    ["@tensorflow/tfjs-backend-cpu", "^4.0.0"],
    ["@types/node", "^20.0.0"],
  ]);
  for (const { pkg } of packages) {
    for (const [name, range] of Object.entries(pkg.peerDependencies ?? {})) {
      if (name.startsWith("@savepoint/") || pkg.peerDependenciesMeta?.[name]?.optional) continue;
      peers.set(name, range);
    }
  }
  writeFileSync(join(project, "package.json"), `${JSON.stringify({ name: "savepoint-smoke", private: true, type: "module" }, null, 2)}\n`);
  const install = [...packed.map((p) => join(tarballs, p.filename)), ...[...peers].map(([n, r]) => `${n}@${r}`)];
  await sh("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", ...install], { cwd: project });
  say(`installed ${packed.length} tarballs and ${[...peers.keys()].join(", ")} into ${project} (${elapsed()})`);
  for (const p of packed) {
    if (!existsSync(join(project, "node_modules", p.name, "package.json"))) throw new Error(`${p.name} is not in the project's node_modules`);
  }

  // 3. Every export loads, from ESM and from CommonJS, without the optional dependencies. An entry
  // that needs an optional peer which is not installed (vitest for `@savepoint/core/testing`) may
  // fail to load, but only by naming that peer.
  const specs = packages.flatMap(({ pkg }) => specifiers(pkg).map((spec) => ({ spec, optional: Object.keys(pkg.peerDependenciesMeta ?? {}).filter((n) => pkg.peerDependenciesMeta[n]?.optional) })));
  const probe = (load) => `const out = {};\nfor (const spec of ${JSON.stringify(specs.map((s) => s.spec))}) {\n  try { const m = ${load}; out[spec] = Object.keys(m).length > 0 ? "ok" : "exports nothing"; }\n  catch (err) { out[spec] = String(err.message).split("\\n")[0]; }\n}\nconsole.log(JSON.stringify(out));`;
  writeFileSync(join(project, "imports.mjs"), probe("await import(spec)"));
  writeFileSync(join(project, "requires.cjs"), `(async () => {\n${probe("require(spec)")}\n})();`);
  for (const [file, kind] of [["imports.mjs", "ESM"], ["requires.cjs", "CommonJS"]]) {
    const results = JSON.parse((await sh(process.execPath, [file], { cwd: project })).stdout);
    for (const { spec, optional } of specs) {
      const r = results[spec];
      if (r === "ok") continue;
      const peer = optional.find((n) => r.includes(`'${n}'`) || r.includes(`"${n}"`));
      if (!peer) throw new Error(`${spec} does not load as ${kind}: ${r}`);
      say(`${spec} (${kind}) needs its optional peer ${peer}, not installed here: ${r}`);
    }
  }
  say(`loaded ${specs.length} entry points as ESM and CommonJS: ${specs.map((s) => s.spec).join(", ")}`);

  // 4. The CLI through the installed bin.
  const help = await sh("npx", ["--no-install", "savepoint", "--help"], { cwd: project });
  if (!/Usage: savepoint/.test(help.stdout)) throw new Error(`savepoint --help printed:\n${help.stdout}`);
  say("npx savepoint --help works");

  // 5. A missing optional dependency fails when used, with the line that installs it.
  const hints = [
    ["ioredis", "npm install ioredis", `import { RedisCollective } from "@savepoint/core";\nawait new RedisCollective({ url: "redis://127.0.0.1:9", rank: 0, worldSize: 2, timeoutMs: 2000 }).barrier("smoke");`],
    ["webgpu", "npm install webgpu", `import { setupNodeWebGpu } from "@savepoint/backend-webgpu/node";\nawait setupNodeWebGpu();`],
  ];
  for (const [name, line, code] of hints) {
    if (!specs.some(({ spec }) => code.includes(`"${spec}"`))) continue; // that package is not in the workspace
    if (existsSync(join(project, "node_modules", name))) throw new Error(`${name} got installed, but it is optional: nothing should pull it in`);
    writeFileSync(join(project, `hint-${name}.mjs`), code);
    const r = await run(process.execPath, [`hint-${name}.mjs`], { cwd: project }).then(
      () => ({ out: "", failed: false }),
      (err) => ({ out: `${err.stdout}${err.stderr}`, failed: true }),
    );
    if (!r.failed || !r.out.includes(line)) throw new Error(`without ${name}, using it should fail with "${line}"; it printed:\n${r.out}`);
    say(`without ${name}: fails when used, saying "${line}"`);
  }

  // 6. The core README's example, as written. Where it uses a model and an optimizer it does not
  // define, they are defined first, the way a reader would have them.
  const readme = readPage(join(ROOT, "packages/core/README.md")).blocks.find((b) => b.lang === "ts");
  if (!readme) throw new Error("packages/core/README.md has no ts example");
  readme.file = "packages/core/README.md";
  const declares = (name) => new RegExp(`\\b(const|let|var|function|class)\\s+${name}\\b|import[^;]*\\b${name}\\b`).test(readme.code);
  const prelude = [];
  if (/\bmodel\b/.test(readme.code) && !declares("model")) prelude.push('import * as tfl from "@tensorflow/tfjs-layers";', 'const model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [4], units: 2 })] });');
  if (/\boptimizer\b/.test(readme.code) && !declares("optimizer")) prelude.push('import * as tf from "@tensorflow/tfjs-core";', "const optimizer = tf.train.adam(1e-3);");
  const blocks = prelude.length > 0 ? [{ ...readme, code: prelude.join("\n"), line: 0, file: "(prelude: what the README leaves to the reader)" }, readme] : [readme];
  const { source } = assemble(blocks);
  const readmeDir = join(project, "readme-example");
  mkdirSync(readmeDir);
  writeFileSync(join(readmeDir, "example.mjs"), transpile(source, join(readmeDir, "example.ts")));
  await sh(process.execPath, ["example.mjs"], { cwd: readmeDir });
  say(`the core README example runs${prelude.length > 0 ? " (with model/optimizer defined first: the README does not define them)" : ""}`);

  // 7. One tutorial, type-checked against the installed packages' types and run there.
  const tutorial = join(ROOT, "docs/tutorials/saving-and-loading.md");
  const report = await runDoctests([tutorial], { base: project, write: (s) => process.stdout.write(`  ${s}`) });
  if (!report.ok) throw new Error(`the tutorial failed in the packed install:\n${report.failures.join("\n")}`);
  say(`docs/tutorials/saving-and-loading.md runs against the packed packages`);
  ok = true;
} catch (err) {
  say(`FAIL ${err.message}`);
  process.exitCode = 1;
} finally {
  if (ok && !process.env.SMOKE_KEEP) rmSync(base, { recursive: true, force: true });
  else say(`project kept in ${project}`);
  say(`${ok ? "pack smoke test passed" : "pack smoke test failed"} in ${elapsed()}`);
}
