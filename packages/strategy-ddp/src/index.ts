/**
 * @savepoint/strategy-ddp: distributed data parallel checkpointing for savepoint. Importing it
 * registers the strategy as "ddp".
 *
 * @packageDocumentation
 */
import { registerStrategy } from "@savepoint/core";
import { DDPStrategy } from "./ddp-strategy.js";

registerStrategy("ddp", () => new DDPStrategy());

export { DDPStrategy, type DDPStrategyOptions } from "./ddp-strategy.js";
