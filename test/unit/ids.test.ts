import { describe, expect, it } from "vitest";
import { uuidv7 } from "../../src/ledger/core/ids.js";

describe("uuidv7", () => {
  it("is a version 7, RFC 9562 variant UUID carrying the millisecond time", () => {
    const id = uuidv7(0x0190_b6a0_1234);
    expect(id).toMatch(/^0190b6a0-1234-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("orders by time and never repeats, across many refills of the random pool", () => {
    const ids = Array.from({ length: 20_000 }, (_, index) => uuidv7(1_700_000_000_000 + Math.floor(index / 100)));
    expect(new Set(ids).size).toBe(ids.length);
    const times = ids.map((id) => id.slice(0, 13));
    expect(times).toEqual([...times].sort());
  });
});
