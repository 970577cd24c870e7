import { sql } from "drizzle-orm";
import { bigint, boolean, check, customType, index, numeric, pgTable, primaryKey, smallint, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * Credit lots (src/ledger/lots/). The ledger stays the truth: every lot and every consumption can be recomputed
 * from the entries alone. These two tables are a fold of the entries, advanced per account like a checkpoint, so
 * that expiry, listings and `expiring_next` cost O(delta) and O(page) rather than O(history).
 */

const xid8 = customType<{ data: string; driverData: string }>({ dataType: () => "xid8" });
const pgSnapshot = customType<{ data: string; driverData: string }>({ dataType: () => "pg_snapshot" });

export const LOT_STATUSES = ["open", "consumed", "expired"] as const;
export type LotStatus = (typeof LOT_STATUSES)[number];

/**
 * One row per credit entry. `remaining` is as of the account's fold (lot_folds). A credit posted with an expiry
 * gets its row at once (folded = false, remaining = amount), so the expiry sweep and the due check on balance reads
 * find it before any fold has run; the fold then opens it for real. `expires_sort` is expires_at with infinity for
 * "never", so the consumption order is one plain, NULL-free key that keyset pagination can compare.
 */
export const creditLots = pgTable(
  "credit_lots",
  {
    accountId: text("account_id").notNull(),
    entryId: uuid("entry_id").notNull(),
    entrySeq: bigint("entry_seq", { mode: "bigint" }).notNull(),
    type: text("type").notNull(),
    priority: smallint("priority").notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "string" }),
    expiresSort: timestamp("expires_sort", { withTimezone: true, mode: "string" }).notNull(),
    amount: numeric("amount", { precision: 25, scale: 9 }).notNull(),
    remaining: numeric("remaining", { precision: 25, scale: 9 }).notNull(),
    status: text("status", { enum: LOT_STATUSES }).notNull(),
    folded: boolean("folded").notNull(),
    expirationEntryId: uuid("expiration_entry_id"),
    expiredAmount: numeric("expired_amount", { precision: 25, scale: 9 }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
    closedAt: timestamp("closed_at", { withTimezone: true, mode: "string" }),
  },
  (table) => [
    primaryKey({ name: "credit_lots_pkey", columns: [table.accountId, table.entryId] }),
    // Listings by status (and the fold's walk over open lots), in consumption order.
    index("credit_lots_account_status_order").on(
      table.accountId,
      table.status,
      table.priority,
      table.expiresSort,
      table.entrySeq,
    ),
    // ?status=all, in consumption order.
    index("credit_lots_account_order").on(table.accountId, table.priority, table.expiresSort, table.entrySeq),
    // The due check on balance reads and expiring_next: one account's open, expiring lots by expiry.
    index("credit_lots_account_expiring")
      .on(table.accountId, table.expiresSort)
      .where(sql`${table.status} = 'open' AND ${table.expiresAt} IS NOT NULL`),
    // The expiry sweep: every account's open lots that are due, earliest first.
    index("credit_lots_due")
      .on(table.expiresSort)
      .where(sql`${table.status} = 'open' AND ${table.expiresAt} IS NOT NULL`),
    check("credit_lots_status_known", sql`${table.status} IN ('open', 'consumed', 'expired')`),
    check("credit_lots_remaining_range", sql`${table.remaining} >= 0 AND ${table.remaining} <= ${table.amount}`),
  ],
);

/**
 * How far each account's lot fold has got: every entry visible in `cut_snapshot` (the snapshot of the last
 * expiry) plus every entry at or before (position_xid, position_seq) has been allocated; `overage` is debit that no
 * lot covered yet, which the next credit pays first.
 */
export const lotFolds = pgTable("lot_folds", {
  accountId: text("account_id").primaryKey(),
  cutSnapshot: pgSnapshot("cut_snapshot"),
  positionXid: xid8("position_xid"),
  positionSeq: bigint("position_seq", { mode: "bigint" }),
  overage: numeric("overage", { precision: 25, scale: 9 }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
});
