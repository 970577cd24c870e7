import type { Queryable } from "../../db/port.js";
import { canonicalNumeric, formatNanos, numericToNanos } from "../core/amount.js";
import { CHECKPOINT_BALANCE, CHECKPOINT_JOINS } from "../balances/balance-sql.js";
import { refreshQuietly } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { uuidv7 } from "../core/ids.js";
import { EVENT_ID_LOCK, type BalanceEvent } from "../events/crossings.js";
import { utcMonthOf } from "./month.js";

/**
 * One evaluation of an account's auto top-up rule, in one transaction:
 *   1. lock the rule row (FOR UPDATE SKIP LOCKED): evaluations of one account never overlap, in any number of
 *      processes; if another evaluation holds it, this one is skipped, because the holder saves a snapshot and any
 *      entry it did not see makes the account due again at the next pass (detector.ts);
 *   2. one statement, after the lock, reads the balance, whether the open request has been fulfilled (an entry on
 *      the account carries its id as idempotency key), what was requested this UTC month, and its own snapshot;
 *   3. decides: the open request stops blocking once fulfilled, expired, or the balance is above the threshold; a
 *      balance at or below the threshold with nothing blocking makes one request, of the rule's amount (or up to the
 *      target balance) cut to what is left of the monthly limit, or none if nothing is left;
 *   4. writes the request, the auto_topup_requested event (under the global event-id lock, as every event append)
 *      and the rule's new state and snapshot, and commits them together.
 * Usage takes no lock and reads nothing for this; the detector notices its entries after they commit.
 */

const LOCK_RULE_SQL = `
SELECT threshold::text AS threshold, amount::text AS amount, target_balance::text AS target_balance,
       monthly_limit::text AS monthly_limit, enabled, open_request_id::text AS open_request_id, open_request_expires_at
FROM auto_topup_rules WHERE account_id = $1
FOR UPDATE SKIP LOCKED`;

const STATE_SQL = `
SELECT ${CHECKPOINT_BALANCE}::text AS balance,
       delta.row_count::text AS delta_rows,
       pg_current_snapshot()::text AS snapshot,
       EXISTS (SELECT 1 FROM entries WHERE account_id = $1 AND idempotency_key = $2::text) AS fulfilled,
       (SELECT COALESCE(SUM(amount), 0)::text FROM auto_topup_requests
        WHERE account_id = $1 AND requested_at >= $3 AND requested_at < $4) AS requested_this_month
FROM (SELECT $1::text AS account_id) AS requested
${CHECKPOINT_JOINS}`;

const INSERT_REQUEST_SQL = `
INSERT INTO auto_topup_requests (account_id, id, amount, balance, requested_at, expires_at)
VALUES ($1, $2::uuid, $3::numeric, $4::numeric, $5, $6)`;

const INSERT_EVENT_SQL = `
INSERT INTO balance_events (account_id, type, balance, amount, request_id)
VALUES ($1, 'auto_topup_requested', $2::numeric, $3::numeric, $4::uuid)
RETURNING id::text AS id, created_at`;

const SAVE_SQL = `
UPDATE auto_topup_rules SET open_request_id = $2::uuid, open_request_expires_at = $3,
  evaluated_snapshot = $4::pg_snapshot, evaluated_at = now()
WHERE account_id = $1`;

interface RuleState {
  threshold: string;
  amount: string | null;
  target_balance: string | null;
  monthly_limit: string;
  enabled: boolean;
  open_request_id: string | null;
  open_request_expires_at: Date | string | null;
}

interface Reading {
  balance: string;
  delta_rows: string;
  snapshot: string;
  fulfilled: boolean;
  requested_this_month: string;
}

export interface AutoTopupPolicy {
  /** How long an unfulfilled request blocks the next one. */
  request_expiry_ms: number;
}

export const AUTO_TOPUP_DEFAULTS: AutoTopupPolicy = { request_expiry_ms: 60 * 60 * 1000 };

/**
 * How much to request: the rule's amount, or what brings the balance up to the target, cut to what is left of the
 * monthly limit. Zero or less means no request. Pure, so the arithmetic is tested on its own.
 */
export function requestAmountNanos(rule: {
  amount_nanos: bigint | null;
  target_balance_nanos: bigint | null;
  monthly_limit_nanos: bigint;
  balance_nanos: bigint;
  requested_this_month_nanos: bigint;
}): bigint {
  const wanted = rule.amount_nanos ?? rule.target_balance_nanos! - rule.balance_nanos;
  const left = rule.monthly_limit_nanos - rule.requested_this_month_nanos;
  return wanted < left ? wanted : left;
}

/** Evaluates one account; returns the event it appended, if any (already committed and published). */
export async function evaluateAutoTopup(
  context: LedgerContext,
  account_id: string,
  policy: AutoTopupPolicy = AUTO_TOPUP_DEFAULTS,
): Promise<BalanceEvent | undefined> {
  const now = context.now();
  const outcome = await context.database.transaction(async (transaction) => {
    const [rule] = await transaction.query<RuleState>(LOCK_RULE_SQL, [account_id]);
    if (!rule) return undefined; // no rule, or another evaluation holds it
    const month = utcMonthOf(now);
    // Its own statement after the lock: under READ COMMITTED it sees what the previous evaluation wrote.
    const [reading] = await transaction.query<Reading>(STATE_SQL, [
      account_id,
      rule.open_request_id,
      month.start.toISOString(),
      month.end.toISOString(),
    ]);
    const event = await decide(transaction, account_id, rule, reading!, now, policy);
    return { event, delta_rows: Number(reading!.delta_rows) };
  });
  if (!outcome) return undefined;
  if (outcome.delta_rows > context.checkpoint_policy.delta_max) await refreshQuietly(context, [account_id]);
  if (outcome.event) {
    context.logger.info({ account_id, request_id: outcome.event.request_id, amount: outcome.event.amount }, "auto top-up requested");
    context.events.hub.publish(outcome.event);
  }
  return outcome.event;
}

async function decide(
  transaction: Queryable,
  account_id: string,
  rule: RuleState,
  reading: Reading,
  now: Date,
  policy: AutoTopupPolicy,
): Promise<BalanceEvent | undefined> {
  const balance = numericToNanos(reading.balance);
  let open: { id: string; expires_at: string } | null =
    rule.open_request_id === null
      ? null
      : { id: rule.open_request_id, expires_at: new Date(rule.open_request_expires_at!).toISOString() };
  const above = balance > numericToNanos(rule.threshold);
  if (open && (reading.fulfilled || new Date(open.expires_at) <= now || above)) open = null;
  let event: BalanceEvent | undefined;
  if (rule.enabled && !above && open === null) {
    const amount = requestAmountNanos({
      amount_nanos: rule.amount === null ? null : numericToNanos(rule.amount),
      target_balance_nanos: rule.target_balance === null ? null : numericToNanos(rule.target_balance),
      monthly_limit_nanos: numericToNanos(rule.monthly_limit),
      balance_nanos: balance,
      requested_this_month_nanos: numericToNanos(reading.requested_this_month),
    });
    if (amount > 0n) {
      const request_id = uuidv7(now.getTime());
      const expires_at = new Date(now.getTime() + policy.request_expiry_ms).toISOString();
      await transaction.query(INSERT_REQUEST_SQL, [account_id, request_id, formatNanos(amount), reading.balance, now.toISOString(), expires_at]);
      // Held to commit, so event ids commit in id order (docs/design.md §14).
      await transaction.query("SELECT pg_advisory_xact_lock($1::int, $2::int)", [...EVENT_ID_LOCK]);
      const [row] = await transaction.query<{ id: string; created_at: Date | string }>(INSERT_EVENT_SQL, [
        account_id,
        reading.balance,
        formatNanos(amount),
        request_id,
      ]);
      event = {
        id: row!.id,
        type: "auto_topup_requested",
        account_id,
        balance: canonicalNumeric(reading.balance),
        time: new Date(row!.created_at).toISOString(),
        amount: formatNanos(amount),
        request_id,
      };
      open = { id: request_id, expires_at };
    }
  }
  await transaction.query(SAVE_SQL, [account_id, open?.id ?? null, open?.expires_at ?? null, reading.snapshot]);
  return event;
}
