import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { LedgerContext } from "../ledger/core/context.js";
import { latestEventId } from "../ledger/events/events.js";
import { followEvents } from "../http/follow-events.js";

/**
 * The accounts page's live marking: a Server-Sent Events stream of the ledger's events for a console session,
 * the same events and the same catch-up loop as `GET /v1/events` (woken by the in-process hub and by NOTIFYs from
 * other processes, caught up from the events table, which is the truth). A page cannot send a bearer header with
 * EventSource, so this route authenticates with the session cookie instead.
 *
 * Streams are short (CONSOLE_STREAM_LIMITS.stream_max_ms): the browser reconnects by itself with Last-Event-ID,
 * and every reconnect passes the session check again, so a revoked key or an ended session stops the stream within
 * that time. Without JavaScript, or without EventSource, the page is complete, only not live.
 */
export const CONSOLE_STREAM_LIMITS = {
  heartbeat_ms: 15_000,
  /** Catch-up reads at this interval even without a wake-up. */
  poll_ms: 1_000,
  stream_max_ms: 5 * 60_000,
  /** Concurrent console streams per process, apart from the API's own limit. */
  streams_max: 32,
  /** What the browser waits before reconnecting after a stream ends. */
  retry_ms: 1_000,
};

const EVENT_ID = /^(0|[1-9][0-9]{0,18})$/;

export function consoleEventStream(ledger: LedgerContext, limits = CONSOLE_STREAM_LIMITS) {
  let open = 0;
  return async (c: Context) => {
    const resume = c.req.header("last-event-id") ?? c.req.query("after");
    if (resume !== undefined && !EVENT_ID.test(resume)) return c.text("after must be an event id", 400);
    if (ledger.events.hub.closed) return c.text("shutting down", 503);
    if (open >= limits.streams_max) return c.text("too many console streams", 503, { "Retry-After": "10" });
    // Counted before the first await, so simultaneous connects cannot overshoot the limit.
    open++;
    let cursor: string;
    try {
      cursor = resume ?? (await latestEventId(ledger.database));
    } catch (error) {
      open--;
      throw error;
    }
    return streamSSE(c, async (stream) => {
      await stream.write(`retry: ${limits.retry_ms}\nid: ${cursor}\n\n`);
      try {
        await followEvents(stream, ledger, {
          cursor,
          limits,
          data: (event) => JSON.stringify({ type: event.type, account_id: event.account_id }),
        });
      } finally {
        open--;
      }
    });
  };
}
