import type { LedgerContext } from "../core/context.js";
import { settleAccount } from "./settle.js";

/** Accounts one sweep batch takes; each account is settled in its own short transactions. */
export const SWEEP_BATCH_ACCOUNTS = 200;
/** Batches one tick runs at most, so a tick ends even while lots keep coming due. */
const SWEEP_BATCHES_PER_TICK = 50;
/** Accounts settled at once by one process. */
const SWEEP_CONCURRENCY = 8;

// Bounded by the due index (credit_lots_due): the accounts of the earliest due lots. Each batch settles its accounts
// completely, so the next batch finds the next ones; the loop ends when nothing is due or after batches_max.
const DUE_ACCOUNTS_SQL = `
SELECT DISTINCT account_id FROM (
  SELECT account_id FROM credit_lots
  WHERE status = 'open' AND expires_at IS NOT NULL AND expires_sort <= $1::timestamptz
  ORDER BY expires_sort LIMIT $2
) AS due`;

export interface SweepResult {
  accounts: number;
  lots_expired: number;
}

/**
 * Expires due lots across all accounts, in batches of at most `batch_accounts`. Any number of processes may sweep
 * at once: each account is settled under its lot lock, its expiration entries carry a key derived from the lot, and
 * a lot that another process has expired is no longer open, so every lot expires exactly once. Each process settles
 * its batch in a random order, so two sweepers mostly work on different accounts instead of queueing on the same
 * lock. Correctness never depends on the sweep: a balance read settles its account's due lots itself.
 */
export async function sweepExpiredLots(
  context: LedgerContext,
  options: { batch_accounts?: number; batches_max?: number; concurrency?: number } = {},
): Promise<SweepResult> {
  const batchAccounts = options.batch_accounts ?? SWEEP_BATCH_ACCOUNTS;
  const total: SweepResult = { accounts: 0, lots_expired: 0 };
  for (let batch = 0; batch < (options.batches_max ?? SWEEP_BATCHES_PER_TICK); batch++) {
    const now = context.clock.now();
    const rows = await context.database.query<{ account_id: string }>(DUE_ACCOUNTS_SQL, [now.toISOString(), batchAccounts]);
    if (rows.length === 0) break;
    const queue = rows.map((row) => row.account_id).sort(() => Math.random() - 0.5);
    const worker = async () => {
      for (let account_id = queue.pop(); account_id !== undefined; account_id = queue.pop()) {
        const expired = await settleAccount(context, account_id, { now });
        total.accounts++;
        total.lots_expired += expired.length;
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? SWEEP_CONCURRENCY, rows.length) }, worker));
  }
  return total;
}

/**
 * Runs the sweep every `interval_ms` until stopped. A failed tick is logged and the next one tries again. The
 * returned `stop` waits for a running tick to finish.
 */
export function startExpirySweep(context: LedgerContext, options: { interval_ms: number }): { stop(): Promise<void> } {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    running = sweepExpiredLots(context)
      .then((result) => {
        if (result.lots_expired > 0) context.logger.info({ ...result }, "expired credit lots");
      })
      .catch((error: unknown) => context.logger.warn({ err: error }, "expiry sweep failed"))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, options.interval_ms);
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
