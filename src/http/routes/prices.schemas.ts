import { z } from "@hono/zod-openapi";
import {
  METER_PATTERN,
  PRICE_LIMITS,
  PRICE_PER_VALUES,
  QUANTITIES_COUNT_MESSAGES,
  QUANTITY_MAX,
  QUANTITY_NAME_MESSAGE,
  QUANTITY_NAME_PATTERN,
  QUANTITY_VALUE_MESSAGES,
  UNIT_PRICE_MESSAGE,
  parseUnitPrice,
  quantitiesProblems,
} from "../../ledger/prices/price-rules.js";
import { openApiSchemaOf } from "../openapi/documented-by.js";
import { RFC_3339 } from "../schemas.js";

/** Request pieces of priced usage, shared by prices, usage, balance checks and holds (src/ledger/prices/). */

export const MeterSchema = z
  .string()
  .regex(METER_PATTERN, "must be 1-128 characters of A-Z a-z 0-9 . _ : / @ -")
  .openapi({ description: "A model or operation name.", example: "gpt-x" });

const QuantityNameSchema = z.string().regex(QUANTITY_NAME_PATTERN, QUANTITY_NAME_MESSAGE);

/**
 * The rules of a usage's quantities, as documented: the OpenAPI document shows this schema. Requests are checked by
 * `quantitiesProblems` (src/ledger/prices/price-rules.ts) instead, which accepts and refuses exactly the same values
 * (test/unit/quantities.test.ts) at a fraction of the cost: it runs for every row of a priced batch.
 */
export const QuantitiesDocumentation = z
  .record(
    QuantityNameSchema,
    z
      .number()
      .int(QUANTITY_VALUE_MESSAGES.whole)
      .min(0, QUANTITY_VALUE_MESSAGES.negative)
      .max(QUANTITY_MAX, QUANTITY_VALUE_MESSAGES.too_large),
  )
  .refine((value) => Object.keys(value).length >= 1, QUANTITIES_COUNT_MESSAGES.none)
  .refine((value) => Object.keys(value).length <= PRICE_LIMITS.quantity_names_max, QUANTITIES_COUNT_MESSAGES.too_many)
  .openapi({
    description:
      `What was measured, by name: non-negative whole numbers below 2^53, at most ${PRICE_LIMITS.quantity_names_max} names of 1-64 ` +
      "characters of a-z and _, each priced by the meter's price.",
    example: { input_tokens: 812, output_tokens: 117 },
    // The refinements do not reach the document by themselves.
    minProperties: 1,
    maxProperties: PRICE_LIMITS.quantity_names_max,
  });

export const QuantitiesSchema = z
  .custom<Record<string, number>>()
  .superRefine((value, context) => {
    for (const problem of quantitiesProblems(value)) {
      context.addIssue({ code: "custom", path: problem.name === undefined ? [] : [problem.name], message: problem.message });
    }
  })
  .openapi(openApiSchemaOf(QuantitiesDocumentation));

export const UnitPricesSchema = z
  .record(
    QuantityNameSchema,
    z
      .string()
      .max(40)
      .refine((value) => parseUnitPrice(value) !== undefined, UNIT_PRICE_MESSAGE),
  )
  .refine((value) => Object.keys(value).length >= 1, "must price at least one quantity")
  .refine((value) => Object.keys(value).length <= PRICE_LIMITS.quantity_names_max, `must price at most ${PRICE_LIMITS.quantity_names_max} quantities`)
  .openapi({
    description: "Quantity name → price per `per` units: a decimal string of at least 0 with up to 9 fractional digits.",
    example: { input_tokens: "2.5", output_tokens: "10" },
  });

export const PricePerSchema = z.enum(PRICE_PER_VALUES).openapi({ description: "How many units each unit price is for." });

/** The priced alternative to `amount`: either an amount, or a meter and its quantities, never both. */
export const meteredFields = {
  meter: MeterSchema.optional().openapi({ description: "Instead of `amount`: the meter to price `quantities` with." }),
  quantities: QuantitiesSchema.optional(),
};

/** A refinement for bodies that take `amount` or `{ meter, quantities }`. */
export function amountOrQuantities(
  body: { amount?: string | undefined; meter?: string | undefined; quantities?: Record<string, number> | undefined },
  context: z.RefinementCtx,
): void {
  const metered = body.meter !== undefined || body.quantities !== undefined;
  if (body.amount !== undefined && metered) {
    context.addIssue({ code: "custom", path: ["amount"], message: "send either amount or meter and quantities, not both" });
  } else if (body.amount === undefined && !metered) {
    context.addIssue({ code: "custom", path: ["amount"], message: "is required unless meter and quantities are sent" });
  } else if (metered && body.meter === undefined) {
    context.addIssue({ code: "custom", path: ["meter"], message: "is required with quantities" });
  } else if (metered && body.quantities === undefined) {
    context.addIssue({ code: "custom", path: ["quantities"], message: "is required with meter" });
  }
}

export const PriceSchema = z
  .object({
    meter: z.string(),
    version: z.number().int().openapi({ description: "1 for a meter's first price, then one more per PUT." }),
    unit_prices: z.record(z.string(), z.string()),
    per: PricePerSchema,
    valid_from: z.iso.datetime().openapi({ description: "From this moment on (until a later version applies) usage is priced by this version." }),
    created_at: z.iso.datetime(),
  })
  .openapi("Price");

export const PutPriceSchema = z
  .strictObject({
    unit_prices: UnitPricesSchema,
    per: PricePerSchema,
    valid_from: z
      .string()
      .max(40)
      .refine((value) => RFC_3339.test(value) && !Number.isNaN(Date.parse(value)), "must be an RFC 3339 date-time, e.g. 2027-01-31T00:00:00Z")
      .optional()
      .openapi({ description: "When the version takes effect (RFC 3339, to the millisecond); default now, never in the past." }),
  })
  .openapi("PriceRequest", {
    example: { unit_prices: { input_tokens: "2.5", output_tokens: "10" }, per: "1000000" },
  });

export const EstimateSchema = z
  .strictObject({ meter: MeterSchema, quantities: QuantitiesSchema })
  .openapi("PriceEstimateRequest", { example: { meter: "gpt-x", quantities: { input_tokens: 812, output_tokens: 117 } } });

export const EstimateResultSchema = z
  .object({
    meter: z.string(),
    quantities: z.record(z.string(), z.number().int()),
    amount: z.string().openapi({ description: "What usage with these quantities would cost now, rounded up to 1e-9." }),
    price_version: z.number().int(),
  })
  .openapi("PriceEstimate");
