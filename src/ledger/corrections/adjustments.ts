import { TallyError } from "../../errors.js";
import { AMOUNT_MAX_NANOS, formatNanos, numericToNanos } from "../core/amount.js";
import { readBalances } from "../balances/balances.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { toEntry, type EntryRequest } from "../core/entry.js";
import { evaluateCrossing } from "../events/crossings.js";
import { lockStrictDebits } from "../posting/debits.js";
import { ensureAccountsExist, findReplay, insertEntry, type PostResult } from "../posting/posting.js";
import { correctionFingerprint } from "./fingerprint.js";

/**
 * An adjustment is one `adjustment` entry whose delta is signed: a credit or a debit. It is given either as a signed
 * amount, or as a target balance, in which case the delta is `target − balance` for the balance read under the
 * account's strict-debit lock, in its own statement (the adjustment's serialized read). The target is exact as of
 * that read: strict debits, transfers out, reversals and other adjustments of the account wait for the lock, but
 * usage and credits never take it, so one that commits between the read and the insert still counts, and the
 * balance afterwards is the target plus that write. Adjustments are admin corrections and are never refused for
 * lack of balance.
 */

export type AdjustmentRequest = {
  account_id: string;
  idempotency_key: string;
  reason: string;
  metadata: Record<string, unknown> | null;
} & ({ target_balance: string; amount?: undefined } | { amount: string; target_balance?: undefined });

export interface AdjustmentResult extends PostResult {
  /** The balance the adjustment was computed from (target adjustments only, and not on a replay). */
  balance_before: string | null;
}

/** Signed decimal text (as the route validated it) into nano-credits. */
function signedNanos(text: string): bigint {
  return numericToNanos(text);
}

export async function postAdjustment(context: LedgerContext, request: AdjustmentRequest): Promise<AdjustmentResult> {
  await ensureAccountsExist(context, [request.account_id]);
  const hash = correctionFingerprint({
    type: "adjustment",
    target_balance: request.target_balance === undefined ? null : formatNanos(signedNanos(request.target_balance)),
    amount: request.amount === undefined ? null : formatNanos(signedNanos(request.amount)),
    description: request.reason,
    metadata: request.metadata,
  });
  const keyed: EntryRequest = {
    account_id: request.account_id,
    type: "adjustment",
    amount: "0",
    idempotency_key: request.idempotency_key,
    batch_id: null,
    description: request.reason,
    metadata: request.metadata,
  };
  const result = await context.database.transaction(async (transaction): Promise<AdjustmentResult> => {
    // Serializes with strict debits, transfers out, reversals and other adjustments of the account.
    await lockStrictDebits(transaction, request.account_id);
    const replay = await findReplay(transaction, keyed, hash);
    if (replay) return { ...replay, balance_before: null };
    let delta: bigint;
    let before: bigint | undefined;
    if (request.target_balance !== undefined) {
      // Its own statement after the lock: the serialized read the target is exact against.
      const { found } = await readBalances(transaction, [request.account_id]);
      before = found.get(request.account_id)?.nanos ?? 0n;
      delta = signedNanos(request.target_balance) - before;
      if (delta === 0n) {
        throw new TallyError("nothing_to_adjust", `the balance of ${request.account_id} is already ${formatNanos(before)}`, {
          account_id: request.account_id,
          balance: formatNanos(before),
          target_balance: formatNanos(signedNanos(request.target_balance)),
        });
      }
    } else {
      delta = signedNanos(request.amount);
    }
    const magnitude = delta < 0n ? -delta : delta;
    if (magnitude > AMOUNT_MAX_NANOS) {
      throw new TallyError("validation_failed", `the adjustment would be ${formatNanos(delta)}, beyond the largest amount`, {
        errors: [{ field: request.target_balance === undefined ? "amount" : "target_balance", message: "the adjustment would exceed 1000000000000000" }],
      });
    }
    const adjustment: EntryRequest = { ...keyed, amount: formatNanos(magnitude), direction: delta < 0n ? "debit" : "credit" };
    const inserted = await insertEntry(transaction, adjustment, hash);
    if (inserted) return { entry: toEntry(inserted), replayed: false, balance_before: before === undefined ? null : formatNanos(before) };
    // A lock-free post with the same key committed between the replay check and the insert.
    const raced = await findReplay(transaction, adjustment, hash);
    if (!raced) throw new Error("adjustment conflicted on the idempotency key but no row holds it");
    return { ...raced, balance_before: null };
  });
  // A positive adjustment is a credit and may restore a blocked account.
  if (!result.entry.delta.startsWith("-")) {
    await evaluateCrossing(context, request.account_id, { observed_at_or_below_zero: false });
  }
  if (!result.replayed) await maybeRefreshAfterWrite(context, new Map([[request.account_id, 1]]));
  return result;
}
