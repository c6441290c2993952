// The documentation in CI: every code block of the tutorials runs (docs/scripts/doctest.mjs), and
// the site builds, API reference and link checks included (npm run docs:build).
import { describe, expect, it } from "vitest";
import { requireBuilt, runScript } from "./run-script.js";

describe("documentation", () => {
  it("runs every code block of the docs against the built packages", async () => {
    requireBuilt();
    const r = await runScript(process.execPath, ["docs/scripts/doctest.mjs"], 170_000);
    // The report names each failing block by page and line; show it whole when something fails.
    expect(r.code, r.output).toBe(0);
    console.log(`doc tests: ${r.seconds.toFixed(0)}s\n${r.output.split("\n").filter((l) => /^[✓✗○-] |^warning|skipped/.test(l)).join("\n")}`);
  }, 180_000);

  it("builds the site: API reference from the TSDoc, every relative link resolving, VitePress without dead links", async () => {
    const r = await runScript("npm", ["run", "docs:build"], 170_000);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/0 dead link\(s\)/);
    console.log(`docs:build: ${r.seconds.toFixed(0)}s`);
  }, 180_000);
});
