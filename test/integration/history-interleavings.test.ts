/**
 * Running balances when created_at and the listing position disagree. created_at is the inserting transaction's
 * start; the position is the seq of an item's last row, taken at insert. A batch that starts before a single usage
 * but inserts (and commits) after it is listed above the usage although it is older; a usage that starts before a
 * batch but inserts after it is listed above the batch although it is older. A `from`/`to` filter then drops items
 * that sit between listed ones, and balance_after must still be the balance after every item at or below the
 * listed one in listing order (what the unfiltered listing shows for the same item), on every page of a cursor walk.
 *
 * The interleavings are made deterministic with a raw connection that holds a transaction open while the API posts.
 */
import { randomInt, randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { cursorData } from "../support/cursors.js";
import { createHarness, type ApiResponse } from "../support/harness.js";
import { modelListing, readLedgerRows, rollUpFully, type Filters, type Item, type LedgerRow } from "../support/history-model.js";

const harness = createHarness({ pool_max: 10 });
const raw = postgres(harness.databaseUrl, { max: 4, onnotice: () => {} });
afterAll(async () => {
  await raw.end({ timeout: 5 });
  await harness.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function expectStatus(response: ApiResponse, status: number): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
}

let keyCounter = 0;
async function postUsage(account: string, amount: string, description: string): Promise<void> {
  expectStatus(await harness.post("/v1/usage", { account_id: account, amount, idempotency_key: `u-${++keyCounter}`, description }), 201);
}

/** Inserts `rows` batched usage rows of 0.001 in the open transaction `connection`, as POST /v1/usage/batch would. */
async function insertBatchRows(connection: postgres.ReservedSql, account: string, batch_id: string, rows: number): Promise<void> {
  await connection`
    INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id)
    SELECT gen_random_uuid(), ${account}, 'usage', 0.001, -0.001, ${batch_id} || '-' || n, 'test', ${batch_id}::uuid
    FROM generate_series(1, ${rows}::int) AS n`;
}

/** Opens a transaction and fixes its start time (created_at of whatever it inserts). */
async function begin(): Promise<postgres.ReservedSql> {
  const connection = await raw.reserve();
  await connection`BEGIN`;
  await connection`SELECT now()`;
  await sleep(5);
  return connection;
}

async function commit(connection: postgres.ReservedSql): Promise<void> {
  await connection`COMMIT`;
  connection.release();
}

/**
 * The issue's reproduction: a purchase of 1000, then a batch of `batch_rows` rows of 0.001 whose transaction starts
 * before a single usage of 10 but inserts and commits after it, then a later usage of 5.
 * Positions: purchase < single < batch < later; times: purchase < batch < single < later.
 */
async function batchInsertsAfterUsage(batch_rows: number): Promise<string> {
  const account = await harness.createAccount();
  expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "1000", idempotency_key: `c-${++keyCounter}` }), 201);
  await sleep(5);
  const batch = await begin();
  await postUsage(account, "10", "single");
  await insertBatchRows(batch, account, randomUUID(), batch_rows);
  await commit(batch);
  await sleep(5);
  await postUsage(account, "5", "later");
  return account;
}

/**
 * The mirror image: a usage of 10 whose transaction starts before a batch posted through the API but inserts after
 * it. Positions: purchase < batch < single < later; times: purchase < single < batch < later.
 */
async function usageInsertsAfterBatch(batch_rows: number): Promise<string> {
  const account = await harness.createAccount();
  expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "1000", idempotency_key: `c-${++keyCounter}` }), 201);
  await sleep(5);
  const usage = await begin();
  const batch_id = randomUUID();
  const entries = Array.from({ length: batch_rows }, () => ({ account_id: account, amount: "0.001", idempotency_key: `b-${++keyCounter}`, batch_id }));
  expectStatus(await harness.post("/v1/usage/batch", { entries }), 200);
  await usage`
    INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, description)
    VALUES (gen_random_uuid(), ${account}, 'usage', 10, -10, ${`late-${++keyCounter}`}, 'test', 'single')`;
  await commit(usage);
  await sleep(5);
  await postUsage(account, "5", "later");
  return account;
}

function url(path: string, params: Record<string, string | undefined>): string {
  const search = new URLSearchParams(Object.entries(params).filter((entry): entry is [string, string] => entry[1] !== undefined));
  return `${path}?${search.toString()}`;
}

/** Walks the listing with the cursor, `limit` items a page; every page's balances checked on the way. */
async function walk(account: string, params: Record<string, string | undefined>, limit: number): Promise<Item[]> {
  const items: Item[] = [];
  let cursor: string | undefined;
  for (let pages = 0; ; pages++) {
    expect(pages, "runaway walk").toBeLessThan(200);
    const response = await harness.get(url(`/v1/accounts/${account}/entries`, { ...params, limit: String(limit), cursor }));
    expectStatus(response, 200);
    expect(response.body.page_start_balance).toBe(response.body.items[0]?.balance_after ?? null);
    items.push(...(response.body.items as Item[]));
    if (response.body.next_cursor === null) return items;
    cursor = response.body.next_cursor;
  }
}

/** Every from/to worth trying: each distinct time, one microsecond either side, and the ranges between them. */
function boundaryFilters(rows: readonly LedgerRow[]): Filters[] {
  const times = [...new Set(rows.map((row) => row.created_us))].sort();
  const shift = (us: string, micros: number) => {
    const total = BigInt(Date.parse(`${us.slice(0, 23)}Z`)) * 1000n + BigInt(us.slice(23, 26)) + BigInt(micros);
    return `${new Date(Number(total / 1000n)).toISOString().slice(0, 23)}${String(total % 1000n).padStart(3, "0")}Z`;
  };
  const filters: Filters[] = [];
  for (const time of times) {
    filters.push({ from: time }, { to: time }, { from: shift(time, 1) }, { to: shift(time, -1) }, { from: time, to: time });
  }
  for (let index = 0; index + 1 < times.length; index++) filters.push({ from: times[index]!, to: times[index + 1]! });
  return filters;
}

const scenarios = [
  { name: "a batch that starts before a usage and inserts after it", build: batchInsertsAfterUsage },
  { name: "a usage that starts before a batch and inserts after it", build: usageInsertsAfterBatch },
];

describe("balance_after with from/to when created_at and position disagree", () => {
  it("reproduces the issue: a 10,000-row batch started before and committed after a usage, walked by cursor", async () => {
    const account = await batchInsertsAfterUsage(10_000);
    const rows = await readLedgerRows(harness.database, account);
    const single = rows.find((row) => row.description === "single")!;
    const batchRows = rows.filter((row) => row.batch_id !== null);
    expect(batchRows.length).toBe(10_000);
    // The interleaving is real: the batch is older by created_at and newer by position.
    expect(batchRows.at(-1)!.created_us < single.created_us).toBe(true);
    expect(batchRows[0]!.seq > single.seq).toBe(true);

    // ?from= the usage's time drops the batch, which sits between the later usage and the single one.
    const fromSingle = await walk(account, { from: single.created_us }, 1);
    expect(fromSingle.map((item) => [item.description, item.balance_after])).toEqual([
      ["later", "975"],
      ["single", "990"],
    ]);
    // ?to= the batch's time drops the single usage, which sits between the batch and the purchase.
    const toBatch = await walk(account, { to: batchRows.at(-1)!.created_us }, 1);
    expect(toBatch.map((item) => [item.type, item.balance_after])).toEqual([
      ["usage", "980"],
      ["purchase", "1000"],
    ]);
    // Ungrouped, the same, with the dropped item between two pages and inside one.
    for (const limit of [1, 500]) {
      const ungrouped = await walk(account, { from: single.created_us, group_batches: "false" }, limit);
      expect(ungrouped.map((item) => [item.description, item.balance_after])).toEqual([
        ["later", "975"],
        ["single", "990"],
      ]);
    }
    const ungroupedTo = await walk(account, { to: batchRows.at(-1)!.created_us, group_batches: "false" }, 500);
    expect(ungroupedTo.length).toBe(10_001);
    expect(ungroupedTo.at(-1)!.balance_after).toBe("1000");
    // The batch's first row is listed above the single usage (its position is higher), so it stands after it.
    expect(ungroupedTo.at(-2)!.balance_after).toBe("989.999");
    expect(ungroupedTo[0]!.balance_after).toBe("980");
  }, 300_000);

  for (const scenario of scenarios) {
    for (const rollups of ["folded", "grouped on the fly"] as const) {
      it(`${scenario.name} (${rollups}): every from/to, by cursor and by offset, equals the model`, async () => {
        const account = await scenario.build(3);
        if (rollups === "folded") await rollUpFully(harness, account);
        const rows = await readLedgerRows(harness.database, account);
        const lock = rollups === "folded" ? undefined : await holdRollUpLock(account);
        try {
          for (const filters of boundaryFilters(rows)) {
            for (const group of [true, false]) {
              const expected = modelListing(rows, group, filters).items;
              const params = { from: filters.from, to: filters.to, group_batches: String(group) };
              // One item a page puts every gap between pages; a whole page puts them all inside one.
              for (const limit of [1, 500]) {
                const items = await walk(account, params, limit);
                expect(items, `${JSON.stringify(filters)} group=${group} limit=${limit}`).toEqual(expected);
              }
              // Offset pages compute the first item's balance afresh instead of carrying it.
              for (let offset = 1; offset < expected.length; offset++) {
                const response = await harness.get(url(`/v1/accounts/${account}/entries`, { ...params, limit: "2", offset: String(offset) }));
                expectStatus(response, 200);
                expect(response.body.items, `${JSON.stringify(filters)} group=${group} offset=${offset}`).toEqual(expected.slice(offset, offset + 2));
              }
            }
          }
        } finally {
          await lock?.release();
        }
      }, 300_000);
    }
  }
});

describe("balance_after with from/to while writers post", () => {
  it("cursor walks with date filters, pinned to their snapshot, equal the model while slow batches and usage interleave", async () => {
    const account = await harness.createAccount();
    expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "1000", idempotency_key: `c-${++keyCounter}` }), 201);
    let writing = true;
    // Slow batches: the transaction starts, waits while others post, then inserts and commits (older by created_at,
    // newer by position than what posted meanwhile).
    const slow = async () => {
      while (writing) {
        const connection = await begin();
        await sleep(randomInt(5, 40));
        await insertBatchRows(connection, account, randomUUID(), randomInt(1, 10));
        await commit(connection);
        await sleep(randomInt(0, 20));
      }
    };
    const fast = async (writer: number) => {
      for (let count = 0; writing; count++) {
        if ((count + writer) % 5 === 0) {
          expectStatus(await harness.post("/v1/credits", { account_id: account, type: "grant", amount: "3", idempotency_key: `c-${++keyCounter}` }), 201);
        } else if ((count + writer) % 5 === 1) {
          const batch_id = randomUUID();
          const entries = Array.from({ length: randomInt(1, 4) }, () => ({ account_id: account, amount: "0.25", idempotency_key: `b-${++keyCounter}`, batch_id }));
          expectStatus(await harness.post("/v1/usage/batch", { entries }), 200);
        } else {
          await postUsage(account, "0.5", `writer ${writer}`);
        }
        await sleep(randomInt(0, 10));
      }
    };
    const writers = [slow(), slow(), ...Array.from({ length: 4 }, (_, writer) => fast(writer))];
    let walks = 0;
    try {
      await sleep(300);
      for (let round = 0; round < 6; round++) {
        const rows = await readLedgerRows(harness.database, account);
        const times = [...new Set(rows.map((row) => row.created_us))].sort();
        const pick = () => times[randomInt(0, times.length)]!;
        const [low, high] = [pick(), pick()].sort() as [string, string];
        const filters: Filters = round % 3 === 0 ? { from: low } : round % 3 === 1 ? { to: high } : { from: low, to: high };
        for (const group of [true, false]) {
          const items: Item[] = [];
          let cursor: string | undefined;
          let snapshot: string | undefined;
          for (;;) {
            const response = await harness.get(url(`/v1/accounts/${account}/entries`, { from: filters.from, to: filters.to, group_batches: String(group), limit: "25", cursor }));
            expectStatus(response, 200);
            items.push(...(response.body.items as Item[]));
            expect(items.length, "runaway walk").toBeLessThan(20_000);
            if (response.body.next_cursor === null) break;
            cursor = response.body.next_cursor as string;
            snapshot ??= cursorData(cursor).snapshot as string;
          }
          if (snapshot === undefined) continue;
          walks++;
          const visible = await readLedgerRows(harness.database, account, snapshot);
          expect(items, `${JSON.stringify(filters)} group=${group}`).toEqual(modelListing(visible, group, filters).items);
        }
      }
    } finally {
      writing = false;
      await Promise.all(writers);
    }
    expect(walks).toBeGreaterThan(4);
    // The interleaving happened: some item is older by created_at than one listed below it.
    const rows = modelListing(await readLedgerRows(harness.database, account), true).items;
    expect(rows.some((item, index) => index + 1 < rows.length && item.last_created_at < rows[index + 1]!.last_created_at)).toBe(true);
  }, 180_000);
});

/** Holds the account's roll-up lock (namespace 4, see rollup.ts), so listings group unfolded rows on the fly. */
async function holdRollUpLock(account: string): Promise<{ release: () => Promise<void> }> {
  const connection = await raw.reserve();
  await connection`BEGIN`;
  await connection`SELECT pg_advisory_xact_lock(4, hashtext(${account}))`;
  return {
    async release() {
      await connection`ROLLBACK`;
      connection.release();
    },
  };
}
