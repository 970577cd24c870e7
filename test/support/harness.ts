import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import { createApp } from "../../src/app.js";
import { JwtVerifier } from "../../src/auth/jwt.js";
import { createServiceKey, ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import type { Scope } from "../../src/auth/scopes.js";
import type { Database } from "../../src/db/port.js";
import { connectPostgres } from "../../src/db/postgres.js";
import { createLedgerContext, type Clock, type LedgerContext } from "../../src/ledger/core/context.js";
import { createLogger } from "../../src/logger.js";
import { databaseSigner, type Signer } from "../../src/signing/signer.js";
import type { StripeSettings } from "../../src/payments/stripe/handle.js";

export const ADMIN_KEY = "test-admin-key-0123456789abcdef0123456789";
export const JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789";
export const JWT_AUDIENCE = "tally-test";
/** The Stripe webhook signing secret every harness app verifies with, unless a test passes its own settings. */
export const STRIPE_WEBHOOK_SECRET = "whsec_test_0123456789abcdef0123456789";

/** A fresh id per call, so tests never share accounts or keys. */
export function uniqueId(prefix = "acct"): string {
  return `${prefix}_${randomBytes(8).toString("hex")}`;
}

export interface ApiResponse<Body = any> {
  status: number;
  body: Body;
  headers: Headers;
}

export interface Harness {
  database: Database;
  ledger: LedgerContext;
  app: ReturnType<typeof createApp>;
  /** Signs this app's cursors: the key kept in the test database (or `signing_key`), on the harness's clock. */
  signer: Signer;
  databaseUrl: string;
  request(method: string, path: string, options?: { body?: unknown; token?: string | null; headers?: Record<string, string> }): Promise<ApiResponse>;
  get(path: string, token?: string | null): Promise<ApiResponse>;
  post(path: string, body: unknown, token?: string | null): Promise<ApiResponse>;
  createAccount(id?: string): Promise<string>;
  serviceKey(scopes: Scope[]): Promise<string>;
  close(): Promise<void>;
}

/**
 * The app in-process against the real test database, over a pool big enough for the concurrency tests. `token`
 * defaults to the admin key; pass null to send no credentials.
 */
export function createHarness(
  options: {
    refresh_every?: number;
    delta_max?: number;
    pool_max?: number;
    random?: () => number;
    max_body_bytes?: number;
    /** The clock: cursors expire by it, holds and lots are judged by it (a bare `now` or a Clock). */
    now?: () => Date;
    clock?: Clock;
    /** An operator-supplied signing key (TALLY_SIGNING_KEY); by default the key kept in the database. */
    signing_key?: string;
    /** Stripe webhooks: by default verified with STRIPE_WEBHOOK_SECRET at 1 credit per major unit; null: not configured. */
    stripe?: StripeSettings | null;
  } = {},
): Harness {
  const databaseUrl = inject("databaseUrl");
  // The concurrency tests prove correctness, not load shedding: on a loaded machine a request may wait long for a
  // connection, which the production default (500 ms, then 503) would turn into refusals. outage.test.ts keeps it.
  const database = connectPostgres({ url: databaseUrl, pool_max: options.pool_max ?? 40, statement_timeout_ms: 60_000, acquire_timeout_ms: 60_000, connect_timeout_ms: 10_000 });
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");
  const ledger = createLedgerContext({
    database,
    logger,
    refresh_every: options.refresh_every ?? 1000,
    delta_max: options.delta_max ?? 5000,
    random: options.random,
    now: options.now,
    clock: options.clock,
  });
  const signer = databaseSigner(database, {
    configured_key: options.signing_key,
    now: options.now === undefined && options.clock === undefined ? undefined : () => ledger.clock.now().getTime(),
  });
  const app = createApp({
    database,
    ledger,
    logger,
    signer,
    authenticators: {
      service_keys: new ServiceKeyVerifier(database.orm),
      jwt: JwtVerifier.fromOptions({ secret: JWT_SECRET, jwks_url: undefined, issuer: undefined, audience: JWT_AUDIENCE }),
      admin_key: ADMIN_KEY,
    },
    limits: { max_body_bytes: options.max_body_bytes ?? 8 * 1024 * 1024, request_timeout_ms: 60_000, cors_origins: [] },
    stripe: options.stripe === null ? undefined : (options.stripe ?? { webhook_secret: STRIPE_WEBHOOK_SECRET, credits_per_unit_nanos: 1_000_000_000n }),
  });

  async function request(method: string, path: string, requestOptions: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...requestOptions.headers };
    const token = requestOptions.token === undefined ? ADMIN_KEY : requestOptions.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (requestOptions.body !== undefined) {
      body = typeof requestOptions.body === "string" ? requestOptions.body : JSON.stringify(requestOptions.body);
      headers["content-type"] ??= "application/json";
    }
    const response = await app.request(path, { method, headers, body });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      // leave the raw text for the assertion to show
    }
    return { status: response.status, body: parsed, headers: response.headers };
  }

  return {
    database,
    ledger,
    app,
    signer,
    databaseUrl,
    request,
    get: (path, token) => request("GET", path, { token }),
    post: (path, body, token) => request("POST", path, { body, token }),
    async createAccount(id = uniqueId()) {
      const response = await request("POST", "/v1/accounts", { body: { id } });
      if (response.status !== 201) throw new Error(`could not create account ${id}: ${JSON.stringify(response.body)}`);
      return id;
    },
    async serviceKey(scopes) {
      return (await createServiceKey(database.orm, { name: uniqueId("test-key"), scopes })).key;
    },
    close: () => database.close(),
  };
}

/** A clock tests move by hand: time-dependent behaviour is tested without sleeping. */
export class TestClock implements Clock {
  private current: number;
  constructor(start: Date = new Date()) {
    this.current = start.getTime();
  }
  now(): Date {
    return new Date(this.current);
  }
  set(time: Date): void {
    this.current = time.getTime();
  }
  advance(milliseconds: number): void {
    this.current += milliseconds;
  }
}
