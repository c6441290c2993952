// The packages as users install them: packed, installed into a fresh project outside the
// workspace, every entry point loaded, the core README example and a tutorial run there
// (scripts/pack-smoke.mjs).
import { expect, it } from "vitest";
import { requireBuilt, runScript } from "./run-script.js";

it("packs every package, installs the tarballs in a fresh project, and runs the README example and a tutorial there", async () => {
  requireBuilt();
  const r = await runScript(process.execPath, ["scripts/pack-smoke.mjs"], 170_000);
  expect(r.code, r.output).toBe(0);
  console.log(`pack smoke: ${r.seconds.toFixed(0)}s`);
}, 180_000);
