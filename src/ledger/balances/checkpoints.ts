import type { Queryable } from "../../db/port.js";
import type { LedgerContext } from "../core/context.js";
import { ledgerCounters } from "../../metrics/ledger-counters.js";

/**
 * Folds an account's finished entries into its checkpoint.
 *
 * The boundary is a transaction id, not a sequence number: `seq` is handed out before commit, so a row with a
 * smaller seq can commit after a refresh and would be skipped forever. `pg_snapshot_xmin` of the statement's
 * snapshot is the oldest transaction still running; every transaction below it has finished, so every committed
 * row below it is visible to this statement and no row can ever appear below it later.
 *
 * It is one statement, so the previous checkpoint, the folded rows and the horizon come from one snapshot. The
 * upsert only moves a checkpoint forward: when two refreshes race, each result is a consistent (balance,
 * boundary) pair, and the later boundary wins.
 */
const REFRESH_SQL = `
WITH horizon AS (
  SELECT pg_snapshot_xmin(pg_current_snapshot()) AS boundary
), previous AS (
  SELECT balance, xid_boundary FROM balance_checkpoints WHERE account_id = $1
), folded AS (
  SELECT COALESCE(SUM(delta), 0) AS total
  FROM entries
  WHERE account_id = $1
    AND xid >= COALESCE((SELECT xid_boundary FROM previous), '0'::xid8)
    AND xid < (SELECT boundary FROM horizon)
)
INSERT INTO balance_checkpoints AS checkpoint (account_id, balance, xid_boundary, updated_at)
SELECT $1, COALESCE((SELECT balance FROM previous), 0) + folded.total, horizon.boundary, now()
FROM folded, horizon
ON CONFLICT (account_id) DO UPDATE
  SET balance = EXCLUDED.balance, xid_boundary = EXCLUDED.xid_boundary, updated_at = EXCLUDED.updated_at
  WHERE checkpoint.xid_boundary < EXCLUDED.xid_boundary`;

export async function refreshCheckpoint(database: Queryable, account_id: string): Promise<void> {
  await database.query(REFRESH_SQL, [account_id]);
}

/** Best effort: a failed refresh is logged and never fails the write or read that asked for it. */
export async function refreshQuietly(context: LedgerContext, account_ids: Iterable<string>): Promise<void> {
  for (const account_id of account_ids) {
    try {
      await refreshCheckpoint(context.database, account_id);
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
