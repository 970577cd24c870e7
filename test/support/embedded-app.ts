import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createApp } from "../../src/app.js";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { openDatabase } from "../../src/db/open.js";
import type { Database } from "../../src/db/port.js";
import { createLedgerContext, type Clock, type LedgerContext } from "../../src/ledger/core/context.js";
import { createLogger } from "../../src/logger.js";

export const EMBEDDED_ADMIN_KEY = "embedded-admin-key-0123456789abcdef0123";

export interface EmbeddedResponse {
  status: number;
  // Tests read answers freely; their shapes are asserted where it matters.
  body: any;
  headers: Headers;
}

/** The embedded store (PGlite) in a fresh directory, migrated, as the README's first command opens it. */
export async function openEmbeddedStore(prefix: string): Promise<{ database: Database; close(): Promise<void> }> {
  const data_dir = await mkdtemp(path.join(tmpdir(), `${prefix}-`));
  const database = await openDatabase(
    { DATABASE_URL: undefined, DATA_DIR: data_dir, DATABASE_POOL_MAX: 1, REQUEST_TIMEOUT_MS: 30_000 },
    { migrate: true },
  );
  return {
    database,
    async close() {
      await database.close();
      await rm(data_dir, { recursive: true, force: true });
    },
  };
}

/** The app over an embedded store, called in-process with the admin key; small checkpoint settings exercise folds. */
export function embeddedApp(
  database: Database,
  options: { clock?: Clock; now?: () => Date } = {},
): { ledger: LedgerContext; app: ReturnType<typeof createApp>; call: (method: string, url: string, body?: unknown) => Promise<EmbeddedResponse> } {
  const logger = createLogger("silent");
  const ledger = createLedgerContext({ database, logger, refresh_every: 2, delta_max: 3, clock: options.clock, now: options.now });
  const app = createApp({
    database,
    ledger,
    logger,
    authenticators: { service_keys: new ServiceKeyVerifier(database.orm), jwt: undefined, admin_key: EMBEDDED_ADMIN_KEY },
    limits: { max_body_bytes: 1 << 20, request_timeout_ms: 30_000, cors_origins: [] },
  });
  const call = async (method: string, url: string, body?: unknown): Promise<EmbeddedResponse> => {
    const response = await app.request(url, {
      method,
      headers: { authorization: `Bearer ${EMBEDDED_ADMIN_KEY}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text), headers: response.headers };
  };
  return { ledger, app, call };
}
