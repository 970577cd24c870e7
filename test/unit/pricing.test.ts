import { describe, expect, it } from "vitest";
import { formatNanos } from "../../src/ledger/core/amount.js";
import { parseUnitPrice } from "../../src/ledger/prices/price-rules.js";
import { costOf, versionInForce, type PriceVersion } from "../../src/ledger/prices/pricing.js";

function price(unit_prices: Record<string, string>, per: bigint, version = 1, valid_from = new Date(0)): PriceVersion {
  return {
    meter: "m",
    version,
    per,
    valid_from,
    unit_price_nanos: new Map(Object.entries(unit_prices).map(([name, text]) => [name, parseUnitPrice(text)!])),
  };
}

function cost(version: PriceVersion, quantities: Record<string, number>): string {
  const result = costOf(version, quantities);
  if (!("nanos" in result)) throw new Error(JSON.stringify(result));
  return formatNanos(result.nanos);
}

describe("costOf: exact, rounded up once on the total", () => {
  it("812 in + 117 out at 2.5 / 10 per million is 0.0032", () => {
    expect(cost(price({ input_tokens: "2.5", output_tokens: "10" }, 1_000_000n), { input_tokens: 812, output_tokens: 117 })).toBe("0.0032");
  });
  it("rounds a fraction of a nano-credit up, never to zero, and only once", () => {
    const tiny = price({ a: "0.0015", b: "0.0005" }, 1_000_000n);
    expect(cost(tiny, { a: 1 })).toBe("0.000000002");
    expect(cost(tiny, { b: 1 })).toBe("0.000000001");
    expect(cost(tiny, { a: 1, b: 1 })).toBe("0.000000002");
    expect(cost(tiny, { a: 0, b: 0 })).toBe("0");
  });
  it("is exact at the largest quantities (no floating point anywhere)", () => {
    expect(cost(price({ a: "0.000000001" }, 1n), { a: Number.MAX_SAFE_INTEGER })).toBe("9007199.254740991");
  });
  it("refuses an unpriced quantity and a cost above 10^15", () => {
    expect(costOf(price({ a: "1" }, 1n), { b: 1 })).toEqual({ problem: "unknown_quantity", name: "b" });
    expect(costOf(price({ a: "1000" }, 1n), { a: Number.MAX_SAFE_INTEGER })).toEqual({ problem: "too_large" });
  });
});

describe("versionInForce: the highest version whose valid_from has passed", () => {
  const t = (hours: number) => new Date(Date.UTC(2026, 11, 1) + hours * 3_600_000);
  const versions = [price({ a: "1" }, 1n, 1, t(0)), price({ a: "2" }, 1n, 2, t(2)), price({ a: "3" }, 1n, 3, t(1))];
  it("applies each version from its valid_from, and a later version supersedes an earlier scheduled one", () => {
    expect(versionInForce(versions, t(-1))).toBeUndefined();
    expect(versionInForce(versions, t(0))?.version).toBe(1);
    expect(versionInForce(versions, t(1))?.version).toBe(3);
    expect(versionInForce(versions, t(3))?.version).toBe(3);
  });
});
