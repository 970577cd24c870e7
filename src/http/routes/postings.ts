import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { BATCH_ROWS_MAX, postUsageBatch, storedUsage, usageIdentity } from "../../ledger/posting/batch.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import { postCredit } from "../../ledger/posting/credits.js";
import { postDebit } from "../../ledger/posting/debits.js";
import type { EntryRequest } from "../../ledger/core/entry.js";
import { findReplay, postEntry, type PostResult } from "../../ledger/posting/posting.js";
import { requestHash } from "../../ledger/core/entry.js";
import { priceUsage, priceUsages, refuseZeroCost, type PricedUsage } from "../../ledger/prices/price-usage.js";
import { TallyError } from "../../errors.js";
import { amountOrQuantities, meteredFields } from "./prices.schemas.js";
import { postLotCredit } from "../../ledger/lots/lot-credits.js";
import type { EntryType } from "../../db/schema.js";
import { authorizeAccounts, requireScope } from "../auth.js";
import type { AppEnv } from "../env.js";
import { BODY_ERRORS, errorResponses } from "../problem.js";
import { createRouter } from "../router.js";
import { ledgerCounters } from "../../metrics/ledger-counters.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import {
  AccountIdSchema,
  AmountSchema,
  CreditTypeSchema,
  DescriptionSchema,
  EntrySchema,
  ExpiresAtSchema,
  LotPrioritySchema,
  IdempotencyKeySchema,
  MetadataSchema,
  REPLAYED_HEADER,
  canonicalAmount,
} from "../schemas.js";

const WRITE_ERRORS = [
  ...BODY_ERRORS,
  "unauthorized",
  "forbidden",
  "account_not_found",
  "idempotency_key_reused",
] as const;

const common = {
  account_id: AccountIdSchema,
  amount: AmountSchema,
  idempotency_key: IdempotencyKeySchema,
  description: DescriptionSchema.optional(),
  metadata: MetadataSchema.optional(),
};
/** Usage takes an amount, or a meter and quantities that tally prices (src/ledger/prices/). */
const UsageSchema = z
  .strictObject({
    ...common,
    amount: AmountSchema.optional().openapi({ description: "The cost, when the caller prices usage itself; otherwise send meter and quantities." }),
    ...meteredFields,
    batch_id: z.uuid().optional(),
  })
  .superRefine(amountOrQuantities)
  .openapi("UsageRequest", {
    example: { account_id: "org_42", meter: "gpt-x", quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key: "req_01J9ZP3K6X", description: "gpt-x completion" },
  });
export const UsageBatchSchema = z
  .strictObject({ entries: z.array(UsageSchema).min(1).max(BATCH_ROWS_MAX) })
  .openapi("UsageBatchRequest", {
    example: { entries: [{ account_id: "org_42", amount: "0.0012", idempotency_key: "req_01J9ZP4A01" }, { account_id: "org_7", amount: "0.5", idempotency_key: "req_01J9ZP4A03" }] },
  });
const CreditSchema = z
  .strictObject({ ...common, type: CreditTypeSchema, expires_at: ExpiresAtSchema.optional(), priority: LotPrioritySchema.optional() })
  .openapi("CreditRequest", {
    example: { account_id: "org_42", type: "purchase", amount: "25", idempotency_key: "stripe_pi_3PqK8", description: "Top-up" },
  });
const DebitSchema = z
  .strictObject({
    ...common,
    allow_overdraft: z
      .boolean()
      .default(false)
      .openapi({ description: "When false (the default) a debit the balance cannot cover is refused with 409." }),
  })
  .openapi("DebitRequest", { example: { account_id: "org_42", amount: "5", idempotency_key: "chargeback_1183", allow_overdraft: false } });

type PostingBody = z.infer<z.ZodObject<typeof common>> & { batch_id?: string };
type UsageBody = z.infer<typeof UsageSchema>;

function toRequest(type: EntryType, body: PostingBody): EntryRequest {
  return {
    account_id: body.account_id,
    type,
    amount: canonicalAmount(body.amount),
    idempotency_key: body.idempotency_key,
    batch_id: body.batch_id ?? null,
    description: body.description ?? null,
    metadata: body.metadata ?? null,
  };
}

/**
 * A usage row as posted: the amount is the client's, or blank until priced (`priceRows` below). Every request has
 * the same fields in the same order (meter, quantities and price_version null when unpriced), so a batch's requests
 * share one object shape.
 */
export function usageRequest(body: UsageBody): EntryRequest {
  return {
    account_id: body.account_id,
    type: "usage",
    amount: body.amount === undefined ? "" : canonicalAmount(body.amount),
    idempotency_key: body.idempotency_key,
    batch_id: body.batch_id ?? null,
    description: body.description ?? null,
    metadata: body.metadata ?? null,
    meter: body.meter ?? null,
    quantities: body.meter === undefined ? null : (body.quantities ?? null),
    price_version: null,
  };
}

function priced(request: EntryRequest, usage: PricedUsage): EntryRequest {
  refuseZeroCost(usage);
  return { ...request, amount: usage.amount, price_version: usage.price_version };
}

/**
 * Prices the metered rows of a batch, from the cache (no round trip when warm), filling in their amount and price
 * version; the requests are the handler's own, so they are completed in place rather than copied, 10,000 at a time.
 * The whole batch is refused if a row cannot be priced, unless that row was already posted: as for one row, a retry
 * of usage priced earlier stays a replay (of the stored row, at its stored price) even if the price in force now
 * would not price it, or would price it at zero. Rows already posted under their key carry the stored amount, and
 * postUsageBatch answers them as replays or, if the body differs, refuses the batch with 409.
 */
export async function priceRows(ledger: LedgerContext, requests: EntryRequest[]): Promise<EntryRequest[]> {
  const metered: EntryRequest[] = [];
  const positions: number[] = [];
  requests.forEach((request, index) => {
    if (request.meter) {
      metered.push(request);
      positions.push(index);
    }
  });
  if (metered.length === 0) return requests;
  try {
    await fillPrices(ledger, metered, positions);
  } catch (error) {
    if (!(error instanceof TallyError)) throw error;
    const stored = await storedUsage(ledger.database, metered);
    if (stored.size === 0) throw error;
    const unposted: EntryRequest[] = [];
    const unpostedPositions: number[] = [];
    metered.forEach((request, position) => {
      const row = stored.get(usageIdentity(request.account_id, request.idempotency_key));
      if (row) {
        request.amount = row.amount;
        request.price_version = row.price_version;
      } else {
        unposted.push(request);
        unpostedPositions.push(positions[position]!);
      }
    });
    await fillPrices(ledger, unposted, unpostedPositions);
  }
  return requests;
}

/** Prices `requests` (metered) and completes them; `positions` are their indexes in the batch, for error fields. */
async function fillPrices(ledger: LedgerContext, requests: EntryRequest[], positions: number[]): Promise<void> {
  const usages = requests.map((request) => ({ meter: request.meter!, quantities: request.quantities! }));
  const fieldOf = (position: number) => `entries[${positions[position]}].`;
  const prices = await priceUsages(ledger, usages, fieldOf);
  prices.forEach((usage, position) => {
    if (usage.nanos === 0n) refuseZeroCost(usage, fieldOf(position));
  });
  prices.forEach((usage, position) => {
    requests[position]!.amount = usage.amount;
    requests[position]!.price_version = usage.price_version;
  });
}

const USAGE_ERRORS = [...WRITE_ERRORS, "price_not_found", "zero_cost_usage"] as const;

const entryResponses = {
  201: { description: "Posted", content: { "application/json": { schema: EntrySchema } } },
  200: {
    description: `A replay: the key was already used for this same request; the original entry, with \`${REPLAYED_HEADER}: true\``,
    content: { "application/json": { schema: EntrySchema } },
  },
};

function respond(c: Context<AppEnv>, result: PostResult) {
  if (result.replayed) {
    c.header(REPLAYED_HEADER, "true");
    return c.json(result.entry, 200);
  }
  ledgerCounters.posted_rows.inc({ type: result.entry.type });
  return c.json(result.entry, 201);
}

export function postingRoutes(deps: { ledger: LedgerContext }) {
  const { ledger } = deps;
  return createRouter()
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/usage",
        operationId: "postUsage",
        summary: "Post one usage row (never refused for lack of balance)",
        tags: ["postings"],
        security: BEARER_SECURITY,
        middleware: [requireScope("usage:write")] as const,
        request: { body: jsonBody(UsageSchema) },
        responses: { ...entryResponses, ...errorResponses(...USAGE_ERRORS) },
      }),
      async (c) => {
        const body = c.req.valid("json");
        authorizeAccounts(c, [body.account_id]);
        const request = usageRequest(body);
        if (!request.meter) return respond(c, await postEntry(ledger, request));
        let usage: PricedUsage;
        try {
          usage = await priceUsage(ledger, { meter: request.meter, quantities: request.quantities! });
          refuseZeroCost(usage);
        } catch (error) {
          // A retry of usage priced earlier stays a replay even if the meter's price no longer prices it.
          const replay = error instanceof TallyError ? await findReplay(ledger.database, request, requestHash(request)) : undefined;
          if (replay) return respond(c, replay);
          throw error;
        }
        return respond(c, await postEntry(ledger, priced(request, usage)));
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/usage/batch",
        operationId: "postUsageBatch",
        summary: `Post up to ${BATCH_ROWS_MAX} usage rows, all or nothing`,
        tags: ["postings"],
        security: BEARER_SECURITY,
        middleware: [requireScope("usage:write")] as const,
        request: { body: jsonBody(UsageBatchSchema) },
        responses: {
          200: {
            description: "Every row is now in the ledger: `inserted` new ones, `replayed` already present with the same body",
            content: {
              "application/json": {
                schema: z.object({ inserted: z.number().int(), replayed: z.number().int() }).openapi("UsageBatchResult"),
              },
            },
          },
          ...errorResponses(...USAGE_ERRORS),
        },
      }),
      async (c) => {
        const { entries } = c.req.valid("json");
        authorizeAccounts(
          c,
          entries.map((entry) => entry.account_id),
        );
        const result = await postUsageBatch(ledger, await priceRows(ledger, entries.map(usageRequest)));
        ledgerCounters.posted_rows.inc({ type: "usage" }, result.inserted);
        return c.json(result, 200);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/credits",
        operationId: "postCredit",
        summary: "Post a credit: purchase, grant, refund or bonus; every credit is a lot, optionally expiring and prioritised",
        tags: ["postings"],
        security: BEARER_SECURITY,
        middleware: [requireScope("credits:write")] as const,
        request: { body: jsonBody(CreditSchema) },
        responses: { ...entryResponses, ...errorResponses(...WRITE_ERRORS) },
      }),
      async (c) => {
        const body = c.req.valid("json");
        authorizeAccounts(c, [body.account_id]);
        if (body.expires_at === undefined && body.priority === undefined) {
          return respond(c, await postCredit(ledger, toRequest(body.type, body)));
        }
        const request = {
          ...toRequest(body.type, body),
          priority: body.priority ?? null,
          expires_at: body.expires_at === undefined ? null : new Date(body.expires_at).toISOString(),
        };
        return respond(c, await postLotCredit(ledger, request));
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/debits",
        operationId: "postDebit",
        summary: "Post a removal; refused with 409 if the balance cannot cover it, unless allow_overdraft",
        tags: ["postings"],
        security: BEARER_SECURITY,
        middleware: [requireScope("debits:write")] as const,
        request: { body: jsonBody(DebitSchema) },
        responses: { ...entryResponses, ...errorResponses(...WRITE_ERRORS, "insufficient_balance") },
      }),
      async (c) => {
        const body = c.req.valid("json");
        authorizeAccounts(c, [body.account_id]);
        const result = await postDebit(ledger, toRequest("removal", body), { allow_overdraft: body.allow_overdraft });
        return respond(c, result);
      },
    );
}
