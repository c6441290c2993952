import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import { nodeBuiltinStubs } from "./node-stubs.js";

// `npx vite build demo` (from packages/backend-webgpu) writes the page to demo/dist; the Playwright
// test builds it the same way into its own folder.
// ioredis is imported lazily by core's Redis collective, which never runs in a page.
const rollupOptions = { external: ["ioredis"] };

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: false,
    chunkSizeWarningLimit: 2048, // tfjs alone is most of the 850 kB
    rollupOptions,
  },
  plugins: [nodeBuiltinStubs()],
  // Workers are bundled separately, with their own plugins.
  worker: { format: "es", plugins: () => [nodeBuiltinStubs()], rollupOptions },
});
