import type { LedgerContext } from "../core/context.js";

/** Bounds of one retention run: batches of this many holds, at most this many batches (the rest waits for the next run). */
export const HOLD_RETENTION_LIMITS = { batch_rows: 5000, batches_max: 20, interval_ms: 10 * 60 * 1000 } as const;

const DAY_MS = 86_400_000;

/**
 * Deletes holds that ended more than `retention_days` ago, oldest first: captured or released ones by when they were
 * closed, never-closed ones by when they expired. A hold is reservation state, not the ledger: its capture is a usage
 * entry that stays (naming the hold id), and an ended hold no longer counts in `available`. Without this, a proxy
 * that reserves before every call would grow the table by a row per call forever. After deletion the hold's id is
 * 404, a capture of a long-expired hold is refused, and its idempotency key can be used again. Bounded: batches of
 * `batch_rows` through the `holds_ended_at` index, at most `batches_max` per call. Judged by the ledger's clock.
 */
export async function pruneHolds(
  context: LedgerContext,
  options: { retention_days: number; batch_rows?: number; batches_max?: number },
): Promise<number> {
  const batch_rows = options.batch_rows ?? HOLD_RETENTION_LIMITS.batch_rows;
  const cutoff = new Date(context.clock.now().getTime() - options.retention_days * DAY_MS).toISOString();
  let deleted = 0;
  for (let batch = 0; batch < (options.batches_max ?? HOLD_RETENTION_LIMITS.batches_max); batch++) {
    const rows = await context.database.query<{ id: string }>(
      `DELETE FROM holds WHERE (account_id, id) IN (
         SELECT account_id, id FROM holds
         WHERE COALESCE(closed_at, expires_at) < $1::timestamptz
         ORDER BY COALESCE(closed_at, expires_at)
         LIMIT $2::int)
       RETURNING id::text AS id`,
      [cutoff, batch_rows],
    );
    deleted += rows.length;
    if (rows.length < batch_rows) break;
  }
  return deleted;
}

/** Runs `pruneHolds` at start and every `interval_ms`; a failure is logged and the next run tries again. */
export function startHoldRetention(
  context: LedgerContext,
  options: { retention_days: number; interval_ms?: number },
): { stop(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const prune = () => {
    running = pruneHolds(context, { retention_days: options.retention_days })
      .then((deleted) => {
        if (deleted > 0) context.logger.info({ deleted }, "deleted holds ended before the retention period");
      })
      .catch((error: unknown) => context.logger.warn({ err: error }, "deleting ended holds failed"));
  };
  prune();
  const timer = setInterval(prune, options.interval_ms ?? HOLD_RETENTION_LIMITS.interval_ms);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
