import { existsSync, readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const NAME = "@savepoint/backend-cuda";

/**
 * The folder of this package (where `build/Release/savepoint_cuda.node` is built), found by walking
 * up from this module: the same code runs from `src/` in tests and from `dist/` when installed.
 */
export function packageRoot(): string {
  let dir = dirname(realpathSync(fileURLToPath(import.meta.url)));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name === NAME) return dir;
      } catch {
        // not ours; keep walking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the folder of ${NAME} above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/**
 * The command that builds the addon where this copy of the package lives: inside the savepoint
 * repository (a workspace) or installed under some project's node_modules.
 */
export function buildCommand(root: string): string {
  const installed = root.split(/[\\/]/).includes("node_modules");
  return installed ? `npm rebuild ${NAME} --foreground-scripts` : `npm run build:addon -w ${NAME}`;
}
