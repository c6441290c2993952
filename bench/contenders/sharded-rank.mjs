// One rank of a sharded (FSDP) measurement, started by sharded.mjs through savepoint's launcher.
// Every rank builds the same model-only benchmark state, wraps it with FSDPStrategy.setupModule
// and either saves it (timed from a barrier to the return of the save, which returns on every rank
// only after rank 0 committed the folder) or loads a folder into a model built with other values
// and checks that its rows now equal the saved ones.
import { args, report, now } from "../lib/measure.mjs";
import { buildState, initTf, stateBytes } from "../lib/state.mjs";

const a = args();
const { Fabric } = await import(process.env.BENCH_CORE ?? "@savepoint/core");
const { FSDPStrategy } = await import("@savepoint/strategy-fsdp");
await initTf();

const strategy = new FSDPStrategy({ timeoutMs: 600_000 });
const fabric = new Fabric({ strategy });
const { collective, rank } = strategy;

/** A tiny sharded save and load first, so the timed one runs compiled code (as in a training loop). */
async function warmUp() {
  const tiny = buildState(0.005, { seed: 3, optimizer: false });
  const model = strategy.setupModule(tiny.model);
  await fabric.save(`${a.path}.warmup`, { model, step: 1 });
  await fabric.load(`${a.path}.warmup`, { model });
}

async function timedOnAllRanks(fn) {
  await collective.barrier("bench start");
  const t0 = now();
  await fn();
  return now() - t0;
}

const state = buildState(a.scale, { seed: a.mode === "load" ? 2 : 1, optimizer: false });
const model = strategy.setupModule(state.model);
await warmUp();
let seconds;
let correct = true;
if (a.mode === "save") {
  seconds = await timedOnAllRanks(() => fabric.save(a.path, { model, step: 7 }));
} else {
  seconds = await timedOnAllRanks(() => fabric.load(a.path, { model }));
  // The rows this rank holds must now be those of the saved state (seed 1).
  const saved = strategy.setupModule(buildState(a.scale, { seed: 1, optimizer: false }).model);
  for (let i = 0; i < model.parameters.length && correct; i++) {
    const x = model.parameters[i].local.dataSync();
    const y = saved.parameters[i].local.dataSync();
    for (let j = 0; j < x.length; j += 97) if (x[j] !== y[j]) correct = false;
  }
}
await collective.barrier("bench end");
report({ rank, seconds, correct, stateBytes: stateBytes(state) });
await collective.close?.();
