import type { Queryable } from "../../db/port.js";
import type { BalanceEventType } from "../../db/schema.js";
import { canonicalNumeric, numericToNanos } from "../core/amount.js";
import { CHECKPOINT_BALANCE, checkpointJoinsCapped } from "../balances/balance-sql.js";
import { refreshCheckpoint } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { chunkEndSql } from "../core/fold-chunk.js";
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
 *
 * Every statement is bounded (see evaluateCrossing): C may be summed in committed chunks into the watch row
 * (credits_pending, up to credits_boundary) before the deciding read, which then reads only the rest. The chunks and
 * the rest partition "visible now, not visible in the saved snapshot" by xid, so C, and the argument above, are
 * unchanged (docs/design.md §14, "Bounded evaluations").
 */
const CROSSING_LOCK_NAMESPACE = 2;
/** A single global key, taken last (after any per-account lock) so it cannot deadlock. */
export const EVENT_ID_LOCK = [3, 0] as const;

// The credits join is LATERAL for the same reason as CHECKPOINT_JOINS: the watch's boundary must reach the index.
// The balance's delta read is capped at $2 rows and the credits read at $3 (NULL: uncapped); a count at the cap
// means "too much to read in one statement",
// and the caller folds in chunks first (see evaluateCrossing). Credits already summed by such chunks are in
// credits_pending; the read here starts where they end (credits_boundary), or at the snapshot's xmin.
const EVALUATE_SQL = `
SELECT
  ${CHECKPOINT_BALANCE}::text AS balance,
  delta.row_count::text AS delta_rows,
  watch.evaluated_snapshot IS NOT NULL AS watched,
  (COALESCE(watch.credits_pending, 0) + COALESCE(credits.total, 0))::text AS credits_since,
  credits.row_count::text AS credit_rows,
  COALESCE(watch.depleted_since IS NOT NULL, false) AS depleted,
  pg_current_snapshot()::text AS snapshot
FROM (SELECT $1::text AS account_id) AS requested
LEFT JOIN balance_watches AS watch ON watch.account_id = requested.account_id
${checkpointJoinsCapped("$2::bigint")}
LEFT JOIN LATERAL (
  SELECT SUM(recent.delta) FILTER (WHERE recent.delta > 0) AS total, COUNT(*) AS row_count FROM (
    SELECT entry.delta FROM entries AS entry
    WHERE entry.account_id = requested.account_id
      AND entry.xid >= COALESCE(watch.credits_boundary, pg_snapshot_xmin(watch.evaluated_snapshot))
      AND NOT pg_visible_in_snapshot(entry.xid, watch.evaluated_snapshot)
    ORDER BY entry.xid -- keeps the planner on the (account_id, xid) index; see checkpointJoinsCapped
    LIMIT $3::bigint
  ) AS recent
) AS credits ON true`;

/**
 * One bounded chunk of the credit sum, under the crossing lock: the positive deltas of the rows in
 * [credits_boundary, chunk end) that the saved snapshot did not see, added to credits_pending, and the boundary
 * moved to the chunk's end. The chunk ends at or below this statement's xmin (fold-chunk.ts), so every row below it
 * has committed or never will, is visible to every later evaluation, and is summed exactly once: here, or (above the
 * boundary) by the evaluation's own read. The saved snapshot is not touched, so C stays the same quantity.
 */
const FOLD_CREDITS_SQL = `
WITH horizon AS (
  SELECT pg_snapshot_xmin(pg_current_snapshot()) AS boundary
), watch AS (
  SELECT evaluated_snapshot, COALESCE(credits_boundary, pg_snapshot_xmin(evaluated_snapshot)) AS start
  FROM balance_watches WHERE account_id = $1
), chunk AS (
  SELECT ${chunkEndSql("$1", "(SELECT start FROM watch)", "(SELECT boundary FROM horizon)", "$2::bigint")} AS boundary
), folded AS (
  SELECT COALESCE(SUM(entry.delta), 0) AS total FROM entries AS entry
  WHERE entry.account_id = $1 AND entry.delta > 0
    AND entry.xid >= (SELECT start FROM watch) AND entry.xid < (SELECT boundary FROM chunk)
    AND NOT pg_visible_in_snapshot(entry.xid, (SELECT evaluated_snapshot FROM watch))
), advanced AS (
  UPDATE balance_watches SET
    credits_pending = balance_watches.credits_pending + (SELECT total FROM folded),
    credits_boundary = (SELECT boundary FROM chunk),
    updated_at = now()
  WHERE account_id = $1 AND (SELECT boundary FROM chunk) > (SELECT start FROM watch)
)
SELECT COALESCE((SELECT boundary FROM chunk) >= (SELECT boundary FROM horizon), true) AS caught_up`;

// A new snapshot starts a new sum: nothing pending, and the next read starts at the snapshot's xmin.
const SAVE_WATCH_SQL = `
INSERT INTO balance_watches (account_id, evaluated_snapshot, depleted_since, updated_at)
VALUES ($1, $2::pg_snapshot, CASE WHEN $3::boolean THEN now() END, now())
ON CONFLICT (account_id) DO UPDATE SET
  evaluated_snapshot = EXCLUDED.evaluated_snapshot,
  depleted_since = CASE WHEN $3::boolean THEN COALESCE(balance_watches.depleted_since, now()) END,
  credits_boundary = NULL,
  credits_pending = 0,
  updated_at = now()`;

/**
 * Takes the global event-id lock and appends the event in one statement: the lock is held to commit, and every
 * event-emitting transaction in every process queues on it, so each round trip it spans costs all of them. The
 * INSERT reads its row from the lock's CTE, so the id is drawn after the lock is held.
 */
export const APPEND_EVENT_SQL = `
WITH event_id_lock AS (SELECT pg_advisory_xact_lock(${EVENT_ID_LOCK[0]}, ${EVENT_ID_LOCK[1]}))
INSERT INTO balance_events (account_id, type, balance)
SELECT $1, $2, $3::numeric FROM event_id_lock
RETURNING id::text AS id, created_at`;

export interface BalanceEvent {
  id: string;
  type: BalanceEventType;
  account_id: string;
  balance: string;
  time: string;
  /** credits_expired only (src/ledger/lots/): the lot that expired and the amount that left the balance. */
  lot_id?: string;
  amount?: string;
}

interface EvaluationRow {
  balance: string;
  delta_rows: string;
  watched: boolean;
  credits_since: string;
  credit_rows: string;
  depleted: boolean;
  snapshot: string;
}

async function appendEvent(
  transaction: Queryable,
  context: LedgerContext,
  input: { account_id: string; type: BalanceEventType; balance: string },
): Promise<BalanceEvent> {
  // The lock is held to commit: event ids then commit in id order, so a stream reader resuming after id N never
  // misses a smaller id. Callers append last, so that the lock spans only this statement (and a NOTIFY) and the commit.
  const [row] = await transaction.query<{ id: string; created_at: Date | string }>(APPEND_EVENT_SQL, [
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
 *
 * Every statement is bounded, so an evaluation cannot fail on every retry by outgrowing the statement timeout. The
 * evaluating read caps what it reads; if the account's checkpoint has fallen far behind, the checkpoint is folded
 * forward in chunks (outside the lock) and the read is tried again; if many rows have been written since the
 * previous evaluation, the credits among them are summed in chunks under the lock, each chunk committed with the
 * watch row, and the read is tried again. Once a fold has reached the horizon and rows above it remain (a long
 * transaction elsewhere holds the horizon back), that read is left uncapped: nothing more can be folded first.
 */
export async function evaluateCrossing(
  context: LedgerContext,
  account_id: string,
  options: { observed_at_or_below_zero: boolean },
): Promise<BalanceEvent | undefined> {
  return counted(ledgerCounters.crossing_evaluations, () => evaluate(context, account_id, options));
}

async function evaluate(
  context: LedgerContext,
  account_id: string,
  options: { observed_at_or_below_zero: boolean },
): Promise<BalanceEvent | undefined> {
  const { chunk_rows, chunks_max } = context.fold_policy;
  let deltaCapped = true;
  let creditsCapped = true;
  for (let step = 0; ; step++) {
    // The last step reads uncapped, so the number of steps is bounded whatever happens meanwhile.
    const deltaCap = deltaCapped && step < chunks_max ? chunk_rows : null;
    const creditsCap = creditsCapped && step < chunks_max ? chunk_rows : null;
    const outcome = await context.database.transaction(async (transaction) => {
      await transaction.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [
        CROSSING_LOCK_NAMESPACE,
        account_id,
      ]);
      // Its own statement, after the lock: under READ COMMITTED its snapshot includes everything the previous
      // evaluation saw, and every credit that committed before this one got the lock.
      const [state] = await transaction.query<EvaluationRow>(EVALUATE_SQL, [account_id, deltaCap, creditsCap]);
      if (deltaCap !== null && Number(state!.delta_rows) >= deltaCap) return { kind: "fold_checkpoint" } as const;
      if (creditsCap !== null && Number(state!.credit_rows) >= creditsCap) {
        const [fold] = await transaction.query<{ caught_up: boolean }>(FOLD_CREDITS_SQL, [account_id, chunk_rows]);
        return { kind: "folded_credits", caught_up: fold!.caught_up } as const;
      }
      return { kind: "evaluated", event: await decide(transaction, context, account_id, state!, options) } as const;
    });
    if (outcome.kind === "evaluated") {
      if (outcome.event) {
        ledgerCounters.events_emitted.inc({ type: outcome.event.type });
        context.events.hub.publish(outcome.event);
      }
      return outcome.event;
    }
    if (outcome.kind === "fold_checkpoint") {
      // Whatever is left above the checkpoint after this is above the horizon and cannot be folded yet.
      if (await refreshCheckpoint(context.database, account_id, context.fold_policy)) deltaCapped = false;
    } else if (outcome.caught_up || (await foldCredits(context, account_id))) {
      // Likewise: the credits left to read are above the horizon.
      creditsCapped = false;
    }
  }
}

/** Further credit chunks, each its own transaction under the lock, without re-reading the balance in between. */
async function foldCredits(context: LedgerContext, account_id: string): Promise<boolean> {
  for (let chunk = 0; chunk < context.fold_policy.chunks_max; chunk++) {
    const caught_up = await context.database.transaction(async (transaction) => {
      await transaction.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [CROSSING_LOCK_NAMESPACE, account_id]);
      const [fold] = await transaction.query<{ caught_up: boolean }>(FOLD_CREDITS_SQL, [account_id, context.fold_policy.chunk_rows]);
      return fold!.caught_up;
    });
    if (caught_up) return true;
  }
  return false;
}

/** The decision, on one consistent read; appends the event, if any, and saves the watch row. */
async function decide(
  transaction: Queryable,
  context: LedgerContext,
  account_id: string,
  state: EvaluationRow,
  options: { observed_at_or_below_zero: boolean },
): Promise<BalanceEvent | undefined> {
  const balance = numericToNanos(state.balance);
  const creditsSince = numericToNanos(state.credits_since);
  let type: BalanceEventType | undefined;
  let depleted = state.depleted;
  if (balance > 0n) {
    const crossed = !state.watched || balance - creditsSince <= 0n;
    if (depleted || options.observed_at_or_below_zero || crossed) {
      type = "balance_restored";
      depleted = false;
    }
  } else if (options.observed_at_or_below_zero && !depleted) {
    type = "balance_depleted";
    depleted = true;
  }
  await transaction.query(SAVE_WATCH_SQL, [account_id, state.snapshot, depleted]);
  // Last: the event append takes the global event-id lock, held to commit (appendEvent).
  return type === undefined ? undefined : appendEvent(transaction, context, { account_id, type, balance: state.balance });
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
