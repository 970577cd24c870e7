import { randomUUID } from "node:crypto";
import type { Queryable } from "../db/port.js";
import type { LedgerContext } from "../ledger/core/context.js";
import { uuidv7 } from "../ledger/core/ids.js";
import { listEventsAfter } from "../ledger/events/events.js";
import { ALL_EVENTS } from "./endpoints.js";
import { DELIVERY_LIFETIME_MS, retryDelayMs } from "./schedule.js";

/**
 * The durable outbox. Work happens per endpoint, in one short transaction under the endpoint's row lock, taken with
 * SKIP LOCKED so processes sharing the database each take a different endpoint instead of queueing:
 *   1. fan-out: the events after the endpoint's position (at most FANOUT_EVENTS_MAX) become delivery rows, and the
 *      position moves past them, in the same transaction, so every event is offered exactly once;
 *   2. claim: due pending deliveries are leased, as many as the endpoint's in-flight limit leaves room for. The count
 *      of unexpired leases is read under the same row lock, so the limit holds across processes.
 * The HTTP request happens after commit, outside any transaction; its result is written back fenced by the lease
 * token. A process that dies mid-attempt leaves a lease that simply expires, and the delivery is attempted again:
 * delivery is at least once, and receivers deduplicate on `webhook-id` (the event id).
 */
export const FANOUT_EVENTS_MAX = 500;
/** Endpoints looked at per pass. There are at most WEBHOOK_ENDPOINTS_MAX, so one pass usually sees them all. */
const ENDPOINTS_PER_PASS_MAX = 100;

export interface OutboxPolicy {
  in_flight_per_endpoint_max: number;
  /** A lease outlives the attempt's timeout by a margin, so a slow but live attempt is never taken over. */
  lease_ms: number;
  retry_base_ms: number;
  random: () => number;
}

export interface ClaimedDelivery {
  id: string;
  endpoint_id: string;
  event_id: string;
  payload: string;
  attempt: number;
  lease_token: string;
  url: string;
  secret_encrypted: string;
  previous_secret_encrypted: string | null;
}

const DUE_ENDPOINTS_SQL = `
SELECT endpoint.id::text AS id FROM webhook_endpoints AS endpoint
WHERE endpoint.enabled AND (
  endpoint.event_position < (SELECT COALESCE(MAX(id), 0) FROM balance_events)
  OR EXISTS (
    SELECT 1 FROM webhook_deliveries AS delivery
    WHERE delivery.endpoint_id = endpoint.id AND delivery.status = 'pending' AND delivery.next_attempt_at <= $1::timestamptz
      AND (delivery.lease_until IS NULL OR delivery.lease_until <= $1::timestamptz)))
LIMIT ${ENDPOINTS_PER_PASS_MAX}`;

const LOCK_ENDPOINT_SQL = `
SELECT id::text AS id, url, event_types, event_position::text AS event_position, secret_encrypted,
  CASE WHEN previous_secret_expires_at > $2::timestamptz THEN previous_secret_encrypted END AS previous_secret_encrypted
FROM webhook_endpoints WHERE id = $1::uuid AND enabled
FOR UPDATE SKIP LOCKED`;

const INSERT_DELIVERIES_SQL = `
INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload, next_attempt_at, give_up_at, created_at)
SELECT delivery.id::uuid, $1::uuid, delivery.event_id::bigint, delivery.event_type, delivery.payload, $5::timestamptz,
  $5::timestamptz + make_interval(secs => $6::double precision / 1000), $5::timestamptz
-- Every array travels as text[], which both drivers send alike; the columns cast.
FROM unnest($2::text[], $3::text[], $4::text[], $7::text[]) AS delivery (id, event_id, event_type, payload)
ON CONFLICT (endpoint_id, event_id) DO NOTHING`;

const CLAIM_SQL = `
UPDATE webhook_deliveries SET lease_until = $3::timestamptz, lease_token = $4::uuid, attempts = attempts + 1
WHERE id IN (
  SELECT id FROM webhook_deliveries
  WHERE endpoint_id = $1::uuid AND status = 'pending' AND next_attempt_at <= $2::timestamptz
    AND (lease_until IS NULL OR lease_until <= $2::timestamptz)
  ORDER BY next_attempt_at, event_id
  LIMIT $5
  FOR UPDATE SKIP LOCKED)
RETURNING id::text AS id, event_id::text AS event_id, payload, attempts`;

/** The body every endpoint receives: Standard Webhooks' `type`, `timestamp`, `data`; `data` is the stream's event. */
export function webhookPayload(event: { type: string; time: string }): string {
  return JSON.stringify({ type: event.type, timestamp: event.time, data: event });
}

/** Endpoints with events to fan out or deliveries due, in a random order so processes spread over them. */
export async function dueEndpoints(database: Queryable, now: Date): Promise<string[]> {
  const rows = await database.query<{ id: string }>(DUE_ENDPOINTS_SQL, [now.toISOString()]);
  return rows.map((row) => row.id).sort(() => Math.random() - 0.5);
}

/** Fans out and claims for one endpoint; an endpoint another process holds right now is skipped (empty answer). */
export async function claimForEndpoint(
  context: LedgerContext,
  endpoint_id: string,
  policy: OutboxPolicy,
  slots: number,
): Promise<ClaimedDelivery[]> {
  const now = context.clock.now();
  return context.database.transaction(async (transaction) => {
    const [endpoint] = await transaction.query<{
      id: string;
      url: string;
      event_types: string[];
      event_position: string;
      secret_encrypted: string;
      previous_secret_encrypted: string | null;
    }>(LOCK_ENDPOINT_SQL, [endpoint_id, now.toISOString()]);
    if (!endpoint) return [];
    const events = await listEventsAfter(transaction, endpoint.event_position, FANOUT_EVENTS_MAX);
    const everything = endpoint.event_types.includes(ALL_EVENTS);
    const subscribed = events.filter((event) => everything || endpoint.event_types.includes(event.type));
    if (subscribed.length > 0) {
      await transaction.query(INSERT_DELIVERIES_SQL, [
        endpoint.id,
        subscribed.map(() => uuidv7(now.getTime())),
        subscribed.map((event) => event.id),
        subscribed.map((event) => event.type),
        now.toISOString(),
        DELIVERY_LIFETIME_MS,
        subscribed.map(webhookPayload),
      ]);
    }
    if (events.length > 0) {
      await transaction.query("UPDATE webhook_endpoints SET event_position = $2::bigint WHERE id = $1::uuid", [
        endpoint.id,
        events.at(-1)!.id,
      ]);
    }
    const [leased] = await transaction.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM webhook_deliveries
       WHERE endpoint_id = $1::uuid AND status = 'pending' AND lease_until > $2::timestamptz`,
      [endpoint.id, now.toISOString()],
    );
    const take = Math.min(slots, policy.in_flight_per_endpoint_max - Number(leased!.count));
    if (take <= 0) return [];
    const lease_token = randomUUID();
    const claimed = await transaction.query<{ id: string; event_id: string; payload: string; attempts: number }>(CLAIM_SQL, [
      endpoint.id,
      now.toISOString(),
      new Date(now.getTime() + policy.lease_ms).toISOString(),
      lease_token,
      take,
    ]);
    if (claimed.length === 0) return [];
    await transaction.query(
      `INSERT INTO webhook_delivery_attempts (delivery_id, attempt, started_at)
       SELECT id::uuid, attempt::int, $3::timestamptz FROM unnest($1::text[], $2::text[]) AS claimed (id, attempt)`,
      [claimed.map((row) => row.id), claimed.map((row) => String(row.attempts)), now.toISOString()],
    );
    return claimed.map((row) => ({
      id: row.id,
      endpoint_id: endpoint.id,
      event_id: row.event_id,
      payload: row.payload,
      attempt: Number(row.attempts),
      lease_token,
      url: endpoint.url,
      secret_encrypted: endpoint.secret_encrypted,
      previous_secret_encrypted: endpoint.previous_secret_encrypted,
    }));
  });
}

export interface AttemptOutcome {
  status?: number;
  error?: string;
  excerpt?: string;
  duration_ms: number;
}

const FINISH_ATTEMPT_SQL = `
UPDATE webhook_delivery_attempts SET finished_at = $3::timestamptz, response_status = $4, error = $5, response_excerpt = $6,
  duration_ms = $7
WHERE delivery_id = $1::uuid AND attempt = $2`;

/**
 * Writes an attempt's result, if this process still holds the lease (otherwise another process has taken the
 * delivery over and its attempt is the one that counts). A 2xx finishes the delivery and clears the endpoint's
 * failure run; anything else schedules the next attempt, or fails the delivery past its give-up time, and disables
 * the endpoint once its failures have run for DELIVERY_LIFETIME_MS (24 h). Answers whether the endpoint was disabled.
 */
export async function recordAttempt(
  context: LedgerContext,
  delivery: ClaimedDelivery,
  outcome: AttemptOutcome,
  policy: OutboxPolicy,
): Promise<{ recorded: boolean; succeeded: boolean; endpoint_disabled: boolean }> {
  const now = context.clock.now();
  const succeeded = outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300;
  const error = succeeded ? null : (outcome.error ?? `the receiver answered ${outcome.status}`);
  return context.database.transaction(async (transaction) => {
    const nextAttemptAt = new Date(now.getTime() + retryDelayMs(delivery.attempt, policy.retry_base_ms, policy.random));
    // The last automatic attempt falls at the give-up time itself; an attempt made at or after it is the last.
    const [updated] = await transaction.query<{ gave_up: boolean; failing_throughout: boolean }>(
      `WITH finished AS (
         UPDATE webhook_deliveries SET
           status = CASE WHEN $3::boolean THEN 'succeeded' WHEN $4::timestamptz >= give_up_at THEN 'failed' ELSE 'pending' END,
           next_attempt_at = CASE WHEN $3::boolean OR $4::timestamptz >= give_up_at THEN NULL ELSE LEAST($5::timestamptz, give_up_at) END,
           finished_at = CASE WHEN $3::boolean OR $4::timestamptz >= give_up_at THEN $4::timestamptz END,
           lease_until = NULL, lease_token = NULL,
           last_response_status = $6, last_error = $7
         WHERE id = $1::uuid AND lease_token = $2::uuid
         RETURNING status, endpoint_id, created_at
       )
       SELECT finished.status = 'failed' AND $4::timestamptz - finished.created_at >= make_interval(secs => $8::double precision / 1000) AS gave_up,
         -- No attempt to this endpoint has succeeded since this delivery's first attempt began.
         COALESCE(endpoint.failing_since <= (
           SELECT started_at FROM webhook_delivery_attempts WHERE delivery_id = $1::uuid AND attempt = 1), false) AS failing_throughout
       FROM finished JOIN webhook_endpoints AS endpoint ON endpoint.id = finished.endpoint_id`,
      [delivery.id, delivery.lease_token, succeeded, now.toISOString(), nextAttemptAt.toISOString(), outcome.status ?? null, error, DELIVERY_LIFETIME_MS],
    );
    if (!updated) return { recorded: false, succeeded, endpoint_disabled: false };
    await transaction.query(FINISH_ATTEMPT_SQL, [
      delivery.id,
      delivery.attempt,
      now.toISOString(),
      outcome.status ?? null,
      error,
      outcome.excerpt ?? null,
      outcome.duration_ms,
    ]);
    if (succeeded) {
      await transaction.query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1::uuid AND failing_since IS NOT NULL", [
        delivery.endpoint_id,
      ]);
      return { recorded: true, succeeded, endpoint_disabled: false };
    }
    // Failing for 24 h: the current run of failures is that old, or a delivery at least 24 h old has just failed
    // its last attempt with no success on the endpoint since its first attempt (a manual retry of a young delivery
    // that fails again does not count).
    const exhausted = updated.gave_up && updated.failing_throughout;
    const [endpoint] = await transaction.query<{ disabled: boolean }>(
      `WITH failing AS (
         SELECT id, COALESCE(failing_since, $2::timestamptz) AS since,
           enabled AND ($5::boolean OR $2::timestamptz - COALESCE(failing_since, $2::timestamptz) >= make_interval(secs => $3::double precision / 1000)) AS disable
         FROM webhook_endpoints WHERE id = $1::uuid
       )
       UPDATE webhook_endpoints SET
         failing_since = failing.since,
         enabled = webhook_endpoints.enabled AND NOT failing.disable,
         disabled_at = CASE WHEN failing.disable THEN $2::timestamptz ELSE disabled_at END,
         disabled_reason = CASE WHEN failing.disable
           THEN 'every attempt failed for 24 hours (since ' || to_char(failing.since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '); last error: ' || left($4, 200)
           ELSE disabled_reason END
       FROM failing WHERE webhook_endpoints.id = failing.id
       RETURNING failing.disable AS disabled`,
      [delivery.endpoint_id, now.toISOString(), DELIVERY_LIFETIME_MS, error, exhausted],
    );
    return { recorded: true, succeeded, endpoint_disabled: endpoint?.disabled ?? false };
  });
}

/** Deletes finished deliveries older than the retention window, in bounded batches; pending ones are never pruned. */
export async function pruneWebhookDeliveries(
  database: Queryable,
  options: { retention_days: number; now: Date; batch_rows?: number; batches_max?: number },
): Promise<number> {
  const batchRows = options.batch_rows ?? 2000;
  let deleted = 0;
  for (let batch = 0; batch < (options.batches_max ?? 20); batch++) {
    const rows = await database.query<{ id: string }>(
      `DELETE FROM webhook_deliveries WHERE id IN (
         SELECT id FROM webhook_deliveries
         WHERE status <> 'pending' AND finished_at < $1::timestamptz - make_interval(days => $2::int)
         ORDER BY finished_at LIMIT $3::int)
       RETURNING id::text AS id`,
      [options.now.toISOString(), options.retention_days, batchRows],
    );
    deleted += rows.length;
    if (rows.length < batchRows) break;
  }
  return deleted;
}
