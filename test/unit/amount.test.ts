import { describe, expect, it } from "vitest";
import {
  AMOUNT_MAX_NANOS,
  AMOUNT_PROBLEM_MESSAGES,
  FRACTION_DIGITS,
  canonicalNumeric,
  formatNanos,
  numericToNanos,
  parseAmount,
} from "../../src/ledger/core/amount.js";

describe("parseAmount accepts only the one spelling", () => {
  it.each([
    ["1", 1_000_000_000n],
    ["0.000000001", 1n],
    ["0.5", 500_000_000n],
    ["1.5", 1_500_000_000n],
    ["1.50", 1_500_000_000n],
    ["1.500000000", 1_500_000_000n],
    ["100.12345678", 100_123_456_780n],
    ["10", 10_000_000_000n],
    ["999999999999999.999999999", AMOUNT_MAX_NANOS - 1n],
    ["1000000000000000", AMOUNT_MAX_NANOS],
    ["1000000000000000.000000000", AMOUNT_MAX_NANOS],
  ])("%s is %s nano-credits", (text, nanos) => {
    expect(parseAmount(text)).toEqual({ nanos });
  });

  it.each([
    "",
    " 1",
    "1 ",
    "1.",
    ".5",
    "+1",
    "-1",
    "01",
    "00",
    "00.5",
    "1e3",
    "1E-9",
    "0x10",
    "NaN",
    "Infinity",
    "-0",
    "0.0000000001",
    "0.30000000000000004",
    "1,5",
    "1_000",
    "１",
    "1.5.1",
    "10000000000000000",
  ])("%j is a format problem", (text) => {
    expect(parseAmount(text)).toEqual({ problem: "format" });
  });

  it.each(["0", "0.0", "0.000000000"])("%s is not positive", (text) => {
    expect(parseAmount(text)).toEqual({ problem: "not_positive" });
  });

  it.each(["1000000000000000.000000001", "1000000000000001", "9999999999999999.999999999"])("%s is too large", (text) => {
    expect(parseAmount(text)).toEqual({ problem: "too_large" });
  });

  it("every problem has a message", () => {
    for (const problem of ["format", "not_positive", "too_large"] as const) {
      expect(AMOUNT_PROBLEM_MESSAGES[problem]).toMatch(/\S/);
    }
  });

  it("the limits are what the API documents", () => {
    expect(FRACTION_DIGITS).toBe(9);
    expect(AMOUNT_MAX_NANOS).toBe(10n ** 24n);
  });
});

describe("numericToNanos reads PostgreSQL NUMERIC text", () => {
  it.each([
    ["0", 0n],
    ["0.000000000", 0n],
    ["12.5", 12_500_000_000n],
    ["12.500000000", 12_500_000_000n],
    ["-0.000000405", -405n],
    ["-7", -7_000_000_000n],
    ["1.0000000000000", 1_000_000_000n],
    [" 3.25 ", 3_250_000_000n],
    ["123456789012345678.123456789", 123_456_789_012_345_678_123_456_789n],
  ])("%j is %s", (text, nanos) => {
    expect(numericToNanos(text)).toBe(nanos);
  });

  it.each(["", "abc", "1e3", "+1", "1.", ".5", "--1", "NaN"])("%j is not NUMERIC text", (text) => {
    expect(() => numericToNanos(text)).toThrow(/not a NUMERIC value/);
  });

  it("refuses significant digits past the ninth instead of rounding them away", () => {
    expect(() => numericToNanos("0.0000000001")).toThrow(/more than 9 significant fractional digits/);
    expect(() => numericToNanos("-1.0000000009")).toThrow(/more than 9/);
  });
});

describe("formatNanos writes the canonical spelling", () => {
  it.each([
    [0n, "0"],
    [1n, "0.000000001"],
    [-1n, "-0.000000001"],
    [405n, "0.000000405"],
    [1_500_000_000n, "1.5"],
    [-1_500_000_000n, "-1.5"],
    [10_000_000_000n, "10"],
    [100_123_456_780n, "100.12345678"],
    [AMOUNT_MAX_NANOS, "1000000000000000"],
    [10n ** 30n + 7n, "1000000000000000000000.000000007"],
  ])("%s is %s", (nanos, text) => {
    expect(formatNanos(nanos)).toBe(text);
  });

  it("never writes -0", () => {
    expect(formatNanos(-0n)).toBe("0");
  });

  it("canonicalNumeric rewrites NUMERIC text", () => {
    expect(canonicalNumeric("1.500000000")).toBe("1.5");
    expect(canonicalNumeric("-0.000000000")).toBe("0");
    expect(canonicalNumeric("-2.000000000")).toBe("-2");
    expect(canonicalNumeric("42")).toBe("42");
  });
});

describe("round trips", () => {
  // A fixed pseudo-random sequence (a 64-bit LCG) so a failure reproduces.
  function* nanosSequence(count: number): Generator<bigint> {
    let state = 0x2545f4914f6cdd1dn;
    for (let index = 0; index < count; index++) {
      state = (state * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
      yield (state % AMOUNT_MAX_NANOS) + 1n;
    }
  }

  it("parseAmount(formatNanos(n)) is n for every valid amount", () => {
    const samples = [1n, 9n, 10n, 999_999_999n, 1_000_000_000n, 1_000_000_001n, AMOUNT_MAX_NANOS, ...nanosSequence(2000)];
    for (const nanos of samples) {
      const text = formatNanos(nanos);
      expect(parseAmount(text), text).toEqual({ nanos });
      expect(numericToNanos(text), text).toBe(nanos);
      expect(numericToNanos(`-${text}`), text).toBe(-nanos);
    }
  });

  it("formatting is canonical: trailing fractional zeros never change the value and never survive", () => {
    for (const nanos of nanosSequence(500)) {
      const text = formatNanos(nanos);
      expect(text).not.toMatch(/\.\d*0$/);
      const padded = text.includes(".") ? `${text}${"0".repeat(FRACTION_DIGITS - text.split(".")[1]!.length)}` : `${text}.000000000`;
      expect(parseAmount(padded), padded).toEqual({ nanos });
      expect(canonicalNumeric(padded)).toBe(text);
    }
  });
});
