import { formatNanos, numericToNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";

export interface MeterSpend {
  /** null: spend posted as an amount (usage without a meter, and removals). */
  meter: string | null;
  amount: string;
  count: number;
}

/**
 * Spend (usage and removals, the `spent` line of stats) over [from, to) grouped by meter, largest first; the
 * amounts add up to `spent`. Bounded: at most one line per priced meter (the price table holds at most
 * PRICE_LIMITS.meters_max) plus the unmetered line. O(rows in range), as the rest of stats.
 */
const SPEND_BY_METER_SQL = `
SELECT meter, SUM(amount)::text AS amount, COUNT(*)::text AS row_count
FROM entries
WHERE account_id = $1 AND created_at >= $2::timestamptz AND created_at < $3::timestamptz AND type IN ('usage', 'removal')
GROUP BY meter`;

export async function spendByMeter(
  context: LedgerContext,
  request: { account_id: string; from: Date; to: Date },
): Promise<MeterSpend[]> {
  const rows = await context.database.query<{ meter: string | null; amount: string; row_count: string }>(SPEND_BY_METER_SQL, [
    request.account_id,
    request.from.toISOString(),
    request.to.toISOString(),
  ]);
  return rows
    .map((row) => ({ meter: row.meter, nanos: numericToNanos(row.amount), count: Number(row.row_count) }))
    .sort((left, right) => (left.nanos === right.nanos ? String(left.meter).localeCompare(String(right.meter)) : left.nanos > right.nanos ? -1 : 1))
    .map((row) => ({ meter: row.meter, amount: formatNanos(row.nanos), count: row.count }));
}
