import type { Queryable } from "../../db/port.js";
import type { LotStatus } from "../../db/schema.js";
import { formatNanos, numericToNanos } from "../core/amount.js";
import { toAllocationEntry, type AllocationEntry, type EntryRowText, type Lot, type LotKey, type LotSource } from "./allocation.js";
import { BIGINT_MAX } from "../../db/keyset-bounds.js";

/** Advisory-lock namespace (first key of the two-key form) for an account's lot fold and its expiries. */
export const LOT_LOCK_NAMESPACE = 41;

export async function lockLots(transaction: Queryable, account_id: string): Promise<void> {
  await transaction.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [LOT_LOCK_NAMESPACE, account_id]);
}

/** How far an account's fold has got (see lotFolds in src/db/lots-schema.ts). */
export interface FoldState {
  cut_snapshot: string | null;
  position_xid: string | null;
  position_seq: string | null;
  overage: bigint;
}

export async function loadFoldState(database: Queryable, account_id: string): Promise<FoldState> {
  const [row] = await database.query<{ cut_snapshot: string | null; position_xid: string | null; position_seq: string | null; overage: string }>(
    `SELECT cut_snapshot::text AS cut_snapshot, position_xid::text AS position_xid, position_seq::text AS position_seq,
            overage::text AS overage
     FROM lot_folds WHERE account_id = $1`,
    [account_id],
  );
  if (!row) return { cut_snapshot: null, position_xid: null, position_seq: null, overage: 0n };
  return { ...row, overage: numericToNanos(row.overage) };
}

export async function saveFoldState(database: Queryable, account_id: string, state: FoldState): Promise<void> {
  await database.query(
    `INSERT INTO lot_folds (account_id, cut_snapshot, position_xid, position_seq, overage, updated_at)
     VALUES ($1, $2::pg_snapshot, $3::xid8, $4::bigint, $5::numeric, now())
     ON CONFLICT (account_id) DO UPDATE SET cut_snapshot = EXCLUDED.cut_snapshot, position_xid = EXCLUDED.position_xid,
       position_seq = EXCLUDED.position_seq, overage = EXCLUDED.overage, updated_at = now()`,
    [account_id, state.cut_snapshot, state.position_xid, state.position_seq, formatNanos(state.overage)],
  );
}

/**
 * The entries the fold has not applied yet: not visible in the last cut and after the position. The lower bound on
 * xid (after the position's transaction, when the fold has finished it: END_OF_TRANSACTION) is what lets the
 * (account_id, xid) index read only them. With `below_horizon`, only entries of finished
 * transactions (xid below the statement snapshot's xmin), which can never be joined by an earlier one; without it,
 * every entry the statement's snapshot sees, which is what a cut applies. Either way the statement also returns its
 * own snapshot: for a cut, it is the cut.
 */
const UNFOLDED_SQL = `
WITH snapshot AS (SELECT pg_current_snapshot() AS value)
SELECT snapshot.value::text AS snapshot, unfolded.*
FROM snapshot
LEFT JOIN LATERAL (
  SELECT entry.id::text AS id, entry.seq::text AS seq, entry.xid::text AS xid, entry.type, entry.delta::text AS delta,
         entry.priority, entry.expires_at, entry.created_at
  FROM entries AS entry
  WHERE entry.account_id = $1
    AND entry.xid >= $2::xid8
    AND ($3::pg_snapshot IS NULL OR NOT pg_visible_in_snapshot(entry.xid, $3::pg_snapshot))
    AND (entry.xid, entry.seq) > ($4::xid8, $5::bigint)
    AND (NOT $6::boolean OR entry.xid < pg_snapshot_xmin(snapshot.value))
  ORDER BY entry.xid, entry.seq
  LIMIT $7
) AS unfolded ON true`;

export function snapshotXmin(snapshot: string): bigint {
  return BigInt(snapshot.split(":")[0]!);
}

/**
 * The seq of a position that follows every row of its transaction: a fold that has applied every row below its
 * horizon H records (H - 1, END_OF_TRANSACTION), and the next read starts at transaction H. Without it, a read after
 * a fold that ended on the last row of a 10,000-row batch would visit the whole batch (its rows share the xid that
 * the (account_id, xid) index is keyed on) to find none after the position: 140 ms a lot listing, measured on a
 * bulk-loaded 250,000-row transaction.
 */
export const END_OF_TRANSACTION = BIGINT_MAX;

export async function loadUnfolded(
  database: Queryable,
  account_id: string,
  state: FoldState,
  options: { below_horizon: boolean; limit: number },
): Promise<{ snapshot: string; entries: AllocationEntry[] }> {
  let lower = state.position_xid === null ? 0n : BigInt(state.position_xid);
  if (state.position_seq === END_OF_TRANSACTION) lower += 1n;
  if (state.cut_snapshot !== null && snapshotXmin(state.cut_snapshot) > lower) lower = snapshotXmin(state.cut_snapshot);
  const rows = await database.query<{ snapshot: string } & Partial<EntryRowText>>(UNFOLDED_SQL, [
    account_id,
    lower.toString(),
    state.cut_snapshot,
    // No position yet is (0, 0), before every row: the comparison stays one index condition in a generic plan, where
    // an `IS NULL OR` would leave it a filter over every row of the position's transaction.
    state.position_xid ?? "0",
    state.position_seq ?? "0",
    options.below_horizon,
    options.limit,
  ]);
  const entries = rows.filter((row) => row.id !== null && row.id !== undefined).map((row) => toAllocationEntry(row as EntryRowText));
  return { snapshot: rows[0]!.snapshot, entries };
}

const LOT_COLUMNS = `account_id, entry_id::text AS entry_id, entry_seq::text AS entry_seq, type, priority, expires_at,
  amount::text AS amount, remaining::text AS remaining, status, expiration_entry_id::text AS expiration_entry_id,
  expired_amount::text AS expired_amount, created_at, closed_at, folded`;

export interface LotRow {
  account_id: string;
  entry_id: string;
  entry_seq: string;
  type: string;
  priority: number | string;
  expires_at: Date | string | null;
  amount: string;
  remaining: string;
  status: LotStatus;
  expiration_entry_id: string | null;
  expired_amount: string | null;
  created_at: Date | string;
  closed_at: Date | string | null;
  folded: boolean;
}

export function toLot(row: LotRow): Lot {
  return {
    account_id: row.account_id,
    entry_id: row.entry_id,
    entry_seq: BigInt(row.entry_seq),
    type: row.type,
    priority: Number(row.priority),
    expires_at: row.expires_at === null ? null : new Date(row.expires_at).toISOString(),
    amount: numericToNanos(row.amount),
    remaining: numericToNanos(row.remaining),
    status: row.status,
    created_at: new Date(row.created_at).toISOString(),
    expiration_entry_id: row.expiration_entry_id,
    expired_amount: row.expired_amount === null ? null : numericToNanos(row.expired_amount),
    closed_at: row.closed_at === null ? null : new Date(row.closed_at).toISOString(),
    dirty: false,
  };
}

/** `expires_sort` as SQL compares it: a lot that never expires sorts after every date. */
export function expiresSort(expires_at: string | null): string {
  return expires_at ?? "infinity";
}

/** The account's open lots as the fold left them, paged in consumption order (the status index serves it). */
export function tableSource(database: Queryable, account_id: string): LotSource {
  return {
    async openAfter(after: LotKey | null, limit: number): Promise<Lot[]> {
      const rows = await database.query<LotRow>(
        `SELECT ${LOT_COLUMNS} FROM credit_lots
         WHERE account_id = $1 AND status = 'open' AND folded
           AND (priority, expires_sort, entry_seq) > ($2::smallint, $3::timestamptz, $4::bigint)
         ORDER BY priority, expires_sort, entry_seq
         LIMIT $5`,
        // From the start, (-1, -infinity, 0) precedes every lot (priority is 0–100): an index condition either way.
        [
          account_id,
          after?.priority ?? -1,
          after ? expiresSort(after.expires_at) : "-infinity",
          after?.entry_seq.toString() ?? "0",
          limit,
        ],
      );
      return rows.map(toLot);
    },
  };
}

/** Open, folded lots due at `now`, earliest first: what a cut expires. */
export async function loadDueLots(database: Queryable, account_id: string, now: Date, limit: number): Promise<Lot[]> {
  const rows = await database.query<LotRow>(
    `SELECT ${LOT_COLUMNS} FROM credit_lots
     WHERE account_id = $1 AND status = 'open' AND expires_at IS NOT NULL AND expires_sort <= $2::timestamptz AND folded
     ORDER BY expires_sort, priority, entry_seq
     LIMIT $3`,
    [account_id, now.toISOString(), limit],
  );
  return rows.map(toLot);
}

export async function loadLot(database: Queryable, account_id: string, entry_id: string): Promise<Lot | undefined> {
  const [row] = await database.query<LotRow>(
    `SELECT ${LOT_COLUMNS} FROM credit_lots WHERE account_id = $1 AND entry_id = $2::uuid AND folded`,
    [account_id, entry_id],
  );
  return row ? toLot(row) : undefined;
}

/** Writes the lots a fold changed, in one statement of text[] arrays (postgres.js cannot send numeric[]). */
export async function saveLots(database: Queryable, lots: readonly Lot[]): Promise<void> {
  if (lots.length === 0) return;
  const column = <T>(pick: (lot: Lot) => T) => lots.map(pick);
  await database.query(
    `INSERT INTO credit_lots (account_id, entry_id, entry_seq, type, priority, expires_at, expires_sort, amount,
       remaining, status, folded, expiration_entry_id, expired_amount, created_at, closed_at)
     SELECT lot.account_id, lot.entry_id::uuid, lot.entry_seq::bigint, lot.type, lot.priority::smallint,
            lot.expires_at::timestamptz, COALESCE(lot.expires_at::timestamptz, 'infinity'), lot.amount::numeric,
            lot.remaining::numeric, lot.status, true, lot.expiration_entry_id::uuid, lot.expired_amount::numeric,
            lot.created_at::timestamptz, lot.closed_at::timestamptz
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                 $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
       AS lot(account_id, entry_id, entry_seq, type, priority, expires_at, amount, remaining, status,
              expiration_entry_id, expired_amount, created_at, closed_at)
     ON CONFLICT (account_id, entry_id) DO UPDATE SET
       remaining = EXCLUDED.remaining, status = EXCLUDED.status, folded = true,
       expiration_entry_id = EXCLUDED.expiration_entry_id, expired_amount = EXCLUDED.expired_amount,
       closed_at = EXCLUDED.closed_at`,
    [
      column((lot) => lot.account_id),
      column((lot) => lot.entry_id),
      column((lot) => lot.entry_seq.toString()),
      column((lot) => lot.type),
      column((lot) => String(lot.priority)),
      column((lot) => lot.expires_at),
      column((lot) => formatNanos(lot.amount)),
      column((lot) => formatNanos(lot.remaining)),
      column((lot) => lot.status),
      column((lot) => lot.expiration_entry_id),
      column((lot) => (lot.expired_amount === null ? null : formatNanos(lot.expired_amount))),
      column((lot) => lot.created_at),
      column((lot) => lot.closed_at),
    ],
  );
}
