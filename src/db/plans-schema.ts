import { sql } from "drizzle-orm";
import { check, index, jsonb, numeric, pgTable, smallint, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * Plans and subscriptions (src/ledger/plans/). A plan says how much credit an account gets each period; a
 * subscription ties one account to one plan from an anchor. Neither is a ledger entry: the grants a renewal writes
 * are ordinary `grant` entries with a lot (priority, expiry), so history, stats and balances see them as any grant.
 */

export const PLAN_PERIOD_KINDS = ["day", "week", "month", "days"] as const;
export type PlanPeriodKind = (typeof PLAN_PERIOD_KINDS)[number];

export const plans = pgTable(
  "plans",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    credits: numeric("credits", { precision: 25, scale: 9 }).notNull(),
    // `days` with period_days (1-366), or a calendar unit: `month` follows the calendar from the anchor.
    periodKind: text("period_kind", { enum: PLAN_PERIOD_KINDS }).notNull(),
    periodDays: smallint("period_days"),
    // null: no rollover; otherwise the most unconsumed plan credit carried into the next period.
    rolloverMax: numeric("rollover_max", { precision: 25, scale: 9 }),
    priority: smallint("priority").notNull(),
    metadata: jsonb("metadata").notNull().default({}),
    archivedAt: timestamp("archived_at", { withTimezone: true, mode: "string" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" }).notNull(),
  },
  (table) => [
    check("plans_id_format", sql`${table.id} ~ '^[A-Za-z0-9._:@-]{1,128}$'`),
    check("plans_credits_range", sql`${table.credits} > 0 AND ${table.credits} <= 1000000000000000`),
    check("plans_period_known", sql`${table.periodKind} IN ('day', 'week', 'month', 'days')`),
    check(
      "plans_period_days_range",
      sql`(${table.periodKind} = 'days') = (${table.periodDays} IS NOT NULL) AND (${table.periodDays} IS NULL OR ${table.periodDays} BETWEEN 1 AND 366)`,
    ),
    check("plans_rollover_range", sql`${table.rolloverMax} IS NULL OR (${table.rolloverMax} > 0 AND ${table.rolloverMax} <= ${table.credits})`),
    check("plans_priority_range", sql`${table.priority} BETWEEN 0 AND 100`),
  ],
);

export const SUBSCRIPTION_STATUSES = ["active", "canceled"] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];

/**
 * One row per account that has ever subscribed; a cancellation keeps the row (it remembers the last period
 * granted, so a re-subscription never grants the same time twice). `next_renewal_at` is the due queue: the
 * scheduler claims due rows with FOR UPDATE SKIP LOCKED and a short lease (`claim_expires_at`), then renews each
 * account in its own transaction under the row lock.
 */
export const planSubscriptions = pgTable(
  "plan_subscriptions",
  {
    accountId: text("account_id").primaryKey(),
    planId: text("plan_id").notNull(),
    anchor: timestamp("anchor", { withTimezone: true, mode: "string" }).notNull(),
    status: text("status", { enum: SUBSCRIPTION_STATUSES }).notNull(),
    nextRenewalAt: timestamp("next_renewal_at", { withTimezone: true, mode: "string" }),
    claimExpiresAt: timestamp("claim_expires_at", { withTimezone: true, mode: "string" }),
    // The last period granted (whatever the plan then), and its grant entry: the guard against granting the same
    // time twice, and the lot whose unconsumed credit rolls over.
    grantedPeriodStart: timestamp("granted_period_start", { withTimezone: true, mode: "string" }),
    grantedPeriodEnd: timestamp("granted_period_end", { withTimezone: true, mode: "string" }),
    grantedEntryId: uuid("granted_entry_id"),
    grantedPlanId: text("granted_plan_id"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" }).notNull(),
    canceledAt: timestamp("canceled_at", { withTimezone: true, mode: "string" }),
  },
  (table) => [
    // The due queue: only active subscriptions have a next renewal.
    index("plan_subscriptions_due").on(table.nextRenewalAt).where(sql`${table.nextRenewalAt} IS NOT NULL`),
    index("plan_subscriptions_plan").on(table.planId, table.accountId),
    check("plan_subscriptions_status_known", sql`${table.status} IN ('active', 'canceled')`),
    check("plan_subscriptions_due_when_active", sql`(${table.status} = 'active') = (${table.nextRenewalAt} IS NOT NULL)`),
  ],
);
