import type { Queryable } from "../../db/port.js";
import type { SubscriptionStatus } from "../../db/schema.js";
import { TallyError } from "../../errors.js";
import type { LedgerContext } from "../core/context.js";
import { ensureAccountsExist } from "../posting/posting.js";
import { decideRenewal } from "./decision.js";
import { nextRenewalAt, periodAt } from "./period.js";
import { loadPlanRow, toPlanTerms, type PlanTerms } from "./plans.js";

export interface SubscriptionRow {
  account_id: string;
  plan_id: string;
  anchor: Date | string;
  status: SubscriptionStatus;
  next_renewal_at: Date | string | null;
  granted_period_start: Date | string | null;
  granted_period_end: Date | string | null;
  granted_entry_id: string | null;
  granted_plan_id: string | null;
  created_at: Date | string;
  updated_at: Date | string;
  canceled_at: Date | string | null;
}

export const SUBSCRIPTION_COLUMNS = `account_id, plan_id, anchor, status, next_renewal_at, granted_period_start, granted_period_end,
  granted_entry_id::text AS granted_entry_id, granted_plan_id, created_at, updated_at, canceled_at`;

const iso = (value: Date | string) => new Date(value).toISOString();
const isoOrNull = (value: Date | string | null) => (value === null ? null : iso(value));
export const dateOrNull = (value: Date | string | null) => (value === null ? null : new Date(value));

/** Why a subscription is or is not due for a grant now; `due` is the only eligible reason. */
export const ELIGIBILITY_REASONS = ["due", "already_granted", "overlaps_granted_period", "not_started", "canceled"] as const;
export type EligibilityReason = (typeof ELIGIBILITY_REASONS)[number];

/** A subscription as the API shows it. */
export interface Subscription {
  account_id: string;
  plan_id: string;
  status: SubscriptionStatus;
  anchor: string;
  current_period: { start: string; end: string } | null;
  next_renewal_at: string | null;
  eligibility: { eligible: boolean; reason: EligibilityReason; detail: string };
  last_grant: { entry_id: string; plan_id: string; period_start: string; period_end: string } | null;
  created_at: string;
  canceled_at: string | null;
}

const REASON_DETAIL: Record<EligibilityReason, string> = {
  due: "the current period has not been granted yet: the scheduler grants it within a minute, or POST /v1/renewals/run now",
  already_granted: "the current period has been granted; the next grant is at next_renewal_at",
  overlaps_granted_period:
    "the current period overlaps a period already granted (a re-subscription or a change of period length); the next grant is at next_renewal_at",
  not_started: "the anchor is in the future; the first grant is at the anchor",
  canceled: "the subscription was canceled: no further renewals; the current lot keeps its expiry",
};

export function toSubscription(row: SubscriptionRow, plan: PlanTerms, now: Date): Subscription {
  const decision = decideRenewal(row, plan, now);
  const current = periodAt(plan.period, new Date(row.anchor), now);
  const reason: EligibilityReason = decision.kind === "grant" ? "due" : decision.reason;
  return {
    account_id: row.account_id,
    plan_id: row.plan_id,
    status: row.status,
    anchor: iso(row.anchor),
    current_period: row.status === "active" && current ? { start: current.start.toISOString(), end: current.end.toISOString() } : null,
    next_renewal_at: isoOrNull(row.next_renewal_at),
    eligibility: { eligible: decision.kind === "grant", reason, detail: REASON_DETAIL[reason] },
    last_grant:
      row.granted_entry_id === null || row.granted_period_start === null || row.granted_period_end === null
        ? null
        : {
            entry_id: row.granted_entry_id,
            plan_id: row.granted_plan_id ?? row.plan_id,
            period_start: iso(row.granted_period_start),
            period_end: iso(row.granted_period_end),
          },
    created_at: iso(row.created_at),
    canceled_at: isoOrNull(row.canceled_at),
  };
}

export async function loadSubscriptionRow(database: Queryable, account_id: string, options: { for_update?: boolean } = {}) {
  const [row] = await database.query<SubscriptionRow>(
    `SELECT ${SUBSCRIPTION_COLUMNS} FROM plan_subscriptions WHERE account_id = $1${options.for_update ? " FOR UPDATE" : ""}`,
    [account_id],
  );
  return row;
}

export async function getSubscription(context: LedgerContext, account_id: string): Promise<Subscription> {
  const row = await loadSubscriptionRow(context.database, account_id);
  if (!row) throw new TallyError("subscription_not_found", `account ${account_id} has never subscribed to a plan`);
  const plan = toPlanTerms(await loadPlanRow(context.database, row.plan_id));
  return toSubscription(row, plan, context.clock.now());
}

/**
 * Subscribes an account, re-subscribes it, or moves it to another plan (from its next renewal on: the period
 * already granted keeps its grant). The anchor is set when subscribing (default now; on a re-subscription, the
 * previous anchor, so the customer keeps their renewal date) and cannot move on an active subscription. Whatever
 * the anchor, a period is granted only if it starts at or after the end of the last period granted, so no
 * sequence of cancellations and re-subscriptions can grant the same time twice.
 */
export async function putSubscription(
  context: LedgerContext,
  account_id: string,
  request: { plan_id: string; anchor?: Date },
): Promise<{ subscription: Subscription; created: boolean }> {
  await ensureAccountsExist(context, [account_id]);
  const now = context.clock.now();
  return context.database.transaction(async (transaction) => {
    const planRow = await loadPlanRow(transaction, request.plan_id);
    const plan = toPlanTerms(planRow);
    // Two first subscriptions at once: the loser of the insert re-reads the winner's row under its lock.
    let existing = await loadSubscriptionRow(transaction, account_id, { for_update: true });
    let created = false;
    if (!existing) {
      if (plan.archived) throw archived(plan.id);
      const anchor = request.anchor ?? now;
      const [inserted] = await transaction.query<SubscriptionRow>(
        `INSERT INTO plan_subscriptions (account_id, plan_id, anchor, status, next_renewal_at, created_at, updated_at)
         VALUES ($1, $2, $3::timestamptz, 'active', $4::timestamptz, $5::timestamptz, $5::timestamptz)
         ON CONFLICT (account_id) DO NOTHING
         RETURNING ${SUBSCRIPTION_COLUMNS}`,
        [account_id, plan.id, anchor.toISOString(), nextRenewalAt(plan.period, anchor, now, null).toISOString(), now.toISOString()],
      );
      if (inserted) return { subscription: toSubscription(inserted, plan, now), created: true };
      existing = await loadSubscriptionRow(transaction, account_id, { for_update: true });
      if (!existing) throw new Error("plan_subscriptions insert conflicted but no row holds the account");
    }
    const active = existing.status === "active";
    if (plan.archived && !(active && existing.plan_id === plan.id)) throw archived(plan.id);
    const storedAnchor = new Date(existing.anchor);
    if (active && request.anchor && request.anchor.getTime() !== storedAnchor.getTime()) {
      throw new TallyError("validation_failed", "the anchor of an active subscription cannot move; DELETE it, then PUT with the new anchor", {
        errors: [{ field: "anchor", message: "cannot change on an active subscription" }],
      });
    }
    const anchor = active ? storedAnchor : (request.anchor ?? storedAnchor);
    created = !active;
    const next = nextRenewalAt(plan.period, anchor, now, dateOrNull(existing.granted_period_end));
    const [updated] = await transaction.query<SubscriptionRow>(
      `UPDATE plan_subscriptions SET plan_id = $2, anchor = $3::timestamptz, status = 'active', next_renewal_at = $4::timestamptz,
         canceled_at = NULL, updated_at = $5::timestamptz
       WHERE account_id = $1
       RETURNING ${SUBSCRIPTION_COLUMNS}`,
      [account_id, plan.id, anchor.toISOString(), next.toISOString(), now.toISOString()],
    );
    return { subscription: toSubscription(updated!, plan, now), created };
  });
}

function archived(plan_id: string): TallyError {
  return new TallyError("plan_archived", `plan ${plan_id} is archived; subscribe the account to another plan`);
}

/**
 * Cancels: no further renewals. Nothing is written to the ledger: the current period's lot keeps its expiry. The
 * row stays, remembering the last period granted. Canceling a canceled subscription answers it as it is.
 */
export async function cancelSubscription(context: LedgerContext, account_id: string): Promise<Subscription> {
  const now = context.clock.now();
  const [row] = await context.database.query<SubscriptionRow>(
    `UPDATE plan_subscriptions SET status = 'canceled', next_renewal_at = NULL, claim_expires_at = NULL,
       canceled_at = COALESCE(canceled_at, $2::timestamptz), updated_at = $2::timestamptz
     WHERE account_id = $1
     RETURNING ${SUBSCRIPTION_COLUMNS}`,
    [account_id, now.toISOString()],
  );
  if (!row) throw new TallyError("subscription_not_found", `account ${account_id} has never subscribed to a plan`);
  const plan = toPlanTerms(await loadPlanRow(context.database, row.plan_id));
  return toSubscription(row, plan, now);
}

