/**
 * Bounded folds. Every fold over an account's entries (a checkpoint refresh, a batch roll-up, the credits a
 * crossing evaluation sums) folds the rows whose transaction id lies in `[start, horizon)`, where `horizon` is a
 * snapshot's xmin: every transaction below it has finished, so that set of rows can never change. Folding it in one
 * statement costs O(rows since the last fold), which for an account unread for long can outlast the statement
 * timeout; the fold then fails, never advances, and fails again on every retry.
 *
 * So each statement folds only a chunk `[start, chunk_end)` holding about `chunk_rows` rows, commits, and the next
 * statement starts where it ended. `chunk_end` is itself a transaction id at or below the horizon, so a chunk is
 * exactly as safe a boundary as the horizon: every row below it has committed or never will. Chunks end on
 * transaction boundaries (all rows of one transaction share an xid and are folded together), so a chunk can exceed
 * `chunk_rows` by at most one transaction's rows: 10,000 for the largest batch tally accepts.
 */

/** Rows folded per statement: tens of milliseconds of work, far below any statement timeout. */
export const FOLD_CHUNK_ROWS = 50_000;

/** At most this many chunks per call, so one request never folds without end on an account being written to. */
export const FOLD_CHUNKS_MAX = 1_000;

/**
 * SQL for the end of the next chunk: the xid of the row `chunk_rows` rows past `start` in the (account_id, xid)
 * index, or the next larger xid if that row still belongs to `start`'s own transaction; never beyond `horizon`,
 * and the horizon itself when fewer rows remain. The arguments are SQL expressions (parameters or scalar
 * subqueries).
 */
export function chunkEndSql(account_id: string, start: string, horizon: string, chunk_rows: string): string {
  return `LEAST(${horizon}, COALESCE(
    (SELECT CASE WHEN nth.xid > ${start} THEN nth.xid ELSE
              (SELECT following.xid FROM entries AS following
               WHERE following.account_id = ${account_id} AND following.xid > ${start}
               ORDER BY following.xid LIMIT 1) END
     FROM (SELECT chunk.xid FROM entries AS chunk
           WHERE chunk.account_id = ${account_id} AND chunk.xid >= ${start}
           ORDER BY chunk.xid OFFSET ${chunk_rows} LIMIT 1) AS nth),
    ${horizon}))`;
}
