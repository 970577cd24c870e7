import type { Queryable } from "../../db/port.js";
import { formatNanos, numericToNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { requestHash, type EntryRequest } from "../core/entry.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import { evaluateCrossing } from "../events/crossings.js";
import { insertLotCredit } from "../lots/lot-credits.js";
import { loadLot } from "../lots/lot-store.js";
import { settleAccount } from "../lots/settle.js";
import { withLotView } from "../lots/view.js";
import { decideRenewal } from "./decision.js";
import type { Period } from "./period.js";
import { loadPlanRow, toPlanTerms, type PlanTerms } from "./plans.js";
import { loadSubscriptionRow, type SubscriptionRow } from "./subscriptions.js";

/** One grant a renewal makes (or, in a dry run, would make). */
export interface Renewal {
  account_id: string;
  plan_id: string;
  period_start: string;
  period_end: string;
  /** The plan's credits for the period. */
  credits: string;
  /** Unconsumed credit of the previous period's grant carried into this one (at most the plan's maximum). */
  rollover: string;
  /** credits + rollover: the amount of the one grant entry, which expires at period_end. */
  amount: string;
  priority: number;
  /** The grant entry; null in a dry run. */
  entry_id: string | null;
}

export type RenewalOutcome =
  | { kind: "granted"; renewal: Renewal }
  | { kind: "skipped"; reason: string };

/**
 * The idempotency key of a period's grant: (account, plan, period start); the account is the other half of the
 * entries' unique key. It contains spaces, which no client key may, so a client can never take it first.
 */
export function renewalKey(plan_id: string, period_start: Date): string {
  return `renewal of plan ${plan_id} from ${period_start.toISOString()}`;
}

function grantRequest(account_id: string, plan: PlanTerms, period: Period, rollover: bigint): EntryRequest {
  return {
    account_id,
    type: "grant",
    amount: formatNanos(plan.credits + rollover),
    idempotency_key: renewalKey(plan.id, period.start),
    batch_id: null,
    description: `${plan.name} plan renewal`,
    metadata: {
      plan_id: plan.id,
      period_start: period.start.toISOString(),
      period_end: period.end.toISOString(),
      credits: formatNanos(plan.credits),
      rollover: formatNanos(rollover),
    },
    priority: plan.priority,
    expires_at: period.end.toISOString(),
  };
}

function toRenewal(request: EntryRequest, plan: PlanTerms, rollover: bigint, entry_id: string | null): Renewal {
  const metadata = request.metadata as { period_start: string; period_end: string };
  return {
    account_id: request.account_id,
    plan_id: plan.id,
    period_start: metadata.period_start,
    period_end: metadata.period_end,
    credits: formatNanos(plan.credits),
    rollover: formatNanos(rollover),
    amount: request.amount,
    priority: plan.priority,
    entry_id,
  };
}

function capRollover(unconsumed: bigint, plan: PlanTerms): bigint {
  if (plan.rollover_max === null || unconsumed <= 0n) return 0n;
  return unconsumed < plan.rollover_max ? unconsumed : plan.rollover_max;
}

/**
 * What the previous grant had left when it expired, after the account was settled: its expiration's amount (the
 * cut wrote it), 0 if usage consumed it first. A lot still open here has not been cut yet; the renewal fails and is
 * retried rather than guess.
 */
async function unconsumedAtExpiry(transaction: Queryable, account_id: string, entry_id: string): Promise<bigint> {
  const [lot] = await transaction.query<{ status: string; expired_amount: string | null }>(
    "SELECT status, expired_amount::text AS expired_amount FROM credit_lots WHERE account_id = $1 AND entry_id = $2::uuid",
    [account_id, entry_id],
  );
  if (!lot || lot.status === "consumed") return 0n;
  if (lot.status === "expired") return numericToNanos(lot.expired_amount ?? "0");
  throw new Error(`the previous grant ${entry_id} of ${account_id} has not expired yet; the renewal is retried`);
}

/** The same figure without writing: what the lot view says is left of the previous grant now. */
async function unconsumedNow(context: LedgerContext, account_id: string, entry_id: string): Promise<bigint> {
  return withLotView(context, account_id, async (view) => {
    const lot = view.book.all().find((candidate) => candidate.entry_id === entry_id) ?? (await loadLot(view.transaction, account_id, entry_id));
    if (!lot) return 0n;
    return lot.status === "expired" ? (lot.expired_amount ?? 0n) : lot.remaining;
  });
}

async function loadTerms(database: Queryable, row: SubscriptionRow): Promise<PlanTerms> {
  return toPlanTerms(await loadPlanRow(database, row.plan_id));
}

/** What renewing `account_id` now would grant, writing nothing; undefined when nothing is due. */
export async function previewRenewal(context: LedgerContext, account_id: string, now: Date): Promise<Renewal | undefined> {
  const row = await loadSubscriptionRow(context.database, account_id);
  if (!row) return undefined;
  const plan = await loadTerms(context.database, row);
  const decision = decideRenewal(row, plan, now);
  if (decision.kind !== "grant") return undefined;
  const rollover = decision.rollover_from === null ? 0n : capRollover(await unconsumedNow(context, account_id, decision.rollover_from), plan);
  return toRenewal(grantRequest(account_id, plan, decision.period, rollover), plan, rollover, null);
}

/**
 * Renews one account now, exactly once per period. The previous grant is expired first (a cut, in its own
 * transactions, as any expiry), so its unconsumed credit is known; then one short transaction locks the
 * subscription row, decides again from the row as it is now, inserts the grant (entry and lot) under its derived
 * key and records the period as granted. Any number of processes may call this for the same account at once: the
 * row lock serializes them, and the second finds the period granted.
 */
export async function renewAccount(context: LedgerContext, account_id: string, now: Date): Promise<RenewalOutcome> {
  const first = await loadSubscriptionRow(context.database, account_id);
  if (!first) return { kind: "skipped", reason: "not_subscribed" };
  const firstDecision = decideRenewal(first, await loadTerms(context.database, first), now);
  if (firstDecision.kind === "grant" && firstDecision.rollover_from !== null) await settleAccount(context, account_id, { now });

  const outcome = await context.database.transaction(async (transaction): Promise<RenewalOutcome & { inserted?: boolean }> => {
    const row = await loadSubscriptionRow(transaction, account_id, { for_update: true });
    if (!row) return { kind: "skipped", reason: "not_subscribed" };
    const plan = await loadTerms(transaction, row);
    const decision = decideRenewal(row, plan, now);
    if (decision.kind === "skip") {
      // Puts the row back in the queue at the right time (a plan's period may have changed since it was queued).
      if (row.status === "active" && decision.next_renewal_at !== null) {
        await transaction.query(
          "UPDATE plan_subscriptions SET next_renewal_at = $2::timestamptz, claim_expires_at = NULL WHERE account_id = $1",
          [account_id, decision.next_renewal_at.toISOString()],
        );
      }
      return { kind: "skipped", reason: decision.reason };
    }
    const rollover =
      decision.rollover_from === null ? 0n : capRollover(await unconsumedAtExpiry(transaction, account_id, decision.rollover_from), plan);
    const request = grantRequest(account_id, plan, decision.period, rollover);
    const inserted = await insertLotCredit(transaction, request, requestHash(request));
    // The key was taken: this period of this plan was granted before (the row lost track, which the guard above
    // should make impossible). The period is granted either way; it is never granted twice.
    const entry_id =
      inserted?.id ??
      (
        await transaction.query<{ id: string }>("SELECT id::text AS id FROM entries WHERE account_id = $1 AND idempotency_key = $2", [
          account_id,
          request.idempotency_key,
        ])
      )[0]?.id;
    if (entry_id === undefined) throw new Error(`the grant of ${account_id} conflicted on its key but no entry holds it`);
    await transaction.query(
      `UPDATE plan_subscriptions SET granted_period_start = $2::timestamptz, granted_period_end = $3::timestamptz,
         granted_entry_id = $4::uuid, granted_plan_id = $5, next_renewal_at = $3::timestamptz, claim_expires_at = NULL,
         updated_at = $6::timestamptz
       WHERE account_id = $1`,
      [account_id, decision.period.start.toISOString(), decision.period.end.toISOString(), entry_id, plan.id, now.toISOString()],
    );
    if (!inserted) return { kind: "skipped", reason: "already_granted" };
    return { kind: "granted", renewal: toRenewal(request, plan, rollover, entry_id), inserted: true };
  });
  if (outcome.kind === "granted") {
    // As for every credit, after it commits: the checkpoint draw, and telling a gateway that blocked the account.
    await maybeRefreshAfterWrite(context, new Map([[account_id, 1]]));
    await evaluateCrossing(context, account_id, { observed_at_or_below_zero: false });
    return { kind: "granted", renewal: outcome.renewal };
  }
  return outcome;
}
