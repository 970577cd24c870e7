import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import { createApp } from "./app.js";
import { JwtVerifier } from "./auth/jwt.js";
import { FAILED_AUTHENTICATION_DEFAULTS, FailedAuthentications } from "./auth/failed-authentications.js";
import { ServiceKeyVerifier } from "./auth/service-keys.js";
import { ConfigError, parseConfig } from "./config.js";
import { DirectoryLockedError } from "./db/directory-lock.js";
import { openDatabase } from "./db/open.js";
import { trackForDrain, type Lifecycle } from "./http/drain.js";
import { createLedgerContext } from "./ledger/core/context.js";
import { startEventMaintenance } from "./ledger/events/event-maintenance.js";
import { startHoldRetention } from "./ledger/holds/retention.js";
import { configureGroupCommit } from "./ledger/posting/group-commit.js";
import { startExpirySweep } from "./ledger/lots/sweep.js";
import { startAutoTopupDetector } from "./ledger/auto-topup/detector.js";
import { parseAmount } from "./ledger/core/amount.js";
import { startRenewalScheduler } from "./ledger/plans/scheduler.js";
import { createLogger } from "./logger.js";
import { instrumentPool } from "./metrics/pool.js";
import { databaseSigner } from "./signing/signer.js";
import { databaseSecretBox } from "./webhooks/secret-box.js";
import { startWebhookWorker } from "./webhooks/worker.js";

/** Process entry: configuration, database, server, graceful shutdown. */
async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`tally: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.LOG_LEVEL);
  if (config.DATABASE_URL) {
    logger.info({ store: "postgres", pool_max: config.DATABASE_POOL_MAX }, "starting tally on PostgreSQL");
  } else {
    logger.info(
      { store: "embedded", data_dir: config.DATA_DIR },
      "starting tally on the single-process embedded store (PGlite); set DATABASE_URL to use PostgreSQL",
    );
  }

  let database;
  try {
    database = await openDatabase(config, { migrate: config.MIGRATE_ON_START, on_progress: (message) => logger.info(message) });
  } catch (error) {
    if (error instanceof DirectoryLockedError) {
      logger.fatal(error.message);
      process.exit(1);
    }
    throw error;
  }
  // Counts operations in flight for the tally_db_pool_connections gauge (/metrics).
  database = instrumentPool(database, config.DATABASE_URL ? config.DATABASE_POOL_MAX : 1);
  const ledger = createLedgerContext({
    database,
    logger,
    refresh_every: config.CHECKPOINT_REFRESH_EVERY,
    delta_max: config.CHECKPOINT_DELTA_MAX,
    notify_channel: config.NOTIFY_CHANNEL,
  });
  configureGroupCommit(ledger, {
    queue_rows_max: config.POSTING_QUEUE_ROWS_MAX,
    rows_per_flush_max: config.POSTING_FLUSH_ROWS_MAX,
    wait_max_ms: config.POSTING_QUEUE_WAIT_MAX_MS,
  });
  const maintenance = await startEventMaintenance(ledger, { retention_days: config.EVENT_RETENTION_DAYS });
  const holdRetention = startHoldRetention(ledger, { retention_days: config.HOLD_RETENTION_DAYS });
  const expirySweep =
    config.EXPIRY_SWEEP_INTERVAL_MS > 0 ? startExpirySweep(ledger, { interval_ms: config.EXPIRY_SWEEP_INTERVAL_MS }) : undefined;
  const renewals = config.RENEWAL_INTERVAL_MS > 0 ? startRenewalScheduler(ledger, { interval_ms: config.RENEWAL_INTERVAL_MS }) : undefined;
  const secretBox = databaseSecretBox(database, config.TALLY_SIGNING_KEY);
  const webhookWorker =
    config.WEBHOOK_POLL_INTERVAL_MS > 0
      ? startWebhookWorker(ledger, secretBox, {
          allow_private_networks: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
          attempt_timeout_ms: config.WEBHOOK_ATTEMPT_TIMEOUT_MS,
          in_flight_per_endpoint_max: config.WEBHOOK_IN_FLIGHT_PER_ENDPOINT_MAX,
          concurrency_max: config.WEBHOOK_CONCURRENCY_MAX,
          poll_interval_ms: config.WEBHOOK_POLL_INTERVAL_MS,
          retry_base_ms: config.WEBHOOK_RETRY_BASE_MS,
          retention_days: config.EVENT_RETENTION_DAYS,
        })
      : undefined;
  const autoTopup =
    config.AUTO_TOPUP_INTERVAL_MS > 0
      ? startAutoTopupDetector(ledger, {
          interval_ms: config.AUTO_TOPUP_INTERVAL_MS,
          policy: { request_expiry_ms: config.AUTO_TOPUP_REQUEST_EXPIRY_MS },
        })
      : undefined;
  const creditsPerUnit = parseAmount(config.STRIPE_CREDITS_PER_UNIT);
  // The server is made after the app; the app reads the drain state through this indirection.
  const lifecycle: { current?: Lifecycle } = {};
  const app = createApp({
    lifecycle: {
      get draining() {
        return lifecycle.current?.draining ?? false;
      },
    },
    database,
    ledger,
    logger,
    signer: databaseSigner(database, { configured_key: config.TALLY_SIGNING_KEY }),
    secret_box: secretBox,
    console_enabled: config.CONSOLE_ENABLED,
    stripe:
      config.STRIPE_WEBHOOK_SECRET && "nanos" in creditsPerUnit
        ? { webhook_secret: config.STRIPE_WEBHOOK_SECRET, credits_per_unit_nanos: creditsPerUnit.nanos }
        : undefined,
    authenticators: {
      service_keys: new ServiceKeyVerifier(database),
      failed_authentications: new FailedAuthentications({
        ...FAILED_AUTHENTICATION_DEFAULTS,
        failures_max: config.AUTH_FAILURES_PER_MINUTE_MAX,
      }),
      jwt: JwtVerifier.fromOptions({
        secret: config.JWT_SECRET,
        jwks_url: config.JWT_JWKS_URL,
        issuer: config.JWT_ISSUER,
        audience: config.JWT_AUDIENCE,
      }),
      admin_key: config.TALLY_ADMIN_KEY,
    },
    limits: {
      max_body_bytes: config.MAX_BODY_BYTES,
      request_timeout_ms: config.REQUEST_TIMEOUT_MS,
      cors_origins: config.CORS_ORIGINS,
    },
  });
  if (!config.TALLY_ADMIN_KEY) {
    logger.warn("TALLY_ADMIN_KEY is not set: create a service key with `npm run keys -- create` to call the API");
  }

  const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, (address) => {
    logger.info({ host: address.address, port: address.port, pid: process.pid }, "tally is listening");
  });
  const drainer = trackForDrain(server as Server);
  lifecycle.current = drainer;

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, in_flight: drainer.in_flight, timeout_ms: config.SHUTDOWN_TIMEOUT_MS }, "shutting down: draining");
    // Event streams end now and new ones are refused, so SSE clients reconnect to another process at once.
    ledger.events.hub.shutdown();
    // No new renewal batch starts from now; the one in progress finishes (each account is one short transaction).
    const renewalsStopped = renewals?.stop();
    const drained = await drainer.drain(config.SHUTDOWN_TIMEOUT_MS);
    if (!drained) logger.warn({ timeout_ms: config.SHUTDOWN_TIMEOUT_MS }, "connections still open at the drain timeout were cut");
    try {
      await maintenance.stop();
      await holdRetention.stop();
      await expirySweep?.stop();
      await renewalsStopped;
      await webhookWorker?.stop();
      await autoTopup?.stop();
      await database.close();
    } catch (error) {
      logger.error({ err: error }, "closing the database failed");
      process.exit(1);
    }
    logger.info("stopped");
    process.exit(drained ? 0 : 1);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((error: unknown) => {
  process.stderr.write(`tally: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
