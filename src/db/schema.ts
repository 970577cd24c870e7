import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  customType,
  index,
  jsonb,
  numeric,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

/**
 * The storage model. Every unique index leads with the account id so that the tables can later be distributed by
 * account. There is deliberately no foreign key from entries to accounts: each insert would take FOR KEY SHARE on
 * the account row, and on a hot account those locks pile up as MultiXacts. The application checks that an
 * account exists instead (see src/ledger/accounts.ts).
 */

/** PostgreSQL's 64-bit transaction id; it never wraps around, so it orders transactions for good. */
const xid8 = customType<{ data: string; driverData: string }>({
  dataType: () => "xid8",
});

export const ENTRY_TYPES = ["purchase", "grant", "refund", "bonus", "usage", "removal"] as const;
export const CREDIT_TYPES = ["purchase", "grant", "refund", "bonus"] as const;
export const DEBIT_TYPES = ["usage", "removal"] as const;
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
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
    xid: xid8("xid")
      .notNull()
      .default(sql`pg_current_xact_id()`),
  },
  (table) => [
    primaryKey({ name: "entries_pkey", columns: [table.accountId, table.seq] }),
    uniqueIndex("entries_account_idempotency_key").on(table.accountId, table.idempotencyKey),
    // The delta read of a balance: the account's rows at or above the checkpoint's transaction-id boundary.
    index("entries_account_xid").on(table.accountId, table.xid),
    index("entries_id").on(table.id),
    check("entries_type_known", sql`${table.type} IN ('purchase', 'grant', 'refund', 'bonus', 'usage', 'removal')`),
    check("entries_amount_range", sql`${table.amount} > 0 AND ${table.amount} <= 1000000000000000`),
    check(
      "entries_delta_sign",
      sql`${table.delta} = CASE WHEN ${table.type} IN ('usage', 'removal') THEN -${table.amount} ELSE ${table.amount} END`,
    ),
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
  },
  (table) => [check("api_keys_id_format", sql`${table.id} ~ '^[0-9a-f]{16}$'`)],
);
