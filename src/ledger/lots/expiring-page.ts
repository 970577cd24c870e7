import { formatNanos, numericToNanos } from "../core/amount.js";
import { LotBook, applyEntry, compareLots, toAllocationEntry, type Lot, type LotSource } from "./allocation.js";
import { END_OF_TRANSACTION, toLot } from "./lot-store.js";

/**
 * `expiring_next` for a whole page of accounts from the one statement that reads the page (the console's account
 * list), instead of one lot view per account (expiring-next.ts), which would be N+1 transactions per page.
 *
 * The statement returns, per account that has an open expiring lot, the fold's overage, the entries after the fold
 * and the open folded lots, each capped; the allocation then runs in memory with the same code as the fold and the
 * view (allocation.ts), so the figure is the one `GET /v1/balances/{id}` answers. An account past a cap (a long
 * delta since its last fold, or very many open lots) gets a bound instead, from the same statement: the earliest
 * expiry in the table and at most what the account holds, marked `exact: false`.
 */
export const PAGE_UNFOLDED_ENTRIES_MAX = 500;
export const PAGE_OPEN_LOTS_MAX = 100;

/**
 * Joins for a row source `requested(account_id)`, next to CHECKPOINT_JOINS. `now_parameter` names the parameter
 * with the ledger clock's time. Accounts with no open expiring lot (the `credit_lots_account_expiring` index says so)
 * read nothing else: the other laterals are gated on it.
 */
export function expiringPageJoins(now_parameter: string): string {
  return `
LEFT JOIN LATERAL (
  SELECT MIN(lot.expires_sort) AS first_expires_at, SUM(lot.remaining) AS total
  FROM credit_lots AS lot
  WHERE lot.account_id = requested.account_id AND lot.status = 'open' AND lot.expires_at IS NOT NULL
    AND lot.expires_sort > ${now_parameter}::timestamptz AND lot.remaining > 0
) AS expiring_table ON true
LEFT JOIN lot_folds AS lot_fold ON expiring_table.first_expires_at IS NOT NULL AND lot_fold.account_id = requested.account_id
LEFT JOIN LATERAL (
  SELECT json_agg(json_build_array(entry.id, entry.seq::text, entry.xid::text, entry.type, entry.delta::text,
                                   entry.priority, entry.expires_at, entry.created_at) ORDER BY entry.xid, entry.seq) AS rows
  FROM (
    SELECT entry.* FROM entries AS entry
    WHERE expiring_table.first_expires_at IS NOT NULL
      AND entry.account_id = requested.account_id
      -- After the position's transaction when the fold has finished it (END_OF_TRANSACTION in lot-store.ts); xid8
      -- has no arithmetic, hence the round trip through numeric.
      AND entry.xid >= GREATEST(
        CASE WHEN lot_fold.position_seq = ${END_OF_TRANSACTION} THEN (lot_fold.position_xid::text::numeric + 1)::text::xid8
             ELSE COALESCE(lot_fold.position_xid, '0'::xid8) END,
        COALESCE(pg_snapshot_xmin(lot_fold.cut_snapshot), '0'::xid8))
      AND (lot_fold.cut_snapshot IS NULL OR NOT pg_visible_in_snapshot(entry.xid, lot_fold.cut_snapshot))
      AND (entry.xid, entry.seq) > (COALESCE(lot_fold.position_xid, '0'::xid8), COALESCE(lot_fold.position_seq, 0))
    ORDER BY entry.xid, entry.seq
    LIMIT ${PAGE_UNFOLDED_ENTRIES_MAX + 1}
  ) AS entry
) AS unfolded ON true
LEFT JOIN LATERAL (
  SELECT json_agg(json_build_array(lot.entry_id, lot.entry_seq::text, lot.type, lot.priority, lot.expires_at,
                                   lot.amount::text, lot.remaining::text, lot.created_at)
                  ORDER BY lot.priority, lot.expires_sort, lot.entry_seq) AS rows
  FROM (
    SELECT lot.* FROM credit_lots AS lot
    WHERE expiring_table.first_expires_at IS NOT NULL
      AND lot.account_id = requested.account_id AND lot.status = 'open' AND lot.folded
    ORDER BY lot.priority, lot.expires_sort, lot.entry_seq
    LIMIT ${PAGE_OPEN_LOTS_MAX + 1}
  ) AS lot
) AS open_lots ON true`;
}

/** The columns expiringFromPageRow reads. */
export const EXPIRING_PAGE_COLUMNS = `expiring_table.first_expires_at AS expiring_first_at, expiring_table.total::text AS expiring_total,
  COALESCE(lot_fold.overage, 0)::text AS lot_overage, unfolded.rows AS unfolded_entries, open_lots.rows AS open_lots`;

export interface ExpiringPageRow {
  account_id: string;
  expiring_first_at: Date | string | null;
  expiring_total: string | null;
  lot_overage: string;
  unfolded_entries: unknown[][] | string | null;
  open_lots: unknown[][] | string | null;
}

/** What an account list shows: exact (as the API answers), or a bound (expires no earlier, at most this much). */
export interface PageExpiring {
  expires_at: string;
  amount: string;
  exact: boolean;
}

function parsedJson(value: unknown[][] | string | null): unknown[][] {
  if (value === null) return [];
  // postgres.js returns json parsed; PGlite too, but be strict about either.
  return typeof value === "string" ? (JSON.parse(value) as unknown[][]) : value;
}

function arraySource(lots: Lot[]): LotSource {
  return {
    async openAfter(after, limit) {
      return lots.filter((lot) => after === null || compareLots(lot, after) > 0).slice(0, limit);
    },
  };
}

export async function expiringFromPageRow(row: ExpiringPageRow, balance_nanos: bigint, now: Date): Promise<PageExpiring | null> {
  if (row.expiring_first_at === null) return null;
  const entries = parsedJson(row.unfolded_entries);
  const lotRows = parsedJson(row.open_lots);
  if (entries.length > PAGE_UNFOLDED_ENTRIES_MAX || lotRows.length > PAGE_OPEN_LOTS_MAX) {
    // Every expiring lot has its row from the moment it is posted, and a lot's remaining only falls after the fold:
    // so nothing expires before the table's earliest expiry, and never more than the account holds.
    const positive = balance_nanos > 0n ? balance_nanos : 0n;
    const total = numericToNanos(row.expiring_total ?? "0");
    const bound = total < positive ? total : positive;
    return bound === 0n ? null : { expires_at: new Date(row.expiring_first_at).toISOString(), amount: formatNanos(bound), exact: false };
  }
  const lots = lotRows.map(([entry_id, entry_seq, type, priority, expires_at, amount, remaining, created_at]) =>
    toLot({
      account_id: row.account_id,
      entry_id: entry_id as string,
      entry_seq: entry_seq as string,
      type: type as string,
      priority: priority as number,
      expires_at: expires_at as string | null,
      amount: amount as string,
      remaining: remaining as string,
      status: "open",
      expiration_entry_id: null,
      expired_amount: null,
      created_at: created_at as string,
      closed_at: null,
      folded: true,
    }),
  );
  const book = new LotBook(arraySource(lots));
  const allocation = { overage: numericToNanos(row.lot_overage) };
  for (const [id, seq, xid, type, delta, priority, expires_at, created_at] of entries) {
    const entry = toAllocationEntry({
      id: id as string,
      seq: seq as string,
      xid: xid as string,
      type: type as string,
      delta: delta as string,
      priority: priority as number | null,
      expires_at: expires_at as string | null,
      created_at: created_at as string,
    });
    await applyEntry(book, allocation, row.account_id, entry);
  }
  const inMemory = new Set(book.all().map((lot) => lot.entry_id));
  const candidates = [...book.all(), ...lots.filter((lot) => !inMemory.has(lot.entry_id))];
  const nowIso = now.toISOString();
  const groups = new Map<string, bigint>();
  for (const lot of candidates) {
    if (lot.status !== "open" || lot.expires_at === null || lot.expires_at <= nowIso || lot.remaining === 0n) continue;
    groups.set(lot.expires_at, (groups.get(lot.expires_at) ?? 0n) + lot.remaining);
  }
  const first = [...groups.keys()].sort()[0];
  return first === undefined ? null : { expires_at: first, amount: formatNanos(groups.get(first)!), exact: true };
}
