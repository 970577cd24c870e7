/**
 * Stripe amounts are integers in the currency's minor unit (https://docs.stripe.com/currencies#minor-units). The
 * exponent is 2 unless the currency is listed here. Stripe's zero-decimal currencies are charged in whole units
 * (100 JPY is `100`); its three-decimal currencies in thousandths (5.124 KWD is `5124`). ISK, HUF and TWD, which
 * Stripe lists as special cases, are sent as two-decimal amounts, so the default of 2 is right for them.
 * A currency Stripe adds later is read as two-decimal until it is added here.
 */
const ZERO_DECIMAL = new Set(["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]);
const THREE_DECIMAL = new Set(["bhd", "jod", "kwd", "omr", "tnd"]);

export function minorUnitExponent(currency: string): number {
  const code = currency.toLowerCase();
  if (ZERO_DECIMAL.has(code)) return 0;
  if (THREE_DECIMAL.has(code)) return 3;
  return 2;
}


/**
 * Credits for an amount in minor units, in nano-credits: minor × credits_per_unit / 10^exponent, all in integers.
 * With credits_per_unit in nano-credits the division is exact whenever the result fits the ledger's 9 fractional
 * digits; otherwise it rounds down (the customer is never credited more than the rate gives). Refunds use the same
 * function on cumulative totals, so a full refund reverses exactly what the purchase credited.
 */
export function minorToCreditNanos(amount_minor: bigint, currency: string, credits_per_unit_nanos: bigint): bigint {
  if (amount_minor < 0n) throw new Error("a Stripe amount is never negative");
  return (amount_minor * credits_per_unit_nanos) / 10n ** BigInt(minorUnitExponent(currency));
}

