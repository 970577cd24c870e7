/**
 * The corrections on the embedded store (PGlite): the same SQL, advisory locks and migrations, one connection.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app.js";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { openDatabase } from "../../src/db/open.js";
import type { Database } from "../../src/db/port.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { createLogger } from "../../src/logger.js";

const ADMIN = "embedded-admin-key-0123456789abcdef0123";
let dataDir: string;
let database: Database;
let call: (method: string, url: string, body?: unknown) => Promise<{ status: number; body: any }>;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "tally-corrections-"));
  database = await openDatabase(
    { DATABASE_URL: undefined, DATA_DIR: dataDir, DATABASE_POOL_MAX: 1, REQUEST_TIMEOUT_MS: 30_000 },
    { migrate: true },
  );
  const logger = createLogger("silent");
  const app = createApp({
    database,
    ledger: createLedgerContext({ database, logger, refresh_every: 2, delta_max: 3 }),
    logger,
    authenticators: { service_keys: new ServiceKeyVerifier(database.orm), jwt: undefined, admin_key: ADMIN },
    limits: { max_body_bytes: 1 << 20, request_timeout_ms: 30_000, cors_origins: [] },
  });
  call = async (method, url, body) => {
    const response = await app.request(url, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
});

afterAll(async () => {
  await database?.close();
  await rm(dataDir, { recursive: true, force: true });
});

const balanceOf = async (id: string) => (await call("GET", `/v1/balances/${id}`)).body.balance;

describe("corrections on the embedded store", () => {
  it("refunds never exceed the original, even when sent all at once", async () => {
    expect((await call("POST", "/v1/accounts", { id: "org_refunds" })).status).toBe(201);
    const usage = await call("POST", "/v1/usage", { account_id: "org_refunds", amount: "10", idempotency_key: "u1" });
    expect(usage.status).toBe(201);
    const refunds = await Promise.all(
      Array.from({ length: 12 }, (_, index) => call("POST", `/v1/entries/${usage.body.id}/refund`, { amount: "1", idempotency_key: `r${index}` })),
    );
    expect(refunds.filter((response) => response.status === 201)).toHaveLength(10);
    expect(refunds.filter((response) => response.body.code === "exceeds_original")).toHaveLength(2);
    expect(await balanceOf("org_refunds")).toBe("0");
    expect((await call("GET", `/v1/entries/${usage.body.id}`)).body.refunded_amount).toBe("10");
  });

  it("transfers write both legs and adjustments reach their target", async () => {
    await call("POST", "/v1/accounts", { id: "org_from" });
    await call("POST", "/v1/accounts", { id: "org_to" });
    await call("POST", "/v1/credits", { account_id: "org_from", type: "purchase", amount: "50", idempotency_key: "p1" });
    const transfer = await call("POST", "/v1/transfers", { from_account_id: "org_from", to_account_id: "org_to", amount: "30", idempotency_key: "t1" });
    expect(transfer.status).toBe(201);
    expect(transfer.body.transfer_in.counterpart_entry_id).toBe(transfer.body.transfer_out.id);
    const refused = await call("POST", "/v1/transfers", { from_account_id: "org_from", to_account_id: "org_to", amount: "60", idempotency_key: "t2" });
    expect(refused.body.code).toBe("insufficient_balance");
    expect(await balanceOf("org_from")).toBe("20");
    expect(await balanceOf("org_to")).toBe("30");
    const adjustment = await call("POST", "/v1/accounts/org_to/adjustments", { target_balance: "12.5", reason: "fix", idempotency_key: "a1" });
    expect(adjustment.status).toBe(201);
    expect(adjustment.body).toMatchObject({ type: "adjustment", delta: "-17.5", balance_before: "30" });
    expect(await balanceOf("org_to")).toBe("12.5");
    const reversal = await call("POST", `/v1/entries/${transfer.body.transfer_in.id}/refund`, { idempotency_key: "x" });
    expect(reversal.body.code).toBe("entry_not_refundable");
  });
});
