import { runStrategyConformance } from "@savepoint/core/testing";
import { FSDPStrategy } from "../src/index.js";

// Sharded checkpoints are DCP folders (every rank writes its own file, .metadata last): the
// suite's "directory" layout. Full checkpoints are one file from rank 0, as DDP's.
for (const worldSize of [1, 3]) {
  runStrategyConformance({ name: "FSDPStrategy (sharded)", worldSize, timeoutMs: 500, layout: "directory", strategy: (collective) => new FSDPStrategy({ collective, stateDictType: "sharded" }) });
  runStrategyConformance({ name: "FSDPStrategy (full)", worldSize, timeoutMs: 500, strategy: (collective) => new FSDPStrategy({ collective, stateDictType: "full" }) });
}
