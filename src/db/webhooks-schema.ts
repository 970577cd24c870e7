import { sql } from "drizzle-orm";
import { bigint, boolean, check, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

export const WEBHOOK_DELIVERY_STATUSES = ["pending", "succeeded", "failed"] as const;
export type WebhookDeliveryStatus = (typeof WEBHOOK_DELIVERY_STATUSES)[number];

/**
 * Where tally sends its events (src/webhooks/). `event_position` is the id of the last balance event this endpoint
 * has been offered: events commit in id order (src/ledger/events/crossings.ts), so the fan-out reads the events
 * after it, writes a delivery row for each subscribed one and moves the position, in one transaction under the
 * endpoint's row lock. Usage posting never touches these tables.
 *
 * The signing secret is kept encrypted (AES-256-GCM under a key derived from the server's signing key, bound to the
 * endpoint id; src/webhooks/secret-box.ts). During a rotation the previous secret keeps signing too, until
 * `previous_secret_expires_at`, so receivers can switch without losing a delivery.
 */
export const webhookEndpoints = pgTable(
  "webhook_endpoints",
  {
    id: uuid("id").primaryKey(),
    url: text("url").notNull(),
    description: text("description"),
    eventTypes: text("event_types").array().notNull(),
    enabled: boolean("enabled").notNull().default(true),
    secretEncrypted: text("secret_encrypted").notNull(),
    previousSecretEncrypted: text("previous_secret_encrypted"),
    previousSecretExpiresAt: timestamp("previous_secret_expires_at", { withTimezone: true, mode: "string" }),
    eventPosition: bigint("event_position", { mode: "bigint" }).notNull(),
    /** The start of the current run of failed attempts; null after any success. 24 h of it disables the endpoint. */
    failingSince: timestamp("failing_since", { withTimezone: true, mode: "string" }),
    disabledAt: timestamp("disabled_at", { withTimezone: true, mode: "string" }),
    disabledReason: text("disabled_reason"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "string" }).notNull(),
  },
  (table) => [
    check("webhook_endpoints_url_length", sql`char_length(${table.url}) <= 2048`),
    check("webhook_endpoints_event_types_count", sql`cardinality(${table.eventTypes}) BETWEEN 1 AND 32`),
  ],
);

/**
 * The outbox: one row per (endpoint, event), written by the fan-out with the exact body that is signed and sent.
 * A pending row whose `lease_until` lies ahead is in flight in some process; the lease token fences the result, so a
 * process that lost its lease (it stalled past it, another took the row over) cannot overwrite the newer attempt.
 */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: uuid("id").primaryKey(),
    endpointId: uuid("endpoint_id")
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: "cascade" }),
    eventId: bigint("event_id", { mode: "bigint" }).notNull(),
    eventType: text("event_type").notNull(),
    payload: text("payload").notNull(),
    status: text("status", { enum: WEBHOOK_DELIVERY_STATUSES }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true, mode: "string" }),
    /** No automatic attempt is scheduled after this moment: the delivery fails instead. */
    giveUpAt: timestamp("give_up_at", { withTimezone: true, mode: "string" }).notNull(),
    leaseUntil: timestamp("lease_until", { withTimezone: true, mode: "string" }),
    leaseToken: uuid("lease_token"),
    lastResponseStatus: integer("last_response_status"),
    lastError: text("last_error"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
    finishedAt: timestamp("finished_at", { withTimezone: true, mode: "string" }),
  },
  (table) => [
    uniqueIndex("webhook_deliveries_endpoint_event").on(table.endpointId, table.eventId),
    // The claim: due pending deliveries of one endpoint, oldest event first.
    index("webhook_deliveries_pending_due")
      .on(table.endpointId, table.nextAttemptAt)
      .where(sql`${table.status} = 'pending'`),
    // Retention of finished deliveries.
    index("webhook_deliveries_finished_at").on(table.finishedAt).where(sql`${table.status} <> 'pending'`),
    check("webhook_deliveries_status_known", sql`${table.status} IN ('pending', 'succeeded', 'failed')`),
    check("webhook_deliveries_pending_scheduled", sql`(${table.status} = 'pending') = (${table.nextAttemptAt} IS NOT NULL)`),
  ],
);

/** One row per attempt, written when the attempt is claimed and completed when it ends (if the process lives). */
export const webhookDeliveryAttempts = pgTable(
  "webhook_delivery_attempts",
  {
    deliveryId: uuid("delivery_id")
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true, mode: "string" }).notNull(),
    finishedAt: timestamp("finished_at", { withTimezone: true, mode: "string" }),
    responseStatus: integer("response_status"),
    /** Why the attempt failed, in tally's words (timeout, refused address, connection error); never the body. */
    error: text("error"),
    /** The first bytes of the response body (a small cap), for the delivery log; never logged. */
    responseExcerpt: text("response_excerpt"),
    durationMs: integer("duration_ms"),
  },
  (table) => [primaryKey({ name: "webhook_delivery_attempts_pkey", columns: [table.deliveryId, table.attempt] })],
);
