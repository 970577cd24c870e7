import { createApp } from "../app.js";
import type { Database } from "../db/port.js";
import { createLedgerContext } from "../ledger/core/context.js";
import { createLogger } from "../logger.js";
import { ServiceKeyVerifier } from "../auth/service-keys.js";

/**
 * The OpenAPI document as the server serves it, without a database: routes only describe themselves when built,
 * and building them does no I/O. Used by `tally openapi`, the CI lint and the client generator.
 */
export async function offlineOpenApiDocument(): Promise<unknown> {
  const database = { kind: "embedded" } as unknown as Database;
  const logger = createLogger("silent");
  const app = createApp({
    database,
    ledger: createLedgerContext({ database, logger, refresh_every: 1000, delta_max: 5000 }),
    logger,
    authenticators: { service_keys: new ServiceKeyVerifier(database.orm), jwt: undefined, admin_key: undefined },
    limits: { max_body_bytes: 1024, request_timeout_ms: 1000, cors_origins: [] },
  });
  const response = await app.request("/openapi.json");
  return response.json();
}
