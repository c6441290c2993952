import { isBuiltin } from "node:module";
import type { Plugin } from "vite";

const PREFIX = "\0savepoint-node-stub:";

/**
 * @savepoint/core's main entry also carries its Node-only parts (local files, thread/TCP
 * collectives, the launcher), which import Node built-ins. In a browser bundle this plugin gives
 * each built-in a stub whose every export throws when called; none of that code runs in a page.
 * (Vite's own stub exports nothing, so the bundle would not link.)
 */
export function nodeBuiltinStubs(): Plugin {
  return {
    name: "savepoint-node-builtin-stubs",
    enforce: "pre",
    // An alias runs before Vite's resolver, which would map built-ins to its export-less stub.
    config: () => ({ resolve: { alias: [{ find: /^(node:)?([a-z0-9_/]+)$/, replacement: "$1$2", customResolver: (id: string) => (isBuiltin(id) ? PREFIX + id.replace(/^node:/, "") : null) }] } }),
    resolveId(id) {
      return id.startsWith(PREFIX) ? id : null;
    },
    load(id) {
      if (!id.startsWith(PREFIX)) return null;
      const name = JSON.stringify(id.slice(PREFIX.length));
      const code = `const unavailable = (k) => () => { throw new Error(\`\${${name}}.\${String(k)} is not available in a browser\`); };
export default new Proxy({}, { get: (_, k) => (k === "__esModule" ? false : unavailable(k)) });`;
      // Named imports are read off the default export, so any name links.
      return { code, syntheticNamedExports: true };
    },
  };
}
