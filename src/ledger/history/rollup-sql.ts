import { chunkEndSql } from "../core/fold-chunk.js";

/**
 * The three statements of a roll-up (rollup.ts): plan a chunk, read it, apply it.
 *
 * Planning and reading take no lock and write nothing, so chunks can be read side by side on several connections;
 * applying is a short transaction under the account's roll-up lock that moves the boundary only from where the
 * chunk starts. A chunk read by a roll-up that then loses the lock, or finds the boundary moved, is discarded.
 */

/**
 * The next chunk `[start, end)` of an account's roll-up: `start` is `$2` or, when it is null, the account's
 * roll-up boundary; `end` is at or below this statement's horizon (fold-chunk.ts), so every transaction below it
 * has finished and the rows of the chunk can never change. Also returns whether the chunk holds any row (an account
 * read again with nothing new has nothing to read or apply: its boundary can stay, since no row can appear below
 * the horizon), and the checkpoint's boundary, so the chunk can carry the checkpoint when it lies inside it. Parameters: $1 account, $2 start or null, $3 rows.
 */
export const PLAN_CHUNK_SQL = `
WITH horizon AS (
  SELECT pg_snapshot_xmin(pg_current_snapshot()) AS boundary
), start AS (
  SELECT COALESCE($2::xid8, (SELECT xid_boundary FROM rollup_boundaries WHERE account_id = $1), '0'::xid8) AS boundary
), chunk AS MATERIALIZED (
  -- MATERIALIZED: referenced once, this CTE would be inlined and its expression copied into each of the three uses
  -- of chunk.boundary below, and PostgreSQL ran the chunk's 50,000-entry index scan twice per plan (measured:
  -- 8 + 10 ms of a 22 ms plan).
  SELECT ${chunkEndSql("$1", "(SELECT boundary FROM start)", "(SELECT boundary FROM horizon)", "$3::bigint")} AS boundary
)
SELECT start.boundary::text AS start, chunk.boundary::text AS "end", chunk.boundary >= horizon.boundary AS caught_up,
       EXISTS (SELECT 1 FROM entries WHERE account_id = $1 AND xid >= start.boundary AND xid < chunk.boundary) AS has_rows,
       COALESCE((SELECT xid_boundary FROM balance_checkpoints WHERE account_id = $1), '0'::xid8)::text AS checkpoint_boundary
FROM start, chunk, horizon`;

/**
 * Hash aggregation memory for a chunk read. The planner estimates a chunk's batches from the whole account's
 * statistics (16,884 where a 50,000-row chunk held 500, measured) and, with the default 4 MB, sorts the chunk on
 * disk instead of hashing it: 57 ms instead of 29 ms. A chunk holds at most `chunk_rows` plus one transaction's
 * rows, so this bounds the memory of one read.
 */
export const CHUNK_READ_WORK_MEM_SQL = "SET LOCAL work_mem = '32MB'";

/**
 * Every row of the chunk `[$2, $3)`, grouped by batch (the rows without a batch form one group, batch_id null),
 * and on every group the chunk's delta from `$4` on (rows below `$4` are already in the checkpoint when it is
 * carried from inside the chunk), summed over the groups (at most one per row of a chunk).
 * The rows of a finished range never change, so this reads the same groups whenever and wherever it runs.
 */
export const READ_CHUNK_SQL = `
SELECT batch_id, SUM(amount)::text AS amount_total, SUM(delta)::text AS delta_total, COUNT(*)::text AS row_count,
       MIN(seq)::text AS first_seq, MAX(seq)::text AS last_seq, MIN(created_at)::text AS first_at,
       MAX(created_at)::text AS last_at, MAX(xid)::text AS max_xid,
       (SUM(SUM(delta)) OVER () - SUM(COALESCE(SUM(delta) FILTER (WHERE xid < $4::xid8), 0)) OVER ())::text AS checkpoint_delta
FROM entries
WHERE account_id = $1 AND xid >= $2::xid8 AND xid < $3::xid8
GROUP BY batch_id`;

/**
 * Applies a chunk read by READ_CHUNK_SQL, in the transaction that holds the account's roll-up lock, if and only if
 * the roll-up boundary is still the chunk's start: then the batch aggregates take the chunk's batches and the
 * boundary moves to its end, together. Only lock holders move the boundary, so the check cannot go stale before
 * the commit.
 *
 * The checkpoint (balance, xid_boundary) is carried along when `$14` (where the summed deltas begin) is set:
 * it becomes (balance + `$13`, chunk end) only if its boundary is exactly `$14`, for `$13` is the sum of every
 * row in `[$14, end)`. Any checkpoint with that boundary is consistent, so the result is too, however the
 * checkpoint moved meanwhile; a checkpoint elsewhere is left alone and refreshed on its own. A missing checkpoint
 * row means boundary 0.
 *
 * Parameters: $1 account, $2 chunk start, $3 chunk end, $4..$12 the batch groups as arrays, $13 the checkpoint's
 * delta, $14 its start or null. Returns whether the chunk was applied, and whether it carried the checkpoint.
 */
export const APPLY_CHUNK_SQL = `
WITH current AS (
  SELECT COALESCE((SELECT xid_boundary FROM rollup_boundaries WHERE account_id = $1), '0'::xid8) = $2::xid8 AS in_place
), folded AS (
  -- Text arrays, cast here: the drivers have no serializer for numeric[] or xid8[].
  SELECT batch_id::uuid, amount_total::numeric, delta_total::numeric, row_count::bigint, first_seq::bigint,
         last_seq::bigint, first_at::timestamptz, last_at::timestamptz, max_xid::xid8
  FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
       AS folded(batch_id, amount_total, delta_total, row_count, first_seq, last_seq, first_at, last_at, max_xid)
  WHERE (SELECT in_place FROM current)
), upserted AS (
  INSERT INTO batch_aggregates AS aggregate
    (account_id, batch_id, amount_total, delta_total, row_count, first_seq, last_seq, first_at, last_at, max_xid)
  SELECT $1, batch_id, amount_total, delta_total, row_count, first_seq, last_seq, first_at, last_at, max_xid
  FROM folded
  -- One lock order for every writer of these rows.
  ORDER BY batch_id
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
  SELECT $1, $3::xid8, now() FROM current WHERE in_place
  ON CONFLICT (account_id) DO UPDATE SET xid_boundary = EXCLUDED.xid_boundary, updated_at = EXCLUDED.updated_at
    WHERE rollup.xid_boundary = $2::xid8
), carried AS (
  INSERT INTO balance_checkpoints AS checkpoint (account_id, balance, xid_boundary, updated_at)
  SELECT $1, $13::numeric, $3::xid8, now() FROM current
  WHERE in_place AND $14::xid8 IS NOT NULL
    -- Inserted only as the checkpoint of everything from the beginning; otherwise only an existing one moves.
    AND ($14::xid8 = '0'::xid8 OR EXISTS (SELECT 1 FROM balance_checkpoints WHERE account_id = $1))
  ON CONFLICT (account_id) DO UPDATE
    SET balance = checkpoint.balance + EXCLUDED.balance, xid_boundary = EXCLUDED.xid_boundary, updated_at = EXCLUDED.updated_at
    WHERE checkpoint.xid_boundary = $14::xid8
  RETURNING 1
)
-- Data-modifying CTEs always run to completion, whether or not the main statement reads them.
SELECT in_place AS applied, EXISTS (SELECT 1 FROM carried) AS carried FROM current`;
