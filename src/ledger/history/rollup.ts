import type { Queryable } from "../../db/port.js";
import type { LedgerContext } from "../core/context.js";
import { counted, ledgerCounters } from "../../metrics/ledger-counters.js";

/** Advisory-lock namespace for per-account roll-ups. */
const ROLLUP_LOCK_NAMESPACE = 4;

/**
 * Folds an account's finished batched rows into batch_aggregates and advances its roll-up boundary, without ever
 * touching a ledger row. Like a balance refresh it folds exactly the rows whose transaction id is at or above the
 * previous boundary and below `pg_snapshot_xmin` of this statement's snapshot: every such transaction has finished,
 * so no row can later appear below the new boundary, and none is folded twice.
 *
 * Roll-ups of one account are serialized by a transaction-level try-lock: the loser does not wait, it simply
 * returns, and its reader groups the not-yet-folded rows on the fly (history.ts), so every committed row appears
 * exactly once either way. The aggregate upsert and the boundary move commit together.
 */
const ROLLUP_SQL = `
WITH horizon AS (
  SELECT pg_snapshot_xmin(pg_current_snapshot()) AS boundary
), previous AS (
  SELECT xid_boundary FROM rollup_boundaries WHERE account_id = $1
), folded AS (
  SELECT batch_id, SUM(amount) AS amount_total, SUM(delta) AS delta_total, COUNT(*) AS row_count,
         MIN(seq) AS first_seq, MAX(seq) AS last_seq, MIN(created_at) AS first_at, MAX(created_at) AS last_at,
         MAX(xid) AS max_xid
  FROM entries
  WHERE account_id = $1 AND batch_id IS NOT NULL
    AND xid >= COALESCE((SELECT xid_boundary FROM previous), '0'::xid8)
    AND xid < (SELECT boundary FROM horizon)
  GROUP BY batch_id
), upserted AS (
  INSERT INTO batch_aggregates AS aggregate
    (account_id, batch_id, amount_total, delta_total, row_count, first_seq, last_seq, first_at, last_at, max_xid)
  SELECT $1, batch_id, amount_total, delta_total, row_count, first_seq, last_seq, first_at, last_at, max_xid
  FROM folded
  ON CONFLICT (account_id, batch_id) DO UPDATE SET
    amount_total = aggregate.amount_total + EXCLUDED.amount_total,
    delta_total = aggregate.delta_total + EXCLUDED.delta_total,
    row_count = aggregate.row_count + EXCLUDED.row_count,
    first_seq = LEAST(aggregate.first_seq, EXCLUDED.first_seq),
    last_seq = GREATEST(aggregate.last_seq, EXCLUDED.last_seq),
    first_at = LEAST(aggregate.first_at, EXCLUDED.first_at),
    last_at = GREATEST(aggregate.last_at, EXCLUDED.last_at),
    max_xid = GREATEST(aggregate.max_xid, EXCLUDED.max_xid)
)
-- A data-modifying CTE always runs to completion, whether or not the main statement reads it.
INSERT INTO rollup_boundaries AS rollup (account_id, xid_boundary, updated_at)
SELECT $1, boundary, now() FROM horizon
ON CONFLICT (account_id) DO UPDATE SET xid_boundary = EXCLUDED.xid_boundary, updated_at = EXCLUDED.updated_at
  WHERE rollup.xid_boundary < EXCLUDED.xid_boundary`;

/** Rolls the account up unless another roll-up of it is running; returns whether it ran. */
export async function rollUpBatches(context: LedgerContext, account_id: string): Promise<boolean> {
  return counted(ledgerCounters.rollups, () => rollUp(context, account_id), (ran) => (ran ? "ok" : "skipped"));
}

async function rollUp(context: LedgerContext, account_id: string): Promise<boolean> {
  return context.database.transaction(async (transaction: Queryable) => {
    const [lock] = await transaction.query<{ locked: boolean }>(
      "SELECT pg_try_advisory_xact_lock($1::int, hashtext($2)) AS locked",
      [ROLLUP_LOCK_NAMESPACE, account_id],
    );
    if (!lock?.locked) return false;
    // Its own statement, after the lock: its snapshot sees the boundary the previous roll-up committed.
    await transaction.query(ROLLUP_SQL, [account_id]);
    return true;
  });
}
