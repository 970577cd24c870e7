/**
 * History under concurrency, against real PostgreSQL: a cursor walk is pinned to the snapshot its first page was
 * read in, so while writers keep posting (new entries, new batches, and rows into batches the walk is listing) and
 * roll-ups keep folding batches (some past the walk's snapshot), the walk returns exactly the items committed
 * before it began, once each, with batch totals and balances as of that moment. And roll-ups racing each other and
 * the writers never fold a row twice or lose one.
 *
 * The cursor is opaque to clients; these tests decode it only to learn the walk's snapshot, so that the expected
 * listing can be computed exactly from the rows visible in it (plus black-box bounds from the request timings).
 */
import { randomInt, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { formatNanos, numericToNanos } from "../../src/ledger/core/amount.js";
import { rollUpBatches } from "../../src/ledger/history/rollup.js";
import { cursorData } from "../support/cursors.js";
import { createHarness, type ApiResponse } from "../support/harness.js";
import { canonical, modelListing, readLedgerRows, rollUpFully, type Item } from "../support/history-model.js";

const harness = createHarness({ pool_max: 20 });
afterAll(() => harness.close());

// ---------------------------------------------------------------------------------------------------------------
// helpers

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function expectStatus(response: ApiResponse, status: number): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
}

/** A random amount of 1 nano-credit to `max_nanos`, as a canonical decimal string. */
function randomAmount(max_nanos = 5_000_000_000): string {
  return formatNanos(BigInt(randomInt(1, max_nanos + 1)));
}

function snapshotOf(cursor: string): string {
  return cursorData(cursor).snapshot as string;
}

/**
 * Holds the account's roll-up lock from another session, as a roll-up in progress would (4 is the roll-up lock
 * namespace in rollup.ts): a listing started meanwhile groups the unfolded rows on the fly.
 */
async function holdRollUpLock(account: string): Promise<{ release: () => Promise<void> }> {
  const raw = postgres(harness.databaseUrl, { max: 1, onnotice: () => {} });
  const connection = await raw.reserve();
  await connection`BEGIN`;
  // A concurrent roll-up may hold the lock for a moment: wait for it, as the next roll-up would.
  await connection`SELECT pg_advisory_xact_lock(4, hashtext(${account}))`;
  expect(await rollUpBatches(harness.ledger, account)).toBe(false);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await connection`ROLLBACK`.catch(() => undefined);
      connection.release();
      await raw.end({ timeout: 5 });
    },
  };
}

interface Post {
  keys: string[];
  started: number;
  finished: number;
}

/** Posts through the API, recording each request's keys and timing. */
function recorder(account: string) {
  const posts: Post[] = [];
  let counter = 0;
  const key = (prefix: string) => `${prefix}-${++counter}`;
  async function record(keys: string[], send: () => Promise<ApiResponse>, status: number): Promise<void> {
    const started = performance.now();
    const response = await send();
    const finished = performance.now();
    expectStatus(response, status);
    posts.push({ keys, started, finished });
  }
  return {
    posts,
    async usage(description: string | undefined = undefined) {
      const idempotency_key = key("u");
      await record([idempotency_key], () => harness.post("/v1/usage", { account_id: account, amount: randomAmount(), idempotency_key, description }), 201);
    },
    async credit() {
      const idempotency_key = key("c");
      const type = (["purchase", "grant", "refund", "bonus"] as const)[randomInt(0, 4)];
      await record([idempotency_key], () => harness.post("/v1/credits", { account_id: account, type, amount: randomAmount(20_000_000_000), idempotency_key }), 201);
    },
    /** One batch request; a null batch id is a loose row (a single entry posted through the batch route). */
    async batch(batch_ids: (string | null)[]) {
      const entries = batch_ids.map((batch_id) => ({
        account_id: account,
        amount: randomAmount(),
        idempotency_key: key("b"),
        ...(batch_id === null ? { description: "loose" } : { batch_id }),
      }));
      await record(entries.map((entry) => entry.idempotency_key), () => harness.post("/v1/usage/batch", { entries }), 200);
    },
  };
}

interface Page {
  items: Item[];
  total: number;
  page_start_balance: string | null;
  next_cursor: string | null;
}

// ---------------------------------------------------------------------------------------------------------------

describe("a cursor walk while 8 writers post and roll-ups run", () => {
  const variants = [
    { group: true, rollups: false },
    { group: true, rollups: true },
    { group: false, rollups: false },
    { group: false, rollups: true },
  ];

  it.each(variants)("group_batches=$group, concurrent roll-ups=$rollups: every item committed before the walk exactly once, as of then", async ({ group, rollups }) => {
    const account = await harness.createAccount();
    const post = recorder(account);

    // Before the walk: batches (some posted in two requests) interleaved with single entries, rolled up, then
    // grown by more rows that are not rolled up yet.
    const seeded = Array.from({ length: 20 }, () => randomUUID());
    for (const [index, batch_id] of seeded.entries()) {
      await post.batch(index % 4 === 0 ? [batch_id, null, batch_id] : [batch_id, batch_id]);
      if (index % 3 === 0) await post.credit();
      else await post.usage(`seed ${index}`);
    }
    for (let index = 0; index < seeded.length; index += 2) await post.batch([seeded[index]!]);
    await post.credit();
    await rollUpFully(harness, account);
    for (const index of [1, 4, 7, 10, 13, 16]) await post.batch([seeded[index]!, seeded[index]!]);

    // Writers: single usage, credits, new batches, more rows into the seeded batches and into their own batches.
    let writing = true;
    const own: string[] = [];
    const writer = async (w: number) => {
      let count = 0;
      while (writing) {
        const pick = (count + w) % 6;
        if (pick === 0) await post.usage(`writer ${w}`);
        else if (pick === 1) await post.credit();
        else if (pick === 2) {
          const batch_id = randomUUID();
          own.push(batch_id);
          await post.batch(Array.from({ length: randomInt(1, 4) }, () => batch_id));
        } else if (pick === 3) await post.batch([seeded[randomInt(0, seeded.length)]!, seeded[randomInt(0, seeded.length)]!]);
        else if (pick === 4 && own.length > 0) await post.batch([own[randomInt(0, own.length)]!, null]);
        else await post.batch([seeded[randomInt(0, seeded.length)]!, randomUUID(), null]);
        count++;
      }
      return count;
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));

    let rolling = rollups;
    let rollUpsRun = 0;
    const rollers = Array.from({ length: rollups ? 2 : 0 }, async () => {
      while (rolling) {
        if (await rollUpBatches(harness.ledger, account)) rollUpsRun++;
        await sleep(2);
      }
    });

    const pages: Page[] = [];
    let walkStarted = 0;
    let firstPageReturned = 0;
    let snapshot = "";
    let touched: string | undefined;
    try {
      // Let the writers get going, so rows keep committing around the walk's first page.
      while (post.posts.length < 120) await sleep(5);
      // A roll-up "in progress" while the first page is read: the walk starts with rows grouped on the fly.
      const lock = await holdRollUpLock(account);
      let cursor: string | null = null;
      try {
        walkStarted = performance.now();
        const first = await harness.get(`/v1/accounts/${account}/entries?limit=5&group_batches=${group}`);
        firstPageReturned = performance.now();
        expectStatus(first, 200);
        pages.push(first.body as Page);
        cursor = first.body.next_cursor;
      } finally {
        await lock.release();
      }
      expect(cursor).toEqual(expect.any(String));
      snapshot = snapshotOf(cursor!);

      if (rollups) {
        // Make sure at least one listed batch is rolled up past the walk's snapshot ("touched") before the walk
        // reaches it: grow a seeded batch now and wait for a roll-up to fold the new rows.
        touched = seeded[2]!;
        await post.batch([touched, touched]);
        const deadline = Date.now() + 20_000;
        for (;;) {
          await rollUpBatches(harness.ledger, account);
          const [row] = await harness.database.query<{ touched: boolean }>(
            `SELECT max_xid >= pg_snapshot_xmin($3::pg_snapshot) AS touched FROM batch_aggregates WHERE account_id = $1 AND batch_id = $2::uuid`,
            [account, touched, snapshot],
          );
          if (row?.touched) break;
          if (Date.now() > deadline) throw new Error("no roll-up folded the new rows within 20 s");
          await sleep(20);
        }
      }

      while (cursor !== null) {
        const response = await harness.get(`/v1/accounts/${account}/entries?limit=5&group_batches=${group}&cursor=${cursor}`);
        expectStatus(response, 200);
        pages.push(response.body as Page);
        cursor = response.body.next_cursor;
        expect(pages.length).toBeLessThan(1000);
      }
    } finally {
      writing = false;
      rolling = false;
      await Promise.all([...writers, ...rollers]);
    }
    const walkEnded = performance.now();

    // Every page is read in the first page's snapshot.
    for (const page of pages.slice(0, -1)) expect(snapshotOf(page.next_cursor!)).toBe(snapshot);

    const visible = await readLedgerRows(harness.database, account, snapshot);
    const expected = modelListing(visible, group).items;
    const items = pages.flatMap((page) => page.items);

    // No repeats, none skipped, nothing from after the walk began, batch totals and balances as of its start.
    expect(new Set(items.map((item) => item.id)).size).toBe(items.length);
    expect(items.map((item) => item.id)).toEqual(expected.map((item) => item.id));
    expect(items).toEqual(expected);
    for (const page of pages) {
      expect(page.total).toBe(expected.length);
      expect(page.items.length).toBeLessThanOrEqual(5);
      expect(page.page_start_balance).toBe(page.items[0]?.balance_after ?? null);
    }
    items.forEach((item, index) => {
      const before = numericToNanos(item.balance_after!) - numericToNanos(item.delta);
      const next = items[index + 1];
      expect(formatNanos(before), `item ${index}`).toBe(next === undefined ? "0" : next.balance_after);
    });
    expect(items[0]!.balance_after).toBe(formatNanos(visible.reduce((sum, row) => sum + numericToNanos(row.delta), 0n)));

    // Black-box bounds: whatever had been answered before the walk began is listed; whatever was sent after its
    // first page came back is not.
    const visibleKeys = new Set(visible.map((row) => row.idempotency_key));
    const before = post.posts.filter((entry) => entry.finished < walkStarted);
    const after = post.posts.filter((entry) => entry.started > firstPageReturned);
    expect(before.length).toBeGreaterThanOrEqual(120);
    for (const entry of before) for (const key of entry.keys) expect(visibleKeys.has(key), `${key} posted before the walk`).toBe(true);
    for (const entry of after) for (const key of entry.keys) expect(visibleKeys.has(key), `${key} posted during the walk`).toBe(false);

    // The race was real: rows were written during the walk, some into batches the walk listed.
    const all = await readLedgerRows(harness.database, account);
    const latecomers = all.filter((row) => !visibleKeys.has(row.idempotency_key));
    expect(after.length).toBeGreaterThan(0);
    expect(latecomers.length).toBeGreaterThan(0);
    const listedBatches = new Set(visible.flatMap((row) => (row.batch_id === null ? [] : [row.batch_id])));
    expect(latecomers.some((row) => row.batch_id !== null && listedBatches.has(row.batch_id))).toBe(true);
    if (rollups) {
      expect(rollUpsRun).toBeGreaterThan(0);
      const [row] = await harness.database.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM batch_aggregates
         WHERE account_id = $1 AND batch_id = ANY($2::uuid[]) AND max_xid >= pg_snapshot_xmin($3::pg_snapshot)`,
        [account, [...listedBatches], snapshot],
      );
      expect(row!.n).toBeGreaterThan(0);
      if (group) {
        const listed = items.find((item) => item.id === touched)!;
        const asOfWalk = visible.filter((row) => row.batch_id === touched);
        const now = all.filter((row) => row.batch_id === touched);
        expect(listed.batch_count).toBe(asOfWalk.length);
        expect(now.length).toBeGreaterThan(asOfWalk.length);
      }
    }

    // A new walk sees everything committed by now.
    const fresh = await harness.get(`/v1/accounts/${account}/entries?limit=500&group_batches=${group}`);
    expectStatus(fresh, 200);
    expect(fresh.body.items).toEqual(modelListing(all, group).items.slice(0, 500));
    expect(walkEnded - walkStarted).toBeGreaterThan(0);
  });
});

describe("10 concurrent roll-up loops and 8 batch writers", () => {
  it("never fold a row twice or lose one: aggregates equal the rows, and the grouped listing the model", async () => {
    const account = await harness.createAccount();
    const post = recorder(account);
    const batches = Array.from({ length: 12 }, () => randomUUID());
    const pick = () => batches[randomInt(0, batches.length)]!;

    let running = true;
    let ran = 0;
    let gaveWay = 0;
    const rollers = Array.from({ length: 10 }, async () => {
      while (running) {
        if (await rollUpBatches(harness.ledger, account)) ran++;
        else gaveWay++;
      }
    });

    // At any moment, in one statement's snapshot: the aggregates hold exactly the rows below the boundary, and the
    // boundary never moves backward.
    const INVARIANT_SQL = `
      WITH boundary AS (
        SELECT COALESCE((SELECT xid_boundary FROM rollup_boundaries WHERE account_id = $1), '0'::xid8) AS b
      ), folded AS (
        SELECT batch_id, COUNT(*) AS n, SUM(amount) AS amount, MIN(seq) AS first_seq, MAX(seq) AS last_seq
        FROM entries WHERE account_id = $1 AND batch_id IS NOT NULL AND xid < (SELECT b FROM boundary)
        GROUP BY batch_id
      ), aggregates AS (
        SELECT batch_id, row_count AS n, amount_total AS amount, first_seq, last_seq
        FROM batch_aggregates WHERE account_id = $1
      )
      SELECT (SELECT b FROM boundary)::text AS boundary,
             (SELECT COUNT(*) FROM folded f FULL JOIN aggregates a USING (batch_id)
               WHERE f.n IS DISTINCT FROM a.n OR f.amount IS DISTINCT FROM a.amount
                  OR f.first_seq IS DISTINCT FROM a.first_seq OR f.last_seq IS DISTINCT FROM a.last_seq)::int AS mismatches,
             (SELECT COALESCE(SUM(n), 0) FROM aggregates)::text AS folded_rows`;
    const samples: { boundary: bigint; mismatches: number; folded: bigint }[] = [];
    const sampler = (async () => {
      while (running) {
        const [row] = await harness.database.query<{ boundary: string; mismatches: number; folded_rows: string }>(INVARIANT_SQL, [account]);
        samples.push({ boundary: BigInt(row!.boundary), mismatches: row!.mismatches, folded: BigInt(row!.folded_rows) });
        await sleep(3);
      }
    })();

    const writer = async (w: number) => {
      for (let index = 0; index < 20; index++) {
        const size = randomInt(1, 7);
        const ids: (string | null)[] = Array.from({ length: size }, pick);
        if (index % 5 === w % 5) ids.push(null);
        await post.batch(ids);
        if (index % 7 === 0) await post.credit();
      }
    };
    try {
      await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
    } finally {
      running = false;
      await Promise.all([...rollers, sampler]);
    }

    expect(ran).toBeGreaterThan(3);
    expect(gaveWay).toBeGreaterThan(0);
    expect(samples.length).toBeGreaterThan(5);
    let previous = 0n;
    for (const sample of samples) {
      expect(sample.mismatches).toBe(0);
      expect(sample.boundary).toBeGreaterThanOrEqual(previous);
      previous = sample.boundary;
    }
    expect(samples.some((sample) => sample.folded > 0n)).toBe(true);

    // After a final roll-up, every aggregate equals the truth from the rows.
    await Promise.all(Array.from({ length: 10 }, () => rollUpBatches(harness.ledger, account)));
    await rollUpFully(harness, account);
    const truth = await harness.database.query<Record<string, string>>(
      `SELECT batch_id::text AS batch_id, count(*)::text AS row_count, sum(amount)::text AS amount_total, sum(delta)::text AS delta_total,
              min(seq)::text AS first_seq, max(seq)::text AS last_seq, min(created_at) AS first_at, max(created_at) AS last_at
       FROM entries WHERE account_id = $1 AND batch_id IS NOT NULL GROUP BY batch_id ORDER BY batch_id`,
      [account],
    );
    const aggregates = await harness.database.query<Record<string, string>>(
      `SELECT batch_id::text AS batch_id, row_count::text AS row_count, amount_total::text AS amount_total, delta_total::text AS delta_total,
              first_seq::text AS first_seq, last_seq::text AS last_seq, first_at, last_at
       FROM batch_aggregates WHERE account_id = $1 ORDER BY batch_id`,
      [account],
    );
    const normalize = (rows: Record<string, any>[]) =>
      rows.map((row) => ({
        ...row,
        amount_total: canonical(row.amount_total),
        delta_total: canonical(row.delta_total),
        first_at: new Date(row.first_at).toISOString(),
        last_at: new Date(row.last_at).toISOString(),
      }));
    expect(truth).toHaveLength(batches.length);
    expect(normalize(aggregates)).toEqual(normalize(truth));
    const posted = post.posts.reduce((sum, entry) => sum + entry.keys.length, 0);
    const all = await readLedgerRows(harness.database, account);
    expect(all).toHaveLength(posted);

    // The grouped listing equals the model, walked by cursor and read whole; so does the ungrouped one.
    for (const group of [true, false]) {
      const expected = modelListing(all, group).items;
      const items: Item[] = [];
      let cursor: string | null = null;
      do {
        const response: ApiResponse = await harness.get(`/v1/accounts/${account}/entries?limit=7&group_batches=${group}${cursor === null ? "" : `&cursor=${cursor}`}`);
        expectStatus(response, 200);
        expect(response.body.total).toBe(expected.length);
        items.push(...response.body.items);
        cursor = response.body.next_cursor;
      } while (cursor !== null);
      expect(items).toEqual(expected);
      const whole = await harness.get(`/v1/accounts/${account}/entries?limit=500&group_batches=${group}`);
      expect(whole.body.items).toEqual(expected.slice(0, 500));
    }
  });
});
