import type { Queryable } from "../../db/port.js";
import type { FoldPolicy, LedgerContext } from "../core/context.js";
import { chunkEndSql, FOLD_CHUNKS_MAX, FOLD_CHUNK_ROWS } from "../core/fold-chunk.js";
import { ledgerCounters } from "../../metrics/ledger-counters.js";

/**
 * Folds a chunk of an account's finished entries into its checkpoint.
 *
 * The boundary is a transaction id, not a sequence number: `seq` is handed out before commit, so a row with a
 * smaller seq can commit after a refresh and would be skipped forever. `pg_snapshot_xmin` of the statement's
 * snapshot is the oldest transaction still running; every transaction below it has finished, so every committed
 * row below it is visible to this statement and no row can ever appear below it later. A chunk ends at an xid at or
 * below that horizon (fold-chunk.ts), which is therefore just as final: the new boundary is the chunk's end.
 *
 * It is one statement, so the previous checkpoint, the chunk, the folded rows and the horizon come from one
 * snapshot. The upsert only moves a checkpoint forward: when two refreshes race, each result is a consistent
 * (balance, boundary) pair, and the later boundary wins. `caught_up` says the chunk reached the horizon.
 */
const REFRESH_SQL = `
WITH horizon AS (
  SELECT pg_snapshot_xmin(pg_current_snapshot()) AS boundary
), previous AS (
  SELECT balance, xid_boundary FROM balance_checkpoints WHERE account_id = $1
), start AS (
  SELECT COALESCE((SELECT xid_boundary FROM previous), '0'::xid8) AS boundary
), chunk AS (
  SELECT ${chunkEndSql("$1", "(SELECT boundary FROM start)", "(SELECT boundary FROM horizon)", "$2::bigint")} AS boundary
), folded AS (
  SELECT COALESCE(SUM(delta), 0) AS total
  FROM entries
  WHERE account_id = $1
    AND xid >= (SELECT boundary FROM start)
    AND xid < (SELECT boundary FROM chunk)
), upserted AS (
  INSERT INTO balance_checkpoints AS checkpoint (account_id, balance, xid_boundary, updated_at)
  SELECT $1, COALESCE((SELECT balance FROM previous), 0) + folded.total, chunk.boundary, now()
  FROM folded, chunk
  ON CONFLICT (account_id) DO UPDATE
    SET balance = EXCLUDED.balance, xid_boundary = EXCLUDED.xid_boundary, updated_at = EXCLUDED.updated_at
    WHERE checkpoint.xid_boundary < EXCLUDED.xid_boundary
)
-- A data-modifying CTE always runs to completion, whether or not the main statement reads it.
SELECT chunk.boundary >= horizon.boundary AS caught_up FROM chunk, horizon`;

/** Folds one chunk (one statement, committed on its own); returns whether the checkpoint reached the horizon. */
export async function refreshCheckpointChunk(database: Queryable, account_id: string, chunk_rows: number): Promise<boolean> {
  const [row] = await database.query<{ caught_up: boolean }>(REFRESH_SQL, [account_id, chunk_rows]);
  return row!.caught_up;
}

/**
 * Brings the checkpoint up to the horizon chunk by chunk, each chunk its own statement outside any transaction, so
 * a refresh that is interrupted (a timeout, a restart) keeps what it folded and the next one continues from there.
 * Bounded by `chunks_max` chunks per call; returns whether it caught up.
 */
export async function refreshCheckpoint(
  database: Queryable,
  account_id: string,
  policy: FoldPolicy = { chunk_rows: FOLD_CHUNK_ROWS, chunks_max: FOLD_CHUNKS_MAX },
): Promise<boolean> {
  for (let chunk = 0; chunk < policy.chunks_max; chunk++) {
    if (await refreshCheckpointChunk(database, account_id, policy.chunk_rows)) return true;
  }
  return false;
}

/** Best effort: a failed refresh is logged and never fails the write or read that asked for it. */
export async function refreshQuietly(context: LedgerContext, account_ids: Iterable<string>): Promise<void> {
  for (const account_id of account_ids) {
    try {
      await refreshCheckpoint(context.database, account_id, context.fold_policy);
      ledgerCounters.checkpoint_refreshes.inc({ outcome: "ok" });
    } catch (error) {
      ledgerCounters.checkpoint_refreshes.inc({ outcome: "failed" });
      context.logger.warn({ err: error, account_id }, "checkpoint refresh failed");
    }
  }
}

/**
 * Refreshes after a write with probability rows / refresh_every per account, so a batch of many rows on one
 * account refreshes as often as the same rows posted one at a time would.
 */
export async function maybeRefreshAfterWrite(
  context: LedgerContext,
  rows_by_account: ReadonlyMap<string, number>,
): Promise<void> {
  const { refresh_every, random } = context.checkpoint_policy;
  const due = [...rows_by_account].filter(([, rows]) => random() < rows / refresh_every).map(([id]) => id);
  if (due.length > 0) await refreshQuietly(context, due);
}
