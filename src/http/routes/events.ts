import { BALANCE_EVENT_TYPES } from "../../db/schema.js";
import { createRoute, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import type { LedgerContext } from "../../ledger/core/context.js";
import { latestEventId } from "../../ledger/events/events.js";
import { followEvents } from "../follow-events.js";
import { TallyError } from "../../errors.js";
import { requireServiceScope } from "../auth.js";
import { errorResponses } from "../problem.js";
import { createRouter } from "../router.js";
import { BEARER_SECURITY } from "../route-parts.js";

export interface StreamLimits {
  /** Comment lines at this interval keep proxies from closing an idle stream. */
  heartbeat_ms: number;
  /** Catch-up reads at this interval even without a wake-up (events from processes that did not NOTIFY). */
  poll_ms: number;
  /** A stream ends after this long; the client reconnects with Last-Event-ID and loses nothing. */
  stream_max_ms: number;
  /** Concurrent streams per process. */
  streams_max: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  heartbeat_ms: 15_000,
  poll_ms: 1_000,
  stream_max_ms: 60 * 60 * 1000,
  streams_max: 256,
};

const EVENT_ID_MAX = 2n ** 63n - 1n;
const EventIdSchema = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,18})$/, "must be an event id")
  .refine((value) => BigInt(value) <= EVENT_ID_MAX, "must be an event id");

/** Every type the stream carries, from the one list the table's CHECK constraint is made from. */
const EVENT_TYPES_TEXT = BALANCE_EVENT_TYPES.map((type) => `\`${type}\``).join(", ");

const SseStreamSchema = z.string().openapi({
  // OpenAPI 3.1 cannot type the messages of a stream (3.2's itemSchema can), so the data is described in words.
  description:
    "text/event-stream messages. Each `data:` line is one JSON object: `id` (decimal string, increasing in commit " +
    `order, with gaps), \`type\` (${EVENT_TYPES_TEXT}), \`account_id\`, \`balance\` (decimal string, ` +
    "the balance when the event was emitted) and `time` (ISO 8601); `credits_expired` adds `lot_id` and `amount`, " +
    "`auto_topup_requested` adds `request_id` and `amount` (what to charge).",
  example:
    'id: 1\n\nevent: balance_restored\ndata: {"id":"2","type":"balance_restored","account_id":"org_99","balance":"10","time":"2026-11-21T20:07:08.787Z"}\nid: 2\n\n',
});

export function eventRoutes(deps: { ledger: LedgerContext; limits?: StreamLimits }) {
  const { ledger } = deps;
  const limits = deps.limits ?? DEFAULT_STREAM_LIMITS;
  let open = 0;
  return createRouter().openapi(
    createRoute({
      method: "get",
      path: "/v1/events",
      operationId: "streamEvents",
      summary: "Server-Sent Events stream of balance events (crossings, expiries, auto top-up requests)",
      description:
        "Resume with the `Last-Event-ID` header (browsers send it on reconnect) or `?after=<id>`; without either, " +
        "the stream starts with new events only. Use `?after=0` to replay everything still retained. Each event has " +
        "`id`, `event` (its type) and `data` (JSON: id, type, account_id, balance, time). Heartbeat comments are sent " +
        "every 15 s; a stream ends after an hour, and the client reconnects with Last-Event-ID.",
      tags: ["events"],
      security: BEARER_SECURITY,
      middleware: [requireServiceScope("events:read")] as const,
      request: {
        query: z.strictObject({ after: EventIdSchema.optional().openapi({ param: { name: "after", in: "query" } }) }),
        headers: z.object({ "last-event-id": EventIdSchema.optional() }),
      },
      responses: {
        200: {
          description:
            "A Server-Sent Events stream (never JSON). It opens with an id-only message (`id: <cursor>`), then sends one " +
            "message per event: `event:` its type, `data:` the event as one line of JSON , " +
            "`id:` its id. `: heartbeat` comments come after 15 s without events.",
          content: { "text/event-stream": { schema: SseStreamSchema } },
        },
        ...errorResponses("validation_failed", "unauthorized", "forbidden", "stream_limit_reached"),
      },
    }),
    async (c) => {
      const { after } = c.req.valid("query");
      const resumeFrom = c.req.valid("header")["last-event-id"] ?? after;
      // A client that reconnects into a process that is shutting down is sent elsewhere instead of kept.
      if (ledger.events.hub.closed) throw new TallyError("service_unavailable", "this process is shutting down; reconnect later");
      if (open >= limits.streams_max) {
        throw new TallyError("stream_limit_reached", `this process already serves ${limits.streams_max} event streams`);
      }
      // Counted before the first await, so simultaneous connects cannot overshoot the limit.
      open++;
      let cursor: string;
      try {
        cursor = resumeFrom ?? (await latestEventId(ledger.database));
      } catch (error) {
        open--;
        throw error;
      }
      return streamSSE(c, async (stream) => {
        // An id-only message: the client learns where it starts (its Last-Event-ID) before any event arrives.
        await stream.write(`id: ${cursor}\n\n`);
        try {
          await followEvents(stream, ledger, { cursor, limits, data: (event) => JSON.stringify(event) });
        } finally {
          open--;
        }
      });
    },
  );
}
