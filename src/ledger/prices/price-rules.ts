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

/** One thing wrong with the quantities of a usage: `name` is the quantity it concerns, undefined for the whole object. */
export interface QuantitiesProblem {
  name: string | undefined;
  message: string;
}

export const QUANTITY_NAME_MESSAGE = "must be 1-64 characters of a-z and _";
export const QUANTITY_VALUE_MESSAGES = {
  whole: "must be a whole number",
  negative: "must not be negative",
  too_large: "must be below 2^53",
} as const;
export const QUANTITIES_COUNT_MESSAGES = {
  none: "must name at least one quantity",
  too_many: `must name at most ${PRICE_LIMITS.quantity_names_max} quantities`,
} as const;

/**
 * What is wrong with `value` as the quantities of a usage: none when it is an object of 1 to 16 names
 * (QUANTITY_NAME_PATTERN) to non-negative whole numbers below 2^53. One more refusal than the zod schema: a
 * `__proto__` key (JSON keeps it as an own key), which a zod record cannot see: its output drops it, so beside
 * other names it was silently ignored, unpriced and unstored. Hand-written rather than a zod record because it runs for every priced
 * row of a batch and costs a fraction of one; src/http/routes/prices.schemas.ts keeps the zod schema that documents
 * these rules, and test/unit/quantities.test.ts holds the two to one table of cases. Whether the meter's price
 * prices each name is pricing's question (costOf), not this one.
 */
export function quantitiesProblems(value: unknown): readonly QuantitiesProblem[] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return [{ name: undefined, message: "must be an object of quantity names to whole numbers" }];
  }
  const names = Object.keys(value);
  // The count first: a body of thousands of names is refused without looking at them.
  if (names.length === 0) return [{ name: undefined, message: QUANTITIES_COUNT_MESSAGES.none }];
  if (names.length > PRICE_LIMITS.quantity_names_max) return [{ name: undefined, message: QUANTITIES_COUNT_MESSAGES.too_many }];
  let problems: QuantitiesProblem[] | undefined;
  for (const name of names) {
    const message = quantityProblem(name, (value as Record<string, unknown>)[name]);
    if (message !== undefined) (problems ??= []).push({ name, message });
  }
  return problems ?? NO_PROBLEMS;
}

const NO_PROBLEMS: readonly QuantitiesProblem[] = Object.freeze([]);

function quantityProblem(name: string, quantity: unknown): string | undefined {
  if (!QUANTITY_NAME_PATTERN.test(name)) return QUANTITY_NAME_MESSAGE;
  if (name === "__proto__") return "is not a quantity name (an object built from it would drop it)";
  if (typeof quantity !== "number" || !Number.isInteger(quantity)) return QUANTITY_VALUE_MESSAGES.whole;
  if (quantity < 0) return QUANTITY_VALUE_MESSAGES.negative;
  if (quantity > QUANTITY_MAX) return QUANTITY_VALUE_MESSAGES.too_large;
  return undefined;
}
