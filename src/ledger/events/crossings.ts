import type { Queryable } from "../../db/port.js";
import type { BalanceEventType } from "../../db/schema.js";
import { canonicalNumeric, numericToNanos } from "../core/amount.js";
import { CHECKPOINT_BALANCE, CHECKPOINT_JOINS } from "../balances/balance-sql.js";
import type { LedgerContext } from "../core/context.js";
import { counted, ledgerCounters } from "../../metrics/ledger-counters.js";

/**
 * Zero crossings: telling gateways when an account's balance goes back above zero, without ever missing one.
 *
 * Evaluations run after a credit commits and when tally serves an observation at or below zero. They are serialized
 * per account by a transaction-level advisory lock that only credits and those observations take; usage posting
 * never does, so it is never slowed. Each evaluation reads, in one statement (one snapshot, taken after the lock):
 *   B, the balance now;
 *   C, the credits that committed since the previous evaluation's snapshot (visible now, not visible then);
 *   whether the depleted marker is set.
 * It emits balance_restored when B > 0 and (the marker is set, or this is an at-or-below-zero observation that
 * finds the balance positive again, or B − C ≤ 0). The last test is what catches a credit that crossed zero with
 * nobody watching: if some credit c took the balance from P ≤ 0 to above zero between the two snapshots, then
 * B − C = P − (usage after c) − (credits before c) ≤ 0. Two concurrent credits cannot both talk themselves out of
 * it, because the evaluation that first sees them both also sees that neither had been counted. B − C ≤ 0 can also
 * hold without a crossing (a credit followed by heavy usage), so a rare duplicate is possible; a missed one is not.
 * With no previous evaluation the test is taken as passed (`watched` is false): C would be every credit ever, and
 * B − C ≤ 0 always holds for an account that started at zero, so there is nothing to read.
 */
const CROSSING_LOCK_NAMESPACE = 2;
/** A single global key, taken last (after any per-account lock) so it cannot deadlock. */
const EVENT_ID_LOCK = [3, 0] as const;

// The credits join is LATERAL for the same reason as CHECKPOINT_JOINS: the watch's boundary must reach the index.
const EVALUATE_SQL = `
SELECT
  ${CHECKPOINT_BALANCE}::text AS balance,
  watch.evaluated_snapshot IS NOT NULL AS watched,
  COALESCE(credits.total, 0)::text AS credits_since,
  COALESCE(watch.depleted_since IS NOT NULL, false) AS depleted,
  pg_current_snapshot()::text AS snapshot
FROM (SELECT $1::text AS account_id) AS requested
LEFT JOIN balance_watches AS watch ON watch.account_id = requested.account_id
${CHECKPOINT_JOINS}
LEFT JOIN LATERAL (
  SELECT SUM(entry.delta) AS total FROM entries AS entry
  WHERE entry.account_id = requested.account_id AND entry.delta > 0
    AND entry.xid >= pg_snapshot_xmin(watch.evaluated_snapshot)
    AND NOT pg_visible_in_snapshot(entry.xid, watch.evaluated_snapshot)
) AS credits ON true`;

const SAVE_WATCH_SQL = `
INSERT INTO balance_watches (account_id, evaluated_snapshot, depleted_since, updated_at)
VALUES ($1, $2::pg_snapshot, CASE WHEN $3::boolean THEN now() END, now())
ON CONFLICT (account_id) DO UPDATE SET
  evaluated_snapshot = EXCLUDED.evaluated_snapshot,
  depleted_since = CASE WHEN $3::boolean THEN COALESCE(balance_watches.depleted_since, now()) END,
  updated_at = now()`;

const INSERT_EVENT_SQL = `
INSERT INTO balance_events (account_id, type, balance) VALUES ($1, $2, $3::numeric)
RETURNING id::text AS id, created_at`;

export interface BalanceEvent {
  id: string;
  type: BalanceEventType;
  account_id: string;
  balance: string;
  time: string;
}

interface EvaluationRow {
  balance: string;
  watched: boolean;
  credits_since: string;
  depleted: boolean;
  snapshot: string;
}

async function appendEvent(
  transaction: Queryable,
  context: LedgerContext,
  input: { account_id: string; type: BalanceEventType; balance: string },
): Promise<BalanceEvent> {
  // Held to commit: event ids then commit in id order, so a stream reader resuming after id N never misses a
  // smaller id. Only crossing evaluations get here, and they are rare; NOTIFY serializes commits anyway.
  await transaction.query("SELECT pg_advisory_xact_lock($1::int, $2::int)", [...EVENT_ID_LOCK]);
  const [row] = await transaction.query<{ id: string; created_at: Date | string }>(INSERT_EVENT_SQL, [
    input.account_id,
    input.type,
    input.balance,
  ]);
  const event: BalanceEvent = {
    id: row!.id,
    type: input.type,
    account_id: input.account_id,
    balance: canonicalNumeric(input.balance),
    time: new Date(row!.created_at).toISOString(),
  };
  // Only restorations are announced on the channel: they are what a gateway must hear at once. Depletions reach
  // gateways through the event stream.
  if (input.type === "balance_restored") {
    await transaction.query("SELECT pg_notify($1, $2)", [context.events.notify_channel, JSON.stringify(event)]);
  }
  return event;
}

/**
 * Evaluates one account, serialized with every other evaluation of it. `observed_at_or_below_zero` says tally
 * has just served (or is about to serve) a balance at or below zero for this account.
 */
export async function evaluateCrossing(
  context: LedgerContext,
  account_id: string,
  options: { observed_at_or_below_zero: boolean },
): Promise<BalanceEvent | undefined> {
  const event = await counted(ledgerCounters.crossing_evaluations, () => context.database.transaction(async (transaction) => {
    await transaction.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [
      CROSSING_LOCK_NAMESPACE,
      account_id,
    ]);
    // Its own statement, after the lock: under READ COMMITTED its snapshot includes everything the previous
    // evaluation saw, and every credit that committed before this one got the lock.
    const [state] = await transaction.query<EvaluationRow>(EVALUATE_SQL, [account_id]);
    const balance = numericToNanos(state!.balance);
    const creditsSince = numericToNanos(state!.credits_since);
    let emitted: BalanceEvent | undefined;
    let depleted = state!.depleted;
    if (balance > 0n) {
      const crossed = !state!.watched || balance - creditsSince <= 0n;
      if (depleted || options.observed_at_or_below_zero || crossed) {
        emitted = await appendEvent(transaction, context, { account_id, type: "balance_restored", balance: state!.balance });
        depleted = false;
      }
    } else if (options.observed_at_or_below_zero && !depleted) {
      emitted = await appendEvent(transaction, context, { account_id, type: "balance_depleted", balance: state!.balance });
      depleted = true;
    }
    await transaction.query(SAVE_WATCH_SQL, [account_id, state!.snapshot, depleted]);
    return emitted;
  }));
  if (event) {
    ledgerCounters.events_emitted.inc({ type: event.type });
    context.events.hub.publish(event);
  }
  return event;
}

/**
 * Called before tally serves balances at or below zero. Accounts whose marker is already set need nothing (the
 * marker guarantees the next positive evaluation emits); the others are evaluated under the lock, which sets the
 * marker, or emits balance_restored at once if a credit has landed since the read.
 */
export async function observeAtOrBelowZero(context: LedgerContext, account_ids: readonly string[]): Promise<void> {
  if (account_ids.length === 0) return;
  const marked = await context.database.query<{ account_id: string }>(
    "SELECT account_id FROM balance_watches WHERE account_id = ANY($1::text[]) AND depleted_since IS NOT NULL",
    [[...account_ids]],
  );
  const alreadyMarked = new Set(marked.map((row) => row.account_id));
  for (const account_id of account_ids) {
    if (!alreadyMarked.has(account_id)) {
      await evaluateCrossing(context, account_id, { observed_at_or_below_zero: true });
    }
  }
}
