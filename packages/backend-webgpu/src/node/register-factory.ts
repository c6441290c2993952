import * as tf from "@tensorflow/tfjs-core";
import { SavepointError } from "@savepoint/core";

type WebGpuBackendCtor = new (device: unknown, adapterInfo?: unknown) => tf.KernelBackend;

/** What `@tensorflow/tfjs-backend-webgpu` exports that we need (its backend class). */
export interface WebGpuModule {
  WebGPUBackend?: WebGpuBackendCtor;
  default?: { WebGPUBackend?: WebGpuBackendCtor };
}

interface Adapter {
  features: { has(name: string): boolean };
  limits: Record<string, number>;
  info?: unknown;
  requestDevice(descriptor: Record<string, unknown>): Promise<unknown>;
}

/**
 * Registers tfjs's `webgpu` backend factory when the package did not register it itself, which
 * happens whenever it was imported before `navigator.gpu` existed (ES imports are hoisted, so in
 * Node it usually was). The factory does what the package's own does: the adapter's limits for the
 * device, timestamp queries when offered.
 */
export function registerWebGpuFactory(mod: WebGpuModule, gpu: { requestAdapter(o?: Record<string, unknown>): Promise<unknown> }): void {
  if (tf.findBackendFactory("webgpu")) return;
  const Backend = mod.WebGPUBackend ?? mod.default?.WebGPUBackend;
  if (typeof Backend !== "function") throw new SavepointError(`@tensorflow/tfjs-backend-webgpu does not export WebGPUBackend; install version 4: npm install @tensorflow/tfjs-backend-webgpu@4`, { subject: "@tensorflow/tfjs-backend-webgpu" });
  tf.registerBackend(
    "webgpu",
    async () => {
      const adapter = (await gpu.requestAdapter({ powerPreference: "high-performance" })) as Adapter | null;
      if (!adapter) throw new Error("navigator.gpu.requestAdapter() returned no adapter");
      const l = adapter.limits;
      const device = await adapter.requestDevice({
        requiredFeatures: adapter.features.has("timestamp-query") ? ["timestamp-query"] : [],
        requiredLimits: {
          maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
          maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
          maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
          maxBufferSize: l.maxBufferSize,
          maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
          maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        },
      });
      return new Backend(device, adapter.info);
    },
    3,
  );
}
