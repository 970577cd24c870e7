import type { Queryable } from "../../db/port.js";
import type { LedgerContext } from "../core/context.js";
import { chunkEndSql } from "../core/fold-chunk.js";
import { counted, ledgerCounters } from "../../metrics/ledger-counters.js";

/** Advisory-lock namespace for per-account roll-ups. */
const ROLLUP_LOCK_NAMESPACE = 4;

/**
 * Folds an account's finished batched rows into batch_aggregates and advances its roll-up boundary, without ever
 * touching a ledger row. Like a balance refresh it folds exactly the rows whose transaction id is at or above the
 * previous boundary and below the end of a chunk of about `$2` rows, itself at or below `pg_snapshot_xmin` of this
 * statement's snapshot (fold-chunk.ts): every such transaction has finished, so no row can later appear below the
 * new boundary, and none is folded twice. One chunk per transaction, each committed, so an account however long
 * unread catches up in bounded statements and an interrupted roll-up keeps its progress.
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
), start AS (
  SELECT COALESCE((SELECT xid_boundary FROM previous), '0'::xid8) AS boundary
), chunk AS (
  SELECT ${chunkEndSql("$1", "(SELECT boundary FROM start)", "(SELECT boundary FROM horizon)", "$2::bigint")} AS boundary
), folded AS (
  SELECT batch_id, SUM(amount) AS amount_total, SUM(delta) AS delta_total, COUNT(*) AS row_count,
         MIN(seq) AS first_seq, MAX(seq) AS last_seq, MIN(created_at) AS first_at, MAX(created_at) AS last_at,
         MAX(xid) AS max_xid
  FROM entries
  WHERE account_id = $1 AND batch_id IS NOT NULL
    AND xid >= (SELECT boundary FROM start)
    AND xid < (SELECT boundary FROM chunk)
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
), advanced AS (
  INSERT INTO rollup_boundaries AS rollup (account_id, xid_boundary, updated_at)
  SELECT $1, boundary, now() FROM chunk
  ON CONFLICT (account_id) DO UPDATE SET xid_boundary = EXCLUDED.xid_boundary, updated_at = EXCLUDED.updated_at
    WHERE rollup.xid_boundary < EXCLUDED.xid_boundary
)
-- Data-modifying CTEs always run to completion, whether or not the main statement reads them.
SELECT chunk.boundary >= horizon.boundary AS caught_up FROM chunk, horizon`;

/**
 * Rolls the account up to the horizon, one committed chunk at a time, unless another roll-up of it holds the lock;
 * returns whether it caught up. A reader that gets false groups the rows not yet folded on the fly.
 */
export async function rollUpBatches(context: LedgerContext, account_id: string): Promise<boolean> {
  return counted(ledgerCounters.rollups, () => rollUp(context, account_id), (caught_up) => (caught_up ? "ok" : "skipped"));
}

async function rollUp(context: LedgerContext, account_id: string): Promise<boolean> {
  for (let chunk = 0; chunk < context.fold_policy.chunks_max; chunk++) {
    const outcome = await context.database.transaction(async (transaction: Queryable) => {
      const [lock] = await transaction.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_xact_lock($1::int, hashtext($2)) AS locked",
        [ROLLUP_LOCK_NAMESPACE, account_id],
      );
      if (!lock?.locked) return "busy";
      // Its own statement, after the lock: its snapshot sees the boundary the previous roll-up committed.
      const [row] = await transaction.query<{ caught_up: boolean }>(ROLLUP_SQL, [account_id, context.fold_policy.chunk_rows]);
      return row!.caught_up ? "caught_up" : "more";
    });
    if (outcome !== "more") return outcome === "caught_up";
  }
  return false;
}
