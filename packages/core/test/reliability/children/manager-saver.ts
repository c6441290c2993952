/**
 * Child of the manager crash test: a training loop that saves every step through a
 * CheckpointManager (keepLast 2) and prints "done <step> <ms since go>" once save() has returned.
 *
 * argv: <folder> <tensor bytes>; starts on a line "go <first step>" on stdin, so the parent can
 * start it ahead of time.
 */
import { createInterface } from "node:readline";
import { Fabric, HostTensor } from "../../../src/index.js";
import { CheckpointManager } from "../../../src/manager/checkpoint-manager.js";
import { fillVersion } from "../helpers/content.js";

const [dir, bytesText] = process.argv.slice(2) as [string, string];
const bytes = Number(bytesText);
const manager = new CheckpointManager(new Fabric(), dir, { keepLast: 2, keepBest: { metric: "loss", mode: "min", k: 1 }, onWarning: () => {} });
const raw = new Uint8Array(bytes);
process.stdout.write("ready\n");
const lines = createInterface({ input: process.stdin });
const first = await new Promise<number>((resolve) => lines.once("line", (l) => resolve(Number(l.split(" ")[1]))));
lines.close();
const go = performance.now();
for (let step = first; ; step++) {
  // The loss falls and rises again so that keepBest keeps an old checkpoint besides the newest two.
  await manager.save(step, { step, t: new HostTensor("uint8", [bytes], fillVersion(raw, step)) }, { loss: Math.abs((step % 20) - 10) });
  // Milliseconds since "go": the parent sizes its kill window from these.
  process.stdout.write(`done ${step} ${(performance.now() - go).toFixed(1)}\n`);
}
