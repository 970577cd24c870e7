/**
 * SQL for grouped and ungrouped history. Every query reads the account as of one snapshot `$2` (a pg_snapshot, the
 * one the walk's first page was read in): exactly the rows whose inserting transaction is visible in it. That set
 * never changes, so a walk across pages sees fixed items, fixed positions and fixed totals, whatever is posted
 * meanwhile: no item is repeated or skipped.
 *
 * Parameters, shared by every statement here:
 *   $1 account id, $2 snapshot, $3 position bound (bigint; the largest bigint from the first page on, never NULL),
 *   $4 row limit (bigint or NULL),
 *   $5 types (text[] or NULL), $6 ILIKE pattern (text or NULL), $7 from, $8 to (timestamptz or NULL).
 *
 * An item's position is the seq of its last row (for a single entry, its own seq); items are listed by position,
 * newest first. Positions are unique: every row belongs to exactly one item.
 */

import { CHECKPOINT_BALANCE, checkpointJoinsCapped } from "../balances/balance-sql.js";

const SINGLE_FILTERS = `
  AND ($5::text[] IS NULL OR e.type = ANY($5::text[]))
  AND ($6::text IS NULL OR e.description ILIKE $6::text ESCAPE '\\')
  AND ($7::timestamptz IS NULL OR e.created_at >= $7::timestamptz)
  AND ($8::timestamptz IS NULL OR e.created_at <= $8::timestamptz)`;

/** A batch is usage with no description of its own; it is placed in time by its last row. */
const BATCH_FILTERS = (alias: string) => `
  AND ($5::text[] IS NULL OR 'usage' = ANY($5::text[]))
  AND $6::text IS NULL
  AND ($7::timestamptz IS NULL OR ${alias}.last_at >= $7::timestamptz)
  AND ($8::timestamptz IS NULL OR ${alias}.last_at <= $8::timestamptz)`;

/**
 * below: position < $3; above: position > $3; between: $9 < position < $3. The bound is always a value (the largest
 * bigint for "everything"), never `$3 IS NULL OR …`: once PostgreSQL plans a prepared statement generically, such an
 * OR is no index condition, and a page deep in a long history would read every item above its cursor.
 */
export type Bound = "below" | "above" | "between";

function positionBound(column: string, bound: Bound): string {
  if (bound === "between") return `${column} < $3::bigint AND ${column} > $9::bigint`;
  return bound === "below" ? `${column} < $3::bigint` : `${column} > $3::bigint`;
}

/**
 * CTEs ending in `batch_items`: the account's batches as of the snapshot, filtered and bounded by position.
 * - clean: aggregates that fold only rows older than the snapshot (max_xid below its xmin), read in index order and
 *   pre-limited, so a page costs O(page) however many batches the account has;
 * - unfolded: batched rows not yet rolled up, grouped on the fly and merged with their aggregate;
 * - recomputed: aggregates that have folded rows newer than the snapshot (a batch that grew during the walk),
 *   recomputed from their rows as of the snapshot. Rare, and only ever the batches that grew.
 */
export function batchItemsCte(bound: Bound, limited: boolean): string {
  const limit = limited ? "LIMIT $4::bigint" : "";
  return `
rollup AS (
  SELECT COALESCE((SELECT xid_boundary FROM rollup_boundaries WHERE account_id = $1), '0'::xid8) AS boundary
), touched AS (
  SELECT a.batch_id FROM batch_aggregates a
  WHERE a.account_id = $1 AND a.max_xid >= pg_snapshot_xmin($2::pg_snapshot)
), unfolded AS (
  SELECT e.batch_id, SUM(e.amount) AS amount_total, SUM(e.delta) AS delta_total, COUNT(*) AS row_count,
         MIN(e.seq) AS first_seq, MAX(e.seq) AS last_seq, MIN(e.created_at) AS first_at, MAX(e.created_at) AS last_at
  FROM entries e
  WHERE e.account_id = $1 AND e.batch_id IS NOT NULL
    AND e.xid >= (SELECT boundary FROM rollup) AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot)
    AND e.batch_id NOT IN (SELECT batch_id FROM touched)
  GROUP BY e.batch_id
), clean AS (
  SELECT a.batch_id, a.amount_total, a.delta_total, a.row_count, a.first_seq, a.last_seq, a.first_at, a.last_at
  FROM batch_aggregates a
  WHERE a.account_id = $1 AND a.max_xid < pg_snapshot_xmin($2::pg_snapshot) AND ${positionBound("a.last_seq", bound)}
    -- Before the limit: a batch with unfolded rows is listed through the unfolded branch, and must not take a slot.
    AND a.batch_id NOT IN (SELECT batch_id FROM unfolded)
    ${BATCH_FILTERS("a")}
  -- Only a page needs the order. Totals and gap sums read every aggregate and only add them up: sorting them all
  -- (30,000 for an account of 3,000,000 rows) took two thirds of a first page's count.
  ${limited ? `ORDER BY a.last_seq DESC ${limit}` : ""}
), recomputed AS (
  SELECT e.batch_id, SUM(e.amount) AS amount_total, SUM(e.delta) AS delta_total, COUNT(*) AS row_count,
         MIN(e.seq) AS first_seq, MAX(e.seq) AS last_seq, MIN(e.created_at) AS first_at, MAX(e.created_at) AS last_at
  FROM entries e
  WHERE e.account_id = $1 AND e.batch_id IN (SELECT batch_id FROM touched)
    AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot)
  GROUP BY e.batch_id
), batch_parts AS (
  SELECT * FROM clean
  UNION ALL
  SELECT u.batch_id, COALESCE(a.amount_total, 0) + u.amount_total, COALESCE(a.delta_total, 0) + u.delta_total,
         COALESCE(a.row_count, 0) + u.row_count, LEAST(a.first_seq, u.first_seq), GREATEST(a.last_seq, u.last_seq),
         LEAST(a.first_at, u.first_at), GREATEST(a.last_at, u.last_at)
  FROM unfolded u
  LEFT JOIN batch_aggregates a ON a.account_id = $1 AND a.batch_id = u.batch_id
  UNION ALL
  SELECT * FROM recomputed
), batch_items AS (
  SELECT * FROM batch_parts p
  WHERE ${positionBound("p.last_seq", bound)} ${BATCH_FILTERS("p")}
  ${limited ? `ORDER BY p.last_seq DESC ${limit}` : ""}
)`;
}

const ITEM_COLUMNS = `position::text AS position, id, type, amount::text AS amount, delta::text AS delta,
  idempotency_key, batch_id, description, metadata, row_count::text AS row_count, first_at, last_at, hold_id,
  meter, quantities, price_version`;

/** One page of grouped items below the position bound, newest first, and the snapshot it was read in. */
export const GROUPED_PAGE_SQL = `
WITH ${batchItemsCte("below", true)},
singles AS (
  SELECT e.seq AS position, e.id::text AS id, e.type, e.amount, e.delta, e.idempotency_key, NULL::text AS batch_id,
         e.description, e.metadata, 1::bigint AS row_count, e.created_at AS first_at, e.created_at AS last_at,
         e.hold_id::text AS hold_id, e.meter, e.quantities, e.price_version
  FROM entries e
  WHERE e.account_id = $1 AND e.batch_id IS NULL AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot)
    AND ${positionBound("e.seq", "below")} ${SINGLE_FILTERS}
  ORDER BY e.seq DESC LIMIT $4::bigint
), batches AS (
  SELECT b.last_seq AS position, b.batch_id::text AS id, 'usage'::text AS type, b.amount_total AS amount,
         b.delta_total AS delta, NULL::text AS idempotency_key, b.batch_id::text AS batch_id, NULL::text AS description,
         NULL::jsonb AS metadata, b.row_count, b.first_at, b.last_at, NULL::text AS hold_id,
         -- A batch may mix meters and prices: its rows show theirs when listed one by one (group_batches=false).
         NULL::text AS meter, NULL::jsonb AS quantities, NULL::integer AS price_version
  FROM batch_items b
)
SELECT ${ITEM_COLUMNS} FROM (SELECT * FROM singles UNION ALL SELECT * FROM batches) AS items
-- Qualified: the bare name would be the text output column, and "9" sorts above "11".
ORDER BY items.position DESC LIMIT $4::bigint`;

/** One page of single entries (batched rows included, one by one) below the position bound. */
export const UNGROUPED_PAGE_SQL = `
SELECT e.seq::text AS position, e.id::text AS id, e.type, e.amount::text AS amount, e.delta::text AS delta,
       e.idempotency_key, e.batch_id::text AS batch_id, e.description, e.metadata, '1' AS row_count,
       e.created_at AS first_at, e.created_at AS last_at, e.hold_id::text AS hold_id,
       e.meter, e.quantities, e.price_version
FROM entries e
WHERE e.account_id = $1 AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot)
  AND ${positionBound("e.seq", "below")} ${SINGLE_FILTERS}
ORDER BY e.seq DESC LIMIT $4::bigint`;

/** How many items match, and the sum of their deltas, among items above the position bound (or all of them). */
export function groupedTotalsSql(bound: Bound | "all"): string {
  const singleBound = bound === "all" ? "" : `AND ${positionBound("e.seq", bound)}`;
  return `
WITH ${batchItemsCte(bound === "all" ? "below" : bound, false)}
SELECT
  ((SELECT COUNT(*) FROM entries e WHERE e.account_id = $1 AND e.batch_id IS NULL
      AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot) ${singleBound} ${SINGLE_FILTERS})
   + (SELECT COUNT(*) FROM batch_items))::text AS item_count,
  (COALESCE((SELECT SUM(e.delta) FROM entries e WHERE e.account_id = $1 AND e.batch_id IS NULL
      AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot) ${singleBound} ${SINGLE_FILTERS}), 0)
   + COALESCE((SELECT SUM(delta_total) FROM batch_items), 0))::text AS delta_sum,
  -- Rows rather than items: what an ungrouped listing counts, from the aggregates instead of every row.
  ((SELECT COUNT(*) FROM entries e WHERE e.account_id = $1 AND e.batch_id IS NULL
      AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot) ${singleBound} ${SINGLE_FILTERS})
   + COALESCE((SELECT SUM(row_count) FROM batch_items), 0))::text AS row_count,
  -- Unused here, but the parameter list is shared and every parameter needs a type.
  $4::bigint AS unused_limit`;
}

export function ungroupedTotalsSql(bound: Bound | "all"): string {
  const singleBound = bound === "all" ? "" : `AND ${positionBound("e.seq", bound)}`;
  return `
SELECT COUNT(*)::text AS item_count, COALESCE(SUM(e.delta), 0)::text AS delta_sum,
       -- Unused when counting everything, but the parameter list is shared and every parameter needs a type.
       $3::bigint AS unused_position, $4::bigint AS unused_limit
FROM entries e
WHERE e.account_id = $1 AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot) ${singleBound} ${SINGLE_FILTERS}`;
}

/**
 * The deltas of the items a date-filtered page does not list, summed per gap: every item (grouped or not, as the
 * listing is) strictly between $9 and $3 whose position is not one of the anchors $10 (the page's positions, and
 * the walk's cursor position above them), summed under the nearest anchor above it. A listed item's running
 * balance is the one above it less that item's delta and less the gap below it, so an item the date filter drops
 * is still accounted for. Costs O(items in the page's position range). $5 to $8 are NULL (no filters).
 */
export function gapSumsSql(group_batches: boolean): string {
  const items = group_batches
    ? `SELECT e.seq AS position, e.delta FROM entries e
       WHERE e.account_id = $1 AND e.batch_id IS NULL AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot)
         AND ${positionBound("e.seq", "between")}
       UNION ALL
       SELECT b.last_seq, b.delta_total FROM batch_items b`
    : `SELECT e.seq AS position, e.delta FROM entries e
       WHERE e.account_id = $1 AND pg_visible_in_snapshot(e.xid, $2::pg_snapshot) AND ${positionBound("e.seq", "between")}
         AND $5::text[] IS NULL AND $6::text IS NULL AND $7::timestamptz IS NULL AND $8::timestamptz IS NULL`;
  return `
WITH ${group_batches ? `${batchItemsCte("between", false)},` : ""}
items AS (${items})
SELECT nearest.anchor::text AS anchor, SUM(i.delta)::text AS delta_sum, $4::bigint AS unused_limit
FROM items i
CROSS JOIN LATERAL (SELECT MIN(a) AS anchor FROM unnest($10::bigint[]) AS a WHERE a > i.position) AS nearest
WHERE i.position <> ALL($10::bigint[])
GROUP BY nearest.anchor`;
}

/**
 * The account's balance as of the snapshot, in one statement (so the current balance and what became visible after
 * the snapshot come from one view): checkpoint + delta, less the rows the snapshot does not see. Only rows at or
 * above the snapshot's xmin can be invisible to it, so the last part reads just those. Also returns how many delta
 * rows the checkpoint read summed, so the caller can refresh an overgrown one as any balance read does. The delta
 * read stops at $3 rows (NULL: no cap); at the cap the balance is partial, and the caller folds the checkpoint
 * forward in chunks and reads again, so a never-read account costs bounded statements.
 */
export const BALANCE_AS_OF_SQL = `
SELECT (${CHECKPOINT_BALANCE} - COALESCE(unseen.total, 0))::text AS balance,
       delta.row_count::text AS delta_rows
FROM (SELECT $1::text AS account_id) AS requested
${checkpointJoinsCapped("$3::bigint")}
LEFT JOIN LATERAL (
  SELECT SUM(entry.delta) AS total FROM entries AS entry
  WHERE entry.account_id = requested.account_id AND entry.xid >= pg_snapshot_xmin($2::pg_snapshot)
    AND NOT pg_visible_in_snapshot(entry.xid, $2::pg_snapshot)
) AS unseen ON true`;

/** Whether at least $2 rows lie above the account's checkpoint: an index-only probe that stops at $2. */
export const FAR_BEHIND_SQL = `
SELECT count(*) >= $2::bigint AS far_behind FROM (
  SELECT 1 FROM entries AS entry
  WHERE entry.account_id = $1
    AND entry.xid >= COALESCE((SELECT xid_boundary FROM balance_checkpoints WHERE account_id = $1), '0'::xid8)
  ORDER BY entry.xid -- keeps the planner on the (account_id, xid) index; see checkpointJoinsCapped
  LIMIT $2::bigint
) AS above`;

/**
 * Entries across all accounts, newest first by their time-ordered id (the id index serves the order, so a page
 * costs O(page)). Grouping is per account and is not offered here. Parameters: $1 snapshot, $2 id bound (uuid or
 * the largest uuid on a first page: never NULL, see positionBound), $3 limit, $4 types, $5 ILIKE pattern, $6 from, $7 to.
 */
export const ALL_ENTRIES_PAGE_SQL = `
SELECT e.id::text AS position, e.id::text AS id, e.account_id, e.type, e.amount::text AS amount, e.delta::text AS delta,
       e.idempotency_key, e.batch_id::text AS batch_id, e.description, e.metadata, e.created_at,
       e.hold_id::text AS hold_id, e.meter, e.quantities, e.price_version
FROM entries e
WHERE pg_visible_in_snapshot(e.xid, $1::pg_snapshot)
  AND e.id < $2::uuid
  AND ($4::text[] IS NULL OR e.type = ANY($4::text[]))
  AND ($5::text IS NULL OR e.description ILIKE $5::text ESCAPE '\\')
  AND ($6::timestamptz IS NULL OR e.created_at >= $6::timestamptz)
  AND ($7::timestamptz IS NULL OR e.created_at <= $7::timestamptz)
ORDER BY e.id DESC LIMIT $3::bigint`;

export const ALL_ENTRIES_COUNT_SQL = `
SELECT COUNT(*)::text AS item_count, $2::uuid AS unused_bound, $3::bigint AS unused_limit
FROM entries e
WHERE pg_visible_in_snapshot(e.xid, $1::pg_snapshot)
  AND ($4::text[] IS NULL OR e.type = ANY($4::text[]))
  AND ($5::text IS NULL OR e.description ILIKE $5::text ESCAPE '\\')
  AND ($6::timestamptz IS NULL OR e.created_at >= $6::timestamptz)
  AND ($7::timestamptz IS NULL OR e.created_at <= $7::timestamptz)`;
