// Plain JavaScript so that it also loads as a stand-in addon (SAVEPOINT_CUDA_ADDON) outside vitest;
// types in emulated-cuda.d.mts.
/**
 * The addon's contract acted out in host memory, for tests on machines without a GPU: device
 * allocations are Uint8Arrays, "pinned" buffers are ordinary ArrayBuffers, each stream runs its
 * copies in order, and a copy moves its bytes only when it completes (after `latency`), as DMA
 * does, so a scheduler that reuses a buffer too early hands out overwritten bytes. It checks what
 * the addon checks (live addresses, bounds, pinned memory for async copies, no free while in use)
 * and counts the copies queued at once.
 */
export class EmulatedCuda {
  allocations = new Map();
  pinned = new Set();
  streams = new Map();
  /** Copies queued and not yet completed, now and at most. */
  queued = 0;
  maxQueued = 0;
  /** One line per completed async copy: `d2h`, `h2d` or `d2d` and its byte count. */
  log = [];
  /** Makes the next async copy of `kind` fail with this CUDA error name. */
  failNext = undefined;
  #next = 0x7000_0000n;
  #devices;
  #latency;

  constructor(options = {}) {
    this.#devices = options.devices ?? 1;
    this.#latency = options.latency ?? (() => new Promise((resolve) => setImmediate(resolve)));
  }

  probe() {
    return { ok: true, deviceCount: this.#devices, status: "cudaSuccess", message: "no error", runtimeVersion: 13000, driverVersion: 13000 };
  }

  deviceInfo(device) {
    this.#device(device);
    return { name: "emulated", totalMemory: 2 ** 36, freeMemory: 2 ** 36, asyncEngineCount: 2, pciBusId: "0000:00:00.0", computeCapability: "0.0" };
  }

  malloc(device, bytes) {
    this.#device(device);
    const address = this.#next;
    this.#next += BigInt(bytes + 512 - (bytes % 256));
    this.allocations.set(address, { device, bytes: new Uint8Array(bytes), uses: 0 });
    return address;
  }

  free(address) {
    const a = this.allocations.get(address);
    if (!a) throw new Error("cudaFree: address is not a live allocation of this addon (freed twice?)");
    if (a.uses > 0) throw new Error("cudaFree: the allocation is still used by an asynchronous copy");
    this.allocations.delete(address);
  }

  hostAlloc(bytes) {
    const b = new ArrayBuffer(bytes);
    this.pinned.add(b);
    return b;
  }

  hostFree(buffer) {
    if (!this.pinned.delete(buffer)) throw new Error("not a pinned buffer of this addon (freed twice?)");
    structuredClone(buffer, { transfer: [buffer] }); // detaches it, as the addon does
  }

  streamCreate(device) {
    this.#device(device);
    const handle = this.#next;
    this.#next += 256n;
    this.streams.set(handle, { device, tail: Promise.resolve() });
    return handle;
  }

  streamDestroy(stream) {
    if (!this.streams.delete(stream)) throw new Error("cudaStreamDestroy: not a live stream of this addon");
  }

  copyToHostAsync(device, stream, src, srcOffset, dst) {
    const from = this.#range(device, src, srcOffset, dst.byteLength);
    this.#pinnedView(dst);
    return this.#enqueue(stream, "d2h", dst.byteLength, [src], () => dst.set(from()));
  }

  copyToDeviceAsync(device, stream, src, dst, dstOffset) {
    const to = this.#range(device, dst, dstOffset, src.byteLength);
    this.#pinnedView(src);
    return this.#enqueue(stream, "h2d", src.byteLength, [dst], () => to().set(src));
  }

  copyDeviceAsync(device, stream, dst, dstOffset, src, srcOffset, bytes) {
    const to = this.#range(device, dst, dstOffset, bytes);
    const from = this.#range(device, src, srcOffset, bytes);
    return this.#enqueue(stream, "d2d", bytes, [dst, src], () => to().set(from()));
  }

  copyToHostSync(device, src, srcOffset, dst) {
    dst.set(this.#range(device, src, srcOffset, dst.byteLength)());
  }

  copyToDeviceSync(device, src, dst, dstOffset) {
    this.#range(device, dst, dstOffset, src.byteLength)().set(src);
  }

  /** The bytes of a device allocation, read without going through any backend (a back door). */
  peek(address) {
    return this.allocations.get(address).bytes;
  }

  #device(device) {
    if (!Number.isInteger(device) || device < 0 || device >= this.#devices) throw Object.assign(new Error("cudaSetDevice failed: cudaErrorInvalidDevice (invalid device ordinal)"), { code: "cudaErrorInvalidDevice" });
  }

  #range(device, address, offset, length) {
    const a = this.allocations.get(address);
    if (!a) throw new Error("device address is not a live allocation of this addon (used after dispose?)");
    if (a.device !== device) throw new Error(`device address belongs to device ${a.device}, not ${device}`);
    if (offset + length > a.bytes.byteLength) throw new RangeError(`range [${offset}, ${offset + length}) is outside a device allocation of ${a.bytes.byteLength} bytes`);
    return () => a.bytes.subarray(offset, offset + length);
  }

  #pinnedView(view) {
    if (!this.pinned.has(view.buffer)) throw new Error("asynchronous copies need pinned host memory from hostAlloc()");
  }

  #enqueue(stream, kind, bytes, addresses, move) {
    const s = this.streams.get(stream);
    if (!s) throw new Error("not a live stream of this addon (destroyed?)");
    const failure = this.failNext?.kind === kind ? this.failNext : undefined;
    if (failure) this.failNext = undefined;
    if (bytes === 0) return Promise.resolve();
    for (const a of addresses) this.allocations.get(a).uses++;
    this.queued++;
    this.maxQueued = Math.max(this.maxQueued, this.queued);
    const done = s.tail.then(async () => {
      await this.#latency();
      this.queued--;
      for (const a of addresses) this.allocations.get(a).uses--;
      if (failure) throw Object.assign(new Error(`asynchronous copy failed: ${failure.code}`), { code: failure.code });
      move();
      this.log.push(`${kind} ${bytes}`);
    });
    s.tail = done.catch(() => undefined);
    return done;
  }
}
