import { runStrategyConformance } from "@savepoint/core/testing";
import { DDPStrategy } from "../src/index.js";

// One process (a world of one), then three ranks in one process through an in-process group.
runStrategyConformance({ name: "DDPStrategy", strategy: (collective) => new DDPStrategy(collective) });
runStrategyConformance({ name: "DDPStrategy", worldSize: 3, timeoutMs: 500, strategy: (collective) => new DDPStrategy(collective) });
