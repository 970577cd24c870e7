/**
 * Cursors are signed: any edited byte, a cursor of another listing or another key, and an expired cursor are
 * 400 invalid_cursor, before anything in them is used. The key is created once in the database, race-free, so
 * cursors work across processes and restarts, on PostgreSQL and on the embedded store; an operator key overrides it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app.js";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { applyMigrations } from "../../src/db/migrate.js";
import { openDatabase } from "../../src/db/open.js";
import type { Database } from "../../src/db/port.js";
import { connectPostgres } from "../../src/db/postgres.js";
import { CURSOR_LIFETIME_MS } from "../../src/http/cursor.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { createLogger } from "../../src/logger.js";
import { loadSigningKey } from "../../src/signing/signing-key.js";
import { forgeCursor } from "../support/cursors.js";
import { createHarness, uniqueId, type ApiResponse, type Harness } from "../support/harness.js";

const harness = createHarness({ pool_max: 10 });
const extra: Harness[] = [];
afterAll(async () => {
  await Promise.all(extra.map((other) => other.close()));
  await harness.close();
});

function expectStatus(response: ApiResponse, status: number): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
}

function expectInvalidCursor(response: ApiResponse): void {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  expect(response.body.code).toBe("invalid_cursor");
}

/** An account with a few entries and the cursors of its three listings, each after a first page of 1. */
async function listings(on: Harness = harness) {
  const account = await on.createAccount();
  await on.createAccount(); // so that the accounts listing has a second page even on a fresh database
  for (let index = 0; index < 3; index++) {
    expectStatus(await on.post("/v1/credits", { account_id: account, type: "grant", amount: "1", idempotency_key: `g${index}` }), 201);
  }
  const paths = {
    history: `/v1/accounts/${account}/entries?limit=1`,
    entries: "/v1/entries?limit=1",
    accounts: "/v1/accounts?limit=1",
  };
  const cursors: Record<keyof typeof paths, string> = { history: "", entries: "", accounts: "" };
  for (const [name, listing] of Object.entries(paths) as [keyof typeof paths, string][]) {
    const response = await on.get(listing);
    expectStatus(response, 200);
    expect(response.body.next_cursor).toEqual(expect.any(String));
    cursors[name] = response.body.next_cursor;
  }
  return { account, paths, cursors };
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

describe("signed cursors", () => {
  it("refuses a cursor with any one byte edited, in every listing", async () => {
    const { paths, cursors } = await listings();
    for (const name of ["history", "entries", "accounts"] as const) {
      const cursor = cursors[name];
      expectStatus(await harness.get(`${paths[name]}&cursor=${cursor}`), 200);
      for (let index = 0; index < cursor.length; index++) {
        const character = cursor[index]!;
        const replacement = character === "." ? "A" : BASE64URL[(BASE64URL.indexOf(character) + 1) % BASE64URL.length]!;
        const edited = `${cursor.slice(0, index)}${replacement}${cursor.slice(index + 1)}`;
        expectInvalidCursor(await harness.get(`${paths[name]}&cursor=${encodeURIComponent(edited)}`));
      }
      // Truncated, extended, or without its signature.
      for (const edited of [cursor.slice(0, -1), `${cursor}A`, cursor.split(".")[0]!, `${cursor.split(".")[0]}.`]) {
        expectInvalidCursor(await harness.get(`${paths[name]}&cursor=${encodeURIComponent(edited)}`));
      }
    }
  });

  it("refuses forged contents: a running balance, a total, a snapshot, an oversized position", async () => {
    const { paths, cursors } = await listings();
    const forgeries: ((data: Record<string, unknown>) => Record<string, unknown>)[] = [
      (data) => ({ ...data, balance_below: "1000000" }),
      (data) => ({ ...data, total: 123_456 }),
      (data) => ({ ...data, snapshot: "1:1:" }),
      (data) => ({ ...data, snapshot: "1:9223372036854775807:" }),
      (data) => ({ ...data, position: "9999999999999999999" }),
    ];
    for (const forge of forgeries) expectInvalidCursor(await harness.get(`${paths.history}&cursor=${forgeCursor(cursors.history, forge)}`));
    expectInvalidCursor(await harness.get(`${paths.accounts}&cursor=${forgeCursor(cursors.accounts, () => ({ after_id: "zzz" }))}`));
  });

  it("refuses a cursor of another listing: across the three listings, another account, other parameters", async () => {
    const { account, paths, cursors } = await listings();
    const other = await harness.createAccount();
    for (const [name, cursor] of Object.entries(cursors)) {
      for (const [target, listing] of Object.entries(paths)) {
        if (target !== name) expectInvalidCursor(await harness.get(`${listing}&cursor=${cursor}`));
      }
    }
    expectInvalidCursor(await harness.get(`/v1/accounts/${other}/entries?cursor=${cursors.history}`));
    expectInvalidCursor(await harness.get(`/v1/accounts/${account}/entries?from=2020-01-01T00:00:00Z&cursor=${cursors.history}`));
    expectInvalidCursor(await harness.get(`/v1/entries?type=grant&cursor=${cursors.entries}`));
    // The page size is not part of the listing.
    expectStatus(await harness.get(`/v1/accounts/${account}/entries?limit=7&cursor=${cursors.history}`), 200);
  });

  it("expires cursors after 24 hours, by the injected clock", async () => {
    let now = Date.parse("2026-12-01T00:00:00Z");
    const clocked = createHarness({ pool_max: 2, now: () => new Date(now) });
    extra.push(clocked);
    const { paths, cursors } = await listings(clocked);
    const issued = now;
    for (const name of ["history", "entries", "accounts"] as const) {
      now = issued + CURSOR_LIFETIME_MS - 1000;
      expectStatus(await clocked.get(`${paths[name]}&cursor=${cursors[name]}`), 200);
      now = issued + CURSOR_LIFETIME_MS + 1000;
      const expired = await clocked.get(`${paths[name]}&cursor=${cursors[name]}`);
      expectInvalidCursor(expired);
      expect(expired.body.detail).toMatch(/expired/);
    }
    expect(CURSOR_LIFETIME_MS).toBe(24 * 60 * 60 * 1000);
  });

  it("accepts a cursor in another process sharing the database and after a restart; an operator key overrides", async () => {
    const { paths, cursors } = await listings();
    const second = createHarness({ pool_max: 2 });
    extra.push(second);
    for (const name of ["history", "entries", "accounts"] as const) expectStatus(await second.get(`${paths[name]}&cursor=${cursors[name]}`), 200);
    await second.close();
    const restarted = createHarness({ pool_max: 2 });
    extra.push(restarted);
    for (const name of ["history", "entries", "accounts"] as const) expectStatus(await restarted.get(`${paths[name]}&cursor=${cursors[name]}`), 200);

    // TALLY_SIGNING_KEY: processes configured with the same key agree; the database key no longer signs for them.
    const operatorKey = `operator-${uniqueId()}-0123456789abcdef`;
    const [first, other] = [createHarness({ pool_max: 2, signing_key: operatorKey }), createHarness({ pool_max: 2, signing_key: operatorKey })];
    extra.push(first, other);
    const signed = await listings(first);
    expectStatus(await other.get(`${signed.paths.history}&cursor=${signed.cursors.history}`), 200);
    expectInvalidCursor(await harness.get(`${signed.paths.history}&cursor=${signed.cursors.history}`));
    expectInvalidCursor(await first.get(`${paths.history}&cursor=${cursors.history}`));
  });

  it("creates one key when many processes start at once on an empty database", async () => {
    const base = postgres(harness.databaseUrl, { max: 1, onnotice: () => {} });
    const name = `tally_keys_${process.pid}_${Date.now()}`;
    await base.unsafe(`CREATE DATABASE ${name}`);
    const url = harness.databaseUrl.replace(/\/[^/]+$/, `/${name}`);
    const pools: Database[] = [];
    try {
      const setup = connectPostgres({ url, pool_max: 1, statement_timeout_ms: 30_000 });
      pools.push(setup);
      await applyMigrations(setup, url);
      for (let index = 0; index < 8; index++) pools.push(connectPostgres({ url, pool_max: 1, statement_timeout_ms: 30_000 }));
      for (let round = 0; round < 20; round++) {
        await setup.query("DELETE FROM server_secrets");
        const keys = await Promise.all(pools.slice(1).map((pool) => loadSigningKey(pool, undefined)));
        expect(new Set(keys.map((key) => key.toString("hex"))).size, `round ${round}`).toBe(1);
        expect(keys[0]!.length).toBe(32);
        const [row] = await setup.query<{ n: number }>("SELECT count(*)::int AS n FROM server_secrets");
        expect(row!.n).toBe(1);
      }
    } finally {
      await Promise.all(pools.map((pool) => pool.close()));
      await base.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await base.end();
    }
  });

  it("on the embedded store: a walk continues across a restart", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "tally-cursors-"));
    const config = { DATABASE_URL: undefined, DATA_DIR: dataDir, DATABASE_POOL_MAX: 1, REQUEST_TIMEOUT_MS: 30_000 };
    const admin = "embedded-admin-key-0123456789abcdef0123";
    const call = async (database: Database, url: string, body?: unknown) => {
      const logger = createLogger("silent");
      const app = createApp({
        database,
        ledger: createLedgerContext({ database, logger, refresh_every: 1000, delta_max: 5000 }),
        logger,
        authenticators: { service_keys: new ServiceKeyVerifier(database.orm), jwt: undefined, admin_key: admin },
        limits: { max_body_bytes: 1 << 20, request_timeout_ms: 30_000, cors_origins: [] },
      });
      const response = await app.request(url, {
        method: body === undefined ? "GET" : "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as any, headers: response.headers };
    };
    try {
      let database = await openDatabase(config, { migrate: true });
      expectStatus(await call(database, "/v1/accounts", { id: "org_walk" }), 201);
      for (let index = 0; index < 3; index++) {
        expectStatus(await call(database, "/v1/credits", { account_id: "org_walk", type: "grant", amount: "1", idempotency_key: `g${index}` }), 201);
      }
      const first = await call(database, "/v1/accounts/org_walk/entries?limit=2");
      expectStatus(first, 200);
      expect(first.body.items.map((item: { balance_after: string }) => item.balance_after)).toEqual(["3", "2"]);
      await database.close();

      // Migrations are in place already; skipping them keeps the (slow) embedded restart short.
      database = await openDatabase(config, { migrate: false });
      try {
        const second = await call(database, `/v1/accounts/org_walk/entries?limit=2&cursor=${first.body.next_cursor}`);
        expectStatus(second, 200);
        expect(second.body.items.map((item: { balance_after: string }) => item.balance_after)).toEqual(["1"]);
        expectInvalidCursor(await call(database, `/v1/accounts/org_walk/entries?cursor=${forgeCursor(first.body.next_cursor, (data) => ({ ...data, balance_below: "7" }))}`));
        // A date-filtered walk (the gap sums run on PGlite too), one item a page.
        const balances: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await call(database, `/v1/accounts/org_walk/entries?limit=1&from=1970-01-01T00:00:00Z${cursor ? `&cursor=${cursor}` : ""}`);
          expectStatus(page, 200);
          balances.push(...page.body.items.map((item: { balance_after: string }) => item.balance_after));
          cursor = page.body.next_cursor ?? undefined;
        } while (cursor !== undefined);
        expect(balances).toEqual(["3", "2", "1"]);
      } finally {
        await database.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 300_000);
});
