import type { Queryable } from "../../db/port.js";
import { canonicalNumeric } from "../core/amount.js";
import type { BalanceEvent } from "./crossings.js";

export const EVENTS_PAGE_MAX = 500;

const LIST_AFTER_SQL = `
SELECT id::text AS id, type, account_id, balance::text AS balance, created_at, lot_id::text AS lot_id,
       amount::text AS amount, request_id::text AS request_id
FROM balance_events WHERE id > $1::bigint
ORDER BY balance_events.id LIMIT $2 -- qualified: a bare "id" is the text output column, and "10" sorts before "9"
`;

/** Events with ids above `after_id`, oldest first. Ids commit in order (see crossings.ts), so resuming is exact. */
export async function listEventsAfter(database: Queryable, after_id: string, limit: number): Promise<BalanceEvent[]> {
  const rows = await database.query<{ id: string; type: BalanceEvent["type"]; account_id: string; balance: string; created_at: Date | string; lot_id: string | null; amount: string | null; request_id: string | null }>(
    LIST_AFTER_SQL,
    [after_id, Math.min(limit, EVENTS_PAGE_MAX)],
  );
  return rows.map((row) => ({
    id: row.id,
    type: row.type,
    account_id: row.account_id,
    balance: canonicalNumeric(row.balance),
    time: new Date(row.created_at).toISOString(),
    ...(row.lot_id !== null ? { lot_id: row.lot_id } : {}),
    ...(row.amount !== null ? { amount: canonicalNumeric(row.amount) } : {}),
    ...(row.request_id !== null ? { request_id: row.request_id } : {}),
  }));
}

/** The newest event id, so a new subscriber can start from "now" instead of replaying the retention window. */
export async function latestEventId(database: Queryable): Promise<string> {
  const [row] = await database.query<{ id: string }>("SELECT COALESCE(MAX(id), 0)::text AS id FROM balance_events");
  return row!.id;
}

/**
 * Deletes events older than the retention window, in batches so no single statement runs long or holds many locks.
 * Bounded per call; whatever is left goes in the next run. Events are a delivery log, not the ledger.
 */
export async function pruneEvents(
  database: Queryable,
  options: { retention_days: number; batch_rows?: number; batches_max?: number },
): Promise<number> {
  const batchRows = options.batch_rows ?? 5000;
  let deleted = 0;
  for (let batch = 0; batch < (options.batches_max ?? 20); batch++) {
    const rows = await database.query<{ id: string }>(
      `DELETE FROM balance_events WHERE (account_id, id) IN (
         SELECT account_id, id FROM balance_events
         WHERE created_at < now() - make_interval(days => $1::int)
         ORDER BY created_at LIMIT $2::int)
       RETURNING id::text AS id`,
      [options.retention_days, batchRows],
    );
    deleted += rows.length;
    if (rows.length < batchRows) break;
  }
  return deleted;
}
