import type postgres from "postgres";
import type { Fill } from "./report.js";

/**
 * Large histories, written straight into `entries` with INSERT … SELECT over generate_series (not through the
 * API, which would take hours at a million rows). The rows are what tally itself would have written: a UUID id,
 * `delta = -amount` for usage, a unique idempotency key, a 64-hex-digit request hash, `batch_id` for batched rows,
 * and `created_at` spread evenly over the last `spread_days` days; `xid` and `seq` default themselves. Inserted in
 * chunks, each its own statement and transaction, so no single statement runs for long; then VACUUM ANALYZE, so
 * the planner has statistics and index-only scans see an all-visible table, as they would on a settled database.
 */

const CHUNK_ROWS = 250_000;

export interface FillOptions {
  account_id: string;
  rows: number;
  /** Group the rows into this many batches of equal size (all usage); otherwise one purchase of 100 per 1,000 rows keeps the balance positive. */
  batches?: number;
  spread_days?: number;
  /**
   * Rows per inserting transaction (default 250,000). Folds end chunks on transaction boundaries, so an account meant
   * to look as if tally had written it uses 10,000, the largest batch the API accepts.
   */
  transaction_rows?: number;
}

const FILL_SQL = `
INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id, created_at)
SELECT gen_random_uuid(), $1::text, shape.type, shape.amount,
       CASE WHEN shape.type = 'usage' THEN -shape.amount ELSE shape.amount END,
       'fill-' || g, md5(g::text) || md5((-g)::text),
       CASE WHEN $5::int > 0 THEN md5($1::text || '/batch/' || shape.batch_index)::uuid END,
       now() - make_interval(secs => ($2::bigint - g) * ($6::float8 * 86400 / $2::bigint))
FROM generate_series($3::bigint, $4::bigint) AS g
CROSS JOIN LATERAL (
  SELECT CASE WHEN $5::int = 0 AND g % 1000 = 1 THEN 'purchase' ELSE 'usage' END AS type,
         CASE WHEN $5::int = 0 AND g % 1000 = 1 THEN 100::numeric ELSE ((g % 997) + 1)::numeric / 1000000 END AS amount,
         CASE WHEN $5::int > 0 THEN (g - 1) / ($2::bigint / $5::int) ELSE 0 END AS batch_index
) AS shape`;

export async function fillEntries(sql: postgres.Sql, options: FillOptions): Promise<Fill> {
  const [fill] = await fillMany(sql, [options]);
  return fill!;
}

/** Several fills, then one VACUUM ANALYZE; the vacuum time is reported once, on the last fill. */
export async function fillMany(sql: postgres.Sql, fills: readonly FillOptions[]): Promise<Fill[]> {
  const results: Fill[] = [];
  for (const options of fills) {
    const batches = options.batches ?? 0;
    if (batches > 0 && options.rows % batches !== 0) throw new Error("rows must be a multiple of batches");
    const started = performance.now();
    const chunkRows = options.transaction_rows ?? CHUNK_ROWS;
    for (let from = 1; from <= options.rows; from += chunkRows) {
      const to = Math.min(options.rows, from + chunkRows - 1);
      await sql.unsafe(FILL_SQL, [options.account_id, options.rows, from, to, batches, options.spread_days ?? 30]);
    }
    results.push({
      what: `${options.account_id}${batches > 0 ? ` (${batches.toLocaleString("en-US")} batches)` : ""}`,
      rows: options.rows,
      insert_seconds: (performance.now() - started) / 1000,
      vacuum_analyze_seconds: 0,
    });
  }
  const vacuumStarted = performance.now();
  await sql.unsafe("VACUUM ANALYZE entries");
  results.at(-1)!.vacuum_analyze_seconds = (performance.now() - vacuumStarted) / 1000;
  return results;
}
