import { sql } from "drizzle-orm";
import { check, index, jsonb, numeric, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

export const HOLD_STORED_STATUSES = ["active", "captured", "released"] as const;
export type HoldStoredStatus = (typeof HOLD_STORED_STATUSES)[number];

/**
 * Reservations of credit made before a call whose cost is not yet known (see src/ledger/holds/). A hold is not a
 * ledger entry and never changes a balance: it lowers `available` while it is active and unexpired. Its row is
 * written once when granted and updated once when closed (captured or released); expiry is not stored, it is
 * `status = 'active' AND expires_at <= now`, so no sweep is needed for correctness.
 */
export const holds = pgTable(
  "holds",
  {
    id: uuid("id").notNull(),
    accountId: text("account_id").notNull(),
    amount: numeric("amount", { precision: 25, scale: 9 }).notNull(),
    status: text("status", { enum: HOLD_STORED_STATUSES }).notNull().default("active"),
    idempotencyKey: text("idempotency_key").notNull(),
    requestHash: text("request_hash").notNull(),
    description: text("description"),
    metadata: jsonb("metadata"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "string" }).notNull(),
    closedAt: timestamp("closed_at", { withTimezone: true, mode: "string" }),
    // The request hash of the capture's usage entry, so a repeated capture can be told from a different one.
    captureHash: text("capture_hash"),
    capturedAmount: numeric("captured_amount", { precision: 25, scale: 9 }),
  },
  (table) => [
    primaryKey({ name: "holds_pkey", columns: [table.accountId, table.id] }),
    uniqueIndex("holds_account_idempotency_key").on(table.accountId, table.idempotencyKey),
    index("holds_id").on(table.id),
    // The held total of `available`: only active holds are in this index, and the range expires_at > now skips
    // the expired ones, so the read is O(active holds), not O(holds ever).
    index("holds_account_active_expires_at")
      .on(table.accountId, table.expiresAt)
      .where(sql`${table.status} = 'active'`),
    // Listings by status, newest first.
    index("holds_account_status_id").on(table.accountId, table.status, table.id),
    // Retention (src/ledger/holds/retention.ts): a hold has ended when it was closed or, never closed, when it
    // expired; the oldest ended holds are deleted first, in bounded batches, without scanning the table.
    index("holds_ended_at").on(sql`COALESCE(${table.closedAt}, ${table.expiresAt})`),
    check("holds_status_known", sql`${table.status} IN ('active', 'captured', 'released')`),
    check("holds_amount_range", sql`${table.amount} > 0 AND ${table.amount} <= 1000000000000000`),
    check(
      "holds_closed_consistent",
      sql`(${table.status} = 'active') = (${table.closedAt} IS NULL) AND (${table.status} = 'captured') = (${table.capturedAmount} IS NOT NULL)`,
    ),
  ],
);
