import { afterAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { createApp } from "../../src/app.js";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { connectPostgres } from "../../src/db/postgres.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { createLogger } from "../../src/logger.js";
import { instrumentPool } from "../../src/metrics/pool.js";
import { ADMIN_KEY, createHarness, uniqueId } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

async function scrape(app = harness.app): Promise<string> {
  const response = await app.request("/metrics", { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** The value of one series, 0 when absent. */
function value(text: string, series: string): number {
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe("GET /metrics", () => {
  it("needs a credential with the metrics:read scope (or admin)", async () => {
    expect((await harness.get("/metrics", null)).status).toBe(401);
    expect((await harness.get("/metrics", await harness.serviceKey(["balances:read"]))).status).toBe(403);
    const key = await harness.serviceKey(["metrics:read"]);
    const response = await harness.app.request("/metrics", { headers: { authorization: `Bearer ${key}` } });
    expect(response.status).toBe(200);
  });

  it("counts requests by route template and status, never by account id", async () => {
    const account = await harness.createAccount();
    const series = 'tally_http_requests_total{method="GET",route="/v1/balances/:account_id",status="200"}';
    const before = value(await scrape(), series);
    await harness.get(`/v1/balances/${account}`);
    await harness.get(`/v1/balances/${account}`);
    await harness.get(`/no/such/route/${account}`);
    const text = await scrape();
    expect(value(text, series)).toBe(before + 2);
    expect(text).toContain('route="unmatched",status="404"');
    expect(text).toMatch(/tally_http_request_duration_seconds_bucket\{le="0.001",method="GET",route="\/v1\/balances\/:account_id",status="200"\}/);
    expect(text).not.toContain(account);
  });

  it("counts posted rows by type, replays excluded", async () => {
    const account = await harness.createAccount();
    const usage = 'tally_posted_rows_total{type="usage"}';
    const grants = 'tally_posted_rows_total{type="grant"}';
    const before = await scrape();
    const key = uniqueId("k");
    await harness.post("/v1/usage", { account_id: account, amount: "1", idempotency_key: key });
    await harness.post("/v1/usage", { account_id: account, amount: "1", idempotency_key: key });
    await harness.post("/v1/usage/batch", { entries: [1, 2, 3].map((n) => ({ account_id: account, amount: "1", idempotency_key: `${key}_${n}` })) });
    await harness.post("/v1/credits", { account_id: account, type: "grant", amount: "9", idempotency_key: `${key}_g` });
    const after = await scrape();
    // Other test files run in other processes, so these counters move only with this file's requests.
    expect(value(after, usage) - value(before, usage)).toBe(4);
    expect(value(after, grants) - value(before, grants)).toBe(1);
    expect(value(after, 'tally_events_emitted_total{type="balance_restored"}')).toBeGreaterThan(value(before, 'tally_events_emitted_total{type="balance_restored"}'));
    expect(value(after, 'tally_crossing_evaluations_total{outcome="ok"}')).toBeGreaterThan(value(before, 'tally_crossing_evaluations_total{outcome="ok"}'));
  });

  it("reports the age of the oldest transaction holding back the xid horizon", async () => {
    const holder = postgres(harness.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const reserved = await holder.reserve();
      await reserved`BEGIN`;
      await reserved`SELECT pg_current_xact_id()`;
      for (let index = 0; index < 3; index++) await harness.createAccount();
      const text = await scrape();
      expect(value(text, "tally_db_oldest_transaction_age_xids")).toBeGreaterThanOrEqual(3);
      expect(text).toMatch(/^tally_db_oldest_transaction_age_seconds \d/m);
      await reserved`ROLLBACK`;
      reserved.release();
    } finally {
      await holder.end();
    }
  });

  it("shows database operations in use and waiting beyond the pool size", async () => {
    const database = instrumentPool(connectPostgres({ url: harness.databaseUrl, pool_max: 1, statement_timeout_ms: 10_000 }), 1);
    const logger = createLogger("silent");
    const app = createApp({
      database,
      ledger: createLedgerContext({ database, logger, refresh_every: 1000, delta_max: 5000 }),
      logger,
      authenticators: { service_keys: new ServiceKeyVerifier(database.orm), jwt: undefined, admin_key: ADMIN_KEY },
      limits: { max_body_bytes: 1 << 20, request_timeout_ms: 10_000, cors_origins: [] },
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const holding = database.transaction(async (transaction) => {
      await transaction.query("SELECT 1");
      await gate;
    });
    const waiting = database.query("SELECT 1");
    try {
      const text = await scrape(app);
      expect(value(text, 'tally_db_pool_connections{state="in_use"}')).toBe(1);
      // Our query, and the scrape's own horizon query, which gave up after its 2 s limit (and says so).
      expect(value(text, 'tally_db_pool_connections{state="waiting"}')).toBe(2);
      expect(value(text, "tally_metrics_database_read_failures_total")).toBe(1);
    } finally {
      release();
      await Promise.all([holding, waiting]);
      await database.close();
    }
  });
});
