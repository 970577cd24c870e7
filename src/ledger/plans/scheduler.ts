import type { LedgerContext } from "../core/context.js";
import { renewAccount } from "./renewal.js";

/** Subscriptions one claim takes: one short statement, then one short transaction per account. */
export const RENEWAL_BATCH_SIZE = 100;
/** Batches one tick runs at most; a tick that used them all is followed at once by the next. */
const RENEWAL_BATCHES_PER_TICK = 20;
/** Accounts renewed at once by one process. */
const RENEWAL_CONCURRENCY = 4;
/**
 * How long a claim keeps other processes off a subscription. A process that dies holding claims delays those
 * renewals by this much (and no more); a renewal that fails is retried when its claim lapses.
 */
export const RENEWAL_CLAIM_LEASE_MS = 5 * 60_000;

/**
 * Takes up to `batch_size` due subscriptions no other process holds, in one statement: FOR UPDATE SKIP LOCKED makes
 * concurrent claimers take disjoint rows without waiting on each other, and the lease written in the same statement
 * keeps them disjoint after it commits. The claim is only a division of work; exactness comes from the per-account
 * transaction in renewAccount (row lock, granted-period guard, derived key).
 */
const CLAIM_SQL = `
WITH due AS (
  SELECT account_id FROM plan_subscriptions
  WHERE next_renewal_at <= $1::timestamptz AND (claim_expires_at IS NULL OR claim_expires_at <= $1::timestamptz)
  ORDER BY next_renewal_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
)
UPDATE plan_subscriptions AS subscription SET claim_expires_at = $3::timestamptz
FROM due WHERE subscription.account_id = due.account_id
RETURNING subscription.account_id`;

export interface RenewalTickResult {
  claimed: number;
  granted: number;
  skipped: number;
  failed: number;
  /** True when the tick stopped at its batch bound with work possibly left. */
  more: boolean;
}

export async function renewDueSubscriptions(
  context: LedgerContext,
  options: { batch_size?: number; batches_max?: number; concurrency?: number; should_stop?: () => boolean } = {},
): Promise<RenewalTickResult> {
  const batchSize = options.batch_size ?? RENEWAL_BATCH_SIZE;
  const batchesMax = options.batches_max ?? RENEWAL_BATCHES_PER_TICK;
  const total: RenewalTickResult = { claimed: 0, granted: 0, skipped: 0, failed: 0, more: false };
  for (let batch = 0; batch < batchesMax; batch++) {
    if (options.should_stop?.()) return total;
    const now = context.clock.now();
    const claimed = await context.database.query<{ account_id: string }>(CLAIM_SQL, [
      now.toISOString(),
      batchSize,
      new Date(now.getTime() + RENEWAL_CLAIM_LEASE_MS).toISOString(),
    ]);
    if (claimed.length === 0) return total;
    total.claimed += claimed.length;
    const queue = claimed.map((row) => row.account_id);
    const worker = async () => {
      for (let account_id = queue.pop(); account_id !== undefined; account_id = queue.pop()) {
        try {
          const outcome = await renewAccount(context, account_id, context.clock.now());
          if (outcome.kind === "granted") total.granted++;
          else total.skipped++;
        } catch (error) {
          total.failed++;
          context.logger.warn({ err: error, account_id }, "renewal failed; retried when its claim lapses");
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? RENEWAL_CONCURRENCY, claimed.length) }, worker));
    if (claimed.length < batchSize) return total;
  }
  total.more = true;
  return total;
}

/**
 * Renews due subscriptions every `interval_ms` until stopped (within a minute of a period start at the default
 * 10 s). A tick that stopped at its bound is followed at once by the next, so a wave of 100,000 renewals proceeds
 * in batches without ever holding a long transaction. `stop` lets the batch in progress finish, then returns.
 */
export function startRenewalScheduler(context: LedgerContext, options: { interval_ms: number }): { stop(): Promise<void> } {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    let more = false;
    running = renewDueSubscriptions(context, { should_stop: () => stopped })
      .then((result) => {
        more = result.more;
        if (result.granted > 0 || result.failed > 0) context.logger.info({ ...result }, "renewed subscriptions");
      })
      .catch((error: unknown) => context.logger.warn({ err: error }, "renewal tick failed"))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, more ? 0 : options.interval_ms);
      });
  };
  timer = setTimeout(tick, options.interval_ms);
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
