import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  customType,
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

/**
 * The storage model. Every unique index leads with the account id so that the tables can later be distributed by
 * account. There is deliberately no foreign key from entries to accounts: each insert would take FOR KEY SHARE on
 * the account row, and on a hot account those locks pile up as MultiXacts. The application checks that an
 * account exists instead (see src/ledger/known-accounts.ts).
 */

/** PostgreSQL's 64-bit transaction id; it never wraps around, so it orders transactions for good. */
const xid8 = customType<{ data: string; driverData: string }>({
  dataType: () => "xid8",
});

/** A set of transaction ids visible at one moment: xmin, xmax and the ids in progress. */
const pgSnapshot = customType<{ data: string; driverData: string }>({
  dataType: () => "pg_snapshot",
});

export const ENTRY_TYPES = [
  "purchase",
  "grant",
  "refund",
  "bonus",
  "usage",
  "removal",
  // Linked corrections (src/ledger/corrections/): a reversal takes back a credit, a transfer moves credits between
  // accounts as two entries, and an adjustment is signed (a credit or a debit, by its delta).
  "reversal",
  "transfer_out",
  "transfer_in",
  "adjustment",
  // Credit lots (src/ledger/lots/): tally's own debit that ends what remains of an expired or voided lot.
  "expiration",
] as const;
/** The types POST /v1/credits accepts. Every credit-like type (delta > 0) is in CREDIT_DELTA_TYPES. */
export const CREDIT_TYPES = ["purchase", "grant", "refund", "bonus"] as const;
/** Types whose delta is always negative. */
export const DEBIT_TYPES = ["usage", "removal", "reversal", "transfer_out", "expiration"] as const;
/** Types whose delta is always positive. */
export const CREDIT_DELTA_TYPES = ["purchase", "grant", "refund", "bonus", "transfer_in"] as const;
/** Types whose delta may have either sign (the amount is still positive): read the delta, not the type. */
export const SIGNED_TYPES = ["adjustment"] as const;
/** Types that correct another entry or move credits, and so carry links (original, counterpart, transfer). */
export const CORRECTION_TYPES = ["refund", "reversal", "transfer_out", "transfer_in", "adjustment"] as const;
export type EntryType = (typeof ENTRY_TYPES)[number];
export type CreditType = (typeof CREDIT_TYPES)[number];

export const accounts = pgTable(
  "accounts",
  {
    id: text("id").primaryKey(),
    metadata: jsonb("metadata").notNull().default({}),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
  },
  (table) => [check("accounts_id_format", sql`${table.id} ~ '^[A-Za-z0-9._:@-]{1,128}$'`)],
);

export const entries = pgTable(
  "entries",
  {
    seq: bigint("seq", { mode: "bigint" }).generatedAlwaysAsIdentity(),
    id: uuid("id").notNull(),
    accountId: text("account_id").notNull(),
    type: text("type", { enum: ENTRY_TYPES }).notNull(),
    amount: numeric("amount", { precision: 25, scale: 9 }).notNull(),
    delta: numeric("delta", { precision: 25, scale: 9 }).notNull(),
    idempotencyKey: text("idempotency_key").notNull(),
    requestHash: text("request_hash").notNull(),
    batchId: uuid("batch_id"),
    description: text("description"),
    metadata: jsonb("metadata"),
    // Milliseconds, the precision the API prints: an inclusive `to` equal to a listed created_at then includes it.
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" })
      .notNull()
      .default(sql`date_trunc('milliseconds', now())`),
    xid: xid8("xid")
      .notNull()
      .default(sql`pg_current_xact_id()`),
    // Links of a correction (src/ledger/corrections/): the entry a refund or reversal corrects (same account), the
    // other leg of a transfer, and the transfer both legs share. Null on every other entry.
    originalEntryId: uuid("original_entry_id"),
    counterpartEntryId: uuid("counterpart_entry_id"),
    transferId: uuid("transfer_id"),
    // The hold a capture closed (src/ledger/holds/); null for every other entry.
    holdId: uuid("hold_id"),
    // Credit lots (src/ledger/lots/): a credit's consumption priority (null means the default, 50) and expiry.
    priority: smallint("priority"),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "string" }),
    // An expiration names the lot it ends, and the snapshot that decided which debits came before it.
    lotId: uuid("lot_id"),
    cutSnapshot: pgSnapshot("cut_snapshot"),
    // Priced usage (src/ledger/prices/): the meter and quantities the client posted and the price version tally
    // computed the amount from, so every charge can be explained later. Null on every other entry; nullable columns
    // on the row itself cost an unpriced insert nothing and a priced one no second statement.
    meter: text("meter"),
    quantities: jsonb("quantities"),
    priceVersion: integer("price_version"),
  },
  (table) => [
    primaryKey({ name: "entries_pkey", columns: [table.accountId, table.seq] }),
    uniqueIndex("entries_account_idempotency_key").on(table.accountId, table.idempotencyKey),
    // The delta read of a balance: the account's rows at or above the checkpoint's transaction-id boundary. Kept to
    // two columns: with seq added (tried), the wider index priced the history page's read of unfolded batched rows
    // above a seq scan, and a page of a 3,000,000-row account took 550–820 ms instead of about 20.
    index("entries_account_xid").on(table.accountId, table.xid),
    index("entries_id").on(table.id),
    // History: single entries newest first, and one batch's rows (to recompute a batch that grew during a walk).
    // Partial, so each insert maintains only one of the two.
    index("entries_account_unbatched_seq")
      .on(table.accountId, table.seq)
      .where(sql`${table.batchId} IS NULL`),
    index("entries_account_batch_seq")
      .on(table.accountId, table.batchId, table.seq)
      .where(sql`${table.batchId} IS NOT NULL`),
    check(
      "entries_type_known",
      sql`${table.type} IN ('purchase', 'grant', 'refund', 'bonus', 'usage', 'removal', 'reversal', 'transfer_out', 'transfer_in', 'adjustment', 'expiration')`,
    ),
    check("entries_amount_range", sql`${table.amount} > 0 AND ${table.amount} <= 1000000000000000`),
    check(
      "entries_delta_sign",
      sql`${table.delta} = CASE WHEN ${table.type} IN ('usage', 'removal', 'reversal', 'transfer_out', 'expiration') THEN -${table.amount} WHEN ${table.type} = 'adjustment' AND ${table.delta} < 0 THEN -${table.amount} ELSE ${table.amount} END`,
    ),
    check("entries_priority_range", sql`${table.priority} BETWEEN 0 AND 100`),
    check(
      "entries_expiration_names_lot",
      sql`(${table.type} = 'expiration') = (${table.lotId} IS NOT NULL AND ${table.cutSnapshot} IS NOT NULL)`,
    ),
    // A link only where it means something: an original on refunds and reversals, both transfer links on both legs.
    check(
      "entries_links_by_type",
      sql`(${table.originalEntryId} IS NULL OR ${table.type} IN ('refund', 'reversal')) AND ((${table.transferId} IS NOT NULL AND ${table.counterpartEntryId} IS NOT NULL) = (${table.type} IN ('transfer_out', 'transfer_in'))) AND (${table.transferId} IS NULL) = (${table.counterpartEntryId} IS NULL)`,
    ),
    // The refunds and reversals of one entry, summed under the corrections lock (never exceeds the original).
    index("entries_account_original")
      .on(table.accountId, table.originalEntryId)
      .where(sql`${table.originalEntryId} IS NOT NULL`),
  ],
);

/**
 * balance = checkpoint.balance + the sum of the account's entries whose xid is at or above `xid_boundary`.
 * Every transaction with an xid below the boundary had finished when the checkpoint was taken, so no row can
 * commit below it afterwards.
 */
export const balanceCheckpoints = pgTable("balance_checkpoints", {
  accountId: text("account_id").primaryKey(),
  balance: numeric("balance").notNull(),
  xidBoundary: xid8("xid_boundary").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
});

export const apiKeys = pgTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    secretHash: text("secret_hash").notNull(),
    scopes: text("scopes").array().notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
    revokedAt: timestamp("revoked_at", { withTimezone: true, mode: "string" }),
    /** A key is refused from this moment on; null: it never expires. */
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "string" }),
  },
  (table) => [check("api_keys_id_format", sql`${table.id} ~ '^[0-9a-f]{16}$'`)],
);

export const BALANCE_EVENT_TYPES = ["balance_restored", "balance_depleted", "credits_expired", "auto_topup_requested"] as const;
export type BalanceEventType = (typeof BALANCE_EVENT_TYPES)[number];

/**
 * What the zero-crossing evaluations of an account remember between runs (they run one at a time per account,
 * under an advisory lock): the snapshot the last evaluation read, so the next one can sum exactly the credits that
 * committed since, and the depleted marker, set when tally served an observation at or below zero and cleared, with
 * a balance_restored event, by the first evaluation that finds the balance positive.
 */
export const balanceWatches = pgTable("balance_watches", {
  accountId: text("account_id").primaryKey(),
  evaluatedSnapshot: pgSnapshot("evaluated_snapshot").notNull(),
  depletedSince: timestamp("depleted_since", { withTimezone: true, mode: "string" }),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
  /**
   * The credits since `evaluated_snapshot` already summed, in bounded chunks, by an evaluation that had many rows
   * to read: the positive deltas of the rows with xid below `credits_boundary` not visible in the snapshot. Null
   * boundary (and 0): nothing summed yet, the next evaluation starts at the snapshot's xmin (ledger/events/crossings.ts).
   */
  creditsBoundary: xid8("credits_boundary"),
  creditsPending: numeric("credits_pending").notNull().default("0"),
});

/**
 * The durable stream behind NOTIFY. Ids are handed out under a global advisory lock held until commit, so they
 * commit in id order and a reader resuming after id N can never miss a smaller id that commits later.
 */
export const balanceEvents = pgTable(
  "balance_events",
  {
    id: bigint("id", { mode: "bigint" }).generatedAlwaysAsIdentity(),
    accountId: text("account_id").notNull(),
    type: text("type", { enum: BALANCE_EVENT_TYPES }).notNull(),
    balance: numeric("balance").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
    // credits_expired only: the lot that expired and the amount that left the balance.
    lotId: uuid("lot_id"),
    amount: numeric("amount"),
    // auto_topup_requested only (src/ledger/auto-topup/): the request the billing side fulfils (amount: to charge).
    requestId: uuid("request_id"),
  },
  (table) => [
    primaryKey({ name: "balance_events_pkey", columns: [table.accountId, table.id] }),
    index("balance_events_id").on(table.id),
    index("balance_events_created_at").on(table.createdAt),
    check(
      "balance_events_type_known",
      sql`${table.type} IN ('balance_restored', 'balance_depleted', 'credits_expired', 'auto_topup_requested')`,
    ),
  ],
);

/**
 * Lazy roll-up of batched usage rows, one row per (account, batch). The ledger rows themselves are never touched:
 * a per-account boundary (a transaction id, as for balance checkpoints) says which rows are folded in. `max_xid`
 * is the largest inserting transaction id folded into the aggregate, so a history walk pinned to an earlier
 * horizon can tell that an aggregate has grown since, and recompute that one batch from its rows.
 */
export const batchAggregates = pgTable(
  "batch_aggregates",
  {
    accountId: text("account_id").notNull(),
    batchId: uuid("batch_id").notNull(),
    amountTotal: numeric("amount_total").notNull(),
    deltaTotal: numeric("delta_total").notNull(),
    rowCount: bigint("row_count", { mode: "bigint" }).notNull(),
    firstSeq: bigint("first_seq", { mode: "bigint" }).notNull(),
    lastSeq: bigint("last_seq", { mode: "bigint" }).notNull(),
    firstAt: timestamp("first_at", { withTimezone: true, mode: "string" }).notNull(),
    lastAt: timestamp("last_at", { withTimezone: true, mode: "string" }).notNull(),
    maxXid: xid8("max_xid").notNull(),
  },
  (table) => [
    primaryKey({ name: "batch_aggregates_pkey", columns: [table.accountId, table.batchId] }),
    index("batch_aggregates_account_last_seq").on(table.accountId, table.lastSeq),
    index("batch_aggregates_account_max_xid").on(table.accountId, table.maxXid),
  ],
);

export const rollupBoundaries = pgTable("rollup_boundaries", {
  accountId: text("account_id").primaryKey(),
  xidBoundary: xid8("xid_boundary").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
});

/**
 * Secrets the server creates for itself, once, and every process sharing the database reads: the key that signs
 * cursors (src/signing/). Created with INSERT … ON CONFLICT DO NOTHING, so processes starting together agree on one.
 */
export const serverSecrets = pgTable("server_secrets", {
  name: text("name").primaryKey(),
  secret: text("secret").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
});

export * from "./holds-schema.js";
export * from "./lots-schema.js";
export * from "./prices-schema.js";
export * from "./webhooks-schema.js";
export * from "./payments-schema.js";
export * from "./plans-schema.js";
