import { SavepointError } from "@savepoint/core";

/**
 * The CUDA backend cannot be used here: no addon (no toolkit when it was built), no driver, or
 * no device. The message says which, quoting CUDA's own error, and how to fix it.
 */
export class CudaUnavailableError extends SavepointError {}

/** A CUDA call failed. `code` is CUDA's error name (e.g. `cudaErrorMemoryAllocation`). */
export class CudaError extends SavepointError {
  readonly code: string | undefined;
  constructor(message: string, options?: { cause?: unknown; subject?: string; code?: string }) {
    super(message, options);
    this.code = options?.code;
  }
}

/** Runs a native call, turning the addon's plain errors into a `CudaError` saying what was being done. */
export function cudaCall<T>(doing: string, fix: string, call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw asCudaError(error, doing, fix);
  }
}

/** The `CudaError` for a failure of the addon while `doing` something. */
export function asCudaError(error: unknown, doing: string, fix: string, subject?: string): SavepointError {
  if (error instanceof SavepointError) return error;
  const code = typeof (error as { code?: unknown })?.code === "string" ? (error as { code: string }).code : undefined;
  const text = error instanceof Error ? error.message : String(error);
  const hint = code === "cudaErrorMemoryAllocation" ? "Free device memory (dispose tensors you no longer need) or use a device with more memory." : fix;
  return new CudaError(`${doing}: ${text}. ${hint}`, { cause: error, code, subject });
}
