/**
 * Admin history against real PostgreSQL: GET /v1/accounts/{id}/entries, /v1/me/entries, /v1/entries,
 * /v1/entries/{id} and /v1/accounts/{id}/stats.
 *
 * The listings are compared field by field with a model the test computes from the rows it posted (read back from
 * the entries table: seq, times, ids): each batch is one item carrying the sums of its rows, items are ordered by
 * the seq of their last row, newest first, and balance_after is the chronological prefix sum. Every comparison walks
 * every page, with the cursor and with offsets, grouped and ungrouped. Amounts are exact decimal strings, modelled
 * as BigInt nano-credits.
 */
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { formatNanos, numericToNanos } from "../../src/ledger/core/amount.js";
import { rollUpBatches } from "../../src/ledger/history/rollup.js";
import { forgeCursor } from "../support/cursors.js";
import { JWT_AUDIENCE, JWT_SECRET, createHarness, uniqueId, type ApiResponse } from "../support/harness.js";
import { ROW_COLUMNS, modelListing, readLedgerRows, rollUpFully, toLedgerRow, type Filters, type Item, type LedgerRow } from "../support/history-model.js";

const harness = createHarness({ pool_max: 10 });
afterAll(() => harness.close());

// ---------------------------------------------------------------------------------------------------------------
// helpers

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function expectStatus(response: ApiResponse, status: number): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
}

function expectProblem(response: ApiResponse, status: number, code: string): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(response.body).toMatchObject({ status, code });
}

async function userToken(sub: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .setSubject(sub)
    .setAudience(JWT_AUDIENCE)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

let keyCounter = 0;
const nextKey = (prefix = "k") => `${prefix}-${++keyCounter}`;

interface BatchRow {
  batch_id?: string;
  amount: string;
  description?: string;
  metadata?: Record<string, unknown>;
  idempotency_key?: string;
}

/** Posting through the public API, one request (one transaction) per call. */
function poster(account: string) {
  return {
    async credit(type: "purchase" | "grant" | "refund" | "bonus", amount: string, extra: { description?: string; metadata?: Record<string, unknown> } = {}) {
      const response = await harness.post("/v1/credits", { account_id: account, type, amount, idempotency_key: nextKey("c"), ...extra });
      expectStatus(response, 201);
      return response.body as { id: string; created_at: string };
    },
    async usage(amount: string, extra: { description?: string; metadata?: Record<string, unknown> } = {}) {
      const response = await harness.post("/v1/usage", { account_id: account, amount, idempotency_key: nextKey("u"), ...extra });
      expectStatus(response, 201);
      return response.body as { id: string; created_at: string };
    },
    async removal(amount: string, extra: { description?: string } = {}) {
      const response = await harness.post("/v1/debits", { account_id: account, amount, idempotency_key: nextKey("d"), allow_overdraft: true, ...extra });
      expectStatus(response, 201);
      return response.body as { id: string; created_at: string };
    },
    async batch(rows: BatchRow[]) {
      const entries = rows.map((row) => ({ account_id: account, idempotency_key: row.idempotency_key ?? nextKey("b"), ...row }));
      const response = await harness.post("/v1/usage/batch", { entries });
      expectStatus(response, 200);
      expect(response.body).toEqual({ inserted: rows.length, replayed: 0 });
    },
  };
}

type Params = Record<string, string | string[] | undefined>;

function url(path: string, params: Params): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(name, one);
  }
  const text = search.toString();
  return text === "" ? path : `${path}?${text}`;
}

function filterParams(filters: Filters): Params {
  return { type: filters.types, search: filters.search, from: filters.from, to: filters.to };
}

interface Page {
  items: any[];
  total: number;
  page_start_balance?: string | null;
  next_cursor: string | null;
}

/** Every page from `cursor` (or the start) to the end. */
async function walk(path: string, params: Params, limit: number, token?: string, cursor?: string): Promise<Page[]> {
  const pages: Page[] = [];
  let next: string | null | undefined = cursor;
  do {
    const response = await harness.get(url(path, { ...params, limit: String(limit), cursor: next ?? undefined }), token);
    expectStatus(response, 200);
    pages.push(response.body as Page);
    next = response.body.next_cursor;
    expect(pages.length, "runaway walk").toBeLessThan(2000);
  } while (next !== null);
  return pages;
}

function expectPageShape(page: Page, limit: number, total: number): void {
  expect(page.total).toBe(total);
  expect(page.items.length).toBeLessThanOrEqual(limit);
  // Account history pages carry the balance after their first item; the cross-account listing has none.
  if ("page_start_balance" in page) expect(page.page_start_balance).toBe(page.items[0]?.balance_after ?? null);
}

/**
 * The listing at `path` with `params` equals `expected`: walked with the cursor at `limit` per page, read in one
 * page, read page by page with offsets, and continued with the cursor an offset page hands out.
 */
async function expectListing(path: string, params: Params, expected: { items: unknown[]; total: number }, limit = 3, token?: string): Promise<void> {
  const label = `${path} ${JSON.stringify(params)}`;
  const pages = await walk(path, params, limit, token);
  for (const page of pages) {
    expectPageShape(page, limit, expected.total);
    expect("page_start_balance" in page, label).toBe(!path.startsWith("/v1/entries"));
  }
  // No empty page is handed out unless the listing is empty.
  for (const page of pages) if (expected.total > 0) expect(page.items.length, label).toBeGreaterThan(0);
  expect(pages.flatMap((page) => page.items), label).toEqual(expected.items);

  const whole = await harness.get(url(path, { ...params, limit: "500" }), token);
  expectStatus(whole, 200);
  expect(whole.body.items, label).toEqual(expected.items);
  expect(whole.body.next_cursor).toBeNull();
  expectPageShape(whole.body, 500, expected.total);

  for (let offset = 0; offset <= expected.total; offset += limit) {
    const response = await harness.get(url(path, { ...params, limit: String(limit), offset: String(offset) }), token);
    expectStatus(response, 200);
    expect(response.body.items, `${label} offset=${offset}`).toEqual(expected.items.slice(offset, offset + limit));
    expectPageShape(response.body, limit, expected.total);
    expect(response.body.next_cursor === null, `${label} offset=${offset} next_cursor`).toBe(offset + limit >= expected.total);
    if (offset === limit && response.body.next_cursor !== null) {
      const rest = await walk(path, params, limit, token, response.body.next_cursor);
      expect(rest.flatMap((page) => page.items), `${label} cursor after offset=${offset}`).toEqual(expected.items.slice(offset + limit));
    }
  }
}

/** The account's listing, grouped and ungrouped, equals the model of its rows as they are now. */
async function expectAccountListings(account: string, filters: Filters = {}, limit = 3): Promise<LedgerRow[]> {
  const rows = await readLedgerRows(harness.database, account);
  for (const group of [true, false]) {
    await expectListing(`/v1/accounts/${account}/entries`, { ...filterParams(filters), group_batches: String(group) }, modelListing(rows, group, filters), limit);
  }
  return rows;
}

async function aggregateCount(account: string): Promise<number> {
  const [row] = await harness.database.query<{ n: number }>("SELECT count(*)::int AS n FROM batch_aggregates WHERE account_id = $1", [account]);
  return row!.n;
}

async function rollUpBoundary(account: string): Promise<string | null> {
  const [row] = await harness.database.query<{ boundary: string }>("SELECT xid_boundary::text AS boundary FROM rollup_boundaries WHERE account_id = $1", [account]);
  return row?.boundary ?? null;
}

/**
 * Runs `work` while another session holds the account's roll-up lock, as a concurrent roll-up would: the listing's
 * own roll-up then gives way and groups the unfolded rows on the fly. (4 is the roll-up lock namespace in rollup.ts.)
 */
async function withRollUpLockHeld<T>(account: string, work: () => Promise<T>): Promise<T> {
  const raw = postgres(harness.databaseUrl, { max: 1, onnotice: () => {} });
  const connection = await raw.reserve();
  try {
    await connection`BEGIN`;
    const [lock] = await connection<{ locked: boolean }[]>`SELECT pg_try_advisory_xact_lock(4, hashtext(${account})) AS locked`;
    expect(lock!.locked).toBe(true);
    // With the lock held elsewhere, a roll-up folds nothing: it gives way, or finds nothing new to fold.
    const boundary = () => rollUpBoundary(account);
    const before = await boundary();
    await rollUpBatches(harness.ledger, account);
    const result = await work();
    expect(await boundary()).toBe(before);
    return result;
  } finally {
    await connection`ROLLBACK`.catch(() => undefined);
    connection.release();
    await raw.end({ timeout: 5 });
  }
}

/** A UTC microsecond timestamp written with another offset, e.g. +02:00 or -05:30. */
function withOffset(us: string, offset_minutes: number): string {
  const millis = Date.parse(`${us.slice(0, 23)}Z`) + offset_minutes * 60_000;
  const shifted = new Date(millis).toISOString().slice(0, 23);
  const sign = offset_minutes < 0 ? "-" : "+";
  const magnitude = Math.abs(offset_minutes);
  const hours = String(Math.floor(magnitude / 60)).padStart(2, "0");
  const minutes = String(magnitude % 60).padStart(2, "0");
  return `${shifted}${us.slice(23, 26)}${sign}${hours}:${minutes}`;
}

/** `us` (UTC, microseconds) moved by `delta` microseconds. */
function shiftMicros(us: string, delta: bigint): string {
  const total = BigInt(Date.parse(`${us.slice(0, 23)}Z`)) * 1000n + BigInt(us.slice(23, 26)) + delta;
  return `${new Date(Number(total / 1000n)).toISOString().slice(0, 23)}${String(total % 1000n).padStart(3, "0")}Z`;
}

/** Any ISO 8601 instant of millisecond precision in the fixed-width UTC microsecond form. */
function toMicros(instant: string): string {
  return `${new Date(instant).toISOString().slice(0, 23)}000Z`;
}

// ---------------------------------------------------------------------------------------------------------------

describe("account history equals the model of the posted rows", () => {
  it("grouped and ungrouped, by cursor and by offset: before any roll-up, after one, and after more rows arrive", async () => {
    const account = await harness.createAccount();
    const post = poster(account);
    const batch = Array.from({ length: 10 }, () => randomUUID());

    await post.credit("purchase", "100", { description: "Top-up", metadata: { invoice: "inv_1" } });
    await post.batch([
      { batch_id: batch[0], amount: "0.000000405", description: "b0 row one", metadata: { model: "m", tokens: 812 } },
      { batch_id: batch[0], amount: "1.1" },
    ]);
    await post.batch([1, 2, 3].map((n) => ({ batch_id: batch[1], amount: `0.${n}` })));
    await post.credit("grant", "5.5");
    await post.batch([{ batch_id: batch[2], amount: "2" }, { batch_id: batch[2], amount: "0.5" }]); // batch 2, first request
    await post.usage("0.25", { description: "first call", metadata: { model: "m1", tokens: 12 } });
    await post.batch([{ batch_id: batch[3], amount: "7" }]);
    await post.credit("bonus", "0.000000001");
    // Batch 2's second request, batch 4, and a row with no batch id (a single entry posted through the batch route).
    await post.batch([
      { batch_id: batch[2], amount: "0.125" },
      { batch_id: batch[4], amount: "3" },
      { amount: "0.75", description: "loose row" },
      { batch_id: batch[2], amount: "0.375" },
      { batch_id: batch[4], amount: "1" },
    ]);
    await post.batch([{ batch_id: batch[5], amount: "0.2" }, { batch_id: batch[5], amount: "0.3" }]);
    await post.usage("1.5", { description: "second call" });
    await post.removal("3", { description: "manual removal" });
    await post.credit("refund", "2.25");
    await post.batch([1, 2, 3, 4].map((n) => ({ batch_id: batch[6], amount: `${n}.01` })));
    await post.usage("0.1");
    await post.batch([{ batch_id: batch[7], amount: "0.999999999" }]);

    // Before any roll-up: a roll-up is running elsewhere (its lock is held), so every batch is grouped on the fly.
    await withRollUpLockHeld(account, async () => {
      const rows = await expectAccountListings(account);
      expect(rows).toHaveLength(28);
      expect(await aggregateCount(account)).toBe(0);
      // The default is grouped.
      await expectListing(`/v1/accounts/${account}/entries`, {}, modelListing(rows, true), 4);
    });

    // After an explicit roll-up: every batch is read from its aggregate.
    await rollUpFully(harness, account);
    expect(await aggregateCount(account)).toBe(8);
    await expectAccountListings(account);

    // More rows after the roll-up, some into batches already rolled up (0, 1, 2 and 5), and a new batch.
    await post.batch([{ batch_id: batch[2], amount: "0.5" }]);
    await post.usage("0.3", { description: "after roll-up" });
    await post.batch([{ batch_id: batch[1], amount: "0.4" }, { batch_id: batch[8], amount: "4" }, { batch_id: batch[1], amount: "0.6" }]);
    await post.credit("purchase", "10");
    await post.batch([{ batch_id: batch[5], amount: "0.05" }]);
    await post.batch([{ batch_id: batch[0], amount: "0.000000001" }]);
    await post.usage("0.3");

    // Not yet rolled up, and the listing's own roll-up gives way: aggregates plus rows grouped on the fly.
    await withRollUpLockHeld(account, () => expectAccountListings(account));
    // The listing rolls up by itself when it can.
    await expectAccountListings(account);
    // And after an explicit roll-up of everything.
    await rollUpFully(harness, account);
    expect(await aggregateCount(account)).toBe(9);
    const rows = await expectAccountListings(account, {}, 5);
    expect(rows).toHaveLength(37);

    // Spot checks of the model itself against hand-computed values.
    const grouped = modelListing(rows, true);
    expect(grouped.total).toBe(21);
    const batch2 = grouped.items.find((item) => item.id === batch[2])!;
    expect(batch2).toMatchObject({ type: "usage", amount: "3.5", delta: "-3.5", batch_count: 5, idempotency_key: null, description: null });
    const balance = rows.reduce((sum, row) => sum + numericToNanos(row.delta), 0n);
    expect(grouped.items[0]!.balance_after).toBe(formatNanos(balance));
    const api = await harness.get(`/v1/balances/${account}`);
    expectStatus(api, 200);
    expect(api.body.balance).toBe(formatNanos(balance));
  });

  it("a batch that grew after its roll-up does not push older batches off a page", async () => {
    // Batches older than the grown one must still be listed while its new rows are grouped on the fly.
    const account = await harness.createAccount();
    const post = poster(account);
    const older = [randomUUID(), randomUUID()];
    const grown = randomUUID();
    const newer = Array.from({ length: 6 }, () => randomUUID());
    for (const id of older) await post.batch([{ batch_id: id, amount: "1" }, { batch_id: id, amount: "2" }]);
    await post.batch([{ batch_id: grown, amount: "1" }, { batch_id: grown, amount: "2" }]);
    for (const id of newer) await post.batch([{ batch_id: id, amount: "1" }, { batch_id: id, amount: "2" }]);
    await post.usage("1", { description: "single one" });
    await post.usage("1", { description: "single two" });
    await rollUpFully(harness, account);
    await withRollUpLockHeld(account, async () => {
      await post.batch([{ batch_id: grown, amount: "0.5" }]);
      const rows = await readLedgerRows(harness.database, account);
      const expected = modelListing(rows, true);
      expect(expected.total).toBe(11);
      expect(expected.items[0]!.id).toBe(grown);
      for (const limit of [2, 3, 4]) {
        await expectListing(`/v1/accounts/${account}/entries`, {}, expected, limit);
      }
    });
  });

  it("orders items by position numerically when positions differ in digit count", async () => {
    // Real deployments cross 99999 -> 100000 and so on. The rows are written directly with chosen seqs around a
    // power of ten (seq is an identity column; OVERRIDING SYSTEM VALUE sets it), as an import would.
    const account = await harness.createAccount();
    const batch = randomUUID();
    const base = 9_999_999_995n;
    const plan: { type: string; amount: string; batch_id: string | null; description: string | null }[] = [
      { type: "purchase", amount: "50", batch_id: null, description: "p" },
      { type: "usage", amount: "1", batch_id: batch, description: null },
      { type: "usage", amount: "2", batch_id: null, description: "u2" },
      { type: "grant", amount: "3", batch_id: null, description: "g3" },
      { type: "usage", amount: "4", batch_id: null, description: "u4" },
      { type: "usage", amount: "5", batch_id: null, description: "u5" },
      { type: "usage", amount: "6", batch_id: batch, description: null },
      { type: "usage", amount: "7", batch_id: null, description: "u7" },
      { type: "refund", amount: "8", batch_id: null, description: "r8" },
      { type: "usage", amount: "9", batch_id: null, description: "u9" },
      { type: "usage", amount: "10", batch_id: null, description: "u10" },
    ];
    for (const [index, row] of plan.entries()) {
      const delta = row.type === "usage" ? `-${row.amount}` : row.amount;
      await harness.database.query(
        `INSERT INTO entries (seq, id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id, description, metadata)
         OVERRIDING SYSTEM VALUE
         VALUES ($1::bigint, $2::uuid, $3, $4, $5::numeric, $6::numeric, $7, $8, $9::uuid, $10, NULL)`,
        [String(base + BigInt(index)), randomUUID(), account, row.type, row.amount, delta, `direct-${index}`, "0".repeat(64), row.batch_id, row.description],
      );
    }
    const rows = await readLedgerRows(harness.database, account);
    expect(rows.map((row) => row.seq)).toEqual(plan.map((_, index) => base + BigInt(index)));
    const grouped = modelListing(rows, true);
    expect(grouped.items.map((item) => item.description ?? item.id)).toEqual(["u10", "u9", "r8", "u7", batch, "u5", "u4", "g3", "u2", "p"]);
    await withRollUpLockHeld(account, () => expectAccountListings(account, {}, 2));
    await rollUpFully(harness, account);
    await expectAccountListings(account, {}, 2);
    await expectAccountListings(account, {}, 3);
  });
});

describe("filters", () => {
  interface Setup {
    account: string;
    rows: LedgerRow[];
    byDescription: (description: string) => LedgerRow;
    batchF1: string;
    batchF2: string;
    f2First: LedgerRow;
    f2Last: LedgerRow;
  }
  let setup: Promise<Setup> | undefined;

  /** One account, every row in its own request, a few milliseconds apart, so each has its own created_at. */
  function filterAccount(): Promise<Setup> {
    setup ??= (async () => {
      const account = await harness.createAccount();
      const post = poster(account);
      const batchF1 = randomUUID();
      const batchF2 = randomUUID();
      const steps: (() => Promise<unknown>)[] = [
        () => post.credit("purchase", "50", { description: "Plain" }),
        () => post.usage("1", { description: "50% off" }),
        () => post.usage("2", { description: "50 percent off" }),
        () => post.batch([{ batch_id: batchF1, amount: "0.1", description: "Plain batch row" }, { batch_id: batchF1, amount: "0.2" }]),
        () => post.usage("0.5", { description: "a_b" }),
        () => post.usage("0.5", { description: "axb" }),
        () => post.credit("refund", "3", { description: "back\\slash" }),
        () => post.usage("0.7", { description: "backslash" }),
        () => post.credit("grant", "4"),
        () => post.batch([{ batch_id: batchF2, amount: "0.3", idempotency_key: "f2-a" }, { batch_id: batchF2, amount: "0.4", idempotency_key: "f2-b" }]),
        () => post.usage("1.25", { description: "PLAIN text" }),
        () => post.batch([{ batch_id: batchF2, amount: "0.6", idempotency_key: "f2-c" }]),
        () => post.credit("bonus", "1", { description: "another plain one" }),
        () => post.removal("2", { description: "manual" }),
        () => post.usage("0.01"),
      ];
      for (const step of steps) {
        await step();
        await sleep(4);
      }
      const rows = await readLedgerRows(harness.database, account);
      expect(new Set(rows.map((row) => row.created_at.slice(0, 23))).size).toBeGreaterThanOrEqual(13);
      const byDescription = (description: string) => rows.find((row) => row.description === description)!;
      const f2 = rows.filter((row) => row.batch_id === batchF2);
      return { account, rows, byDescription, batchF1, batchF2, f2First: f2[0]!, f2Last: f2.at(-1)! };
    })();
    return setup;
  }

  async function listDescriptions(account: string, params: Params): Promise<(string | null)[]> {
    const response = await harness.get(url(`/v1/accounts/${account}/entries`, { ...params, limit: "500" }));
    expectStatus(response, 200);
    return response.body.items.map((item: Item) => item.description);
  }

  it("search: case-insensitive substring; %, _ and \\ are literal; batches are never matched when grouped", async () => {
    const { account, rows } = await filterAccount();
    const cases: [string, string[], string[]][] = [
      // search, grouped descriptions, ungrouped descriptions (newest first)
      ["%", ["50% off"], ["50% off"]],
      ["_", ["a_b"], ["a_b"]],
      ["\\", ["back\\slash"], ["back\\slash"]],
      ["a_b", ["a_b"], ["a_b"]],
      ["% off", ["50% off"], ["50% off"]],
      ["k\\s", ["back\\slash"], ["back\\slash"]],
      ["plain", ["another plain one", "PLAIN text", "Plain"], ["another plain one", "PLAIN text", "Plain batch row", "Plain"]],
      ["pLaIn T", ["PLAIN text"], ["PLAIN text"]],
      ["OFF", ["50 percent off", "50% off"], ["50 percent off", "50% off"]],
      ["nothing like this", [], []],
    ];
    for (const [search, grouped, ungrouped] of cases) {
      expect(await listDescriptions(account, { search }), `grouped search ${search}`).toEqual(grouped);
      expect(await listDescriptions(account, { search, group_batches: "false" }), `ungrouped search ${search}`).toEqual(ungrouped);
      for (const group of [true, false]) {
        const expected = modelListing(rows, group, { search });
        expect(expected.items.every((item) => item.balance_after === null)).toBe(true);
        await expectListing(`/v1/accounts/${account}/entries`, { search, group_batches: String(group) }, expected);
      }
    }
    const empty = await harness.get(url(`/v1/accounts/${account}/entries`, { search: "nothing like this" }));
    expect(empty.body).toEqual({ items: [], total: 0, page_start_balance: null, next_cursor: null });
  });

  it("type: single and repeated; a batch counts as usage and is hidden when usage is excluded", async () => {
    const { account, rows, batchF1, batchF2 } = await filterAccount();
    const cases: string[][] = [["usage"], ["grant"], ["grant", "refund"], ["usage", "grant"], ["removal"], ["bonus", "usage", "usage"], ["purchase", "grant", "refund", "bonus", "removal"]];
    for (const types of cases) {
      for (const group of [true, false]) {
        const expected = modelListing(rows, group, { types });
        await expectListing(`/v1/accounts/${account}/entries`, { type: types, group_batches: String(group) }, expected);
        for (const item of expected.items) expect(types).toContain(item.type);
      }
      const grouped = modelListing(rows, true, { types }).items.map((item) => item.id);
      expect(grouped.includes(batchF1) && grouped.includes(batchF2)).toBe(types.includes("usage"));
    }
    const usage = await harness.get(url(`/v1/accounts/${account}/entries`, { type: "usage", limit: "500" }));
    expect(usage.body.total).toBe(9); // 7 single usage rows and 2 batches
    expect(usage.body.items.every((item: Item) => item.balance_after === null)).toBe(true);
    expect(usage.body.page_start_balance).toBeNull();
    const credits = await harness.get(url(`/v1/accounts/${account}/entries`, { type: ["grant", "refund"], group_batches: "false" }));
    expect(credits.body.items.map((item: Item) => item.type)).toEqual(["grant", "refund"]);
  });

  it("from/to: inclusive bounds, any offset; a batch is placed by its last row; balances stay exact", async () => {
    const { account, rows, byDescription, batchF2, f2First, f2Last } = await filterAccount();
    const middle = rows.find((row) => row.description === "PLAIN text")!;
    expect(f2First.created_us < middle.created_us && middle.created_us < f2Last.created_us).toBe(true);
    const cases: Filters[] = [
      { from: byDescription("50% off").created_us, to: byDescription("backslash").created_us },
      { from: byDescription("a_b").created_us },
      { to: byDescription("a_b").created_us },
      // Only batch F2's last row is in range: grouped lists the whole batch, ungrouped that one row.
      { from: f2Last.created_us, to: f2Last.created_us },
      // F2's first rows are in range but its last row is not: grouped leaves the batch out.
      { from: f2First.created_us, to: middle.created_us },
      { to: middle.created_us },
      { from: f2First.created_us },
      // One microsecond past a row's time excludes it; one before includes it.
      { from: shiftMicros(byDescription("axb").created_us, 1n) },
      { to: shiftMicros(byDescription("axb").created_us, -1n) },
      { from: shiftMicros(f2Last.created_us, -1n), to: shiftMicros(f2Last.created_us, 1n) },
      // An empty range.
      { from: byDescription("manual").created_us, to: byDescription("Plain").created_us },
    ];
    for (const filters of cases) {
      for (const group of [true, false]) {
        const expected = modelListing(rows, group, filters);
        if (filters.from === undefined || filters.to === undefined || filters.from <= filters.to) {
          expect(expected.items.every((item) => item.balance_after !== null)).toBe(true);
        }
        await expectListing(`/v1/accounts/${account}/entries`, { ...filterParams(filters), group_batches: String(group) }, expected);
      }
    }
    const only = await harness.get(url(`/v1/accounts/${account}/entries`, { from: f2Last.created_us, to: f2Last.created_us }));
    expect(only.body.items.map((item: Item) => item.id)).toEqual([batchF2]);
    expect(only.body.items[0].batch_count).toBe(3);
    const excluded = await harness.get(url(`/v1/accounts/${account}/entries`, { from: f2First.created_us, to: middle.created_us }));
    expect(excluded.body.items.map((item: Item) => item.description)).toEqual(["PLAIN text"]);

    // The same instants written with other offsets select the same items.
    const from = byDescription("a_b").created_us;
    const to = rows.find((row) => row.type === "grant")!.created_us;
    for (const group of [true, false]) {
      const expected = modelListing(rows, group, { from, to });
      expect(expected.total).toBeGreaterThan(2);
      await expectListing(`/v1/accounts/${account}/entries`, { from: withOffset(from, 120), to: withOffset(to, -330), group_batches: String(group) }, expected);
    }
  });

  it("filters combine; the total counts the filtered items", async () => {
    const { account, rows } = await filterAccount();
    const cases: Filters[] = [
      { types: ["usage"], search: "off" },
      { types: ["usage"], from: rows[3]!.created_us, to: rows.at(-3)!.created_us },
      { types: ["refund", "usage"], search: "SLASH", from: rows[0]!.created_us },
      { search: "plain", to: rows.find((row) => row.description === "PLAIN text")!.created_us },
      { types: ["grant"], search: "x" },
    ];
    for (const filters of cases) {
      for (const group of [true, false]) {
        await expectListing(`/v1/accounts/${account}/entries`, { ...filterParams(filters), group_batches: String(group) }, modelListing(rows, group, filters), 2);
      }
    }
  });

  it("from/to equal to an item's created_at as the API reports it include that item", async () => {
    // A client narrowing to one item passes back the created_at it was shown (millisecond precision); the bounds
    // are inclusive, so the item must be listed.
    const { account } = await filterAccount();
    const all = await harness.get(`/v1/accounts/${account}/entries?limit=500`);
    expectStatus(all, 200);
    for (const item of all.body.items as Item[]) {
      const response = await harness.get(url(`/v1/accounts/${account}/entries`, { from: item.created_at, to: item.created_at }));
      expectStatus(response, 200);
      expect(response.body.items.map((listed: Item) => listed.id), `item ${item.id} at ${item.created_at}`).toContain(item.id);
    }
  });
});

describe("validation", () => {
  it("refuses bad query parameters with 400 problem+json", async () => {
    const account = await harness.createAccount();
    const post = poster(account);
    for (let index = 0; index < 4; index++) await post.usage("1");
    const path = `/v1/accounts/${account}/entries`;
    const first = await harness.get(`${path}?limit=2`);
    expectStatus(first, 200);
    const cursor = first.body.next_cursor as string;
    expect(cursor).toEqual(expect.any(String));

    const bad: Params[] = [
      { limit: "0" },
      { limit: "501" },
      { limit: "abc" },
      { limit: "1.5" },
      { limit: "-1" },
      { offset: "-1" },
      { offset: "10001" },
      { offset: "abc" },
      { cursor, offset: "0" },
      { from: "yesterday" },
      { from: "2026-11-01T00:00:00" }, // no offset
      { to: "2026-11-01" },
      { to: "2026-13-01T00:00:00Z" },
      { unknown: "1" },
      { type: "bogus" },
      { type: ["usage", "bogus"] },
      { group_batches: "yes" },
      { search: "" },
      { search: "x".repeat(201) },
    ];
    for (const params of bad) {
      for (const target of [path, "/v1/me/entries"]) {
        const token = target === path ? undefined : await userToken(account);
        const response = await harness.get(url(target, params), token);
        expectProblem(response, 400, "validation_failed");
      }
    }
    // The limits themselves are accepted.
    for (const params of [{ limit: "1" }, { limit: "500" }, { offset: "10000" }, { offset: "0" }]) {
      expectStatus(await harness.get(url(path, params)), 200);
    }
    // The admin listing validates the same way, and has no group_batches.
    for (const params of [{ limit: "0" }, { limit: "501" }, { offset: "10001" }, { type: "bogus" }, { group_batches: "false" }, { from: "2026-11-01" }, { cursor: "x", offset: "1" }]) {
      expectProblem(await harness.get(url("/v1/entries", params)), 400, "validation_failed");
    }
  });

  it("refuses cursors that are garbage or belong to another listing", async () => {
    const [account, other] = [await harness.createAccount(), await harness.createAccount()];
    for (const id of [account, other]) {
      const post = poster(id);
      for (let index = 0; index < 4; index++) await post.usage("1", { description: `row ${index}` });
    }
    const path = (id: string) => `/v1/accounts/${id}/entries`;
    const cursor = (await harness.get(`${path(account)}?limit=2`)).body.next_cursor as string;
    expect(cursor).toEqual(expect.any(String));
    expectStatus(await harness.get(url(path(account), { limit: "2", cursor })), 200);

    const garbage = ["abc", "!!!", Buffer.from("{}").toString("base64url"), Buffer.from("[1,2]").toString("base64url"), Buffer.from("not json").toString("base64url"), cursor.slice(0, -3), cursor.slice(3)];
    for (const bad of garbage) {
      expectProblem(await harness.get(url(path(account), { cursor: bad })), 400, "invalid_cursor");
    }
    // Another account, the user route of another account, other filters, other grouping: all refused.
    expectProblem(await harness.get(url(path(other), { cursor })), 400, "invalid_cursor");
    expectProblem(await harness.get(url("/v1/me/entries", { cursor }), await userToken(other)), 400, "invalid_cursor");
    expectProblem(await harness.get(url(path(account), { cursor, group_batches: "false" })), 400, "invalid_cursor");
    expectProblem(await harness.get(url(path(account), { cursor, type: "usage" })), 400, "invalid_cursor");
    expectProblem(await harness.get(url(path(account), { cursor, search: "row" })), 400, "invalid_cursor");
    expectProblem(await harness.get(url("/v1/entries", { cursor })), 400, "invalid_cursor");
    // The same account through /v1/me is the same listing.
    expectStatus(await harness.get(url("/v1/me/entries", { cursor, limit: "2" }), await userToken(account)), 200);

    const allCursor = (await harness.get("/v1/entries?limit=1")).body.next_cursor as string;
    expect(allCursor).toEqual(expect.any(String));
    expectProblem(await harness.get(url(path(account), { cursor: allCursor })), 400, "invalid_cursor");
    expectProblem(await harness.get(url("/v1/entries", { cursor: allCursor, type: "grant" })), 400, "invalid_cursor");
  });

  it("refuses a cursor whose contents were altered with 400 invalid_cursor, never a 500", async () => {
    const account = await harness.createAccount();
    const post = poster(account);
    for (let index = 0; index < 4; index++) await post.usage("1");
    const path = `/v1/accounts/${account}/entries`;
    const cursor = (await harness.get(`${path}?limit=2`)).body.next_cursor as string;
    const allCursor = (await harness.get("/v1/entries?limit=1")).body.next_cursor as string;
    const altered: ((data: Record<string, unknown>) => Record<string, unknown>)[] = [
      (data) => ({ ...data, position: "x" }),
      (data) => ({ ...data, position: "9999999999999999999" }),
      (data) => ({ ...data, snapshot: "1:1:" }),
      (data) => ({ ...data, snapshot: "10:5:" }),
      (data) => ({ ...data, balance_below: "1000000" }),
      (data) => ({ ...data, total: 1 }),
    ];
    for (const change of altered) {
      expectProblem(await harness.get(url(path, { cursor: forgeCursor(cursor, change) })), 400, "invalid_cursor");
    }
    expectProblem(await harness.get(url("/v1/entries", { cursor: forgeCursor(allCursor, (data) => ({ ...data, position: "not-a-uuid" })) })), 400, "invalid_cursor");
    // The unaltered cursor still works: only the edits were refused.
    expectStatus(await harness.get(url(path, { cursor })), 200);
  });

  it("unknown accounts are 404 account_not_found", async () => {
    const missing = uniqueId("missing");
    expectProblem(await harness.get(`/v1/accounts/${missing}/entries`), 404, "account_not_found");
    expectProblem(await harness.get(`/v1/accounts/${missing}/entries?group_batches=false&type=usage`), 404, "account_not_found");
    expectProblem(await harness.get(`/v1/accounts/${missing}/stats`), 404, "account_not_found");
    expectProblem(await harness.get("/v1/me/entries", await userToken(missing)), 404, "account_not_found");
  });
});

describe("authorization", () => {
  it("users see their own history only; service keys need history:read; /v1/entries is admin only", async () => {
    const [mine, theirs] = [await harness.createAccount(), await harness.createAccount()];
    await poster(mine).credit("grant", "3", { description: "mine" });
    const theirEntry = await poster(theirs).usage("1", { description: "theirs" });
    const myEntry = await poster(mine).usage("1", { description: "mine too" });
    const user = await userToken(mine);
    const reader = await harness.serviceKey(["history:read"]);
    const writer = await harness.serviceKey(["usage:write", "credits:write", "balances:read"]);

    const me = await harness.get("/v1/me/entries", user);
    expectStatus(me, 200);
    expect(me.body.items.map((item: Item) => item.description)).toEqual(["mine too", "mine"]);
    const own = await harness.get(`/v1/accounts/${mine}/entries`, user);
    expectStatus(own, 200);
    expect(own.body).toEqual(me.body);
    expectProblem(await harness.get(`/v1/accounts/${theirs}/entries`, user), 403, "forbidden");
    expectProblem(await harness.get(`/v1/accounts/${theirs}/stats`, user), 403, "forbidden");
    expectStatus(await harness.get(`/v1/accounts/${mine}/stats`, user), 200);

    // A history:read key reads any account, but has no /v1/me and no cross-account listing.
    expectStatus(await harness.get(`/v1/accounts/${theirs}/entries`, reader), 200);
    expectStatus(await harness.get(`/v1/accounts/${theirs}/stats`, reader), 200);
    expectProblem(await harness.get("/v1/me/entries", reader), 403, "forbidden");
    expectProblem(await harness.get("/v1/entries", reader), 403, "forbidden");
    expectProblem(await harness.get("/v1/entries", user), 403, "forbidden");
    expectStatus(await harness.get("/v1/entries?limit=1"), 200);
    // A key without history:read reads nothing here.
    for (const path of [`/v1/accounts/${mine}/entries`, `/v1/accounts/${mine}/stats`, "/v1/entries", `/v1/entries/${myEntry.id}`]) {
      expectProblem(await harness.get(path, writer), 403, "forbidden");
    }
    expectProblem(await harness.get(`/v1/accounts/${mine}/entries`, null), 401, "unauthorized");
    expectProblem(await harness.get("/v1/entries", null), 401, "unauthorized");

    // One entry: the admin, a history:read key and the owning user; another user's entry does not exist for them.
    const { seq: _seq, created_us: _us, ...expected } = (await readLedgerRows(harness.database, mine)).find((candidate) => candidate.id === myEntry.id)!;
    for (const token of [undefined, reader, user]) {
      const response = await harness.get(`/v1/entries/${myEntry.id}`, token);
      expectStatus(response, 200);
      expect(response.body).toEqual({ ...expected, refunded_amount: "0" });
    }
    expectProblem(await harness.get(`/v1/entries/${theirEntry.id}`, user), 404, "not_found");
    expectStatus(await harness.get(`/v1/entries/${theirEntry.id}`, reader), 200);
    expectProblem(await harness.get(`/v1/entries/${randomUUID()}`), 404, "not_found");
    expectProblem(await harness.get(`/v1/entries/${randomUUID()}`, user), 404, "not_found");
    expectProblem(await harness.get("/v1/entries/not-a-uuid"), 400, "validation_failed");
  });
});

describe("GET /v1/entries (all accounts)", () => {
  function entryOf(row: LedgerRow) {
    const { seq: _seq, created_us: _us, ...entry } = row;
    return entry;
  }

  it("lists entries across accounts newest first by id, filters, and walks without repeats", async () => {
    const token = uniqueId("tok");
    const accounts = [await harness.createAccount(), await harness.createAccount(), await harness.createAccount()];
    const batch = randomUUID();
    for (let round = 0; round < 4; round++) {
      for (const [index, account] of accounts.entries()) {
        const post = poster(account);
        if ((round + index) % 3 === 0) await post.credit(index % 2 === 0 ? "grant" : "purchase", `${round + 1}.5`, { description: `${token} credit ${round}` });
        else await post.usage(`0.${round + 1}`, { description: `${token} USAGE ${round}`, metadata: { round } });
        await sleep(2);
      }
    }
    await poster(accounts[0]!).batch([
      { batch_id: batch, amount: "0.01", description: `${token} batched` },
      { batch_id: batch, amount: "0.02", description: `${token} batched` },
    ]);
    await poster(accounts[1]!).usage("9", { description: "not tagged" });

    const rowsOf = async (where = "") =>
      (
        await harness.database.query<Record<string, any>>(
          `SELECT ${ROW_COLUMNS} FROM entries WHERE account_id = ANY($1::text[]) AND description LIKE '%' || $2 || '%' ${where} ORDER BY id DESC`,
          [accounts, token],
        )
      ).map(toLedgerRow);
    const mine = await rowsOf();
    expect(mine).toHaveLength(14);
    expect(new Set(mine.map((row) => row.account_id)).size).toBe(3);

    const expectAll = async (params: Params, rows: LedgerRow[]) => {
      const expected = { items: rows.map(entryOf), total: rows.length };
      await expectListing("/v1/entries", params, expected, 3);
    };
    await expectAll({ search: token }, mine);
    await expectAll({ search: token.toUpperCase() }, mine);
    await expectAll({ search: token, type: "usage" }, mine.filter((row) => row.type === "usage"));
    await expectAll({ search: token, type: ["grant", "purchase"] }, mine.filter((row) => row.type === "grant" || row.type === "purchase"));
    await expectAll({ search: `${token} usage` }, mine.filter((row) => row.description!.includes("USAGE")));
    const byTime = [...mine].sort((left, right) => (left.created_us < right.created_us ? -1 : 1));
    const from = byTime[3]!.created_us;
    const to = byTime[9]!.created_us;
    await expectAll({ search: token, from, to }, mine.filter((row) => row.created_us >= from && row.created_us <= to));

    // Unfiltered: newest first by id, across accounts.
    const first = await harness.get("/v1/entries?limit=50");
    expectStatus(first, 200);
    const ids = first.body.items.map((item: { id: string }) => item.id);
    expect(ids).toEqual([...ids].sort().reverse());
    expect(first.body.total).toBeGreaterThanOrEqual(15);
    expect(first.body.items[0]).toEqual({
      id: expect.any(String),
      account_id: expect.any(String),
      type: expect.any(String),
      amount: expect.any(String),
      delta: expect.any(String),
      idempotency_key: expect.any(String),
      batch_id: first.body.items[0].batch_id,
      description: first.body.items[0].description,
      metadata: first.body.items[0].metadata,
      created_at: expect.any(String),
    });

    // A walk is pinned to its first page: rows posted meanwhile are neither listed nor counted.
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await harness.get(url("/v1/entries", { search: token, limit: "4", cursor: cursor ?? undefined }));
      expectStatus(response, 200);
      expect(response.body.total).toBe(14);
      seen.push(...response.body.items.map((item: { id: string }) => item.id));
      cursor = response.body.next_cursor;
      await poster(accounts[pages % 3]!).usage("0.5", { description: `${token} during walk ${pages}` });
      pages++;
    } while (cursor !== null);
    expect(seen).toEqual(mine.map((row) => row.id));
    expect(new Set(seen).size).toBe(seen.length);
    // A new walk sees them.
    const after = await harness.get(url("/v1/entries", { search: token }));
    expect(after.body.total).toBe(14 + pages);
  });
});

describe("stats", () => {
  const INTERVAL_DAYS = { day: 1, week: 7 } as const;

  function truncate(time: Date, interval: "day" | "week" | "month"): Date {
    const day = new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), time.getUTCDate()));
    if (interval === "day") return day;
    if (interval === "month") return new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), 1));
    const sinceMonday = (day.getUTCDay() + 6) % 7;
    return new Date(day.getTime() - sinceMonday * 86_400_000);
  }

  function step(start: Date, interval: "day" | "week" | "month"): Date {
    if (interval === "month") return new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
    return new Date(start.getTime() + INTERVAL_DAYS[interval] * 86_400_000);
  }

  // Refunds are reported on their own line, apart from earnings; corrections (tested in corrections.test.ts) too.
  const LINES: Record<string, string> = { usage: "spent", removal: "spent", purchase: "earned", grant: "earned", bonus: "earned", refund: "refunded", expiration: "expired" };
  function totalsOf(rows: LedgerRow[]) {
    const sums: Record<string, bigint> = { spent: 0n, earned: 0n, refunded: 0n, reversed: 0n, transferred_in: 0n, transferred_out: 0n, adjusted: 0n, expired: 0n };
    let net = 0n;
    for (const row of rows) {
      sums[LINES[row.type]!]! += numericToNanos(row.amount);
      net += numericToNanos(row.delta);
    }
    const text = Object.fromEntries(Object.entries(sums).map(([line, sum]) => [line, formatNanos(sum)]));
    return { spent: text.spent, earned: text.earned, net: formatNanos(net), count: rows.length, refunded: text.refunded, reversed: text.reversed, transferred_in: text.transferred_in, transferred_out: text.transferred_out, adjusted: text.adjusted, expired: text.expired };
  }

  /** The expected stats over [from, to): dense buckets from the bucket holding `from` to the one holding `to` - 1µs. */
  function modelStats(rows: LedgerRow[], account: string, from: string, to: string, interval: "day" | "week" | "month") {
    const fromDate = new Date(from);
    const toDate = new Date(to);
    const fromUs = toMicros(from);
    const toUs = toMicros(to);
    const inRange = rows.filter((row) => row.created_us >= fromUs && row.created_us < toUs);
    const byType: Record<string, { amount: string; count: number }> = {};
    for (const type of new Set(inRange.map((row) => row.type))) {
      const ofType = inRange.filter((row) => row.type === type);
      byType[type] = { amount: formatNanos(ofType.reduce((sum, row) => sum + numericToNanos(row.amount), 0n)), count: ofType.length };
    }
    const series = [];
    for (let start = truncate(fromDate, interval); start.getTime() < toDate.getTime(); start = step(start, interval)) {
      const end = step(start, interval);
      const inBucket = inRange.filter((row) => {
        const time = new Date(row.created_at);
        return time >= start && time < end;
      });
      series.push({ start: start.toISOString(), ...totalsOf(inBucket) });
    }
    return {
      account_id: account,
      from: fromDate.toISOString(),
      to: toDate.toISOString(),
      interval,
      totals: { ...totalsOf(inRange), by_type: byType },
      series,
    };
  }

  /** Rows at chosen times: the API stamps now(), so these are written directly, as an import would. */
  async function insertAt(account: string, rows: { at: string; type: string; amount: string }[]): Promise<void> {
    for (const [index, row] of rows.entries()) {
      const delta = row.type === "usage" || row.type === "removal" ? `-${row.amount}` : row.amount;
      await harness.database.query(
        `INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id, description, metadata, created_at)
         VALUES ($1::uuid, $2, $3, $4::numeric, $5::numeric, $6, $7, NULL, NULL, NULL, $8::timestamptz)`,
        [randomUUID(), account, row.type, row.amount, delta, `at-${index}`, "0".repeat(64), row.at],
      );
    }
  }

  async function stats(account: string, params: Params, token?: string) {
    const response = await harness.get(url(`/v1/accounts/${account}/stats`, params), token);
    expectStatus(response, 200);
    return response.body;
  }

  it("totals, per-type amounts and dense day/week/month buckets match the model", async () => {
    const account = await harness.createAccount();
    // 2024-03-01 is a Friday; 2024-03-04 a Monday; 2024 is a leap year.
    await insertAt(account, [
      { at: "2024-02-15T00:00:00Z", type: "purchase", amount: "20" },
      { at: "2024-02-29T23:59:59.999999Z", type: "usage", amount: "4" },
      { at: "2024-03-01T00:00:00Z", type: "refund", amount: "2" },
      { at: "2024-03-03T23:59:59.999999Z", type: "purchase", amount: "3" },
      { at: "2024-03-04T00:00:00Z", type: "usage", amount: "0.5" },
      { at: "2024-03-04T12:00:00Z", type: "grant", amount: "7" },
      { at: "2024-03-04T13:00:00Z", type: "usage", amount: "0.25" },
      { at: "2024-03-10T08:00:00Z", type: "removal", amount: "1.25" },
      { at: "2024-03-31T23:59:59Z", type: "bonus", amount: "0.000000001" },
      { at: "2024-04-01T00:00:00Z", type: "usage", amount: "9" },
      { at: "2024-04-14T23:59:59.999999Z", type: "usage", amount: "0.1" },
      { at: "2024-04-15T00:00:00Z", type: "grant", amount: "100" },
    ]);
    const rows = await readLedgerRows(harness.database, account);

    const cases: [string, string, "day" | "week" | "month", number][] = [
      ["2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z", "day", 31],
      ["2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z", "week", 5],
      ["2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z", "month", 1],
      ["2024-02-15T00:00:00Z", "2024-04-15T00:00:00Z", "month", 3],
      ["2024-02-15T00:00:00Z", "2024-04-15T00:00:00Z", "week", 9],
      ["2024-03-04T06:00:00Z", "2024-03-06T00:00:00Z", "day", 2],
      ["2024-03-04T00:00:00Z", "2024-03-04T12:00:00Z", "day", 1],
      ["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "week", 5],
    ];
    for (const [from, to, interval, buckets] of cases) {
      const body = await stats(account, { from, to, interval });
      const expected = modelStats(rows, account, from, to, interval);
      expect(body, `${interval} ${from}..${to}`).toEqual(expected);
      expect(body.series).toHaveLength(buckets);
      for (const [index, bucket] of body.series.entries()) {
        const start = new Date(bucket.start);
        if (interval === "week") expect(start.getUTCDay(), bucket.start).toBe(1);
        if (interval === "month") expect(start.getUTCDate()).toBe(1);
        expect(start.getUTCHours() + start.getUTCMinutes() + start.getUTCSeconds() + start.getUTCMilliseconds()).toBe(0);
        if (index > 0) expect(bucket.start).toBe(step(new Date(body.series[index - 1].start), interval).toISOString());
      }
    }

    // Spot checks against hand-computed values.
    const march = await stats(account, { from: "2024-03-01T00:00:00Z", to: "2024-04-01T00:00:00Z", interval: "week" });
    expect(march.totals).toEqual({
      spent: "2",
      earned: "10.000000001",
      net: "10.000000001",
      count: 7,
      refunded: "2",
      reversed: "0",
      transferred_in: "0",
      transferred_out: "0",
      adjusted: "0",
      expired: "0",
      by_type: {
        refund: { amount: "2", count: 1 },
        purchase: { amount: "3", count: 1 },
        usage: { amount: "0.75", count: 2 },
        grant: { amount: "7", count: 1 },
        removal: { amount: "1.25", count: 1 },
        bonus: { amount: "0.000000001", count: 1 },
      },
    });
    expect(march.series.map((bucket: { start: string; count: number }) => [bucket.start.slice(0, 10), bucket.count])).toEqual([
      ["2024-02-26", 2], // Friday 1st and Sunday 3rd, not the 29th (before `from`)
      ["2024-03-04", 4],
      ["2024-03-11", 0],
      ["2024-03-18", 0],
      ["2024-03-25", 1],
    ]);
    // The same instants with other offsets.
    const shifted = await stats(account, { from: "2024-03-01T02:00:00+02:00", to: "2024-03-31T19:00:00-05:00", interval: "week" });
    expect(shifted.totals).toEqual(march.totals);
    expect(shifted.series).toEqual(march.series);
  });

  it("counts rows posted through the API today, batched rows one by one", async () => {
    const account = await harness.createAccount();
    const post = poster(account);
    // Taken first: the range then holds every row even if the posts run past midnight UTC.
    const now = Date.now();
    await post.credit("purchase", "100");
    await post.credit("grant", "5");
    await post.credit("bonus", "0.000000001");
    await post.usage("2.5");
    await post.usage("2.5");
    await post.batch([1, 2, 3].map(() => ({ batch_id: "0190b6a0-0000-7000-8000-000000000001", amount: "0.1" })));
    await post.removal("1");
    const rows = await readLedgerRows(harness.database, account);
    const from = new Date(Math.floor(now / 86_400_000) * 86_400_000 - 86_400_000).toISOString();
    const to = new Date(now + 86_400_000).toISOString();
    const body = await stats(account, { from, to, interval: "day" });
    expect(body).toEqual(modelStats(rows, account, from, to, "day"));
    expect(body.totals).toMatchObject({ spent: "6.3", earned: "105.000000001", net: "98.700000001", count: 9 });
    expect(body.totals.by_type.usage).toEqual({ amount: "5.3", count: 5 });
    expect(body.series).toHaveLength(3);
    expect(body.series[0].count).toBe(0);

    // Defaults: the 30 days up to now, by day.
    const defaults = await stats(account, {});
    expect(defaults.interval).toBe("day");
    expect(new Date(defaults.to).getTime() - new Date(defaults.from).getTime()).toBe(30 * 86_400_000);
    expect(defaults.totals.count).toBe(9);
    expect(defaults.series.length).toBeGreaterThanOrEqual(30);
  });

  it("validates the range: from before to, a known interval, at most 400 buckets", async () => {
    const account = await harness.createAccount();
    const path = `/v1/accounts/${account}/stats`;
    const refused: Params[] = [
      { from: "2024-03-01T00:00:00Z", to: "2024-03-01T00:00:00Z" },
      { from: "2024-03-02T00:00:00Z", to: "2024-03-01T00:00:00Z" },
      { from: "2024-01-01T00:00:00Z", to: "2025-03-01T00:00:00Z", interval: "day" },
      { from: "2000-01-03T00:00:00Z", to: "2010-01-04T00:00:00Z", interval: "week" },
      { from: "1990-01-01T00:00:00Z", to: "2030-01-01T00:00:00Z", interval: "month" },
      { interval: "year" },
      { from: "2024-03-01" },
      { to: "2024-03-01T00:00:00" },
      { unknown: "1" },
    ];
    for (const params of refused) expectProblem(await harness.get(url(path, params)), 400, "validation_failed");
  });

  it("allows exactly 400 buckets and refuses 401", async () => {
    const account = await harness.createAccount();
    const path = `/v1/accounts/${account}/stats`;
    const day = 86_400_000;
    const cases: [string, "day" | "week" | "month", string, string][] = [
      ["2024-01-01T00:00:00Z", "day", new Date(Date.parse("2024-01-01T00:00:00Z") + 400 * day).toISOString(), new Date(Date.parse("2024-01-01T00:00:00Z") + 401 * day).toISOString()],
      ["2020-01-06T00:00:00Z", "week", new Date(Date.parse("2020-01-06T00:00:00Z") + 400 * 7 * day).toISOString(), new Date(Date.parse("2020-01-06T00:00:00Z") + 401 * 7 * day).toISOString()],
      ["2000-01-01T00:00:00Z", "month", "2033-05-01T00:00:00Z", "2033-06-01T00:00:00Z"],
    ];
    for (const [from, interval, to400, to401] of cases) {
      const response = await harness.get(url(path, { from, to: to400, interval }));
      expect(response.status, `${interval}: 400 buckets, ${JSON.stringify(response.body)}`).toBe(200);
      expect(response.body.series).toHaveLength(400);
      expectProblem(await harness.get(url(path, { from, to: to401, interval })), 400, "validation_failed");
    }
  });
});
