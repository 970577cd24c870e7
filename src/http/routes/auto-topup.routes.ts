import { createRoute, z } from "@hono/zod-openapi";
import { parseAmount } from "../../ledger/core/amount.js";
import { requireScope } from "../auth.js";
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from "../problem.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import { AccountIdParamsSchema, AmountSchema, amountNanos } from "../schemas.js";

/** The OpenAPI definitions of the auto top-up routes (src/ledger/auto-topup/); the handlers are in auto-topup.ts. */

/** An amount that may also be zero: a threshold of 0 asks for a top-up once the balance is at or below zero. */
const ThresholdSchema = z
  .string()
  .max(40)
  .superRefine((value, context) => {
    const parsed = parseAmount(value);
    if ("problem" in parsed && parsed.problem !== "not_positive") {
      context.addIssue({ code: "custom", message: "must be a decimal string of at least 0 with up to 9 fractional digits" });
    }
  })
  .openapi({ description: "Decimal string, at least 0: a request is made once the balance is at or below it.", example: "5" });

/** The nano-credits of a threshold ThresholdSchema accepted ("0" and "0.0" are zero). */
export function thresholdNanos(value: string): bigint {
  const parsed = parseAmount(value);
  return "nanos" in parsed ? parsed.nanos : 0n;
}

export const AutoTopupRuleRequestSchema = z
  .strictObject({
    threshold: ThresholdSchema,
    amount: AmountSchema.optional().openapi({ description: "What each request asks for. Give this or `target_balance`." }),
    target_balance: AmountSchema.optional().openapi({
      description: "Ask for what brings the balance up to this (above `threshold`). Give this or `amount`.",
    }),
    monthly_limit: AmountSchema.openapi({
      description: "The most requested in one UTC calendar month; a request that would pass it is cut to what is left.",
    }),
    enabled: z.boolean().default(true),
  })
  .superRefine((body, context) => {
    if ((body.amount === undefined) === (body.target_balance === undefined)) {
      context.addIssue({ code: "custom", path: ["amount"], message: "give exactly one of amount and target_balance" });
    }
    if (
      body.target_balance !== undefined &&
      !("problem" in parseAmount(body.target_balance)) &&
      amountNanos(body.target_balance) <= thresholdNanos(body.threshold)
    ) {
      context.addIssue({ code: "custom", path: ["target_balance"], message: "must be above threshold" });
    }
  })
  .openapi("AutoTopupRuleRequest");

const AutoTopupRequestSchema = z
  .object({
    id: z.uuid().openapi({ description: "The `request_id`: post the purchase with it as `idempotency_key`." }),
    amount: z.string(),
    balance: z.string().openapi({ description: "The balance the request was made at." }),
    requested_at: z.iso.datetime(),
    expires_at: z.iso.datetime().openapi({ description: "After this, an unfulfilled request no longer blocks a new one." }),
    status: z.enum(["open", "fulfilled", "expired", "superseded"]).openapi({
      description:
        "`fulfilled`: an entry carries its id as idempotency key; `superseded`: the balance was seen above the threshold " +
        "again before it was fulfilled (it may still be fulfilled until it expires).",
    }),
  })
  .openapi("AutoTopupRequest");

export const AutoTopupRuleSchema = z
  .object({
    account_id: z.string(),
    threshold: z.string(),
    amount: z.string().nullable(),
    target_balance: z.string().nullable(),
    monthly_limit: z.string(),
    enabled: z.boolean(),
    requested_this_month: z.string().openapi({ description: "Requested so far this UTC calendar month, fulfilled or not." }),
    last_request: AutoTopupRequestSchema.nullable(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi("AutoTopupRule");

const ruleJson = { "application/json": { schema: AutoTopupRuleSchema } };
const path = "/v1/accounts/{id}/auto-topup";

export const putAutoTopupRoute = createRoute({
  method: "put",
  path,
  operationId: "putAutoTopup",
  summary: "Create or replace the account's auto top-up rule",
  tags: ["auto top-up"],
  security: BEARER_SECURITY,
  middleware: [requireScope("accounts:write")] as const,
  request: { params: AccountIdParamsSchema, body: jsonBody(AutoTopupRuleRequestSchema) },
  responses: {
    201: { description: "Created", content: ruleJson },
    200: { description: "Replaced", content: ruleJson },
    ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS, "account_not_found"),
  },
});

export const getAutoTopupRoute = createRoute({
  method: "get",
  path,
  operationId: "getAutoTopup",
  summary: "The account's auto top-up rule, what it requested this month and its latest request",
  tags: ["auto top-up"],
  security: BEARER_SECURITY,
  middleware: [requireScope("balances:read")] as const,
  request: { params: AccountIdParamsSchema },
  responses: {
    200: { description: "The rule", content: ruleJson },
    ...errorResponses("validation_failed", ...AUTH_ERRORS, "account_not_found", "not_found"),
  },
});

export const deleteAutoTopupRoute = createRoute({
  method: "delete",
  path,
  operationId: "deleteAutoTopup",
  summary: "Remove the account's auto top-up rule (requests already made stay valid until they expire)",
  tags: ["auto top-up"],
  security: BEARER_SECURITY,
  middleware: [requireScope("accounts:write")] as const,
  request: { params: AccountIdParamsSchema },
  responses: {
    204: { description: "Removed" },
    ...errorResponses("validation_failed", ...AUTH_ERRORS, "account_not_found", "not_found"),
  },
});
