// The FIFO allocator the load pipeline stages records in: ranges never overlap a live one, and
// space comes back in the order it was taken.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { StagingRing } from "../../src/tensor/staging-ring.js";

describe("StagingRing", () => {
  it("takes ranges in order, wraps around once the oldest are given back", () => {
    const ring = new StagingRing(100);
    const a = ring.take(40)!;
    const b = ring.take(40)!;
    expect(a.byteOffset).toBe(0);
    expect(b.byteOffset).toBe(40);
    expect(ring.take(30)).toBeUndefined(); // 20 left at the end, none before
    ring.release(); // a
    const c = ring.take(30)!;
    expect(c.byteOffset).toBe(0); // wrapped into a's space
    expect(ring.take(20)).toBeUndefined(); // only 10 between c and b
    ring.release(); // b
    ring.release(); // c
    expect(ring.idle).toBe(true);
    expect(ring.take(100)!.byteOffset).toBe(0);
    expect(ring.take(0)).toBeUndefined();
    expect(new StagingRing(10).take(11)).toBeUndefined();
  });

  it("never hands out bytes that overlap a live range (random takes and releases)", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer({ min: 1, max: 70 }), fc.constant(0)), { maxLength: 200 }), (ops) => {
        const ring = new StagingRing(128);
        const live: [number, number][] = [];
        for (const op of ops) {
          if (op === 0) {
            if (live.length > 0) {
              ring.release();
              live.shift();
            }
            continue;
          }
          const v = ring.take(op);
          if (!v) {
            // Refused only when it cannot fit; an idle ring always fits what its capacity holds.
            expect(live.length).toBeGreaterThan(0);
            continue;
          }
          const r: [number, number] = [v.byteOffset, v.byteOffset + op];
          expect(r[1]).toBeLessThanOrEqual(128);
          for (const [s, e] of live) expect(r[1] <= s || r[0] >= e).toBe(true);
          live.push(r);
        }
      }),
    );
  });
});
