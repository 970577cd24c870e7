import { sql } from "drizzle-orm";
import { bigint, boolean, check, customType, index, numeric, pgTable, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";

/** A set of transaction ids visible at one moment (as in schema.ts): what an auto top-up evaluation last read. */
const pgSnapshot = customType<{ data: string; driverData: string }>({
  dataType: () => "pg_snapshot",
});

/**
 * One auto top-up rule per account (src/ledger/auto-topup/), and the state its evaluations keep between runs. The
 * evaluations of one account run one at a time under this row's lock (SELECT … FOR UPDATE), so the open request
 * is read and written by one evaluation at a time, in any number of processes. Usage never touches the row.
 */
export const autoTopupRules = pgTable(
  "auto_topup_rules",
  {
    accountId: text("account_id").primaryKey(),
    threshold: numeric("threshold", { precision: 25, scale: 9 }).notNull(),
    // Exactly one of the two: a fixed amount, or whatever brings the balance up to the target.
    amount: numeric("amount", { precision: 25, scale: 9 }),
    targetBalance: numeric("target_balance", { precision: 25, scale: 9 }),
    monthlyLimit: numeric("monthly_limit", { precision: 25, scale: 9 }).notNull(),
    enabled: boolean("enabled").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
    // The request that blocks the next one until it is fulfilled or expires, or an evaluation finds the balance above
    // the threshold again (null: none, so the next evaluation at or below the threshold requests).
    openRequestId: uuid("open_request_id"),
    openRequestExpiresAt: timestamp("open_request_expires_at", { withTimezone: true, mode: "string" }),
    // The snapshot of the last evaluation: an account is evaluated again only once an entry committed outside it.
    // Null: never evaluated (or the rule just changed), so the next detector pass evaluates it.
    evaluatedSnapshot: pgSnapshot("evaluated_snapshot"),
    evaluatedAt: timestamp("evaluated_at", { withTimezone: true, mode: "string" }),
  },
  (table) => [
    check("auto_topup_rules_amount_or_target", sql`(${table.amount} IS NULL) <> (${table.targetBalance} IS NULL)`),
    check("auto_topup_rules_target_above_threshold", sql`${table.targetBalance} IS NULL OR ${table.targetBalance} > ${table.threshold}`),
    check("auto_topup_rules_positive", sql`${table.monthlyLimit} > 0 AND (${table.amount} IS NULL OR ${table.amount} > 0)`),
  ],
);

/**
 * Every auto top-up request made, kept for the monthly sum (UTC calendar month of `requested_at`, the ledger
 * clock's time) and for the GET answer. Fulfilment is not stored: a request is fulfilled once an entry on the
 * account carries its id as idempotency key.
 */
export const autoTopupRequests = pgTable(
  "auto_topup_requests",
  {
    accountId: text("account_id").notNull(),
    id: uuid("id").notNull(),
    amount: numeric("amount", { precision: 25, scale: 9 }).notNull(),
    balance: numeric("balance").notNull(),
    requestedAt: timestamp("requested_at", { withTimezone: true, mode: "string" }).notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "string" }).notNull(),
  },
  (table) => [
    primaryKey({ name: "auto_topup_requests_pkey", columns: [table.accountId, table.id] }),
    index("auto_topup_requests_account_requested_at").on(table.accountId, table.requestedAt),
  ],
);

/**
 * Stripe payments that became purchases (src/payments/stripe/): which account and entry a payment intent credited,
 * so a later charge.refunded (whose charge carries no tally metadata) finds the purchase to reverse.
 */
export const stripePayments = pgTable("stripe_payments", {
  paymentIntentId: text("payment_intent_id").primaryKey(),
  accountId: text("account_id").notNull(),
  entryId: uuid("entry_id").notNull(),
  currency: text("currency").notNull(),
  amountMinor: bigint("amount_minor", { mode: "bigint" }).notNull(),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
});

/**
 * The Stripe events tally acted on or could not act on (an unknown account, a refund of an unknown payment), one
 * row per Stripe event id, so an operator can find and replay what was answered 200 without a credit.
 */
export const stripeEvents = pgTable(
  "stripe_events",
  {
    id: text("id").primaryKey(),
    type: text("type").notNull(),
    outcome: text("outcome").notNull(),
    accountId: text("account_id"),
    paymentIntentId: text("payment_intent_id"),
    entryId: uuid("entry_id"),
    detail: text("detail"),
    receivedAt: timestamp("received_at", { withTimezone: true, mode: "string" }).notNull().defaultNow(),
  },
  (table) => [index("stripe_events_received_at").on(table.receivedAt)],
);
