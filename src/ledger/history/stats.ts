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
  SELECT date_trunc($2, created_at AT TIME ZONE 'UTC') AS start, type, SUM(amount) AS amount, SUM(delta) AS delta,
         COUNT(*) AS row_count
  FROM entries
  WHERE account_id = $1 AND created_at >= $3::timestamptz AND created_at < $4::timestamptz
  GROUP BY 1, 2
)
SELECT (b.start AT TIME ZONE 'UTC') AS start, r.type, r.amount::text AS amount, r.delta::text AS delta,
       r.row_count::text AS row_count
FROM buckets b LEFT JOIN rows r ON r.start = b.start
ORDER BY b.start, r.type`;

/**
 * Which total each type adds to. Spend is usage and removals, earnings are purchases, grants and bonuses;
 * corrections are reported on lines of their own (refunds and reversals apart from spend and purchases, transfers
 * in and out, adjustments as their signed sum), and `net` is the sum of every delta.
 */
const LINE_OF: Record<EntryType, Exclude<keyof Accumulator, "count" | "net">> = {
  usage: "spent",
  removal: "spent",
  purchase: "earned",
  grant: "earned",
  bonus: "earned",
  refund: "refunded",
  reversal: "reversed",
  transfer_in: "transferred_in",
  transfer_out: "transferred_out",
  adjustment: "adjusted",
  // Credit lots: what left by expiry or void, apart from spend (what was used).
  expiration: "expired",
};

interface Totals {
  spent: string;
  earned: string;
  net: string;
  count: number;
  refunded: string;
  reversed: string;
  transferred_in: string;
  transferred_out: string;
  adjusted: string;
  expired: string;
}

interface Accumulator {
  spent: bigint;
  earned: bigint;
  net: bigint;
  count: number;
  refunded: bigint;
  reversed: bigint;
  transferred_in: bigint;
  transferred_out: bigint;
  adjusted: bigint;
  expired: bigint;
}

function emptyAccumulator(): Accumulator {
  return { spent: 0n, earned: 0n, net: 0n, count: 0, refunded: 0n, reversed: 0n, transferred_in: 0n, transferred_out: 0n, adjusted: 0n, expired: 0n };
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
    net: formatNanos(accumulator.net),
    count: accumulator.count,
    refunded: formatNanos(accumulator.refunded),
    reversed: formatNanos(accumulator.reversed),
    transferred_in: formatNanos(accumulator.transferred_in),
    transferred_out: formatNanos(accumulator.transferred_out),
    adjusted: formatNanos(accumulator.adjusted),
    expired: formatNanos(accumulator.expired),
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
  const rows = await context.database.query<{
    start: Date | string;
    type: EntryType | null;
    amount: string | null;
    delta: string | null;
    row_count: string | null;
  }>(
    STATS_SQL,
    [request.account_id, request.interval, request.from.toISOString(), request.to.toISOString()],
  );
  const total = emptyAccumulator();
  const byType = new Map<EntryType, { amount: bigint; count: number }>();
  const buckets = new Map<string, Accumulator>();
  for (const row of rows) {
    const start = new Date(row.start).toISOString();
    const bucket = buckets.get(start) ?? emptyAccumulator();
    buckets.set(start, bucket);
    if (row.type === null || row.amount === null || row.delta === null || row.row_count === null) continue;
    const amount = numericToNanos(row.amount);
    const delta = numericToNanos(row.delta);
    const count = Number(row.row_count);
    const line = LINE_OF[row.type];
    for (const accumulator of [bucket, total]) {
      // Adjustments are signed, so their line is the sum of deltas; every other line sums amounts.
      accumulator[line] += line === "adjusted" ? delta : amount;
      accumulator.net += delta;
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
