/**
 * Child of the permission tests, started as another user: performs one operation and prints the
 * outcome as JSON: { ok: true } or { error: <class>, message }.
 *
 * argv: save <path> | load <path> | manager-save <folder>
 */
import { Fabric, HostTensor } from "../../../src/index.js";
import { CheckpointManager } from "../../../src/manager/checkpoint-manager.js";

const [op, path] = process.argv.slice(2) as [string, string];
const state = { step: 1, t: HostTensor.fromValues("float32", [4], [1, 2, 3, 4]) };
try {
  const fabric = new Fabric();
  if (op === "save") await fabric.save(path, state);
  else if (op === "load") await fabric.load(path);
  else if (op === "manager-save") await new CheckpointManager(fabric, path, { keepLast: 1 }).save(2, state);
  else throw new Error(`unknown op ${op}`);
  console.log(JSON.stringify({ ok: true }));
} catch (err) {
  const e = err as Error;
  console.log(JSON.stringify({ error: e.constructor.name, message: e.message }));
}
