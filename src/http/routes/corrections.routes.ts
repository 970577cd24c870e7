import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { AMOUNT_MAX_NANOS, numericToNanos } from "../../ledger/core/amount.js";
import { allows, requireScope } from "../auth.js";
import type { AppEnv } from "../env.js";
import { BODY_ERRORS, errorResponses } from "../problem.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import {
  AccountIdParamsSchema,
  AccountIdSchema,
  AmountSchema,
  DescriptionSchema,
  EntrySchema,
  IdempotencyKeySchema,
  MetadataSchema,
  REPLAYED_HEADER,
} from "../schemas.js";
import { TallyError } from "../../errors.js";

/** The OpenAPI definitions of the correction routes; the handlers are in corrections.ts. */

const WRITE_ERRORS = [...BODY_ERRORS, "unauthorized", "forbidden", "idempotency_key_reused"] as const;

const SIGNED_DECIMAL = /^-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,9})?$/;

/** A signed decimal string within ±10^15 with up to 9 fractional digits; `allow_zero` for targets only. */
function signedAmountSchema(allow_zero: boolean) {
  return z
    .string()
    .max(41)
    .superRefine((value, context) => {
      if (!SIGNED_DECIMAL.test(value)) {
        context.addIssue({ code: "custom", message: 'must be a signed decimal string with up to 9 fractional digits, e.g. "-12.5"' });
        return;
      }
      const nanos = numericToNanos(value);
      if (nanos === 0n && (!allow_zero || value.startsWith("-"))) {
        context.addIssue({ code: "custom", message: allow_zero ? 'write zero as "0"' : "must not be 0" });
      }
      if ((nanos < 0n ? -nanos : nanos) > AMOUNT_MAX_NANOS) {
        context.addIssue({ code: "custom", message: "must be between -1000000000000000 and 1000000000000000" });
      }
    });
}

const AllowOverdraftSchema = z.boolean().default(false);

export const RefundRequestSchema = z
  .strictObject({
    amount: AmountSchema.optional().openapi({ description: "Defaults to everything that is left of the original entry." }),
    idempotency_key: IdempotencyKeySchema,
    description: DescriptionSchema.optional(),
    metadata: MetadataSchema.optional(),
    allow_overdraft: AllowOverdraftSchema.openapi({
      description: "Reversals only: post the reversal even if the balance cannot cover it. Ignored for refunds.",
    }),
  })
  .openapi("RefundRequest");

export const TransferRequestSchema = z
  .strictObject({
    from_account_id: AccountIdSchema,
    to_account_id: AccountIdSchema,
    amount: AmountSchema,
    idempotency_key: IdempotencyKeySchema.openapi({ description: "Unique per source account." }),
    description: DescriptionSchema.optional(),
    metadata: MetadataSchema.optional(),
    allow_overdraft: AllowOverdraftSchema.openapi({
      description: "When false (the default) a transfer the source balance cannot cover is refused with 409.",
    }),
  })
  .refine((body) => body.from_account_id !== body.to_account_id, {
    path: ["to_account_id"],
    message: "must differ from from_account_id",
  })
  .openapi("TransferRequest");

export const AdjustmentRequestSchema = z
  .strictObject({
    target_balance: signedAmountSchema(true)
      .optional()
      .openapi({ description: "The balance to reach, as of the adjustment's serialized read. Not with amount.", example: "0" }),
    amount: signedAmountSchema(false)
      .optional()
      .openapi({ description: "A signed change: negative takes credits away. Not with target_balance.", example: "-12.5" }),
    reason: DescriptionSchema.min(1).openapi({ description: "Why; stored as the entry's description.", example: "support ticket 8812" }),
    idempotency_key: IdempotencyKeySchema,
    metadata: MetadataSchema.optional(),
  })
  .refine((body) => (body.target_balance === undefined) !== (body.amount === undefined), {
    path: ["target_balance"],
    message: "send exactly one of target_balance and amount",
  })
  .openapi("AdjustmentRequest");

export const EntryIdParamsSchema = z.object({
  entry_id: z.uuid().openapi({ param: { name: "entry_id", in: "path" } }),
});

export const TransferSchema = z
  .object({
    id: z.uuid().openapi({ description: "The transfer id, on both legs as transfer_id." }),
    from_account_id: z.string(),
    to_account_id: z.string(),
    amount: z.string(),
    transfer_out: EntrySchema,
    transfer_in: EntrySchema,
  })
  .openapi("Transfer");

export const AdjustmentSchema = EntrySchema.extend({
  balance_before: z.string().nullable().openapi({
    description: "The balance the target was computed from (null for a signed amount, and on a replay).",
  }),
}).openapi("Adjustment");

function written<T extends z.ZodType>(schema: T, what: string) {
  return {
    201: { description: what, content: { "application/json": { schema } } },
    200: {
      description: `A replay: the key was already used for this same request; the original answer, with \`${REPLAYED_HEADER}: true\``,
      content: { "application/json": { schema } },
    },
  };
}

/** Refunds need credits:write and reversals debits:write; the caller must hold one of them to ask at all. */
export function requireCorrectionScope(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const principal = c.get("principal");
    if (!allows(principal, "credits:write") && !allows(principal, "debits:write")) {
      throw new TallyError("forbidden", "this request needs the credits:write scope (refunds) or debits:write (reversals)");
    }
    await next();
  };
}

export const refundRoute = createRoute({
  method: "post",
  path: "/v1/entries/{entry_id}/refund",
  operationId: "refundEntry",
  summary: "Refund a debit (a refund credit) or reverse a credit (a reversal debit), never beyond the original",
  tags: ["corrections"],
  security: BEARER_SECURITY,
  middleware: [requireCorrectionScope()] as const,
  request: { params: EntryIdParamsSchema, body: jsonBody(RefundRequestSchema) },
  responses: {
    ...written(EntrySchema, "The refund or reversal, naming the original in original_entry_id"),
    ...errorResponses(...WRITE_ERRORS, "not_found", "exceeds_original", "entry_not_refundable", "insufficient_balance"),
  },
});

export const transferRoute = createRoute({
  method: "post",
  path: "/v1/transfers",
  operationId: "createTransfer",
  summary: "Move credits between two accounts: a transfer_out and a transfer_in, both or neither",
  tags: ["corrections"],
  security: BEARER_SECURITY,
  middleware: [requireScope("transfers:write")] as const,
  request: { body: jsonBody(TransferRequestSchema) },
  responses: {
    ...written(TransferSchema, "Both legs were written"),
    ...errorResponses(...WRITE_ERRORS, "account_not_found", "insufficient_balance"),
  },
});

export const adjustmentRoute = createRoute({
  method: "post",
  path: "/v1/accounts/{id}/adjustments",
  operationId: "createAdjustment",
  summary: "Adjust a balance to a target or by a signed amount (admin only)",
  tags: ["corrections"],
  security: BEARER_SECURITY,
  middleware: [requireScope("admin")] as const,
  request: { params: AccountIdParamsSchema, body: jsonBody(AdjustmentRequestSchema) },
  responses: {
    ...written(AdjustmentSchema, "The adjustment entry; its delta is signed"),
    ...errorResponses(...WRITE_ERRORS, "account_not_found", "nothing_to_adjust"),
  },
});
