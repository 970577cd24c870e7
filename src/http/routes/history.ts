import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { TallyError } from "../../errors.js";
import { getEntry, listAllEntries } from "../../ledger/history/all-entries.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import type { Signer } from "../../signing/signer.js";
import { ensureAccountsExist } from "../../ledger/posting/posting.js";
import { HISTORY_OFFSET_MAX, HISTORY_PAGE_SIZE_MAX, listHistory, type HistoryFilters, type HistoryPosition } from "../../ledger/history/history.js";
import { STATS_BUCKETS_MAX, STATS_INTERVALS, accountStats, bucketCount } from "../../ledger/history/stats.js";
import { spendByMeter } from "../../ledger/prices/spend-by-meter.js";
import { authorizeAccounts, ownAccountId, requireScope, requireServiceScope } from "../auth.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import type { AppEnv } from "../env.js";
import { AUTH_ERRORS, errorResponses } from "../problem.js";
import { createRouter } from "../router.js";
import { BEARER_SECURITY } from "../route-parts.js";
import { AccountIdParamsSchema, EntrySchema, EntryTypeSchema, LIMITS } from "../schemas.js";
import { ENTRY_TYPES } from "../../db/schema.js";
import { refundedNanos } from "../../ledger/corrections/refunds.js";
import { formatNanos } from "../../ledger/core/amount.js";

/** The instants a query may name: wide enough for any ledger, narrow enough that every driver and date function copes. */
const INSTANT_MIN_MS = Date.parse("1970-01-01T00:00:00Z");
const INSTANT_MAX_MS = Date.parse("9999-12-31T23:59:59.999Z");
/** Real zones span UTC−12:00 to UTC+14:00; anything beyond is a typo, and PostgreSQL refuses some of it. */
const OFFSET_MIN_MINUTES = -12 * 60;
const OFFSET_MAX_MINUTES = 14 * 60;

function offsetMinutes(text: string): number {
  const match = /([+-])(\d{2}):?(\d{2})$/.exec(text);
  if (!match || text.endsWith("Z")) return 0;
  return (match[1] === "-" ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3]));
}

const DateTimeSchema = z.iso
  .datetime({ offset: true })
  .refine(
    (text) => {
      const offset = offsetMinutes(text);
      return offset >= OFFSET_MIN_MINUTES && offset <= OFFSET_MAX_MINUTES;
    },
    { message: "the zone offset must be between -12:00 and +14:00" },
  )
  .refine(
    (text) => {
      const instant = Date.parse(text);
      return Number.isFinite(instant) && instant >= INSTANT_MIN_MS && instant <= INSTANT_MAX_MS;
    },
    { message: "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z" },
  )
  .openapi({
    example: "2026-11-01T00:00:00Z",
    description: "ISO 8601 with a zone (Z or an offset from -12:00 to +14:00), from 1970-01-01 to 9999-12-31 UTC.",
  });
const query = (name: string) => ({ param: { name, in: "query" as const } });

const FilterQuery = {
  type: z
    .union([EntryTypeSchema, z.array(EntryTypeSchema).max(ENTRY_TYPES.length)])
    .optional()
    .openapi({ ...query("type"), description: "Repeat to list several types." }),
  search: z
    .string()
    .min(1)
    .max(200)
    // PostgreSQL text cannot hold NUL; the other characters are searched for as they are.
    .refine((text) => !text.includes("\u0000"), { message: "must not contain the NUL character" })
    .optional()
    .openapi({ ...query("search"), description: "Case-insensitive substring of the description; `%`, `_` and `\\` are literal." }),
  from: DateTimeSchema.optional().openapi({ ...query("from"), description: "Inclusive lower bound on created_at (a batch: its last row)." }),
  to: DateTimeSchema.optional().openapi({ ...query("to"), description: "Inclusive upper bound on created_at (a batch: its last row)." }),
  limit: z.coerce.number().int().min(1).max(HISTORY_PAGE_SIZE_MAX).default(LIMITS.page_size_default).openapi(query("limit")),
  cursor: z
    .string()
    .max(2048)
    .optional()
    .openapi({
      ...query("cursor"),
      description:
        "The previous page's `next_cursor`, with the same filters and grouping (the page size may change). Signed: an " +
        "altered cursor, one from another listing, or one older than 24 hours is `400 invalid_cursor`.",
    }),
  offset: z.coerce
    .number()
    .int()
    .min(0)
    .max(HISTORY_OFFSET_MAX)
    .optional()
    .openapi({ ...query("offset"), description: `For page-number UIs; at most ${HISTORY_OFFSET_MAX}. Not with cursor.` }),
};

const HistoryQuerySchema = z.strictObject({
  ...FilterQuery,
  group_batches: z
    .enum(["true", "false"])
    .default("true")
    .transform((value) => value === "true")
    .openapi({ ...query("group_batches"), description: "List each batch as one item (default)." }),
});
type HistoryQuery = z.infer<typeof HistoryQuerySchema>;

const HistoryItemSchema = z
  .object({
    id: z.string().openapi({ description: "The entry id, or for a batch item the batch id." }),
    type: EntryTypeSchema,
    amount: z.string(),
    delta: z.string(),
    idempotency_key: z.string().nullable(),
    batch_id: z.string().nullable(),
    batch_count: z.number().int().openapi({ description: "Rows in this item: 1 for an entry." }),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    created_at: z.string().openapi({ description: "An entry's time; for a batch, its last row's." }),
    first_created_at: z.string(),
    last_created_at: z.string(),
    balance_after: z.string().nullable().openapi({
      description:
        "The account balance right after this item in listing order, as of the moment the walk's first page was read: " +
        "that balance less the deltas of every item listed above this one in the unfiltered listing. Items count whole: " +
        "a batch item stands at its latest row, so all of its rows count at that point, and an entry posted between two " +
        "of its rows is listed (and counted) before it. Listing order is insertion order, which under concurrency can " +
        "differ from created_at (a transaction's start). `from`/`to` only choose which items are shown; an item's " +
        "balance_after is the same with or without them. Null when `type` or `search` is set.",
    }),
    original_entry_id: z.uuid().optional().openapi({ description: "Refunds and reversals only: the entry corrected." }),
    counterpart_entry_id: z.uuid().optional().openapi({ description: "Transfer legs only: the other leg." }),
    transfer_id: z.uuid().optional().openapi({ description: "Transfer legs only: the transfer." }),
    hold_id: z.uuid().optional().openapi({ description: "Hold captures only: the hold this usage closed." }),
    meter: z.string().optional().openapi({
      description: "Priced usage listed as an entry only: the meter it was posted for. A batch item (rows grouped) has none; list with `group_batches=false` to see its rows'.",
    }),
    quantities: z
      .record(z.string(), z.number().int())
      .optional()
      .openapi({ description: "Priced usage listed as an entry only: the quantities posted, e.g. tokens in and out." }),
    price_version: z
      .number()
      .int()
      .optional()
      .openapi({ description: "Priced usage listed as an entry only: the version of the meter's price that `amount` was computed from (listed by GET /v1/prices/{meter})." }),
  })
  .openapi("HistoryItem");

const HistoryPageSchema = z
  .object({
    items: z.array(HistoryItemSchema),
    total: z.number().int(),
    page_start_balance: z.string().nullable().openapi({ description: "balance_after of the page's first item." }),
    next_cursor: z.string().nullable().openapi({ description: "Signed; valid for 24 hours and only for this listing with the same parameters." }),
  })
  .openapi("HistoryPage");

/**
 * What a history cursor carries. It is signed, so these are the server's own values; the shape check only guards
 * against a cursor from an older version of tally.
 */
const cursorSchema = (position: z.ZodString) =>
  z.strictObject({
    snapshot: z.string(),
    position,
    total: z.number().int().min(0).optional(),
    balance_below: z.string().nullable().optional(),
  });
/** Account history positions are `seq` values; the all-accounts listing is positioned by entry id. */
const HistoryCursorSchema = cursorSchema(z.string().regex(/^[1-9][0-9]{0,18}$/));
const AllEntriesCursorSchema = cursorSchema(z.string().uuid());

function toFilters(input: { type?: string | string[]; search?: string; from?: string; to?: string }): HistoryFilters {
  const types = input.type === undefined ? undefined : [...new Set(Array.isArray(input.type) ? input.type : [input.type])];
  return { types: types as HistoryFilters["types"], search: input.search, from: input.from, to: input.to };
}

async function readCursor(
  signer: Signer,
  cursor: string | undefined,
  offset: number | undefined,
  binding: unknown,
  schema: typeof HistoryCursorSchema,
): Promise<HistoryPosition | undefined> {
  if (cursor === undefined) return undefined;
  if (offset !== undefined) throw new TallyError("validation_failed", "send either cursor or offset, not both", { errors: [{ field: "offset", message: "not allowed with cursor" }] });
  return decodeCursor(signer, binding, cursor, schema);
}

async function historyPage(c: Context<AppEnv>, deps: HistoryDependencies, account_id: string, input: HistoryQuery) {
  const { ledger, signer } = deps;
  const filters = toFilters(input);
  // A cursor is bound to the account and every parameter that shapes the listing (not the page size).
  const binding = ["history", account_id, input.group_batches, filters];
  const after = await readCursor(signer, input.cursor, input.offset, binding, HistoryCursorSchema);
  await ensureAccountsExist(ledger, [account_id]);
  const page = await listHistory(ledger, {
    account_id,
    group_batches: input.group_batches,
    limit: input.limit,
    offset: input.offset ?? 0,
    after,
    filters,
  });
  return c.json(
    {
      items: page.items,
      total: page.total,
      page_start_balance: page.page_start_balance,
      next_cursor: page.next === undefined ? null : await encodeCursor(signer, binding, { ...page.next }),
    },
    200,
  );
}

const historyResponses = {
  200: { description: "A page of history, newest first", content: { "application/json": { schema: HistoryPageSchema } } },
  ...errorResponses("validation_failed", "invalid_cursor", "account_not_found", ...AUTH_ERRORS),
};

interface HistoryDependencies {
  ledger: LedgerContext;
  signer: Signer;
}

export function historyRoutes(deps: HistoryDependencies) {
  const { ledger, signer } = deps;
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/accounts/{id}/entries",
        operationId: "listAccountEntries",
        summary: "An account's history, batches grouped, with running balances",
        tags: ["history"],
        security: BEARER_SECURITY,
        middleware: [requireScope("history:read")] as const,
        request: { params: AccountIdParamsSchema, query: HistoryQuerySchema },
        responses: historyResponses,
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        authorizeAccounts(c, [id]);
        return historyPage(c, deps, id, c.req.valid("query"));
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/me/entries",
        operationId: "listOwnEntries",
        summary: "The token's own history",
        tags: ["me"],
        security: BEARER_SECURITY,
        middleware: [requireScope("history:read")] as const,
        request: { query: HistoryQuerySchema },
        responses: historyResponses,
      }),
      async (c) => historyPage(c, deps, ownAccountId(c), c.req.valid("query")),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/entries",
        operationId: "listEntries",
        summary: "Entries across all accounts, newest first (admin; not grouped)",
        tags: ["history"],
        security: BEARER_SECURITY,
        middleware: [requireServiceScope("admin")] as const,
        request: { query: z.strictObject(FilterQuery) },
        responses: {
          200: {
            description: "A page of entries",
            content: {
              "application/json": {
                schema: z.object({ items: z.array(EntrySchema), total: z.number().int(), next_cursor: z.string().nullable() }),
              },
            },
          },
          ...errorResponses("validation_failed", "invalid_cursor", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const input = c.req.valid("query");
        const filters = toFilters(input);
        const binding = ["entries", filters];
        const after = await readCursor(signer, input.cursor, input.offset, binding, AllEntriesCursorSchema);
        const page = await listAllEntries(ledger, { limit: input.limit, offset: input.offset ?? 0, after, filters });
        return c.json(
          { items: page.items, total: page.total, next_cursor: page.next === undefined ? null : await encodeCursor(signer, binding, { ...page.next }) },
          200,
        );
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/entries/{entry_id}",
        operationId: "getEntry",
        summary: "One entry (admin, a key with history:read, or the owning user)",
        tags: ["history"],
        security: BEARER_SECURITY,
        middleware: [requireScope("history:read")] as const,
        request: { params: z.object({ entry_id: z.uuid().openapi({ param: { name: "entry_id", in: "path" } }) }) },
        responses: {
          200: {
            description: "The entry, with `refunded_amount`: what its refunds or reversals add up to",
            content: {
              "application/json": {
                schema: EntrySchema.extend({
                  refunded_amount: z.string().openapi({
                    description: "The sum of the refunds (of a debit) or reversals (of a credit) that name this entry; \"0\" if none.",
                    example: "4",
                  }),
                }).openapi("EntryDetail"),
              },
            },
          },
          ...errorResponses("validation_failed", "not_found", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const { entry_id } = c.req.valid("param");
        const entry = await getEntry(ledger, entry_id);
        const principal = c.get("principal");
        // Another user's entry is reported as missing, so ids cannot be probed for existence.
        if (!entry || (principal.kind === "user" && principal.account_id !== entry.account_id)) {
          throw new TallyError("not_found", `no entry ${entry_id}`);
        }
        return c.json({ ...entry, refunded_amount: formatNanos(await refundedNanos(ledger.database, entry)) }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/accounts/{id}/stats",
        operationId: "getAccountStats",
        summary: "Totals and a time series over [from, to)",
        tags: ["history"],
        security: BEARER_SECURITY,
        middleware: [requireScope("history:read")] as const,
        request: {
          params: AccountIdParamsSchema,
          query: z.strictObject({
            from: DateTimeSchema.optional().openapi({ ...query("from"), description: "Inclusive; default: 30 days before `to`." }),
            to: DateTimeSchema.optional().openapi({ ...query("to"), description: "Exclusive; default: now." }),
            interval: z.enum(STATS_INTERVALS).default("day").openapi(query("interval")),
            group_by: z
              .enum(["meter"])
              .optional()
              .openapi({ ...query("group_by"), description: "`meter`: also answer `by_meter`, spend per meter (null: posted as an amount)." }),
          }),
        },
        responses: {
          200: {
            description: "Totals (spent, earned, net, count, per type) and one bucket per interval, in UTC",
            content: { "application/json": { schema: z.object({}).passthrough().openapi("AccountStats") } },
          },
          ...errorResponses("validation_failed", "account_not_found", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        authorizeAccounts(c, [id]);
        const input = c.req.valid("query");
        const to = input.to === undefined ? new Date() : new Date(input.to);
        const from = input.from === undefined ? new Date(to.getTime() - 30 * 86_400_000) : new Date(input.from);
        if (from >= to) throw new TallyError("validation_failed", "from must be before to", { errors: [{ field: "from", message: "must be before to" }] });
        if (bucketCount(from, to, input.interval) > STATS_BUCKETS_MAX) {
          throw new TallyError("validation_failed", `at most ${STATS_BUCKETS_MAX} ${input.interval}s per request`, {
            errors: [{ field: "from", message: `the range spans more than ${STATS_BUCKETS_MAX} ${input.interval}s` }],
          });
        }
        await ensureAccountsExist(ledger, [id]);
        const stats = await accountStats(ledger, { account_id: id, from, to, interval: input.interval });
        if (input.group_by !== "meter") return c.json(stats, 200);
        return c.json({ ...stats, by_meter: await spendByMeter(ledger, { account_id: id, from, to }) }, 200);
      },
    );
}
