import { BALANCE_EVENT_TYPES } from "../db/schema.js";
import type { Queryable } from "../db/port.js";
import { TallyError } from "../errors.js";
import type { LedgerContext } from "../ledger/core/context.js";
import { uuidv7 } from "../ledger/core/ids.js";
import { latestEventId } from "../ledger/events/events.js";
import { DELIVERY_LIFETIME_MS } from "./schedule.js";
import { generateWebhookSecret, type SecretBox } from "./secret-box.js";

/** Endpoints tally keeps at most: each one is read by every fan-out pass. */
export const WEBHOOK_ENDPOINTS_MAX = 100;
export const WEBHOOK_URL_LENGTH_MAX = 2048;
export const WEBHOOK_EVENT_TYPES_MAX = 32;
/** How long the previous secret keeps signing after a rotation, so receivers can switch without a gap. */
export const PREVIOUS_SECRET_LIFETIME_MS = 24 * 60 * 60 * 1000;
/** Subscribes to every event type the stream carries, including types added after the endpoint was made. */
export const ALL_EVENTS = "*";

/**
 * The event types an endpoint may name: whatever the event stream carries (BALANCE_EVENT_TYPES in the schema, the
 * same list the events table's CHECK enforces), so a type another capability adds there becomes subscribable
 * without a change here.
 */
export function subscribableEventTypes(): readonly string[] {
  return [ALL_EVENTS, ...BALANCE_EVENT_TYPES];
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  description: string | null;
  events: string[];
  enabled: boolean;
  /** Why tally disabled the endpoint (24 h of failures), or null. A PATCH that enables it clears this. */
  disabled_reason: string | null;
  disabled_at: string | null;
  failing_since: string | null;
  created_at: string;
  updated_at: string;
}

interface EndpointRow {
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: boolean;
  disabled_reason: string | null;
  disabled_at: Date | string | null;
  failing_since: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

const ENDPOINT_COLUMNS = `id::text AS id, url, description, event_types, enabled, disabled_reason, disabled_at, failing_since,
  created_at, updated_at`;

const iso = (value: Date | string | null): string | null => (value === null ? null : new Date(value).toISOString());

function toEndpoint(row: EndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    events: row.event_types,
    enabled: row.enabled,
    disabled_reason: row.disabled_reason,
    disabled_at: iso(row.disabled_at),
    failing_since: iso(row.failing_since),
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  };
}

/**
 * Checks what can be checked without DNS: the scheme, no credentials in the URL. Whether the address is allowed is
 * decided at delivery time, after resolution (address-guard.ts), because DNS can change after this.
 */
export function checkWebhookUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TallyError("validation_failed", "url: is not a valid URL", { errors: [{ field: "url", message: "is not a valid URL" }] });
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new TallyError("validation_failed", "url: must be http or https", { errors: [{ field: "url", message: "must be http or https" }] });
  }
  if (parsed.username !== "" || parsed.password !== "") {
    const message = "must not carry credentials; the signature authenticates tally";
    throw new TallyError("validation_failed", `url: ${message}`, { errors: [{ field: "url", message }] });
  }
}

/** Duplicates removed, `*` alone when present: a list that names everything is just `*`. */
function normalizeEvents(events: string[]): string[] {
  const unique = [...new Set(events)];
  return unique.includes(ALL_EVENTS) ? [ALL_EVENTS] : unique.sort();
}

export async function createWebhookEndpoint(
  context: LedgerContext,
  box: SecretBox,
  input: { url: string; events: string[]; description: string | null },
): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
  checkWebhookUrl(input.url);
  const id = uuidv7(context.clock.now().getTime());
  const secret = generateWebhookSecret();
  const sealed = await box.seal(id, secret);
  const now = context.clock.now().toISOString();
  const row = await context.database.transaction(async (transaction) => {
    // Serializes creations so the count below cannot be raced past the limit.
    await transaction.query("SELECT pg_advisory_xact_lock(hashtext('tally.webhook_endpoints'))");
    const [count] = await transaction.query<{ count: string }>("SELECT count(*)::text AS count FROM webhook_endpoints");
    if (Number(count!.count) >= WEBHOOK_ENDPOINTS_MAX) {
      throw new TallyError("too_many_webhook_endpoints", `tally keeps at most ${WEBHOOK_ENDPOINTS_MAX} webhook endpoints; delete one first`);
    }
    // A new endpoint receives the events after its creation, not the retention window's backlog.
    const position = await latestEventId(transaction);
    const [inserted] = await transaction.query<EndpointRow>(
      `INSERT INTO webhook_endpoints (id, url, description, event_types, secret_encrypted, event_position, created_at, updated_at)
       VALUES ($1::uuid, $2, $3, $4::text[], $5, $6::bigint, $7::timestamptz, $7::timestamptz)
       RETURNING ${ENDPOINT_COLUMNS}`,
      [id, input.url, input.description, normalizeEvents(input.events), sealed, position, now],
    );
    return inserted!;
  });
  return { endpoint: toEndpoint(row), secret };
}

export async function listWebhookEndpoints(database: Queryable): Promise<WebhookEndpoint[]> {
  const rows = await database.query<EndpointRow>(
    `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id LIMIT ${WEBHOOK_ENDPOINTS_MAX}`,
  );
  return rows.map(toEndpoint);
}

export async function getWebhookEndpoint(database: Queryable, id: string): Promise<WebhookEndpoint> {
  const [row] = await database.query<EndpointRow>(`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1::uuid`, [id]);
  if (!row) throw new TallyError("webhook_endpoint_not_found", `no webhook endpoint ${id}`);
  return toEndpoint(row);
}

/**
 * Changes the URL, the event types or `enabled`. Enabling an endpoint that tally disabled clears the failure record
 * and makes its pending deliveries due now, each with a fresh 24 h to succeed; the events that arrived while it was
 * disabled are then delivered too (its position did not move), as far as the event retention still holds them.
 */
export async function updateWebhookEndpoint(
  context: LedgerContext,
  id: string,
  changes: { url?: string; events?: string[]; enabled?: boolean; description?: string | null },
): Promise<WebhookEndpoint> {
  if (changes.url !== undefined) checkWebhookUrl(changes.url);
  const now = context.clock.now().toISOString();
  return context.database.transaction(async (transaction) => {
    const [before] = await transaction.query<{ enabled: boolean }>("SELECT enabled FROM webhook_endpoints WHERE id = $1::uuid FOR UPDATE", [id]);
    if (!before) throw new TallyError("webhook_endpoint_not_found", `no webhook endpoint ${id}`);
    const enabling = changes.enabled === true && !before.enabled;
    const [row] = await transaction.query<EndpointRow>(
      `UPDATE webhook_endpoints SET
         url = COALESCE($2, url),
         event_types = COALESCE($3::text[], event_types),
         description = CASE WHEN $4::boolean THEN $5 ELSE description END,
         enabled = COALESCE($6::boolean, enabled),
         disabled_at = CASE WHEN $6::boolean IS NULL THEN disabled_at WHEN $6::boolean THEN NULL ELSE COALESCE(disabled_at, $7::timestamptz) END,
         disabled_reason = CASE WHEN $6::boolean IS NULL THEN disabled_reason WHEN $6::boolean THEN NULL ELSE COALESCE(disabled_reason, 'disabled by an administrator') END,
         failing_since = CASE WHEN $8::boolean THEN NULL ELSE failing_since END,
         updated_at = $7::timestamptz
       WHERE id = $1::uuid
       RETURNING ${ENDPOINT_COLUMNS}`,
      [
        id,
        changes.url ?? null,
        changes.events === undefined ? null : normalizeEvents(changes.events),
        changes.description !== undefined,
        changes.description ?? null,
        changes.enabled ?? null,
        now,
        enabling,
      ],
    );
    if (enabling) {
      await transaction.query(
        `UPDATE webhook_deliveries SET next_attempt_at = $2::timestamptz, give_up_at = $2::timestamptz + make_interval(secs => $3::double precision / 1000)
         WHERE endpoint_id = $1::uuid AND status = 'pending'`,
        [id, now, DELIVERY_LIFETIME_MS],
      );
    }
    return toEndpoint(row!);
  });
}

/** Deletes the endpoint with its deliveries and their attempts. Deliveries in flight finish; their results are dropped. */
export async function deleteWebhookEndpoint(database: Queryable, id: string): Promise<void> {
  const rows = await database.query<{ id: string }>("DELETE FROM webhook_endpoints WHERE id = $1::uuid RETURNING id::text AS id", [id]);
  if (rows.length === 0) throw new TallyError("webhook_endpoint_not_found", `no webhook endpoint ${id}`);
}

/**
 * A new secret, shown once. The previous one keeps signing beside it (a second `v1,` signature in the header) for
 * PREVIOUS_SECRET_LIFETIME_MS, so a receiver that still checks the old secret keeps accepting deliveries meanwhile.
 */
export async function rotateWebhookSecret(
  context: LedgerContext,
  box: SecretBox,
  id: string,
): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
  const secret = generateWebhookSecret();
  const sealed = await box.seal(id, secret);
  const now = context.clock.now();
  const [row] = await context.database.query<EndpointRow>(
    `UPDATE webhook_endpoints SET
       previous_secret_encrypted = secret_encrypted,
       previous_secret_expires_at = $3::timestamptz,
       secret_encrypted = $2,
       updated_at = $4::timestamptz
     WHERE id = $1::uuid
     RETURNING ${ENDPOINT_COLUMNS}`,
    [id, sealed, new Date(now.getTime() + PREVIOUS_SECRET_LIFETIME_MS).toISOString(), now.toISOString()],
  );
  if (!row) throw new TallyError("webhook_endpoint_not_found", `no webhook endpoint ${id}`);
  return { endpoint: toEndpoint(row), secret };
}
