import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import { formatNanos, parseAmount } from "../core/amount.js";
import { readBalances } from "../balances/balances.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { observeAtOrBelowZero } from "../events/crossings.js";
import { settleDueLots } from "../lots/settle.js";
import { requestHash, toEntry, type EntryRequest } from "../core/entry.js";
import { ensureAccountsExist, findReplay, insertEntry, postEntry, type PostResult } from "./posting.js";

/** Advisory-lock namespace (the first key of the two-key form) for strict debits. */
const STRICT_DEBIT_LOCK_NAMESPACE = 1;

/**
 * A debit that must not overdraw: the one serialized write path. Under a transaction-level advisory lock on the
 * account it reads a fresh balance and inserts only if the balance covers the amount. Strict debits serialize
 * among themselves; usage posting never takes this lock, so it is never blocked (and may still overdraw, because
 * usage is never refused: its cost was already incurred).
 */
export async function postStrictDebit(context: LedgerContext, request: EntryRequest): Promise<PostResult> {
  await ensureAccountsExist(context, [request.account_id]);
  // Expired credit must not pay for a strict debit: due lots expire before the balance is read.
  await settleDueLots(context, [request.account_id]);
  const hash = requestHash(request);
  const refusal = { at_or_below_zero: false };
  const result = await context.database
    .transaction((transaction) => strictDebitInTransaction(transaction, request, hash, refusal))
    .catch(async (error: unknown) => {
      // A refusal at or below zero is an observation a gateway may block on (see crossings.ts).
      if (refusal.at_or_below_zero) await observeAtOrBelowZero(context, [request.account_id]);
      throw error;
    });
  if (!result.replayed) await maybeRefreshAfterWrite(context, new Map([[request.account_id, 1]]));
  return result;
}

/**
 * The strict part of a debit, inside a transaction the caller owns, so that a larger write (a reversal, the source
 * leg of a transfer, an adjustment to a target) can put it together with its other statements. Takes the
 * strict-debit lock, answers a replay, reads the balance after the lock and inserts only if it covers the amount.
 * `refusal.at_or_below_zero` is set when it refuses at or below zero, so the caller can observe after rollback.
 */
export async function strictDebitInTransaction(
  transaction: Queryable,
  request: EntryRequest,
  hash: string,
  refusal: { at_or_below_zero: boolean },
  options: { id?: string } = {},
): Promise<PostResult> {
  const parsed = parseAmount(request.amount);
  if (!("nanos" in parsed)) throw new Error("strictDebitInTransaction called with an unvalidated amount");
  await lockStrictDebits(transaction, request.account_id);
  // A replay is answered before the balance check: the debit already happened, whatever the balance is now.
  const replay = await findReplay(transaction, request, hash);
  if (replay) return replay;
  // Read after the lock, in its own statement: under READ COMMITTED its snapshot includes every strict debit
  // that committed before this one got the lock.
  const { found } = await readBalances(transaction, [request.account_id]);
  const balance = found.get(request.account_id)?.nanos ?? 0n;
  if (balance < parsed.nanos) {
    refusal.at_or_below_zero = balance <= 0n;
    throw new TallyError("insufficient_balance", `balance ${formatNanos(balance)} does not cover ${request.amount}`, {
      account_id: request.account_id,
      balance: formatNanos(balance),
      amount: request.amount,
      deficit: formatNanos(parsed.nanos - balance),
    });
  }
  const inserted = await insertEntry(transaction, request, hash, options.id);
  if (inserted) return { entry: toEntry(inserted), replayed: false };
  // Only a lock-free post with the same key can have slipped in between; it has committed by now.
  const raced = await findReplay(transaction, request, hash);
  if (!raced) throw new Error("strict debit conflicted on the idempotency key but no row holds it");
  return raced;
}

/** The strict-debit lock of an account, held to the end of the transaction. */
export async function lockStrictDebits(transaction: Queryable, account_id: string): Promise<void> {
  await transaction.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [STRICT_DEBIT_LOCK_NAMESPACE, account_id]);
}

export async function postDebit(
  context: LedgerContext,
  request: EntryRequest,
  options: { allow_overdraft: boolean },
): Promise<PostResult> {
  return options.allow_overdraft ? postEntry(context, request) : postStrictDebit(context, request);
}
