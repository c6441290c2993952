/**
 * Child process of the crash and concurrent-writer tests: saves "version" checkpoints of a large
 * uint8 tensor to one path in a loop, announcing each version on stdout *before* saving it (stdout
 * to a pipe is synchronous on Linux, so the parent knows every version that may reach the disk).
 *
 * argv: <path> <first version> <count (0 = forever)> <tensor bytes>
 * With SAVER_WAIT=1 it prints "ready" and waits for a line on stdin before the first save, so the
 * parent can start it ahead of time and time its kill from the moment saving begins.
 */
import { createInterface } from "node:readline";
import { Fabric, HostTensor } from "../../../src/index.js";
import { fillVersion } from "../helpers/content.js";

const [path, firstText, countText, bytesText] = process.argv.slice(2);
const first = Number(firstText);
const count = Number(countText);
const bytes = Number(bytesText);
const fabric = new Fabric();
const raw = new Uint8Array(bytes);
const say = (line: string) => process.stdout.write(`${line}\n`);

let go = performance.now();
if (process.env.SAVER_WAIT === "1") {
  say("ready");
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once("line", () => resolve()));
  lines.close();
  go = performance.now();
}
for (let v = first; count === 0 || v < first + count; v++) {
  fillVersion(raw, v);
  say(`begin ${v}`);
  await fabric.save(path!, { version: v, t: new HostTensor("uint8", [bytes], raw) });
  // Milliseconds since "go": the parent sizes its kill window from these.
  say(`done ${v} ${(performance.now() - go).toFixed(1)}`);
}
process.exit(0);
