import { AMOUNT_MAX_NANOS, FRACTION_DIGITS } from "../core/amount.js";

/**
 * What a price and a priced usage may look like. Pure: shared by the routes (validation), the price table (writes)
 * and pricing (reads).
 */

export const PRICE_LIMITS = {
  /** Named quantities in one price, and in one usage row. */
  quantity_names_max: 16,
  /** Versions of one meter scheduled for the future at once, so the in-process cache stays small. */
  scheduled_versions_max: 16,
  /** Distinct meters the table may hold: the cache holds all of them. */
  meters_max: 10_000,
  /** Page sizes of the price listings. */
  page_size_default: 50,
  page_size_max: 500,
} as const;

export const METER_PATTERN = /^[A-Za-z0-9._:/@-]{1,128}$/;
export const QUANTITY_NAME_PATTERN = /^[a-z_]{1,64}$/;
/** A quantity is a count: a non-negative integer that a JSON number holds exactly. */
export const QUANTITY_MAX = Number.MAX_SAFE_INTEGER;

/** Prices are quoted per one, per thousand or per million units (per million is how LLM tokens are priced). */
export const PRICE_PER_VALUES = ["1", "1000", "1000000"] as const;
export type PricePer = (typeof PRICE_PER_VALUES)[number];

const NANOS_PER_UNIT = 10n ** BigInt(FRACTION_DIGITS);

/**
 * A unit price: like an amount (plain digits, at most 9 fractional digits, at most 1e15) but zero is allowed, for a
 * quantity that is counted and free (cached input on some models).
 */
const UNIT_PRICE_PATTERN = /^(0|[1-9][0-9]{0,15})(\.[0-9]{1,9})?$/;

export function parseUnitPrice(text: string): bigint | undefined {
  const match = UNIT_PRICE_PATTERN.exec(text);
  if (!match) return undefined;
  const nanos = BigInt(match[1]!) * NANOS_PER_UNIT + BigInt((match[2] ?? ".").slice(1).padEnd(FRACTION_DIGITS, "0"));
  return nanos > AMOUNT_MAX_NANOS ? undefined : nanos;
}

export const UNIT_PRICE_MESSAGE =
  "must be a decimal string of at least 0 and at most 1000000000000000 with up to 9 fractional digits, e.g. \"2.5\"";
