import { formatNanos, numericToNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import type { EntryType } from "../../db/schema.js";

export const STATS_INTERVALS = ["day", "week", "month"] as const;
export type StatsInterval = (typeof STATS_INTERVALS)[number];
/** The most buckets one request may ask for: a bound on the work and on the response. */
export const STATS_BUCKETS_MAX = 400;

/**
 * Totals and a dense time series (one bucket per interval, zeros included, UTC; weeks start on Monday) over
 * [from, to). Every ledger row counts on its own, batched or not. The query reads the account's rows in the range
 * (O(rows in range)).
 */
const STATS_SQL = `
WITH buckets AS (
  SELECT generate_series(date_trunc($2, $3::timestamptz AT TIME ZONE 'UTC'),
                         $4::timestamptz AT TIME ZONE 'UTC' - interval '1 microsecond',
                         ('1 ' || $2)::interval) AS start
), rows AS (
  SELECT date_trunc($2, created_at AT TIME ZONE 'UTC') AS start, type, SUM(amount) AS amount, COUNT(*) AS row_count
  FROM entries
  WHERE account_id = $1 AND created_at >= $3::timestamptz AND created_at < $4::timestamptz
  GROUP BY 1, 2
)
SELECT (b.start AT TIME ZONE 'UTC') AS start, r.type, r.amount::text AS amount, r.row_count::text AS row_count
FROM buckets b LEFT JOIN rows r ON r.start = b.start
ORDER BY b.start, r.type`;

const CREDIT: ReadonlySet<string> = new Set(["purchase", "grant", "refund", "bonus"]);

interface Totals {
  spent: string;
  earned: string;
  /** Credit that left by expiry or void (expiration entries): reported apart from spent, which is what was used. */
  expired: string;
  net: string;
  count: number;
}

interface Accumulator {
  spent: bigint;
  earned: bigint;
  expired: bigint;
  count: number;
}

export interface AccountStats {
  account_id: string;
  from: string;
  to: string;
  interval: StatsInterval;
  totals: Totals & { by_type: Partial<Record<EntryType, { amount: string; count: number }>> };
  series: (Totals & { start: string })[];
}

function finish(accumulator: Accumulator): Totals {
  return {
    spent: formatNanos(accumulator.spent),
    earned: formatNanos(accumulator.earned),
    expired: formatNanos(accumulator.expired),
    net: formatNanos(accumulator.earned - accumulator.spent - accumulator.expired),
    count: accumulator.count,
  };
}

const DAY_MS = 86_400_000;

/** The UTC start of the bucket holding `date`, as date_trunc does (weeks start on Monday). */
function bucketStart(date: Date, interval: StatsInterval): Date {
  const day = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate());
  if (interval === "day") return new Date(day);
  if (interval === "week") return new Date(day - ((date.getUTCDay() + 6) % 7) * DAY_MS);
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1));
}

/** Exactly how many buckets the series over [from, to) has: from from's bucket to the one holding to's last instant. */
export function bucketCount(from: Date, to: Date, interval: StatsInterval): number {
  const first = bucketStart(from, interval);
  const last = bucketStart(new Date(to.getTime() - 1), interval);
  if (interval === "month") {
    return (last.getUTCFullYear() - first.getUTCFullYear()) * 12 + (last.getUTCMonth() - first.getUTCMonth()) + 1;
  }
  return Math.round((last.getTime() - first.getTime()) / (interval === "day" ? DAY_MS : 7 * DAY_MS)) + 1;
}

export async function accountStats(
  context: LedgerContext,
  request: { account_id: string; from: Date; to: Date; interval: StatsInterval },
): Promise<AccountStats> {
  const rows = await context.database.query<{ start: Date | string; type: EntryType | null; amount: string | null; row_count: string | null }>(
    STATS_SQL,
    [request.account_id, request.interval, request.from.toISOString(), request.to.toISOString()],
  );
  const total: Accumulator = { spent: 0n, earned: 0n, expired: 0n, count: 0 };
  const byType = new Map<EntryType, { amount: bigint; count: number }>();
  const buckets = new Map<string, Accumulator>();
  for (const row of rows) {
    const start = new Date(row.start).toISOString();
    const bucket = buckets.get(start) ?? { spent: 0n, earned: 0n, expired: 0n, count: 0 };
    buckets.set(start, bucket);
    if (row.type === null || row.amount === null || row.row_count === null) continue;
    const amount = numericToNanos(row.amount);
    const count = Number(row.row_count);
    for (const accumulator of [bucket, total]) {
      if (CREDIT.has(row.type)) accumulator.earned += amount;
      else if (row.type === "expiration") accumulator.expired += amount;
      else accumulator.spent += amount;
      accumulator.count += count;
    }
    const typed = byType.get(row.type) ?? { amount: 0n, count: 0 };
    typed.amount += amount;
    typed.count += count;
    byType.set(row.type, typed);
  }
  return {
    account_id: request.account_id,
    from: request.from.toISOString(),
    to: request.to.toISOString(),
    interval: request.interval,
    totals: {
      ...finish(total),
      by_type: Object.fromEntries([...byType].map(([type, value]) => [type, { amount: formatNanos(value.amount), count: value.count }])),
    },
    series: [...buckets].map(([start, accumulator]) => ({ start, ...finish(accumulator) })),
  };
}
