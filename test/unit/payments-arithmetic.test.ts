import { describe, expect, it } from "vitest";
import { requestAmountNanos } from "../../src/ledger/auto-topup/evaluate.js";
import { utcMonthOf } from "../../src/ledger/auto-topup/month.js";
import { formatNanos, numericToNanos } from "../../src/ledger/core/amount.js";
import { minorToCreditNanos, minorUnitExponent } from "../../src/payments/stripe/amounts.js";

const credits = (minor: bigint, currency: string, rate: string) => formatNanos(minorToCreditNanos(minor, currency, numericToNanos(rate)));

describe("Stripe minor units to credits", () => {
  it("uses 2 decimals by default, 0 for zero-decimal and 3 for three-decimal currencies, case-insensitively", () => {
    expect(minorUnitExponent("usd")).toBe(2);
    expect(minorUnitExponent("EUR")).toBe(2);
    expect(minorUnitExponent("jpy")).toBe(0);
    expect(minorUnitExponent("UGX")).toBe(0);
    expect(minorUnitExponent("kwd")).toBe(3);
    // Stripe's special cases are sent as two-decimal amounts.
    expect(minorUnitExponent("isk")).toBe(2);
  });

  it("is exact integer arithmetic, rounding down only past 9 fractional digits", () => {
    expect(credits(2500n, "usd", "1")).toBe("25");
    expect(credits(1n, "usd", "1")).toBe("0.01");
    expect(credits(999n, "jpy", "0.01")).toBe("9.99");
    expect(credits(5125n, "kwd", "2.5")).toBe("12.8125");
    expect(credits(1n, "kwd", "0.000000001")).toBe("0");
    // 0.1 + 0.2 in floats is 0.30000000000000004; here 10 + 20 cents are 0.3 exactly.
    expect(formatNanos(minorToCreditNanos(10n, "usd", 10n ** 9n) + minorToCreditNanos(20n, "usd", 10n ** 9n))).toBe("0.3");
    // Beyond 2^53 minor units nothing is lost.
    expect(credits(9_007_199_254_740_993n, "jpy", "1")).toBe("9007199254740993");
  });
});

describe("auto top-up request amounts", () => {
  const base = { amount_nanos: 20n * 10n ** 9n, target_balance_nanos: null, monthly_limit_nanos: 50n * 10n ** 9n, balance_nanos: 4n * 10n ** 9n };
  it("asks for the amount, cut to what is left of the monthly limit", () => {
    expect(formatNanos(requestAmountNanos({ ...base, requested_this_month_nanos: 0n }))).toBe("20");
    expect(formatNanos(requestAmountNanos({ ...base, requested_this_month_nanos: 40n * 10n ** 9n }))).toBe("10");
    expect(requestAmountNanos({ ...base, requested_this_month_nanos: 50n * 10n ** 9n })).toBe(0n);
  });
  it("with a target balance, asks for the difference (a negative balance asks for more)", () => {
    const target = { ...base, amount_nanos: null, target_balance_nanos: 100n * 10n ** 9n, monthly_limit_nanos: 10n ** 18n };
    expect(formatNanos(requestAmountNanos({ ...target, requested_this_month_nanos: 0n }))).toBe("96");
    expect(formatNanos(requestAmountNanos({ ...target, balance_nanos: -5n * 10n ** 8n, requested_this_month_nanos: 0n }))).toBe("100.5");
  });
  it("counts months in UTC", () => {
    expect(utcMonthOf(new Date("2026-12-31T23:59:59.999Z"))).toEqual({ start: new Date("2026-12-01T00:00:00Z"), end: new Date("2027-01-01T00:00:00Z") });
    expect(utcMonthOf(new Date("2027-01-01T00:00:00Z")).start).toEqual(new Date("2027-01-01T00:00:00Z"));
  });
});
