// One phase of the demo in its own process:
//   node worker.mjs first  CKPT OPT  → train steps 0-10, save CKPT
//   node worker.mjs resume CKPT OPT  → fresh objects, load CKPT, train steps 10-20, print fingerprint
//   node worker.mjs full   -    OPT  → train steps 0-20 uninterrupted, print fingerprint
import { Fabric } from "@savepoint/core";
import { buildModel, fingerprint, makeOptimizer, train, useCpu } from "./train.mjs";

const [phase, ckpt, kind = "adam"] = process.argv.slice(2);
await useCpu();
const fabric = new Fabric();
const model = buildModel();
const optimizer = makeOptimizer(kind);
const state = { model, optimizer, iteration: 0, hparams: { optimizer: kind, steps: 20 } };

if (phase === "first") {
  const loss = train(model, optimizer, 0, 10);
  state.iteration = 10;
  await fabric.save(ckpt, state);
  console.log(JSON.stringify({ phase, loss }));
} else if (phase === "resume") {
  await fabric.load(ckpt, state);
  const loss = train(model, optimizer, state.iteration, 20);
  console.log(JSON.stringify({ phase, resumedAt: state.iteration, loss, fingerprint: await fingerprint(model, optimizer) }));
} else if (phase === "full") {
  const loss = train(model, optimizer, 0, 20);
  console.log(JSON.stringify({ phase, loss, fingerprint: await fingerprint(model, optimizer) }));
} else {
  throw new Error(`unknown phase ${phase}`);
}
