#!/usr/bin/env node
// Generates the API reference (docs/api/) from the TSDoc of every workspace package with TypeDoc
// and typedoc-plugin-markdown; VitePress then renders it with the rest of the site.
// Entry points come from each package's `exports`: exactly what users can import is documented,
// under the name they import it by (`@savepoint/core/testing`), nothing else.
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Application, Converter, ReflectionKind, TSConfigReader, TypeDocReader } from "typedoc";

const DOCS = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = resolve(DOCS, "..");

/** source file → import specifier, for every public entry of every package. */
export function publicEntries() {
  const out = new Map();
  for (const folder of readdirSync(join(ROOT, "packages")).sort()) {
    const dir = join(ROOT, "packages", folder);
    if (!existsSync(join(dir, "package.json"))) continue;
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    const exportsMap = typeof pkg.exports === "object" && pkg.exports !== null && !Array.isArray(pkg.exports) && Object.keys(pkg.exports).every((k) => k.startsWith(".")) ? pkg.exports : { ".": pkg.exports ?? pkg.module ?? pkg.main };
    for (const [subpath, target] of Object.entries(exportsMap)) {
      if (subpath.endsWith(".json")) continue;
      const built = firstString(target);
      const m = built && /^\.\/dist\/(.+)\.(?:c|m)?js$/.exec(built);
      if (!m) continue;
      const source = join(dir, "src", `${m[1]}.ts`);
      if (!existsSync(source)) {
        // A package being written may not have its entry yet; in CI that is an error.
        const message = `${pkg.name}: export "${subpath}" is built from src/${m[1]}.ts, which does not exist`;
        if (process.env.CI === "true" || process.env.CI === "1") throw new Error(message);
        process.stderr.write(`warning: ${message}; left out of the API reference\n`);
        continue;
      }
      out.set(source, subpath === "." ? pkg.name : `${pkg.name}/${subpath.slice(2)}`);
    }
  }
  return out;
}

/** The import (ESM) file of a conditional export. */
function firstString(target) {
  if (typeof target === "string") return target;
  if (typeof target !== "object" || target === null) return undefined;
  for (const key of ["import", "default", "require"]) {
    const v = firstString(target[key]);
    if (v && !v.endsWith(".d.ts") && !v.endsWith(".d.cts")) return v;
  }
  return undefined;
}

export async function generateApi() {
  const entries = publicEntries();
  rmSync(join(DOCS, "api"), { recursive: true, force: true });
  const app = await Application.bootstrapWithPlugins({ options: join(DOCS, "typedoc.json"), entryPoints: [...entries.keys()] }, [new TypeDocReader(), new TSConfigReader()]);
  // TypeDoc names a module after its path ("core/src/testing"); readers know it by its import name.
  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (context, reflection) => {
    if (!reflection.kindOf(ReflectionKind.Module)) return;
    const file = context.getSymbolFromReflection(reflection)?.declarations?.[0]?.getSourceFile().fileName;
    const name = file && entries.get(resolve(file));
    if (!name) throw new Error(`TypeDoc made a module "${reflection.name}" from ${file}, which is not a package entry`);
    reflection.name = name;
  });
  const project = await app.convert();
  if (!project) throw new Error("TypeDoc could not convert the packages (see the messages above)");
  await app.generateOutputs(project);
  if (app.logger.hasErrors()) throw new Error("TypeDoc reported errors");
  return [...entries.values()];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const names = await generateApi();
  process.stdout.write(`API reference for ${names.join(", ")} in docs/api/\n`);
}
