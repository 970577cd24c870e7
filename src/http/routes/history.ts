import { createRoute, z } from "@hono/zod-openapi";
import { createHash } from "node:crypto";
import type { Context } from "hono";
import { TallyError } from "../../errors.js";
import { getEntry, listAllEntries } from "../../ledger/history/all-entries.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import { ensureAccountsExist } from "../../ledger/posting/posting.js";
import { HISTORY_OFFSET_MAX, HISTORY_PAGE_SIZE_MAX, listHistory, type HistoryFilters, type HistoryPosition } from "../../ledger/history/history.js";
import { STATS_BUCKETS_MAX, STATS_INTERVALS, accountStats, bucketCount } from "../../ledger/history/stats.js";
import { authorizeAccounts, ownAccountId, requireScope, requireServiceScope } from "../auth.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import type { AppEnv } from "../env.js";
import { AUTH_ERRORS, errorResponses } from "../problem.js";
import { createRouter } from "../router.js";
import { BEARER_SECURITY } from "../route-parts.js";
import { AccountIdParamsSchema, EntrySchema, EntryTypeSchema, LIMITS } from "../schemas.js";

const DateTimeSchema = z.iso.datetime({ offset: true }).openapi({ example: "2026-11-01T00:00:00Z" });
const query = (name: string) => ({ param: { name, in: "query" as const } });

const FilterQuery = {
  type: z
    .union([EntryTypeSchema, z.array(EntryTypeSchema).max(6)])
    .optional()
    .openapi({ ...query("type"), description: "Repeat to list several types." }),
  search: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ ...query("search"), description: "Case-insensitive substring of the description; `%`, `_` and `\\` are literal." }),
  from: DateTimeSchema.optional().openapi({ ...query("from"), description: "Inclusive lower bound on created_at (a batch: its last row)." }),
  to: DateTimeSchema.optional().openapi({ ...query("to"), description: "Inclusive upper bound on created_at (a batch: its last row)." }),
  limit: z.coerce.number().int().min(1).max(HISTORY_PAGE_SIZE_MAX).default(LIMITS.page_size_default).openapi(query("limit")),
  cursor: z.string().max(2048).optional().openapi(query("cursor")),
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
      description: "The balance right after this item (a batch: after its last row). Null when type or search is set.",
    }),
  })
  .openapi("HistoryItem");

const HistoryPageSchema = z
  .object({
    items: z.array(HistoryItemSchema),
    total: z.number().int(),
    page_start_balance: z.string().nullable().openapi({ description: "balance_after of the page's first item." }),
    next_cursor: z.string().nullable(),
  })
  .openapi("HistoryPage");

const XID_MAX = 2n ** 63n - 1n;

/** A pg_snapshot as PostgreSQL prints it, checked as PostgreSQL would, so a doctored cursor is a 400, not a 500. */
function isSnapshot(text: string): boolean {
  const match = /^([0-9]{1,19}):([0-9]{1,19}):((?:[0-9]{1,19},){0,200}[0-9]{0,19})$/.exec(text);
  if (!match) return false;
  const xmin = BigInt(match[1]!);
  const xmax = BigInt(match[2]!);
  const inProgress = match[3] === "" ? [] : match[3]!.split(",").map(BigInt);
  if (xmin < 1n || xmin > xmax || xmax > XID_MAX) return false;
  return inProgress.every((xid, index) => xid >= xmin && xid < xmax && (index === 0 || xid > inProgress[index - 1]!));
}

const cursorSchema = (position: z.ZodString) =>
  z.strictObject({
    snapshot: z.string().max(1300).refine(isSnapshot),
    position,
    scope: z.string().length(16),
    // Carried so later pages need not recount or re-sum (see HistoryPosition). A doctored value only misleads the
    // caller who doctored it: a cursor is scoped to one account and set of filters the caller may already read.
    total: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    balance_after_next: z
      .string()
      .regex(/^-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,9})?$/)
      .nullable()
      .optional(),
  });
/** Account history positions are `seq` values; the all-accounts listing is positioned by entry id. */
const HistoryCursorSchema = cursorSchema(z.string().regex(/^[1-9][0-9]{0,18}$/));
const AllEntriesCursorSchema = cursorSchema(z.string().uuid());

function toFilters(input: { type?: string | string[]; search?: string; from?: string; to?: string }): HistoryFilters {
  const types = input.type === undefined ? undefined : [...new Set(Array.isArray(input.type) ? input.type : [input.type])];
  return { types: types as HistoryFilters["types"], search: input.search, from: input.from, to: input.to };
}

/** Binds a cursor to the listing that issued it, so it cannot be replayed against other filters or accounts. */
function cursorScope(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 16);
}

function readCursor(
  cursor: string | undefined,
  offset: number | undefined,
  scope: string,
  schema: typeof HistoryCursorSchema,
): HistoryPosition | undefined {
  if (cursor === undefined) return undefined;
  if (offset !== undefined) throw new TallyError("validation_failed", "send either cursor or offset, not both", { errors: [{ field: "offset", message: "not allowed with cursor" }] });
  const { scope: issuedFor, ...position } = decodeCursor(cursor, schema);
  if (issuedFor !== scope) throw new TallyError("invalid_cursor", "the cursor belongs to another listing (account or filters differ)");
  return position;
}

async function historyPage(c: Context<AppEnv>, ledger: LedgerContext, account_id: string, input: HistoryQuery) {
  const filters = toFilters(input);
  const scope = cursorScope([account_id, input.group_batches, filters]);
  const after = readCursor(input.cursor, input.offset, scope, HistoryCursorSchema);
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
      next_cursor: page.next === undefined ? null : encodeCursor({ ...page.next, scope }),
    },
    200,
  );
}

const historyResponses = {
  200: { description: "A page of history, newest first", content: { "application/json": { schema: HistoryPageSchema } } },
  ...errorResponses("validation_failed", "invalid_cursor", "account_not_found", ...AUTH_ERRORS),
};

export function historyRoutes(deps: { ledger: LedgerContext }) {
  const { ledger } = deps;
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
        return historyPage(c, ledger, id, c.req.valid("query"));
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
      async (c) => historyPage(c, ledger, ownAccountId(c), c.req.valid("query")),
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
        const scope = cursorScope(["*", filters]);
        const after = readCursor(input.cursor, input.offset, scope, AllEntriesCursorSchema);
        const page = await listAllEntries(ledger, { limit: input.limit, offset: input.offset ?? 0, after, filters });
        return c.json(
          { items: page.items, total: page.total, next_cursor: page.next === undefined ? null : encodeCursor({ ...page.next, scope }) },
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
          200: { description: "The entry", content: { "application/json": { schema: EntrySchema } } },
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
        return c.json(entry, 200);
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
        return c.json(await accountStats(ledger, { account_id: id, from, to, interval: input.interval }), 200);
      },
    );
}
