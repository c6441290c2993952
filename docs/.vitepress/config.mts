import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type DefaultTheme } from "vitepress";

const docs = fileURLToPath(new URL("..", import.meta.url));

/** The API reference's modules, read from what TypeDoc generated (docs/api/, see scripts/api.mjs). */
function apiSidebar(): DefaultTheme.SidebarItem[] {
  const api = join(docs, "api");
  if (!existsSync(join(api, "index.md"))) return [{ text: "(run npm run docs:api)", link: "/reference/packages" }];
  const items: DefaultTheme.SidebarItem[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const name of readdirSync(dir).sort()) {
      const sub = join(dir, name);
      if (!existsSync(join(sub, "index.md"))) continue;
      const title = /^#\s+(.+)$/m.exec(readFileSync(join(sub, "index.md"), "utf8"))?.[1] ?? `${prefix}${name}`;
      items.push({ text: title, link: `/api/${prefix}${name}/` });
      walk(sub, `${prefix}${name}/`);
    }
  };
  walk(api, "");
  return [{ text: "API reference", link: "/api/", items }];
}

export default defineConfig({
  title: "savepoint",
  description: "Checkpoints for TensorFlow.js training loops with Lightning Fabric's save / load / loadRaw, in files PyTorch reads.",
  // A dead internal link fails the build (VitePress's default, stated here on purpose).
  ignoreDeadLinks: false,
  cleanUrls: true,
  lastUpdated: false,
  // The local search index of the API reference is one large chunk, and that is fine for docs.
  vite: { build: { chunkSizeWarningLimit: 4096 } },
  themeConfig: {
    nav: [
      { text: "Guide", link: "/guide/getting-started" },
      { text: "Tutorials", link: "/tutorials/saving-and-loading" },
      { text: "CLI", link: "/reference/cli" },
      { text: "API", link: "/api/" },
    ],
    sidebar: {
      "/api/": apiSidebar(),
      "/": [
        {
          text: "Guide",
          items: [
            { text: "Getting started", link: "/guide/getting-started" },
            { text: "Packages", link: "/reference/packages" },
          ],
        },
        {
          text: "Tutorials",
          items: [
            { text: "Saving and loading checkpoints", link: "/tutorials/saving-and-loading" },
            { text: "Distributed: DDP", link: "/tutorials/ddp" },
            { text: "Distributed: FSDP and resharding", link: "/tutorials/fsdp" },
            { text: "PyTorch weights in a TF.js model", link: "/tutorials/pytorch-weights" },
            { text: "Checkpoints in the browser (WebGPU)", link: "/tutorials/webgpu" },
            { text: "Writing a strategy", link: "/tutorials/custom-strategy" },
            { text: "Writing a backend", link: "/tutorials/custom-backend" },
            { text: "CheckpointManager", link: "/tutorials/checkpoint-manager" },
          ],
        },
        {
          text: "Reference",
          items: [
            { text: "The savepoint CLI", link: "/reference/cli" },
            { text: "File formats", link: "/reference/formats" },
            { text: "API reference", link: "/api/" },
          ],
        },
      ],
    },
    outline: [2, 3],
    search: { provider: "local" },
  },
});
