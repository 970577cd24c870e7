import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { toEntry, type Entry, type EntryRequest } from "../core/entry.js";
import { uuidv7 } from "../core/ids.js";
import { evaluateCrossing, observeAtOrBelowZero } from "../events/crossings.js";
import { strictDebitInTransaction } from "../posting/debits.js";
import { ensureAccountsExist, findReplay, insertEntry, type PostResult } from "../posting/posting.js";
import { correctionFingerprint } from "./fingerprint.js";
import { findEntry } from "./refunds.js";

/**
 * A transfer is two entries written in one transaction: a `transfer_out` debit on the source and a `transfer_in`
 * credit on the destination. Both carry the transfer id and name each other (`counterpart_entry_id`); their ids are
 * chosen before either is written. One transaction means both commit or neither does, whatever fails in between
 * (a statement, the connection, the process): PostgreSQL rolls back a transaction that did not commit.
 *
 * The idempotency key is the source account's: the transfer_out row holds it, and a retry finds that row and
 * answers with both legs. The destination's leg holds a key derived from the transfer id (`transfer:<id>`), unique
 * because the id is.
 */

export interface TransferRequest {
  from_account_id: string;
  to_account_id: string;
  /** Canonical. */
  amount: string;
  idempotency_key: string;
  description: string | null;
  metadata: Record<string, unknown> | null;
  allow_overdraft: boolean;
}

export interface Transfer {
  id: string;
  from_account_id: string;
  to_account_id: string;
  amount: string;
  transfer_out: Entry;
  transfer_in: Entry;
}

export interface TransferResult {
  transfer: Transfer;
  replayed: boolean;
}

/** Test seam: runs inside the transaction after the source leg is written and before the destination's. */
export interface TransferHooks {
  between_legs?: (transaction: Queryable) => Promise<void>;
}

function toTransfer(out: Entry, incoming: Entry): Transfer {
  return {
    id: out.transfer_id!,
    from_account_id: out.account_id,
    to_account_id: incoming.account_id,
    amount: out.amount,
    transfer_out: out,
    transfer_in: incoming,
  };
}

/** The destination leg of a transfer whose source leg was found by its key. */
async function counterpartOf(database: Queryable, out: PostResult): Promise<Entry> {
  const counterpart = out.entry.counterpart_entry_id;
  const row = counterpart === undefined ? undefined : await findEntry(database, counterpart);
  if (!row) throw new Error(`transfer entry ${out.entry.id} has no counterpart`);
  return toEntry(row);
}

export async function postTransfer(
  context: LedgerContext,
  request: TransferRequest,
  hooks: TransferHooks = {},
): Promise<TransferResult> {
  if (request.from_account_id === request.to_account_id) {
    throw new TallyError("validation_failed", "a transfer needs two different accounts", {
      errors: [{ field: "to_account_id", message: "must differ from from_account_id" }],
    });
  }
  await ensureAccountsExist(context, [request.from_account_id, request.to_account_id]);
  const transfer_id = uuidv7();
  const out_id = uuidv7();
  const in_id = uuidv7();
  const hash = correctionFingerprint({
    type: "transfer_out",
    to_account_id: request.to_account_id,
    amount: request.amount,
    description: request.description,
    metadata: request.metadata,
  });
  const shared = { amount: request.amount, batch_id: null, description: request.description, metadata: request.metadata, transfer_id };
  const outRequest: EntryRequest = {
    ...shared,
    account_id: request.from_account_id,
    type: "transfer_out",
    idempotency_key: request.idempotency_key,
    counterpart_entry_id: in_id,
  };
  const inRequest: EntryRequest = {
    ...shared,
    account_id: request.to_account_id,
    type: "transfer_in",
    idempotency_key: `transfer:${transfer_id}`,
    counterpart_entry_id: out_id,
  };
  const refusal = { at_or_below_zero: false };
  const result = await context.database
    .transaction(async (transaction): Promise<TransferResult> => {
      let out: PostResult;
      if (request.allow_overdraft) {
        const inserted = await insertEntry(transaction, outRequest, hash, out_id);
        const replay = inserted ? undefined : await findReplay(transaction, outRequest, hash);
        if (!inserted && !replay) throw new Error("transfer conflicted on the idempotency key but no row holds it");
        out = inserted ? { entry: toEntry(inserted), replayed: false } : replay!;
      } else {
        out = await strictDebitInTransaction(transaction, outRequest, hash, refusal, { id: out_id });
      }
      if (out.replayed) return { transfer: toTransfer(out.entry, await counterpartOf(transaction, out)), replayed: true };
      await hooks.between_legs?.(transaction);
      const incoming = await insertEntry(transaction, inRequest, correctionFingerprint({ type: "transfer_in", transfer_id }), in_id);
      // The key is derived from a fresh transfer id, so it cannot already exist; if it somehow does, write nothing.
      if (!incoming) throw new Error(`the destination key of transfer ${transfer_id} already exists`);
      return { transfer: toTransfer(out.entry, toEntry(incoming)), replayed: false };
    })
    .catch(async (error: unknown) => {
      if (refusal.at_or_below_zero) await observeAtOrBelowZero(context, [request.from_account_id]);
      throw error;
    });
  // The destination's leg is a credit: it runs the crossing evaluation like any credit (a replay evaluates again),
  // so a transfer can restore a blocked account and its gateway is told.
  await evaluateCrossing(context, result.transfer.to_account_id, { observed_at_or_below_zero: false });
  if (!result.replayed) {
    await maybeRefreshAfterWrite(
      context,
      new Map([
        [request.from_account_id, 1],
        [request.to_account_id, 1],
      ]),
    );
  }
  return result;
}
