import { createRoute, z } from "@hono/zod-openapi";
import { HOLD_LIMITS, HOLD_STATUSES } from "../../ledger/holds/hold.js";
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from "../problem.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import {
  AccountIdParamsSchema,
  AccountIdSchema,
  AmountSchema,
  DescriptionSchema,
  EntrySchema,
  IdempotencyKeySchema,
  MetadataSchema,
  PageQuerySchema,
  REPLAYED_HEADER,
} from "../schemas.js";
import { requireScope } from "../auth.js";
import { amountOrQuantities, meteredFields } from "./prices.schemas.js";

/** The OpenAPI definitions of the hold routes (src/ledger/holds/); the handlers are in holds.ts. */

export const HoldSchema = z
  .object({
    id: z.uuid(),
    account_id: z.string(),
    amount: z.string().openapi({ description: "The reserved (worst-case) amount.", example: "0.5" }),
    status: z.enum(HOLD_STATUSES).openapi({
      description: "`expired`: still open but past `expires_at`, so it no longer reduces `available`.",
    }),
    idempotency_key: z.string(),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    created_at: z.iso.datetime(),
    expires_at: z.iso.datetime(),
    closed_at: z.iso.datetime().nullable(),
    captured_amount: z.string().nullable().openapi({ description: "The actual cost posted as usage, once captured." }),
  })
  .openapi("Hold");

const CreateHoldSchema = z
  .strictObject({
    account_id: AccountIdSchema,
    amount: AmountSchema.optional().openapi({ description: "The worst-case cost; or send meter and quantities (e.g. max_tokens of output)." }),
    ...meteredFields,
    idempotency_key: IdempotencyKeySchema,
    expires_in_s: z
      .number()
      .int()
      .min(1)
      .max(HOLD_LIMITS.expires_in_s_max)
      .default(HOLD_LIMITS.expires_in_s_default)
      .openapi({ description: `Seconds until the hold lapses by itself; default ${HOLD_LIMITS.expires_in_s_default}.` }),
    description: DescriptionSchema.optional(),
    metadata: MetadataSchema.optional(),
    allow_overdraft: z
      .boolean()
      .default(false)
      .openapi({ description: "Grant even if `available` does not cover the amount (the hold still counts against it)." }),
  })
  .superRefine(amountOrQuantities)
  .openapi("HoldRequest");

const CaptureSchema = z
  .strictObject({
    amount: AmountSchema.optional().openapi({ description: "The actual cost; it may exceed the hold (usage is never refused). Or send meter and quantities." }),
    ...meteredFields,
    description: DescriptionSchema.optional(),
    metadata: MetadataSchema.optional(),
  })
  .superRefine(amountOrQuantities)
  .openapi("CaptureRequest");

const CaptureResultSchema = z
  .object({
    hold: HoldSchema,
    entry: EntrySchema,
    hold_status: z.enum(["active", "expired"]).openapi({
      description: "What the hold was when the capture arrived; `expired` means the call finished after it lapsed.",
    }),
  })
  .openapi("CaptureResult");

export const HoldIdParamsSchema = z.object({
  id: z.uuid().openapi({ param: { name: "id", in: "path" } }),
});

export const HoldListQuerySchema = PageQuerySchema.extend({
  status: z
    .enum(HOLD_STATUSES)
    .optional()
    .openapi({ param: { name: "status", in: "query" } }),
});

const holdJson = { "application/json": { schema: HoldSchema } };
const replayDescription = `A replay: the same request was already answered; the original answer, with \`${REPLAYED_HEADER}: true\``;

export const createHoldRoute = createRoute({
  method: "post",
  path: "/v1/holds",
  operationId: "createHold",
  summary: "Reserve credit before a call whose cost is not yet known",
  tags: ["holds"],
  security: BEARER_SECURITY,
  middleware: [requireScope("usage:write")] as const,
  request: { body: jsonBody(CreateHoldSchema) },
  responses: {
    201: { description: "Granted: the hold is active", content: holdJson },
    200: { description: replayDescription, content: holdJson },
    ...errorResponses(
      ...BODY_ERRORS,
      ...AUTH_ERRORS,
      "account_not_found",
      "idempotency_key_reused",
      "insufficient_balance",
      "too_many_active_holds",
      "price_not_found",
      "zero_cost_usage",
    ),
  },
});

export const captureHoldRoute = createRoute({
  method: "post",
  path: "/v1/holds/{id}/capture",
  operationId: "captureHold",
  summary: "Post the actual cost as usage naming the hold, and close the hold",
  tags: ["holds"],
  security: BEARER_SECURITY,
  middleware: [requireScope("usage:write")] as const,
  request: { params: HoldIdParamsSchema, body: jsonBody(CaptureSchema) },
  responses: {
    201: { description: "Captured", content: { "application/json": { schema: CaptureResultSchema } } },
    200: { description: replayDescription, content: { "application/json": { schema: CaptureResultSchema } } },
    ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS, "hold_not_found", "hold_not_active", "price_not_found", "zero_cost_usage"),
  },
});

export const releaseHoldRoute = createRoute({
  method: "post",
  path: "/v1/holds/{id}/release",
  operationId: "releaseHold",
  summary: "Close the hold with nothing posted (the call failed)",
  tags: ["holds"],
  security: BEARER_SECURITY,
  middleware: [requireScope("usage:write")] as const,
  request: { params: HoldIdParamsSchema },
  responses: {
    200: { description: `Released (a repeated release answers the same, with \`${REPLAYED_HEADER}: true\`)`, content: holdJson },
    ...errorResponses("validation_failed", ...AUTH_ERRORS, "hold_not_found", "hold_not_active"),
  },
});

export const getHoldRoute = createRoute({
  method: "get",
  path: "/v1/holds/{id}",
  operationId: "getHold",
  summary: "One hold",
  tags: ["holds"],
  security: BEARER_SECURITY,
  middleware: [requireScope("balances:read")] as const,
  request: { params: HoldIdParamsSchema },
  responses: {
    200: { description: "The hold", content: holdJson },
    ...errorResponses("validation_failed", ...AUTH_ERRORS, "hold_not_found"),
  },
});

export const listHoldsRoute = createRoute({
  method: "get",
  path: "/v1/accounts/{id}/holds",
  operationId: "listAccountHolds",
  summary: "An account's holds, newest first, optionally of one status",
  tags: ["holds"],
  security: BEARER_SECURITY,
  middleware: [requireScope("balances:read")] as const,
  request: { params: AccountIdParamsSchema, query: HoldListQuerySchema },
  responses: {
    200: {
      description: "A page of holds",
      content: {
        "application/json": {
          schema: z.object({ holds: z.array(HoldSchema), next_cursor: z.string().nullable() }).openapi("HoldPage"),
        },
      },
    },
    ...errorResponses("validation_failed", "invalid_cursor", "account_not_found", ...AUTH_ERRORS),
  },
});
