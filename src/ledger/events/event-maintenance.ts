import type { LedgerContext } from "../core/context.js";
import { pruneEvents } from "./events.js";

const PRUNE_INTERVAL_MS = 10 * 60 * 1000;

/**
 * The process-wide background work of the event stream: one LISTEN that turns NOTIFYs from any tally process into
 * wake-ups for this process's stream readers (and a wake-up on every reconnect, so readers catch up on what they
 * missed), and the retention job.
 */
export async function startEventMaintenance(
  context: LedgerContext,
  options: { retention_days: number },
): Promise<{ stop(): Promise<void> }> {
  const unlisten = await context.database.listen(
    context.events.notify_channel,
    () => context.events.hub.publish(),
    () => context.events.hub.publish(),
  );
  let pruning: Promise<void> = Promise.resolve();
  const prune = () => {
    pruning = pruneEvents(context.database, { retention_days: options.retention_days })
      .then((deleted) => {
        if (deleted > 0) context.logger.info({ deleted }, "pruned balance events past retention");
      })
      .catch((error: unknown) => context.logger.warn({ err: error }, "pruning balance events failed"));
  };
  prune();
  const timer = setInterval(prune, PRUNE_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await pruning;
      await unlisten();
    },
  };
}
