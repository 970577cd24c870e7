import type { Queryable } from "../../db/port.js";
import type { EntryType } from "../../db/schema.js";
import { TallyError } from "../../errors.js";
import { formatNanos, numericToNanos } from "../core/amount.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { ENTRY_COLUMNS, toEntry, type Entry, type EntryRequest, type EntryRow } from "../core/entry.js";
import { evaluateCrossing, observeAtOrBelowZero } from "../events/crossings.js";
import { strictDebitInTransaction } from "../posting/debits.js";
import { findReplay, insertEntry, type PostResult } from "../posting/posting.js";
import { correctionFingerprint } from "./fingerprint.js";

/**
 * Refunds and reversals: a new entry that names the entry it corrects (`original_entry_id`, on the same account)
 * and moves the balance back by at most what is left of it.
 *
 * "Never exceeds the original" holds under any concurrency because every refund or reversal of one original is
 * written under a transaction-level advisory lock on that original (namespace CORRECTIONS_LOCK_NAMESPACE), and
 * reads what was already refunded in its own statement after the lock. Under READ COMMITTED that statement's
 * snapshot includes every refund of the original that committed before this one got the lock, and a refund that
 * holds the lock commits (or rolls back) before releasing it, so no two refunds ever both read "enough left". No
 * other path writes an entry with an original_entry_id. The lock is per original entry: refunds of different
 * entries, usage and credits never wait on it.
 */
export const CORRECTIONS_LOCK_NAMESPACE = 14;

/** What each refundable type becomes: a debit is refunded with a credit, a credit is reversed with a debit. */
const CORRECTION_OF: Partial<Record<EntryType, "refund" | "reversal">> = {
  usage: "refund",
  removal: "refund",
  purchase: "reversal",
  grant: "reversal",
  bonus: "reversal",
};

const ENTRY_BY_ID_SQL = `SELECT ${ENTRY_COLUMNS} FROM entries WHERE id = $1::uuid`;

const REFUNDED_SQL = `
SELECT COALESCE(SUM(amount), 0)::text AS refunded FROM entries WHERE account_id = $1 AND original_entry_id = $2::uuid`;

export interface RefundRequest {
  entry_id: string;
  /** Canonical; absent means everything that is left. */
  amount: string | undefined;
  idempotency_key: string;
  description: string | null;
  metadata: Record<string, unknown> | null;
  /** Only for reversals: post it even if the balance cannot cover it. */
  allow_overdraft: boolean;
}

export async function findEntry(database: Queryable, entry_id: string): Promise<EntryRow | undefined> {
  const [row] = await database.query<EntryRow>(ENTRY_BY_ID_SQL, [entry_id]);
  return row;
}

/** How much of an entry has been refunded or reversed so far, in nano-credits. */
export async function refundedNanos(database: Queryable, entry: { account_id: string; id: string }): Promise<bigint> {
  const [row] = await database.query<{ refunded: string }>(REFUNDED_SQL, [entry.account_id, entry.id]);
  return numericToNanos(row!.refunded);
}

/** The correction type an entry takes, or a 409 naming why it takes none. */
export function correctionTypeOf(original: { id: string; type: EntryType }): "refund" | "reversal" {
  const type = CORRECTION_OF[original.type];
  if (!type) {
    throw new TallyError(
      "entry_not_refundable",
      `entry ${original.id} is a ${original.type}; only usage and removals can be refunded, and purchases, grants and bonuses reversed`,
      { entry_id: original.id, type: original.type },
    );
  }
  return type;
}

/**
 * Refunds a debit (a `refund` credit) or reverses a credit (a `reversal` debit, strict unless allow_overdraft).
 * `authorize` sees the original before anything is written (the caller checks the account and the scope the
 * direction needs).
 */
export async function refundEntry(
  context: LedgerContext,
  request: RefundRequest,
  authorize: (original: Entry, correction: "refund" | "reversal") => void,
): Promise<PostResult> {
  const row = await findEntry(context.database, request.entry_id);
  if (!row) throw new TallyError("not_found", `no entry ${request.entry_id}`);
  const original = toEntry(row);
  const type = correctionTypeOf(original);
  authorize(original, type);
  const originalNanos = numericToNanos(original.amount);
  // The request as sent, so that a retry without an amount is the same request whatever is left by then.
  const hash = correctionFingerprint({
    type,
    original_entry_id: original.id,
    amount: request.amount ?? null,
    description: request.description,
    metadata: request.metadata,
  });
  // What the replay lookup needs (account and key); the amount is only known under the lock.
  const keyed: EntryRequest = {
    account_id: original.account_id,
    type,
    amount: request.amount ?? "0",
    idempotency_key: request.idempotency_key,
    batch_id: null,
    description: request.description,
    metadata: request.metadata,
    original_entry_id: original.id,
  };
  const refusal = { at_or_below_zero: false };
  const result = await context.database
    .transaction(async (transaction): Promise<PostResult> => {
      await transaction.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [CORRECTIONS_LOCK_NAMESPACE, original.id]);
      const replay = await findReplay(transaction, keyed, hash);
      if (replay) return replay;
      // Its own statement after the lock: it sees every refund of this entry that committed before we got it.
      const refunded = await refundedNanos(transaction, original);
      const remaining = originalNanos - refunded;
      const amountNanos = request.amount === undefined ? remaining : numericToNanos(request.amount);
      if (remaining <= 0n || amountNanos > remaining) {
        throw new TallyError(
          "exceeds_original",
          remaining <= 0n
            ? `entry ${original.id} has already been ${type === "refund" ? "refunded" : "reversed"} in full`
            : `${formatNanos(amountNanos)} exceeds the ${formatNanos(remaining)} left of entry ${original.id}`,
          {
            original_entry_id: original.id,
            original_amount: original.amount,
            refunded_amount: formatNanos(refunded),
            remaining: formatNanos(remaining),
            ...(request.amount === undefined ? {} : { amount: request.amount }),
          },
        );
      }
      const correction: EntryRequest = { ...keyed, amount: formatNanos(amountNanos) };
      if (type === "reversal" && !request.allow_overdraft) {
        // Lock order: this original's lock, then the account's strict-debit lock. No path takes them the other way.
        return strictDebitInTransaction(transaction, correction, hash, refusal);
      }
      const inserted = await insertEntry(transaction, correction, hash);
      if (inserted) return { entry: toEntry(inserted), replayed: false };
      // A lock-free post with the same key (any other write on this account) committed meanwhile.
      const raced = await findReplay(transaction, correction, hash);
      if (!raced) throw new Error("refund conflicted on the idempotency key but no row holds it");
      return raced;
    })
    .catch(async (error: unknown) => {
      if (refusal.at_or_below_zero) await observeAtOrBelowZero(context, [original.account_id]);
      throw error;
    });
  // A refund is a credit: like any credit it may restore a blocked account (a replay evaluates again).
  if (type === "refund") await evaluateCrossing(context, original.account_id, { observed_at_or_below_zero: false });
  if (!result.replayed) await maybeRefreshAfterWrite(context, new Map([[original.account_id, 1]]));
  return result;
}
