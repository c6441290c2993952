/**
 * @savepoint/strategy-fsdp: fully sharded data parallel training and checkpointing for savepoint,
 * with the sharded (torch DCP) and full checkpoints of Lightning's FSDP strategy. Importing it
 * registers the strategy as "fsdp".
 *
 * @packageDocumentation
 */
import { registerStrategy } from "@savepoint/core";
import { FSDPStrategy } from "./fsdp-strategy.js";

registerStrategy("fsdp", () => new FSDPStrategy());

export { FSDPStrategy, type FSDPStrategyOptions, type StateDictType } from "./fsdp-strategy.js";
export { ShardedModel, isShardedModel, type ShardedParameter, type LayersModelLike } from "./sharded-model.js";
export { shardedModelAdapter } from "./sharded-model-adapter.js";
export { rowRange, type RowRange } from "./shard-rows.js";
