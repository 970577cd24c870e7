import type { SSEStreamingApi } from "hono/streaming";
import type { LedgerContext } from "../ledger/core/context.js";
import type { BalanceEvent } from "../ledger/events/crossings.js";
import { EVENTS_PAGE_MAX, listEventsAfter } from "../ledger/events/events.js";

export interface FollowLimits {
  heartbeat_ms: number;
  /** Catch-up reads at this interval even without a wake-up (events of other processes). */
  poll_ms: number;
  stream_max_ms: number;
}

/**
 * The catch-up loop behind every event stream (`GET /v1/events`, the console's live marking): read the events after
 * `cursor` from the table, which is the truth, write them, then sleep until the in-process hub wakes it, the client
 * goes away, or `poll_ms` passes; a heartbeat comment after `heartbeat_ms` of silence. Ends after `stream_max_ms`,
 * when the client disconnects, or when the process shuts down; the client then reconnects with Last-Event-ID.
 */
export async function followEvents(
  stream: SSEStreamingApi,
  ledger: LedgerContext,
  options: { cursor: string; limits: FollowLimits; data: (event: BalanceEvent) => string },
): Promise<void> {
  const { limits } = options;
  let cursor = options.cursor;
  let wake: (() => void) | undefined;
  const unsubscribe = ledger.events.hub.subscribe(() => wake?.());
  stream.onAbort(() => wake?.());
  const deadline = Date.now() + limits.stream_max_ms;
  let lastWrite = Date.now();
  try {
    while (!stream.aborted && !stream.closed && !ledger.events.hub.closed && Date.now() < deadline) {
      const events = await listEventsAfter(ledger.database, cursor, EVENTS_PAGE_MAX);
      for (const event of events) {
        await stream.writeSSE({ id: event.id, event: event.type, data: options.data(event) });
        cursor = event.id;
        lastWrite = Date.now();
      }
      if (events.length === EVENTS_PAGE_MAX) continue;
      if (Date.now() - lastWrite >= limits.heartbeat_ms) {
        await stream.write(": heartbeat\n\n");
        lastWrite = Date.now();
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(limits.poll_ms, limits.heartbeat_ms, Math.max(0, deadline - Date.now())));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    unsubscribe();
  }
}
