/**
 * Exact decimal amounts. An amount travels as a decimal string at the edge and as NUMERIC in PostgreSQL; inside
 * the process it is a bigint count of nano-credits (10^-9), so no value ever passes through a floating-point
 * number.
 */

export const FRACTION_DIGITS = 9;
const NANOS_PER_UNIT = 10n ** BigInt(FRACTION_DIGITS);

/** The largest single amount: 10^15 credits. */
export const AMOUNT_MAX_NANOS = 10n ** 15n * NANOS_PER_UNIT;

/**
 * The only accepted spelling: plain digits, an optional fraction of 1 to 9 digits, no sign, no exponent, no
 * leading zeros (so "007" is refused rather than guessed at). The integer part is at most 16 digits, which keeps
 * the pattern itself bounded before the range check.
 */
const AMOUNT_PATTERN = /^(0|[1-9][0-9]{0,15})(\.[0-9]{1,9})?$/;

export type AmountProblem = "format" | "not_positive" | "too_large";

export function parseAmount(text: string): { nanos: bigint } | { problem: AmountProblem } {
  const match = AMOUNT_PATTERN.exec(text);
  if (!match) return { problem: "format" };
  const integer = match[1]!;
  const fraction = (match[2] ?? ".").slice(1).padEnd(FRACTION_DIGITS, "0");
  const nanos = BigInt(integer) * NANOS_PER_UNIT + BigInt(fraction);
  if (nanos <= 0n) return { problem: "not_positive" };
  if (nanos > AMOUNT_MAX_NANOS) return { problem: "too_large" };
  return { nanos };
}

export const AMOUNT_PROBLEM_MESSAGES: Record<AmountProblem, string> = {
  format: "must be a decimal string with up to 9 fractional digits, e.g. \"0.000000405\"",
  not_positive: "must be greater than 0",
  too_large: "must be at most 1000000000000000",
};

/** Parses a NUMERIC as PostgreSQL prints it (optionally signed, any number of fractional digits up to 9). */
export function numericToNanos(text: string): bigint {
  const match = /^(-)?([0-9]+)(?:\.([0-9]+))?$/.exec(text.trim());
  if (!match) throw new Error(`not a NUMERIC value: ${JSON.stringify(text)}`);
  const fraction = match[3] ?? "";
  if (fraction.length > FRACTION_DIGITS && /[1-9]/.test(fraction.slice(FRACTION_DIGITS))) {
    throw new Error(`NUMERIC value has more than ${FRACTION_DIGITS} significant fractional digits: ${text}`);
  }
  const nanos =
    BigInt(match[2]!) * NANOS_PER_UNIT + BigInt(fraction.slice(0, FRACTION_DIGITS).padEnd(FRACTION_DIGITS, "0"));
  return match[1] ? -nanos : nanos;
}

/** The canonical spelling: no trailing fractional zeros, no "-0". */
export function formatNanos(nanos: bigint): string {
  const negative = nanos < 0n;
  const magnitude = negative ? -nanos : nanos;
  const integer = magnitude / NANOS_PER_UNIT;
  const fraction = (magnitude % NANOS_PER_UNIT).toString().padStart(FRACTION_DIGITS, "0").replace(/0+$/, "");
  const text = fraction === "" ? integer.toString() : `${integer}.${fraction}`;
  return negative ? `-${text}` : text;
}

/** Rewrites a NUMERIC from the database into the canonical spelling. */
export function canonicalNumeric(text: string): string {
  return formatNanos(numericToNanos(text));
}
