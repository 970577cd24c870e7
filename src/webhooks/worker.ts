import { Webhook } from "standardwebhooks";
import type { LedgerContext } from "../ledger/core/context.js";
import { claimForEndpoint, dueEndpoints, pruneWebhookDeliveries, recordAttempt, type ClaimedDelivery, type OutboxPolicy } from "./outbox.js";
import { RETRY_BASE_DEFAULT_MS } from "./schedule.js";
import type { SecretBox } from "./secret-box.js";
import { sendWebhook, type SendResult } from "./send.js";

export interface WebhookWorkerOptions {
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: deliver to loopback, private and link-local addresses (tests, development). */
  allow_private_networks: boolean;
  /** Each attempt, connecting included, ends after this long. */
  attempt_timeout_ms: number;
  /** Deliveries to one endpoint in flight at once, across all processes. */
  in_flight_per_endpoint_max: number;
  /** Deliveries in flight at once in this process. */
  concurrency_max: number;
  retry_base_ms?: number;
  /** How often the worker looks for work when nothing woke it (events from other processes, due retries). */
  poll_interval_ms: number;
  /** Finished deliveries are kept this long. */
  retention_days?: number;
  random?: () => number;
}

const USER_AGENT = "tally-webhooks/1";
const LEASE_MARGIN_MS = 5000;
const PRUNE_INTERVAL_MS = 10 * 60 * 1000;

export function outboxPolicy(options: WebhookWorkerOptions): OutboxPolicy {
  return {
    in_flight_per_endpoint_max: options.in_flight_per_endpoint_max,
    lease_ms: options.attempt_timeout_ms + LEASE_MARGIN_MS,
    retry_base_ms: options.retry_base_ms ?? RETRY_BASE_DEFAULT_MS,
    random: options.random ?? Math.random,
  };
}

/**
 * Signs and sends one claimed delivery, and writes the result. `webhook-id` is the event id, so every attempt of an
 * event carries the same id and a receiver deduplicates on it. During a rotation the previous secret signs too.
 */
export async function attemptDelivery(
  context: LedgerContext,
  box: SecretBox,
  delivery: ClaimedDelivery,
  options: WebhookWorkerOptions,
): Promise<{ succeeded: boolean; endpoint_disabled: boolean }> {
  let outcome: SendResult;
  try {
    const secrets = [await box.open(delivery.endpoint_id, delivery.secret_encrypted)];
    if (delivery.previous_secret_encrypted !== null) secrets.push(await box.open(delivery.endpoint_id, delivery.previous_secret_encrypted));
    outcome = await send(context, delivery, secrets, options);
  } catch {
    // Never the error itself: it could quote key material.
    outcome = { error: "the signing secret is unreadable (was TALLY_SIGNING_KEY changed?); rotate the endpoint's secret", duration_ms: 0 };
  }
  const result = await recordAttempt(context, delivery, outcome, outboxPolicy(options));
  if (result.endpoint_disabled) {
    context.logger.warn({ endpoint_id: delivery.endpoint_id }, "webhook endpoint disabled: every attempt failed for 24 hours");
  }
  return result;
}

function send(context: LedgerContext, delivery: ClaimedDelivery, secrets: string[], options: WebhookWorkerOptions): Promise<SendResult> {
  const timestamp = context.clock.now();
  const signature = secrets.map((secret) => new Webhook(secret).sign(delivery.event_id, timestamp, delivery.payload)).join(" ");
  return sendWebhook(
    new URL(delivery.url),
    {
      "content-type": "application/json",
      "user-agent": USER_AGENT,
      "webhook-id": delivery.event_id,
      "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
      "webhook-signature": signature,
    },
    delivery.payload,
    { timeout_ms: options.attempt_timeout_ms, allow_private_networks: options.allow_private_networks },
  );
}

/** Claims up to `slots` deliveries across the due endpoints. */
async function claim(context: LedgerContext, options: WebhookWorkerOptions, slots: number): Promise<ClaimedDelivery[]> {
  const claimed: ClaimedDelivery[] = [];
  for (const endpoint_id of await dueEndpoints(context.database, context.clock.now())) {
    if (claimed.length >= slots) break;
    claimed.push(...(await claimForEndpoint(context, endpoint_id, outboxPolicy(options), slots - claimed.length)));
  }
  return claimed;
}

/**
 * One pass, awaited to the end: fan out, claim what is due and deliver it. Tests drive delivery with this and the
 * ledger clock; the process runs startWebhookWorker.
 */
export async function runWebhooksOnce(
  context: LedgerContext,
  box: SecretBox,
  options: WebhookWorkerOptions,
): Promise<{ attempted: number; succeeded: number }> {
  const claimed = await claim(context, options, options.concurrency_max);
  const results = await Promise.all(claimed.map((delivery) => attemptDelivery(context, box, delivery, options)));
  return { attempted: results.length, succeeded: results.filter((result) => result.succeeded).length };
}

/**
 * The process's delivery loop. It claims whenever a slot is free and there may be work: an event committed in this
 * process (the event hub), an attempt finished, or the poll interval passed (events of other processes, due
 * retries). `stop` waits for the attempts in flight, each bounded by its timeout.
 */
export function startWebhookWorker(context: LedgerContext, box: SecretBox, options: WebhookWorkerOptions): { stop(): Promise<void> } {
  const inFlight = new Set<Promise<unknown>>();
  let stopped = false;
  let woken = false;
  let wake: () => void = () => {
    woken = true;
  };
  const nudge = () => wake();
  const unsubscribe = context.events.hub.subscribe(nudge);

  const loop = async () => {
    while (!stopped) {
      woken = false;
      let claimed: ClaimedDelivery[] = [];
      const free = options.concurrency_max - inFlight.size;
      if (free > 0) {
        try {
          claimed = await claim(context, options, free);
        } catch (error) {
          context.logger.warn({ err: error }, "claiming webhook deliveries failed");
        }
      }
      for (const delivery of claimed) {
        const attempt = attemptDelivery(context, box, delivery, options)
          .catch((error: unknown) => context.logger.warn({ err: error, delivery_id: delivery.id }, "recording a webhook attempt failed"))
          .finally(() => {
            inFlight.delete(attempt);
            nudge();
          });
        inFlight.add(attempt);
      }
      if (stopped || (claimed.length > 0 && inFlight.size < options.concurrency_max) || woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, options.poll_interval_ms);
        function done() {
          clearTimeout(timer);
          wake = () => {
            woken = true;
          };
          resolve();
        }
        wake = done;
      });
    }
  };
  const running = loop();

  const prune = () => {
    pruneWebhookDeliveries(context.database, { retention_days: options.retention_days ?? 7, now: context.clock.now() })
      .then((deleted) => {
        if (deleted > 0) context.logger.info({ deleted }, "pruned finished webhook deliveries past retention");
      })
      .catch((error: unknown) => context.logger.warn({ err: error }, "pruning webhook deliveries failed"));
  };
  const pruneTimer = setInterval(prune, PRUNE_INTERVAL_MS);
  pruneTimer.unref();

  return {
    async stop() {
      stopped = true;
      clearInterval(pruneTimer);
      unsubscribe();
      wake();
      await running;
      await Promise.all(inFlight);
    },
  };
}
