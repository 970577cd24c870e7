import type { LedgerContext } from "../../ledger/core/context.js";

/**
 * What tally did with each Stripe event it acted on or could not act on, keyed by the Stripe event id. A retried
 * event (Stripe redelivers until it gets a 2xx) updates its row, so the row says what happened last.
 */
export type StripeOutcome =
  | "credited"
  | "already_credited"
  | "reversed"
  | "nothing_to_reverse"
  | "unknown_account"
  | "unknown_payment"
  | "not_paid"
  | "zero_amount"
  | "conflict"
  | "malformed"
  | "ignored";

const RECORD_SQL = `
INSERT INTO stripe_events (id, type, outcome, account_id, payment_intent_id, entry_id, detail)
VALUES ($1, $2, $3, $4, $5, $6::uuid, $7)
ON CONFLICT (id) DO UPDATE SET outcome = EXCLUDED.outcome, account_id = EXCLUDED.account_id,
  payment_intent_id = EXCLUDED.payment_intent_id, entry_id = EXCLUDED.entry_id, detail = EXCLUDED.detail,
  received_at = now()`;

export interface StripeEventRecord {
  event_id: string;
  type: string;
  outcome: StripeOutcome;
  account_id?: string | null;
  payment_intent_id?: string | null;
  entry_id?: string | null;
  detail?: string | null;
}

/** Detail text is ours (never a payload field copied whole), cut to a bounded length. */
const DETAIL_LENGTH_MAX = 500;

export async function recordStripeEvent(context: LedgerContext, record: StripeEventRecord): Promise<void> {
  await context.database.query(RECORD_SQL, [
    record.event_id,
    record.type.slice(0, 100),
    record.outcome,
    record.account_id?.slice(0, 200) ?? null,
    record.payment_intent_id?.slice(0, 200) ?? null,
    record.entry_id ?? null,
    record.detail?.slice(0, DETAIL_LENGTH_MAX) ?? null,
  ]);
}
