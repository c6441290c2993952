import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { crc32, crc32Implementation, crc32IsNative, crc32Portable } from "../../src/formats/zip/crc32.js";

const ascii = (s: string) => new TextEncoder().encode(s);

/** Splits `data` at random points and folds the CRC across the pieces. */
function incremental(fn: (d: Uint8Array, p?: number) => number, data: Uint8Array): number {
  let crc = 0;
  for (let at = 0; at < data.length; ) {
    const n = Math.min(data.length - at, Math.floor(Math.random() * 100));
    crc = fn(data.subarray(at, at + n), crc);
    at += n;
  }
  return crc;
}

describe("crc32", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.resetModules();
  });

  it("matches the standard check values", () => {
    for (const fn of [crc32, crc32Portable]) {
      expect(fn(ascii("123456789"))).toBe(0xcbf43926);
      expect(fn(new Uint8Array(0))).toBe(0);
      expect(fn(new Uint8Array(0), 0x1234abcd)).toBe(0x1234abcd);
      expect(fn(ascii("The quick brown fox jumps over the lazy dog"))).toBe(0x414fa339);
    }
  });

  it("uses @node-rs/crc32 here (its linux-x64 binary is installed with core)", () => {
    expect(crc32IsNative()).toBe(true);
    expect(crc32Implementation()).toBe("@node-rs/crc32");
  });

  it("importing core (ESM or CommonJS build) loads no native addon; the first checksum loads @node-rs/crc32", () => {
    const dist = fileURLToPath(new URL("../../dist/", import.meta.url));
    const addons = "Object.keys(require.cache).filter((k) => k.endsWith('.node')).length";
    const cjs = execFileSync(process.execPath, ["-e", `const m = require(${JSON.stringify(join(dist, "index.cjs"))}); const before = ${addons}; new m.MemoryIO(); console.log(before)`], { encoding: "utf8" });
    expect(cjs.trim()).toBe("0");
    const esm = execFileSync(process.execPath, ["--input-type=module", "-e", `import { createRequire } from "node:module"; const require = createRequire(${JSON.stringify(join(dist, "index.js"))}); const m = await import(${JSON.stringify(join(dist, "index.js"))}); const before = ${addons}; await new m.Fabric({ io: new m.MemoryIO() }).save("x.ckpt", { w: m.HostTensor.fromValues("float32", [2], [1, 2]) }); console.log(before, ${addons})`], { encoding: "utf8" });
    expect(esm.trim()).toBe("0 1");
  });

  it("the accelerated CRC agrees with zlib and the tables on odd lengths, offsets and 1 GiB-crossing folds", async () => {
    const { crc32: zlibCrc } = await import("node:zlib");
    for (const length of [0, 1, 15, 16, 17, 255, 4096 + 3, 1 << 20]) {
      const data = new Uint8Array(randomBytes(length + 3)).subarray(3);
      expect(crc32(data)).toBe(zlibCrc(data));
      expect(crc32(data, 0xdeadbeef)).toBe(zlibCrc(data, 0xdeadbeef));
      expect(crc32Portable(data, 0xdeadbeef)).toBe(crc32(data, 0xdeadbeef));
    }
  });

  it("falls back to zlib when @node-rs/crc32 cannot be resolved", async () => {
    const real = process.getBuiltinModule.bind(process);
    vi.stubGlobal("process", { ...process, getBuiltinModule: (id: string) => (id === "node:module" ? undefined : real(id)) });
    vi.resetModules();
    const fallback = await import("../../src/formats/zip/crc32.js");
    expect(fallback.crc32Implementation()).toBe("zlib");
    const data = new Uint8Array(randomBytes(10_000));
    expect(fallback.crc32(data)).toBe(crc32(data));
    expect(incremental(fallback.crc32, data)).toBe(crc32(data));
  });

  it("native and portable paths agree on random data, whole and in chunks", () => {
    for (const length of [1, 7, 8, 9, 63, 1000, 65_537, 1 << 20]) {
      const data = new Uint8Array(randomBytes(length));
      const whole = crc32(data);
      expect(crc32Portable(data)).toBe(whole);
      expect(incremental(crc32, data)).toBe(whole);
      expect(incremental(crc32Portable, data)).toBe(whole);
      // Unaligned views must not confuse the slice-by-8 loop.
      expect(crc32Portable(data.subarray(1))).toBe(crc32(data.subarray(1)));
    }
  });

  it("falls back to the portable tables when node:zlib cannot be obtained", async () => {
    vi.stubGlobal("process", { ...process, getBuiltinModule: undefined });
    vi.resetModules();
    const fallback = await import("../../src/formats/zip/crc32.js");
    expect(fallback.crc32IsNative()).toBe(false);
    expect(fallback.crc32Implementation()).toBe("portable");
    const data = new Uint8Array(randomBytes(10_000));
    expect(fallback.crc32(data)).toBe(crc32(data));
    expect(incremental(fallback.crc32, data)).toBe(crc32(data));
  });
});
