import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import type { AddressInfo } from "node:net";
import { chromium, type BrowserContext } from "playwright-core";

/** Debian's chromium; CI installs it (see .ci/run). Never a browser downloaded by Playwright. */
export const CHROMIUM = process.env.SAVEPOINT_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Whether browser tests should be skipped. Under CI=true a missing chromium fails instead
 * (DESIGN.md §7); elsewhere the tests skip with the install line.
 */
export function skipWithoutChromium(): boolean {
  if (existsSync(CHROMIUM)) return false;
  const why = `${CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)`;
  if (process.env.CI === "true") throw new Error(`[test setup] ${why}`);
  console.warn(`skipping browser tests: ${why}`);
  return true;
}

/**
 * Headless chromium with WebGPU. Without a GPU, Chromium's own SwiftShader (Vulkan on the CPU)
 * backs it; `--enable-unsafe-webgpu` lets a page use that fallback adapter. A fresh profile each
 * time, so OPFS and IndexedDB start empty (and persist across reloads within the context).
 */
export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), "savepoint-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".wasm": "application/wasm" };

/** Serves `root` on a loopback port (http://127.0.0.1 is a secure context, as WebGPU and OPFS need). */
export async function serveStatic(root: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    const file = join(root, path.endsWith("/") ? `${path}index.html` : path);
    if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
