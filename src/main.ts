import { serve } from "@hono/node-server";
import { createApp } from "./app.js";
import { JwtVerifier } from "./auth/jwt.js";
import { ServiceKeyVerifier } from "./auth/service-keys.js";
import { ConfigError, parseConfig } from "./config.js";
import { DirectoryLockedError } from "./db/directory-lock.js";
import { openDatabase } from "./db/open.js";
import { createLedgerContext } from "./ledger/core/context.js";
import { startEventMaintenance } from "./ledger/events/event-maintenance.js";
import { configureGroupCommit } from "./ledger/posting/group-commit.js";
import { startExpirySweep } from "./ledger/lots/sweep.js";
import { createLogger } from "./logger.js";
import { databaseSigner } from "./signing/signer.js";

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
    database = await openDatabase(config, { migrate: config.MIGRATE_ON_START });
  } catch (error) {
    if (error instanceof DirectoryLockedError) {
      logger.fatal(error.message);
      process.exit(1);
    }
    throw error;
  }
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
  const expirySweep =
    config.EXPIRY_SWEEP_INTERVAL_MS > 0 ? startExpirySweep(ledger, { interval_ms: config.EXPIRY_SWEEP_INTERVAL_MS }) : undefined;
  const app = createApp({
    database,
    ledger,
    logger,
    signer: databaseSigner(database, { configured_key: config.TALLY_SIGNING_KEY }),
    console_enabled: config.CONSOLE_ENABLED,
    authenticators: {
      service_keys: new ServiceKeyVerifier(database.orm),
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
    logger.info({ host: address.address, port: address.port }, "tally is listening");
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    // In-flight requests get up to 10 s to finish; then the process exits regardless.
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    ledger.events.hub.shutdown();
    server.close(async () => {
      await maintenance.stop();
      await expirySweep?.stop();
      await database.close();
      process.exit(0);
    });
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main().catch((error: unknown) => {
  process.stderr.write(`tally: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
