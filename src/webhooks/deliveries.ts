import type { Queryable } from "../db/port.js";
import type { WebhookDeliveryStatus } from "../db/schema.js";
import { TallyError } from "../errors.js";
import type { LedgerContext } from "../ledger/core/context.js";
import { BIGINT_MAX } from "../db/keyset-bounds.js";

/** Attempts shown per delivery: the automatic schedule makes about 15; manual retries add to them. */
export const ATTEMPTS_SHOWN_MAX = 20;

export interface WebhookAttempt {
  attempt: number;
  started_at: string;
  finished_at: string | null;
  /** `interrupted`: the process making the attempt stopped before it could write the result. */
  outcome: "succeeded" | "failed" | "in_flight" | "interrupted";
  response_status: number | null;
  error: string | null;
  response_excerpt: string | null;
  duration_ms: number | null;
}

export interface WebhookDelivery {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  last_response_status: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  give_up_at: string;
  created_at: string;
  finished_at: string | null;
  attempt_log: WebhookAttempt[];
}

interface DeliveryRow {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  last_response_status: number | null;
  last_error: string | null;
  next_attempt_at: Date | string | null;
  give_up_at: Date | string;
  created_at: Date | string;
  finished_at: Date | string | null;
  lease_until: Date | string | null;
}

interface AttemptRow {
  delivery_id: string;
  attempt: number;
  started_at: Date | string;
  finished_at: Date | string | null;
  response_status: number | null;
  error: string | null;
  response_excerpt: string | null;
  duration_ms: number | null;
}

const iso = (value: Date | string | null): string | null => (value === null ? null : new Date(value).toISOString());

const DELIVERY_COLUMNS = `id::text AS id, endpoint_id::text AS endpoint_id, event_id::text AS event_id, event_type, status, attempts,
  last_response_status, last_error, next_attempt_at, give_up_at, created_at, finished_at, lease_until`;

async function withAttempts(database: Queryable, rows: DeliveryRow[], now: Date): Promise<WebhookDelivery[]> {
  if (rows.length === 0) return [];
  const attempts = await database.query<AttemptRow>(
    `SELECT attempt_row.delivery_id::text AS delivery_id, attempt_row.attempt, attempt_row.started_at, attempt_row.finished_at,
       attempt_row.response_status, attempt_row.error, attempt_row.response_excerpt, attempt_row.duration_ms
     FROM unnest($1::text[]) AS wanted (id)
     CROSS JOIN LATERAL (
       SELECT * FROM webhook_delivery_attempts WHERE delivery_id = wanted.id::uuid ORDER BY attempt DESC LIMIT ${ATTEMPTS_SHOWN_MAX}
     ) AS attempt_row`,
    [rows.map((row) => row.id)],
  );
  const byDelivery = new Map<string, AttemptRow[]>();
  for (const attempt of attempts) byDelivery.set(attempt.delivery_id, [...(byDelivery.get(attempt.delivery_id) ?? []), attempt]);
  return rows.map((row) => {
    const leased = row.lease_until !== null && new Date(row.lease_until) > now;
    const log = (byDelivery.get(row.id) ?? [])
      .sort((left, right) => left.attempt - right.attempt)
      .map((attempt): WebhookAttempt => {
        const unfinished = attempt.finished_at === null;
        // Only the newest attempt can be in flight, and only while its lease lasts.
        const inFlight = unfinished && leased && attempt.attempt === row.attempts;
        const succeeded = attempt.response_status !== null && attempt.response_status >= 200 && attempt.response_status < 300;
        return {
          attempt: attempt.attempt,
          started_at: iso(attempt.started_at)!,
          finished_at: iso(attempt.finished_at),
          outcome: inFlight ? "in_flight" : unfinished ? "interrupted" : succeeded ? "succeeded" : "failed",
          response_status: attempt.response_status,
          error: attempt.error,
          response_excerpt: attempt.response_excerpt,
          duration_ms: attempt.duration_ms,
        };
      });
    return {
      id: row.id,
      endpoint_id: row.endpoint_id,
      event_id: row.event_id,
      event_type: row.event_type,
      status: row.status,
      attempts: row.attempts,
      last_response_status: row.last_response_status,
      last_error: row.last_error,
      next_attempt_at: iso(row.next_attempt_at),
      give_up_at: iso(row.give_up_at)!,
      created_at: iso(row.created_at)!,
      finished_at: iso(row.finished_at),
      attempt_log: log,
    };
  });
}

async function requireEndpoint(database: Queryable, endpoint_id: string): Promise<void> {
  const [row] = await database.query<{ id: string }>("SELECT id::text AS id FROM webhook_endpoints WHERE id = $1::uuid", [endpoint_id]);
  if (!row) throw new TallyError("webhook_endpoint_not_found", `no webhook endpoint ${endpoint_id}`);
}

/** One page of an endpoint's deliveries, newest event first; `before_event_id` continues a walk. */
export async function listWebhookDeliveries(
  context: LedgerContext,
  endpoint_id: string,
  options: { limit: number; status?: WebhookDeliveryStatus; before_event_id?: string },
): Promise<{ deliveries: WebhookDelivery[]; next_before_event_id?: string }> {
  await requireEndpoint(context.database, endpoint_id);
  // One statement per filter and a bound that is always there (db/keyset-bounds.ts): a generic plan keeps both as
  // index conditions, so a deep page does not walk the endpoint from its newest.
  const rows = await context.database.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries
     WHERE endpoint_id = $1::uuid AND ${options.status === undefined ? "$2::text IS NULL" : "status = $2::text"} AND event_id < $3::bigint
     ORDER BY event_id DESC LIMIT $4`,
    [endpoint_id, options.status ?? null, options.before_event_id ?? BIGINT_MAX, options.limit + 1],
  );
  const page = rows.slice(0, options.limit);
  return {
    deliveries: await withAttempts(context.database, page, context.clock.now()),
    ...(rows.length > options.limit ? { next_before_event_id: page.at(-1)!.event_id } : {}),
  };
}

export async function getWebhookDelivery(context: LedgerContext, endpoint_id: string, delivery_id: string): Promise<WebhookDelivery> {
  const [row] = await context.database.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1::uuid AND endpoint_id = $2::uuid`,
    [delivery_id, endpoint_id],
  );
  if (!row) throw new TallyError("webhook_delivery_not_found", `no delivery ${delivery_id} for webhook endpoint ${endpoint_id}`);
  return (await withAttempts(context.database, [row], context.clock.now()))[0]!;
}

/**
 * Makes a delivery due now. A pending delivery keeps its schedule after this attempt; a finished one (failed, or
 * succeeded and wanted again) gets one more attempt and no automatic ones after it: its give-up time is now. An
 * attempt in flight is left alone (the answer shows it), so a retry never runs two attempts of a delivery at once.
 */
export async function retryWebhookDelivery(context: LedgerContext, endpoint_id: string, delivery_id: string): Promise<WebhookDelivery> {
  await requireEndpoint(context.database, endpoint_id);
  const now = context.clock.now().toISOString();
  await context.database.query(
    `UPDATE webhook_deliveries SET
       status = 'pending',
       next_attempt_at = $3::timestamptz,
       give_up_at = CASE WHEN status = 'pending' THEN give_up_at ELSE $3::timestamptz END,
       finished_at = NULL
     WHERE id = $1::uuid AND endpoint_id = $2::uuid AND (lease_until IS NULL OR lease_until <= $3::timestamptz)`,
    [delivery_id, endpoint_id, now],
  );
  return getWebhookDelivery(context, endpoint_id, delivery_id);
}
