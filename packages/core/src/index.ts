/**
 * @savepoint/core: checkpointing for TensorFlow.js training loops with the semantics of Lightning
 * Fabric's save / load / load_raw, in files PyTorch and Lightning read and write.
 *
 * @packageDocumentation
 */
export { Fabric, type FabricOptions, type SaveOptions, type LoadOptions, type LoadRawOptions } from "./fabric.js";
export { AsyncSave } from "./async-save.js";
export { StagingPool } from "./tensor/staging-pool.js";
export * from "./errors.js";
export { type DType, DTYPES, isDType, itemSize } from "./dtype.js";

export { type TensorSource, isTensorSource, numel, DEFAULT_CHUNK_BYTES } from "./tensor/tensor-source.js";
export { StoredTensor, HostTensor, LazyTensor, isStoredTensor, type RangeReader } from "./tensor/stored-tensor.js";
export { decodeBytes, encodeValues, bytesOf, type TensorData } from "./tensor/typed-arrays.js";
export { transpose2d } from "./tensor/transpose.js";

export { asTuple, isTuple, withIntKeys, intKeysOf, asOrderedDict, isOrderedDict, copyMarks, PyGlobal, PyObject } from "./tree/python-values.js";
export { isPlainObject } from "./tree/plain.js";

export type { ByteSource, ByteSink, AtomicWrite } from "./io/byte-source.js";
export type { CheckpointIO, PathInfo } from "./io/checkpoint-io.js";
export { NodeFileIO } from "./io/node-fs-io.js";
export { MemoryIO } from "./io/memory-io.js";
export { boundedSource } from "./io/bounded-source.js";

export type { AssignItem, Backend } from "./backends/backend.js";
export { TfjsBackend, cpuBackend } from "./backends/tfjs/tfjs-backend.js";
export { isTfjsTensor, isTfjsVariable, dtypeOfTfjs, tfjsDTypeFor, valuesFor, checkShape } from "./backends/tfjs/tfjs-tensors.js";
export { readTensorBytes } from "./tensor/read-tensor-bytes.js";
export { writableStorage } from "./backends/tfjs/in-place.js";

export { type Collective, type CollectiveOptions, SingleProcessCollective } from "./collectives/collective.js";

export type { Strategy, StrategyContext, StrategySaveOptions, StrategyLoadOptions, StrategyLoadRawOptions } from "./strategies/strategy.js";
export { SingleDeviceStrategy } from "./strategies/single-device.js";
export { type KeyMap, applyKeyMap } from "./strategies/key-map.js";
export { type SaveFilter, convertState, restoreState, toWritableTree, validateFilter } from "./strategies/state-conversion.js";
export { writeCheckpoint, withCheckpoint } from "./strategies/checkpoint-files.js";
export { strategyCollective, type DistributedStrategyOptions, type StrategyCollective } from "./strategies/strategy-collective.js";

export type { Format, FormatProbe, FormatReadContext, FormatWriteContext, SafetyMode } from "./formats/format.js";
export { FormatRegistry } from "./formats/format-registry.js";
export { defaultFormats } from "./formats/default-formats.js";
export { torchZipFormat } from "./formats/torch/torch-zip-format.js";
export { safetensorsFormat } from "./formats/safetensors/safetensors-format.js";
export { tfjsManifestFormat } from "./formats/tfjs/tfjs-manifest-format.js";
export { torchLegacyFormat } from "./formats/torch-legacy/torch-legacy-format.js";
export { dcpFormat } from "./formats/dcp/dcp-format.js";
export { readDcpMetadata, type DcpMetadataReadOptions } from "./formats/dcp/read-dcp-metadata.js";
export type { DcpMetadata, DcpItem, DcpTensorItem, DcpBytesItem, DcpChunk, DcpStorageLocation } from "./formats/dcp/dcp-metadata.js";
export { readTorchZip, type TorchZipReadOptions } from "./formats/torch/read-torch-zip.js";
export { flattenStateDict, type FlatEntry } from "./formats/dcp/flatten-state.js";
export { writeDcpShard, type DcpWriteItem, type DcpWrittenItem, type DcpShardWriteOptions } from "./formats/dcp/write-dcp-shard.js";
export { assembleDcpMetadata, encodeDcpMetadata, writeDcpMetadata, DCP_VERSION, type DcpMetadataAssembly } from "./formats/dcp/write-dcp-metadata.js";
export { canStageDcpFolder, checkDcpTarget, dcpStagingFolder, discardDcpFolder, interruptedDcpSwap, recoverDcpFolder, publishDcpFolder } from "./formats/dcp/dcp-folder-commit.js";
export { consolidateDcp, type ConsolidateOptions } from "./formats/dcp/consolidate.js";
export { DCP_METADATA_FILE, LIGHTNING_META_FILE } from "./formats/dcp/dcp-metadata.js";
export { safetensorsIndexFormat, safetensorsIndexFormatWith, DEFAULT_MAX_SHARD_SIZE, type SafetensorsIndexOptions } from "./formats/safetensors-index/safetensors-index-format.js";

export type { StatefulAdapter, StatefulKind, AdapterContext } from "./adapters/stateful-adapter.js";
export { AdapterRegistry } from "./adapters/stateful-adapter.js";
export { layersModelAdapter } from "./adapters/tfjs/layers-model-adapter.js";
export { tfjsOptimizerAdapter } from "./adapters/tfjs/optimizer-adapter.js";
export { genericStatefulAdapter } from "./adapters/generic-stateful.js";
export { modelParameters } from "./adapters/tfjs/model-parameters.js";

export { registerStrategy, registerBackend, createStrategy, createBackend } from "./registry.js";
export { checkInterface } from "./capabilities.js";

export { createLocalGroup, LocalCollective, type LocalGroupOptions } from "./collectives/local-group.js";
export { launchThreads, ThreadCollective, type LaunchThreadsOptions, type ThreadResult } from "./collectives/threads.js";
export { TcpCollective, type TcpCollectiveOptions } from "./collectives/tcp.js";
export { RedisCollective, type RedisCollectiveOptions } from "./collectives/redis.js";
export { collectiveFromEnv, type CollectiveFromEnvOptions } from "./collectives/from-env.js";
export { allReduce, type ReducibleArray } from "./collectives/all-reduce.js";
export { DEFAULT_TIMEOUT_MS } from "./collectives/failure.js";
export { agree, describeError, type AgreeOptions, type AgreeOutcome, type DescribedError } from "./collectives/agree.js";
export { launch, type LaunchOptions, type LaunchHandle, type LaunchResult, type RankExit } from "./launcher/launch.js";

export { CheckpointManager } from "./manager/checkpoint-manager.js";
export type { CheckpointManagerOptions, KeepBest } from "./manager/options.js";
export type { CheckpointInfo } from "./manager/folder.js";
export type { Metrics } from "./manager/metrics.js";
export { SaveHandle, type RestoreResult } from "./manager/save-handle.js";
