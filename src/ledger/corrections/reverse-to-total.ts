import { formatNanos, numericToNanos } from "../core/amount.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { toEntry, type EntryRequest } from "../core/entry.js";
import { findReplay, insertEntry, type PostResult } from "../posting/posting.js";
import { correctionFingerprint } from "./fingerprint.js";
import { CORRECTIONS_LOCK_NAMESPACE, correctionTypeOf, findEntry, refundedNanos } from "./refunds.js";

/**
 * Reverses a credit until the total reversed reaches `reversed_total` (capped at the original): for a payment
 * provider that reports refunds as a running total (Stripe's charge.amount_refunded), so a repeated or late report
 * reverses nothing more and two reports racing each other reverse the difference once.
 *
 * It takes the same per-original lock as refundEntry (refunds.ts) and reads what was already reversed after it, so
 * it composes with manual refunds of the same entry under any concurrency: the total reversed never exceeds the
 * original, and never exceeds the highest running total reported. The reversal is written even if the balance
 * cannot cover it (the money has already gone back to the customer), like a reversal with allow_overdraft.
 * Returns undefined when there is nothing left to reverse up to that total.
 */
export async function reverseToTotal(
  context: LedgerContext,
  request: {
    entry_id: string;
    reversed_total_nanos: bigint;
    idempotency_key: string;
    description: string | null;
    metadata: Record<string, unknown> | null;
  },
): Promise<PostResult | undefined> {
  const row = await findEntry(context.database, request.entry_id);
  if (!row) throw new Error(`no entry ${request.entry_id} to reverse`);
  const original = toEntry(row);
  const type = correctionTypeOf(original);
  const hash = correctionFingerprint({
    type,
    original_entry_id: original.id,
    reversed_total: formatNanos(request.reversed_total_nanos),
    description: request.description,
    metadata: request.metadata,
  });
  const keyed: EntryRequest = {
    account_id: original.account_id,
    type,
    amount: "0",
    idempotency_key: request.idempotency_key,
    batch_id: null,
    description: request.description,
    metadata: request.metadata,
    original_entry_id: original.id,
  };
  const result = await context.database.transaction(async (transaction): Promise<PostResult | undefined> => {
    await transaction.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [CORRECTIONS_LOCK_NAMESPACE, original.id]);
    const replay = await findReplay(transaction, keyed, hash);
    if (replay) return replay;
    // Its own statement after the lock: every reversal of this entry that committed before we got it is counted.
    const reversed = await refundedNanos(transaction, original);
    const originalNanos = numericToNanos(original.amount);
    const target = request.reversed_total_nanos < originalNanos ? request.reversed_total_nanos : originalNanos;
    if (target <= reversed) return undefined;
    const inserted = await insertEntry(transaction, { ...keyed, amount: formatNanos(target - reversed) }, hash);
    if (!inserted) throw new Error("a reversal conflicted on its idempotency key under the corrections lock");
    return { entry: toEntry(inserted), replayed: false };
  });
  if (result && !result.replayed) await maybeRefreshAfterWrite(context, new Map([[original.account_id, 1]]));
  return result;
}
