// The demo: train, save, stop; resume in a new process; compare with an uninterrupted run.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "savepoint-demo-"));
const ckpt = join(dir, "step-10.ckpt");
const kind = process.argv[2] ?? "adam";
const run = (...args) => JSON.parse(execFileSync(process.execPath, [join(here, "worker.mjs"), ...args], { encoding: "utf8" }).trim().split("\n").pop());

try {
  const first = run("first", ckpt, kind);
  console.log(`process 1: trained 10 steps with ${kind} (loss ${first.loss.toFixed(4)}), saved ${ckpt} (${statSync(ckpt).size} bytes), exited`);
  const resumed = run("resume", ckpt, kind);
  console.log(`process 2: loaded the checkpoint, resumed at step ${resumed.resumedAt}, trained to step 20 (loss ${resumed.loss.toFixed(4)})`);
  const full = run("full", "-", kind);
  console.log(`process 3: trained 20 steps without stopping (loss ${full.loss.toFixed(4)})`);
  const keys = Object.keys(full.fingerprint);
  const diff = keys.filter((k) => JSON.stringify(full.fingerprint[k]) !== JSON.stringify(resumed.fingerprint[k]));
  if (diff.length === 0 && keys.length === Object.keys(resumed.fingerprint).length) {
    console.log(`MATCH: the resumed run equals the uninterrupted one bit for bit (${keys.length} weight and optimizer tensors compared)`);
  } else {
    console.log(`MISMATCH in ${diff.join(", ")}`);
    process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
