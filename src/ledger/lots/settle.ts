import { createHash } from "node:crypto";
import type { Queryable } from "../../db/port.js";
import { canonicalNumeric, formatNanos } from "../core/amount.js";
import { readBalances } from "../balances/balances.js";
import type { LedgerContext } from "../core/context.js";
import { uuidv7 } from "../core/ids.js";
import { EVENT_ID_LOCK, evaluateCrossing, type BalanceEvent } from "../events/crossings.js";
import { LotBook, applyEntry, compareLots, expireLot, type Lot } from "./allocation.js";
import {
  loadDueLots,
  loadFoldState,
  loadLot,
  loadUnfolded,
  lockLots,
  saveFoldState,
  saveLots,
  snapshotXmin,
  tableSource,
  END_OF_TRANSACTION,
} from "./lot-store.js";

/** Entries one fold transaction applies: a bound on its length and on the locks it holds. */
export const FOLD_CHUNK_ROWS = 2000;
/** A cut applies every entry its snapshot sees; more than this means the horizon fold must catch up first. */
const CUT_ROWS_MAX = 10_000;
/** Lots one cut expires; more due lots take further cuts. */
export const CUT_LOTS_MAX = 500;
/** Bounds on the loops of one settle call (each turn is its own short transaction). */
const FOLD_CHUNKS_MAX = 10_000;
const CUT_ATTEMPTS_MAX = 50;

/**
 * Advances an account's lot fold over entries of finished transactions (xid below the horizon), in chunks of
 * FOLD_CHUNK_ROWS, each its own transaction under the account's lot lock. Like a checkpoint refresh, nothing below
 * the horizon can appear later, so the fold never has to revisit an entry. Returns the rows applied.
 */
export async function foldLots(context: LedgerContext, account_id: string): Promise<number> {
  let applied = 0;
  for (let chunk = 0; chunk < FOLD_CHUNKS_MAX; chunk++) {
    const rows = await context.database.transaction(async (transaction) => {
      await lockLots(transaction, account_id);
      const state = await loadFoldState(transaction, account_id);
      const { snapshot, entries } = await loadUnfolded(transaction, account_id, state, { below_horizon: true, limit: FOLD_CHUNK_ROWS });
      // A short chunk applied every row below the horizon H of its snapshot, and no row below H can appear later:
      // the position becomes the end of transaction H - 1, so the next read starts at H (END_OF_TRANSACTION).
      const finished = entries.length < FOLD_CHUNK_ROWS ? { xid: (snapshotXmin(snapshot) - 1n).toString(), seq: END_OF_TRANSACTION } : undefined;
      if (entries.length === 0) {
        // Nothing new; but a fold whose last chunk was exactly full ended inside (or at the end of) a transaction:
        // record once that it is finished, so reads stop visiting its rows.
        if (state.position_xid !== null && state.position_seq !== END_OF_TRANSACTION && finished && BigInt(finished.xid) >= BigInt(state.position_xid)) {
          await saveFoldState(transaction, account_id, { ...state, position_xid: finished.xid, position_seq: finished.seq });
        }
        return 0;
      }
      const book = new LotBook(tableSource(transaction, account_id));
      const allocation = { overage: state.overage };
      for (const entry of entries) await applyEntry(book, allocation, account_id, entry);
      const last = entries[entries.length - 1]!;
      await saveLots(transaction, book.dirty());
      await saveFoldState(transaction, account_id, {
        ...state,
        position_xid: finished?.xid ?? last.xid.toString(),
        position_seq: finished?.seq ?? last.seq.toString(),
        overage: allocation.overage,
      });
      return entries.length;
    });
    applied += rows;
    if (rows < FOLD_CHUNK_ROWS) break;
  }
  return applied;
}

export interface Expired {
  account_id: string;
  lot_id: string;
  expiration_entry_id: string;
  amount: string;
}

/** The expiration's key: it has a space, which no client key may contain, so a client can never take it first. */
export function expirationKey(lot_id: string): string {
  return `expiration of ${lot_id}`;
}

const INSERT_EXPIRATION_SQL = `
INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, description, lot_id, cut_snapshot)
VALUES ($1::uuid, $2, 'expiration', $3::numeric, -($3::numeric), $4, $5, $6, $7::uuid, $8::pg_snapshot)
ON CONFLICT (account_id, idempotency_key) DO NOTHING
RETURNING id::text AS id`;

async function insertExpiration(
  transaction: Queryable,
  lot: Lot,
  amount: bigint,
  cut_snapshot: string,
  reason: "expired" | "voided",
): Promise<string> {
  const key = expirationKey(lot.entry_id);
  const hash = createHash("sha256").update(JSON.stringify({ type: "expiration", lot_id: lot.entry_id })).digest("hex");
  const [row] = await transaction.query<{ id: string }>(INSERT_EXPIRATION_SQL, [
    uuidv7(),
    lot.account_id,
    formatNanos(amount),
    key,
    hash,
    reason === "voided" ? `lot ${lot.entry_id} voided` : `lot ${lot.entry_id} expired`,
    lot.entry_id,
    cut_snapshot,
  ]);
  // The lot lock and the lot's status make a second expiration impossible; a conflict means the fold's tables
  // disagree with the ledger, which must stop the cut rather than write around it.
  if (!row) throw new Error(`lot ${lot.entry_id} already has an expiration entry but its fold says it is open`);
  return row.id;
}

/** Like APPEND_EVENT_SQL (crossings.ts): the global event-id lock and every event of the cut in one statement. */
const APPEND_EXPIRED_EVENTS_SQL = `
WITH event_id_lock AS (SELECT pg_advisory_xact_lock(${EVENT_ID_LOCK[0]}, ${EVENT_ID_LOCK[1]}))
INSERT INTO balance_events (account_id, type, balance, lot_id, amount)
SELECT $1, 'credits_expired', $2::numeric, expired.lot_id::uuid, expired.amount::numeric
FROM event_id_lock, unnest($3::text[], $4::text[]) WITH ORDINALITY AS expired(lot_id, amount, position)
ORDER BY expired.position
RETURNING id::text AS id, created_at, lot_id::text AS lot_id`;

/** The cut's events; the last statement of its transaction, since the lock it takes is held to commit. */
async function appendExpiredEvents(transaction: Queryable, account_id: string, expired: Expired[]): Promise<{ events: BalanceEvent[]; balance: bigint }> {
  const { found } = await readBalances(transaction, [account_id]);
  const balance = found.get(account_id)?.nanos ?? 0n;
  const rows = await transaction.query<{ id: string; created_at: Date | string; lot_id: string }>(APPEND_EXPIRED_EVENTS_SQL, [
    account_id,
    formatNanos(balance),
    expired.map((item) => item.lot_id),
    expired.map((item) => item.amount),
  ]);
  const inserted = new Map(rows.map((row) => [row.lot_id, row]));
  const events = expired.map((item): BalanceEvent => {
    const row = inserted.get(item.lot_id)!;
    return {
      id: row.id,
      type: "credits_expired",
      account_id,
      balance: formatNanos(balance),
      time: new Date(row.created_at).toISOString(),
      lot_id: item.lot_id,
      amount: canonicalNumeric(item.amount),
    };
  });
  return { events, balance };
}

type CutOutcome =
  | { kind: "too_many_rows" }
  | { kind: "nothing" }
  | { kind: "expired"; expired: Expired[]; events: BalanceEvent[]; balance: bigint; more: boolean };

/** Thrown inside a cut to roll it back: a cut that writes no expiration must leave no trace (see `cut`). */
class NothingToExpire extends Error {}

/**
 * One cut: under the account's lot lock, one statement reads every entry its snapshot sees that the fold has not
 * applied, together with that snapshot. The entries are applied in (xid, seq) order, then the due lots (or the one
 * being voided) expire for what is left of them, and the snapshot is saved as the fold's cut. So the debits that
 * count before an expiry are exactly the ones committed before the cut's snapshot: a transaction still in flight
 * is after it, whatever its xid, and is applied by a later fold to the lots still open then.
 *
 * The cut snapshot is written on every expiration entry, so the audit can replay the same order from the entries
 * alone. A cut that would expire nothing (every due lot already consumed) is rolled back instead of saved, because
 * it would leave the fold in an order no entry records.
 */
async function cut(
  context: LedgerContext,
  account_id: string,
  options: { now: Date; void_lot_id?: string },
): Promise<CutOutcome> {
  const nowIso = options.now.toISOString();
  try {
    return await context.database.transaction(async (transaction): Promise<CutOutcome> => {
      await lockLots(transaction, account_id);
      const state = await loadFoldState(transaction, account_id);
      const { snapshot, entries } = await loadUnfolded(transaction, account_id, state, {
        below_horizon: false,
        limit: CUT_ROWS_MAX + 1,
      });
      if (entries.length > CUT_ROWS_MAX) return { kind: "too_many_rows" };
      const book = new LotBook(tableSource(transaction, account_id));
      const allocation = { overage: state.overage };
      for (const entry of entries) await applyEntry(book, allocation, account_id, entry);

      let due: Lot[];
      if (options.void_lot_id !== undefined) {
        const known = book.get(options.void_lot_id) ?? (await loadLot(transaction, account_id, options.void_lot_id));
        due = known ? [book.remember(known)] : [];
      } else {
        for (const lot of await loadDueLots(transaction, account_id, options.now, CUT_LOTS_MAX + 1)) book.remember(lot);
        due = book
          .all()
          .filter((lot) => lot.status === "open" && lot.expires_at !== null && lot.expires_at <= nowIso)
          .sort((a, b) => (a.expires_at! < b.expires_at! ? -1 : a.expires_at! > b.expires_at! ? 1 : compareLots(a, b)));
      }
      const more = due.length > CUT_LOTS_MAX;
      const expired: Expired[] = [];
      for (const lot of due.slice(0, CUT_LOTS_MAX)) {
        const amount = expireLot(book, lot, nowIso);
        if (amount === 0n) continue;
        const id = await insertExpiration(transaction, lot, amount, snapshot, options.void_lot_id ? "voided" : "expired");
        lot.expiration_entry_id = id;
        expired.push({ account_id, lot_id: lot.entry_id, expiration_entry_id: id, amount: formatNanos(amount) });
      }
      if (expired.length === 0) throw new NothingToExpire();
      await saveLots(transaction, book.dirty());
      await saveFoldState(transaction, account_id, { ...state, cut_snapshot: snapshot, overage: allocation.overage });
      const { events, balance } = await appendExpiredEvents(transaction, account_id, expired);
      return { kind: "expired", expired, events, balance, more };
    });
  } catch (error) {
    if (error instanceof NothingToExpire) return { kind: "nothing" };
    throw error;
  }
}

/**
 * Brings an account's lots up to `now`: cuts until no lot is due (or voids one lot), folding finished entries in
 * chunks first whenever the backlog is longer than one cut may apply.
 * After each cut commits, its credits_expired events go to this process's streams, and a balance the expiry took to
 * or below zero is an observation: the gateway gets balance_depleted (crossings.ts), without polling.
 */
export async function settleAccount(
  context: LedgerContext,
  account_id: string,
  options: { now: Date; void_lot_id?: string },
): Promise<Expired[]> {
  // No fold first: the cut applies every entry it sees anyway; only a long backlog (too_many_rows) needs the
  // chunked fold, so that no single transaction grows with the history.
  const expired: Expired[] = [];
  for (let attempt = 0; attempt < CUT_ATTEMPTS_MAX; attempt++) {
    const outcome = await cut(context, account_id, options);
    if (outcome.kind === "too_many_rows") {
      await foldLots(context, account_id);
      continue;
    }
    if (outcome.kind === "nothing") break;
    expired.push(...outcome.expired);
    for (const event of outcome.events) context.events.hub.publish(event);
    if (outcome.balance <= 0n) await evaluateCrossing(context, account_id, { observed_at_or_below_zero: true });
    if (!outcome.more || options.void_lot_id !== undefined) break;
  }
  return expired;
}

const DUE_ACCOUNTS_SQL = `
SELECT DISTINCT account_id FROM credit_lots
WHERE account_id = ANY($1::text[]) AND status = 'open' AND expires_at IS NOT NULL AND expires_sort <= $2::timestamptz`;

/**
 * What a balance read (or a strict debit) runs first: the accounts among `account_ids` with a lot due at the
 * clock's now are settled, so the read that follows never includes expired credit, whether or not the sweep has
 * run. One indexed query when nothing is due.
 */
export async function settleDueLots(context: LedgerContext, account_ids: readonly string[]): Promise<void> {
  if (account_ids.length === 0) return;
  const now = context.clock.now();
  const due = await context.database.query<{ account_id: string }>(DUE_ACCOUNTS_SQL, [[...new Set(account_ids)], now.toISOString()]);
  for (const { account_id } of due) await settleAccount(context, account_id, { now });
}
