/**
 * Folds make progress in bounded, committed chunks (issue 8, item 3): a checkpoint refresh, a batch roll-up and the
 * credits a crossing evaluation sums each fold about `chunk_rows` rows per statement (whole transactions), commit,
 * and continue from there. The tests use chunks of 5 rows and inject a failure part-way through a fold, as a
 * statement timeout or a restart would: what was folded stays folded and exact, and the next attempt finishes.
 */
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import type { Database, Queryable } from "../../src/db/port.js";
import { refreshCheckpoint, refreshCheckpointChunk } from "../../src/ledger/balances/checkpoints.js";
import { createLedgerContext, type LedgerContext } from "../../src/ledger/core/context.js";
import { evaluateCrossing } from "../../src/ledger/events/crossings.js";
import { listAllEntries } from "../../src/ledger/history/all-entries.js";
import { listHistory } from "../../src/ledger/history/history.js";
import { rollUpBatches } from "../../src/ledger/history/rollup.js";
import { PLAN_CHUNK_SQL } from "../../src/ledger/history/rollup-sql.js";
import { postEntry } from "../../src/ledger/posting/posting.js";
import { createLogger } from "../../src/logger.js";
import { explainAnalyze, relationReads } from "../support/generic-plan.js";
import { createHarness, uniqueId } from "../support/harness.js";
import { modelListing, readLedgerRows } from "../support/history-model.js";

const harness = createHarness();
afterAll(() => harness.close());

const CHUNK_ROWS = 5;

/** A ledger context over the real test database whose folds take chunks of CHUNK_ROWS rows. */
function smallChunks(database: Database = harness.database): LedgerContext {
  return createLedgerContext({
    database,
    logger: createLogger("silent"),
    refresh_every: 1_000_000, // no refresh on write: the tests fold by hand
    delta_max: 1_000_000,
    random: () => 0.99,
    fold_chunk_rows: CHUNK_ROWS,
  });
}

/**
 * The real database, except that after `allowed` successful calls of the given kind every further one fails, as a
 * statement timeout or a lost connection would in the middle of a fold. A RegExp kind counts the statements it
 * matches, inside transactions or not (a roll-up reads chunks ahead, so its transactions are not one per chunk).
 */
function failingAfter(database: Database, kind: "query" | "transaction" | RegExp, allowed: number): Database {
  let calls = 0;
  const fail = () => {
    if (++calls > allowed) throw new Error("injected failure part-way through a fold");
  };
  const failOnMatch = (text: string) => {
    if (kind instanceof RegExp && kind.test(text)) fail();
  };
  return {
    kind: database.kind,
    orm: database.orm,
    listen: database.listen.bind(database),
    close: async () => {},
    async query<Row extends object>(text: string, parameters?: readonly unknown[]) {
      if (kind === "query") fail();
      failOnMatch(text);
      return database.query<Row>(text, parameters);
    },
    async transaction<T>(work: (transaction: Queryable) => Promise<T>) {
      if (kind === "transaction") fail();
      return database.transaction((transaction) =>
        work({
          query<Row extends object>(text: string, parameters?: readonly unknown[]) {
            failOnMatch(text);
            return transaction.query<Row>(text, parameters);
          },
        }),
      );
    },
  };
}

let keySequence = 0;
/** Posts one row in its own transaction, never refreshing a checkpoint on the way. */
async function post(account: string, type: "usage" | "grant", amount: string, batch_id: string | null = null) {
  await postEntry(smallChunks(), { account_id: account, type, amount, idempotency_key: `f${keySequence++}`, batch_id, description: null, metadata: null });
}

/**
 * Waits until every row of the account is below the cluster's horizon: a fold never passes a transaction still
 * running anywhere (another test file's, say), and these tests count on folding all of the account's rows.
 */
async function horizonPast(account: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [row] = await harness.database.query<{ past: boolean }>(
      `SELECT pg_snapshot_xmin(pg_current_snapshot()) > (SELECT max(xid) FROM entries WHERE account_id = $1) AS past`,
      [account],
    );
    if (row!.past) return;
    if (Date.now() > deadline) throw new Error("the horizon did not pass the account's rows in 20 s");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function ledgerSum(account: string, below?: string): Promise<string> {
  const [row] = await harness.database.query<{ total: string; rows: string }>(
    `SELECT COALESCE(SUM(delta), 0)::text AS total, count(*)::text AS rows FROM entries
     WHERE account_id = $1 AND ($2::xid8 IS NULL OR xid < $2::xid8)`,
    [account, below ?? null],
  );
  return `${Number(row!.total)} over ${row!.rows} rows`;
}

async function checkpointOf(account: string): Promise<{ balance: string; boundary: string } | undefined> {
  const [row] = await harness.database.query<{ balance: string; boundary: string }>(
    "SELECT balance::text AS balance, xid_boundary::text AS boundary FROM balance_checkpoints WHERE account_id = $1",
    [account],
  );
  return row;
}

async function rowsBelow(account: string, boundary: string): Promise<number> {
  const [row] = await harness.database.query<{ rows: string }>(
    "SELECT count(*)::text AS rows FROM entries WHERE account_id = $1 AND xid < $2::xid8",
    [account, boundary],
  );
  return Number(row!.rows);
}

describe("checkpoint refresh", () => {
  it("folds one chunk per statement, keeps its progress when interrupted, and catches up exactly", async () => {
    const account = await harness.createAccount();
    await post(account, "grant", "100");
    for (let index = 0; index < 40; index++) await post(account, "usage", "1.5"); // 41 transactions of one row
    await horizonPast(account);

    expect(await refreshCheckpointChunk(harness.database, account, CHUNK_ROWS)).toBe(false);
    const first = (await checkpointOf(account))!;
    expect(await rowsBelow(account, first.boundary)).toBe(CHUNK_ROWS);
    expect(`${Number(first.balance)} over ${CHUNK_ROWS} rows`).toBe(await ledgerSum(account, first.boundary));

    // Three more chunks commit, then the refresh dies.
    const failing = failingAfter(harness.database, "query", 3);
    await expect(refreshCheckpoint(failing, account, { chunk_rows: CHUNK_ROWS, chunks_max: 1000 })).rejects.toThrow(/injected/);
    const interrupted = (await checkpointOf(account))!;
    expect(await rowsBelow(account, interrupted.boundary)).toBe(4 * CHUNK_ROWS);
    expect(`${Number(interrupted.balance)} over ${4 * CHUNK_ROWS} rows`).toBe(await ledgerSum(account, interrupted.boundary));
    // Reads stay exact with the checkpoint part-way.
    expect((await harness.get(`/v1/balances/${account}`)).body.balance).toBe("40");

    expect(await refreshCheckpoint(harness.database, account, { chunk_rows: CHUNK_ROWS, chunks_max: 1000 })).toBe(true);
    const done = (await checkpointOf(account))!;
    expect(await rowsBelow(account, done.boundary)).toBe(41);
    expect(Number(done.balance)).toBe(40);
  });

  it("a transaction larger than a chunk is folded whole: the fold never stalls on it", async () => {
    const account = await harness.createAccount();
    const rows = Array.from({ length: 12 }, (_, index) => ({ account_id: account, amount: "1", idempotency_key: `big${index}` }));
    expect((await harness.post("/v1/usage/batch", { entries: rows })).body).toEqual({ inserted: 12, replayed: 0 });
    await post(account, "grant", "20");
    await horizonPast(account);
    let statements = 0;
    while (!(await refreshCheckpointChunk(harness.database, account, CHUNK_ROWS))) {
      expect(++statements).toBeLessThan(5);
    }
    const done = (await checkpointOf(account))!;
    expect(await rowsBelow(account, done.boundary)).toBe(13);
    expect(Number(done.balance)).toBe(8);
  });
});

describe("batch roll-up", () => {
  it("rolls up in committed chunks; an interrupted roll-up keeps its progress and history stays exact", async () => {
    const account = await harness.createAccount();
    const batches = Array.from({ length: 8 }, () => randomUUID());
    for (const [index, batch_id] of batches.entries()) {
      const entries = [1, 2, 3].map((row) => ({ account_id: account, amount: `${row}`, idempotency_key: `b${index}-${row}`, batch_id }));
      expect((await harness.post("/v1/usage/batch", { entries })).body).toEqual({ inserted: 3, replayed: 0 });
      await post(account, "grant", "10");
    }
    await horizonPast(account);
    // Two chunks commit, then the roll-up dies applying the third.
    const interrupted = smallChunks(failingAfter(harness.database, /INSERT INTO batch_aggregates/, 2));
    await expect(rollUpBatches(interrupted, account)).rejects.toThrow(/injected/);
    const [boundary] = await harness.database.query<{ boundary: string }>(
      "SELECT xid_boundary::text AS boundary FROM rollup_boundaries WHERE account_id = $1",
      [account],
    );
    const folded = await rowsBelow(account, boundary!.boundary);
    expect(folded).toBeGreaterThan(0);
    expect(folded).toBeLessThan(32);
    // What was folded is exactly the batched rows below the boundary.
    const aggregates = await harness.database.query<{ rows: string; total: string }>(
      "SELECT COALESCE(SUM(row_count), 0)::text AS rows, COALESCE(SUM(delta_total), 0)::text AS total FROM batch_aggregates WHERE account_id = $1",
      [account],
    );
    const [expected] = await harness.database.query<{ rows: string; total: string }>(
      `SELECT count(*)::text AS rows, COALESCE(SUM(delta), 0)::text AS total FROM entries
       WHERE account_id = $1 AND batch_id IS NOT NULL AND xid < $2::xid8`,
      [account, boundary!.boundary],
    );
    expect(aggregates[0]).toEqual(expected);

    // A page read now groups the unfolded rest on the fly and agrees with the model.
    const context = smallChunks();
    const filters = { types: undefined, search: undefined, from: undefined, to: undefined };
    const rows = await readLedgerRows(harness.database, account);
    const model = modelListing(rows, true);
    const page = await listHistory(context, { account_id: account, group_batches: true, limit: 100, offset: 0, after: undefined, filters });
    expect(page.total).toBe(model.total);
    expect(page.items.map((item) => [item.id, item.amount, item.balance_after])).toEqual(
      model.items.map((item) => [item.id, item.amount, item.balance_after]),
    );
    // That first page rolled the rest up, chunk by chunk.
    expect(await rollUpBatches(context, account)).toBe(true);
    const [all] = await harness.database.query<{ rows: string }>(
      "SELECT COALESCE(SUM(row_count), 0)::text AS rows FROM batch_aggregates WHERE account_id = $1",
      [account],
    );
    expect(all!.rows).toBe("24");
  });
});

describe("a roll-up's plan", () => {
  it("finds the chunk's end with one scan of its entries, not one per use of the end", async () => {
    const account = await harness.createAccount();
    for (let row = 0; row < 3 * CHUNK_ROWS; row++) await post(account, "usage", "1");
    await horizonPast(account);
    const plan = await explainAnalyze(harness.databaseUrl, PLAN_CHUNK_SQL, [account, null, CHUNK_ROWS], { generic: false });
    // One scan counts CHUNK_ROWS entries past the start (OFFSET CHUNK_ROWS LIMIT 1). Inlined, the chunk's CTE was
    // copied into each use of its end and that scan ran two or three times: that much more cost for every plan.
    const scans = relationReads(plan, "entries", /^chunk(_\d+)?$/).filter((scan) => scan.returned > 0);
    expect(scans, JSON.stringify(scans)).toHaveLength(1);
    expect(scans[0]!.returned).toBeGreaterThan(CHUNK_ROWS);
  });
});

/** The database, calling `on_carry` for every roll-up chunk whose apply carried the checkpoint along. */
function carriesCounted(database: Database, on_carry: () => void): Database {
  return {
    kind: database.kind,
    orm: database.orm,
    listen: database.listen.bind(database),
    close: async () => {},
    query: database.query.bind(database),
    async transaction<T>(work: (transaction: Queryable) => Promise<T>) {
      return database.transaction((transaction) =>
        work({
          async query<Row extends object>(text: string, parameters?: readonly unknown[]) {
            const rows = await transaction.query<Row>(text, parameters);
            for (const row of rows) if ((row as { carried?: boolean }).carried === true) on_carry();
            return rows;
          },
        }),
      );
    },
  };
}

describe("a roll-up carries the checkpoint", () => {
  /** In one statement: the checkpoint against the rows below its boundary, the aggregates against theirs. */
  const FOLDS_SQL = `
    WITH checkpoint AS (
      SELECT balance, xid_boundary FROM balance_checkpoints WHERE account_id = $1
    ), rollup AS (
      SELECT COALESCE((SELECT xid_boundary FROM rollup_boundaries WHERE account_id = $1), '0'::xid8) AS boundary
    )
    SELECT (SELECT xid_boundary FROM checkpoint)::text AS checkpoint_boundary,
           (SELECT boundary FROM rollup)::text AS rollup_boundary,
           (SELECT balance FROM checkpoint)::text AS checkpoint_balance,
           (SELECT COALESCE(SUM(delta), 0) FROM entries
             WHERE account_id = $1 AND xid < COALESCE((SELECT xid_boundary FROM checkpoint), '0'::xid8))::text AS rows_below_checkpoint,
           (SELECT COALESCE(SUM(delta_total), 0) FROM batch_aggregates WHERE account_id = $1)::text AS aggregated,
           (SELECT COALESCE(SUM(delta), 0) FROM entries
             WHERE account_id = $1 AND batch_id IS NOT NULL AND xid < (SELECT boundary FROM rollup))::text AS batched_below_rollup`;
  interface Folds {
    checkpoint_boundary: string | null;
    rollup_boundary: string;
    checkpoint_balance: string | null;
    rows_below_checkpoint: string;
    aggregated: string;
    batched_below_rollup: string;
  }
  const foldsOf = async (account: string) => (await harness.database.query<Folds>(FOLDS_SQL, [account]))[0]!;

  async function batchesAndGrants(account: string, batches: number, first = 0) {
    for (let index = first; index < first + batches; index++) {
      const batch_id = randomUUID();
      const entries = [1, 2, 3].map((row) => ({ account_id: account, amount: `${row}.25`, idempotency_key: `c${index}-${row}`, batch_id }));
      expect((await harness.post("/v1/usage/batch", { entries })).body).toEqual({ inserted: 3, replayed: 0 });
      await post(account, "grant", "7");
    }
  }

  it("on an account never read, one pass folds both: the checkpoint ends where the roll-up does, exact", async () => {
    const account = await harness.createAccount();
    await batchesAndGrants(account, 6); // 24 rows: 6 × (-6.75 + 7) = 1.5
    await horizonPast(account);
    expect(await checkpointOf(account)).toBeUndefined();
    expect(await rollUpBatches(smallChunks(), account)).toBe(true);
    const folds = await foldsOf(account);
    expect(folds.checkpoint_boundary).toBe(folds.rollup_boundary);
    expect(Number(folds.checkpoint_balance)).toBe(1.5);
    expect(folds.checkpoint_balance).toBe(folds.rows_below_checkpoint);
    expect(folds.aggregated).toBe(folds.batched_below_rollup);
  });

  it("from a checkpoint inside a chunk, it adds only the rows from the checkpoint on", async () => {
    const account = await harness.createAccount();
    await batchesAndGrants(account, 6);
    await horizonPast(account);
    // Chunks of 2 rows end the checkpoint inside the roll-up's first chunk of 5 (after the first batch's 3 rows;
    // the first chunk of 2 from 0 ends at the first transaction and holds nothing).
    await refreshCheckpointChunk(harness.database, account, 2);
    await refreshCheckpointChunk(harness.database, account, 2);
    const inside = (await checkpointOf(account))!;
    expect(await rowsBelow(account, inside.boundary)).toBe(3);
    expect(Number(inside.balance)).toBe(-6.75);
    expect(await rollUpBatches(smallChunks(), account)).toBe(true);
    const folds = await foldsOf(account);
    expect(folds.checkpoint_boundary).toBe(folds.rollup_boundary);
    expect(folds.checkpoint_balance).toBe(folds.rows_below_checkpoint);
    expect(Number(folds.checkpoint_balance)).toBe(1.5);
  });

  it("a checkpoint behind the roll-up is left to its own refresh, which the first page runs", async () => {
    const account = await harness.createAccount();
    await batchesAndGrants(account, 6);
    await horizonPast(account);
    expect(await rollUpBatches(smallChunks(), account)).toBe(true);
    await harness.database.query("DELETE FROM balance_checkpoints WHERE account_id = $1", [account]); // always safe
    await batchesAndGrants(account, 2, 6);
    await horizonPast(account);
    expect(await rollUpBatches(smallChunks(), account)).toBe(true);
    expect(await checkpointOf(account)).toBeUndefined();
    const filters = { types: undefined, search: undefined, from: undefined, to: undefined };
    const page = await listHistory(smallChunks(), { account_id: account, group_batches: true, limit: 3, offset: 0, after: undefined, filters });
    expect(page.page_start_balance).toBe("2");
    const folds = await foldsOf(account);
    expect(folds.checkpoint_balance).toBe(folds.rows_below_checkpoint);
    expect(Number(folds.checkpoint_balance)).toBe(2);
  });

  it("beside refreshes, other roll-ups and writers, neither fold ever holds a row twice or misses one", async () => {
    const account = await harness.createAccount();
    await batchesAndGrants(account, 4);
    let running = true;
    const mismatches: string[] = [];
    let samples = 0;
    let carried = 0;
    const counting = carriesCounted(harness.database, () => carried++);
    const rollers = Array.from({ length: 3 }, async () => {
      while (running) await rollUpBatches(smallChunks(counting), account);
    });
    // Now and then: refreshes and roll-ups move the checkpoint to boundaries the other did not plan. One refresher
    // folds chunks of 3 rows and so trails the roll-ups; the other catches up to the horizon, so that the checkpoint
    // is often at or ahead of the roll-up's boundary, where a roll-up chunk carries it.
    let refreshing = true;
    let refreshes_in_flight = 0;
    const refreshers = [
      () => refreshCheckpointChunk(harness.database, account, 3),
      () => refreshCheckpoint(harness.database, account),
    ].map(async (refresh) => {
      while (running) {
        if (refreshing) {
          refreshes_in_flight++;
          await refresh().finally(() => refreshes_in_flight--);
        }
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    });
    const sampler = (async () => {
      let previous = { checkpoint: 0n, rollup: 0n };
      while (running) {
        const folds = await foldsOf(account);
        samples++;
        if (folds.checkpoint_balance !== null && Number(folds.checkpoint_balance) !== Number(folds.rows_below_checkpoint)) {
          mismatches.push(`checkpoint ${folds.checkpoint_balance} at ${folds.checkpoint_boundary}, rows ${folds.rows_below_checkpoint}`);
        }
        if (Number(folds.aggregated) !== Number(folds.batched_below_rollup)) {
          mismatches.push(`aggregates ${folds.aggregated} at ${folds.rollup_boundary}, rows ${folds.batched_below_rollup}`);
        }
        const current = { checkpoint: BigInt(folds.checkpoint_boundary ?? "0"), rollup: BigInt(folds.rollup_boundary) };
        if (current.checkpoint < previous.checkpoint || current.rollup < previous.rollup) mismatches.push("a boundary moved back");
        previous = current;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    const usage = (key: string) => {
      const batch_id = randomUUID();
      const entries = [1, 2].map((row) => ({ account_id: account, amount: `0.${row}`, idempotency_key: `${key}-${row}`, batch_id }));
      return harness.post("/v1/usage/batch", { entries });
    };
    let extra_batches = 0;
    try {
      await Promise.all(
        Array.from({ length: 4 }, async (_, writer) => {
          for (let index = 0; index < 12; index++) {
            await usage(`w${writer}-${index}`);
            if (index % 3 === 0) await post(account, "grant", "1");
          }
        }),
      );
      // A chunk carries only if the checkpoint did not move between its plan and its apply; on a loaded machine
      // that outlasted every gap between refreshes, and no chunk carried. If none has, the refreshers stop, one
      // last refresh puts the checkpoint at the horizon, and writes go on (roll-ups and the sampler still running)
      // until a roll-up chunk carries it from there.
      if (carried === 0) {
        refreshing = false;
        while (refreshes_in_flight > 0) await new Promise((resolve) => setTimeout(resolve, 5));
        await refreshCheckpoint(harness.database, account);
        const deadline = performance.now() + 10_000;
        while (carried === 0 && performance.now() < deadline) {
          await usage(`extra-${extra_batches++}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    } finally {
      running = false;
      await Promise.all([...rollers, ...refreshers, sampler]);
    }
    expect(mismatches).toEqual([]);
    expect(samples).toBeGreaterThan(5);
    expect(carried).toBeGreaterThan(0);
    await horizonPast(account);
    expect(await rollUpBatches(smallChunks(), account)).toBe(true);
    await refreshCheckpoint(harness.database, account);
    const folds = await foldsOf(account);
    expect(folds.checkpoint_balance).toBe(folds.rows_below_checkpoint);
    expect(folds.aggregated).toBe(folds.batched_below_rollup);
    expect(await ledgerSum(account)).toBe(`${Number(folds.checkpoint_balance)} over ${128 + 2 * extra_batches} rows`);
  });
});

describe("crossing evaluation", () => {
  async function watchOf(account: string) {
    const [row] = await harness.database.query<{ snapshot: string; boundary: string | null; pending: string }>(
      `SELECT evaluated_snapshot::text AS snapshot, credits_boundary::text AS boundary, credits_pending::text AS pending
       FROM balance_watches WHERE account_id = $1`,
      [account],
    );
    return row!;
  }
  const eventsOf = (account: string) =>
    harness.database.query<{ type: string; balance: string }>(
      "SELECT type, balance::text AS balance FROM balance_events WHERE account_id = $1 ORDER BY balance_events.id",
      [account],
    );

  it("sums the credits since the last evaluation in committed chunks, and still tells the gateway", async () => {
    const account = await harness.createAccount(uniqueId("cross"));
    await evaluateCrossing(harness.ledger, account, { observed_at_or_below_zero: true }); // depleted at 0
    await evaluateCrossing(harness.ledger, account, { observed_at_or_below_zero: false }); // no change
    await post(account, "grant", "3"); // not evaluated: as if its request died after the insert
    for (let index = 0; index < 30; index++) await post(account, "usage", "1"); // -27
    await post(account, "grant", "2"); // -25
    await post(account, "grant", "40"); // 15: crossed
    await harness.database.query("UPDATE balance_watches SET depleted_since = NULL WHERE account_id = $1", [account]);
    const before = await watchOf(account);
    await horizonPast(account);

    // The evaluation reads capped, sums two chunks of credits, commits them, and dies.
    const failing = smallChunks(failingAfter(harness.database, "transaction", 3));
    await expect(evaluateCrossing(failing, account, { observed_at_or_below_zero: false })).rejects.toThrow(/injected/);
    const interrupted = await watchOf(account);
    expect(interrupted.snapshot).toBe(before.snapshot); // nothing decided yet
    expect(interrupted.boundary).not.toBeNull();
    const [summed] = await harness.database.query<{ total: string; rows: string }>(
      `SELECT COALESCE(SUM(delta) FILTER (WHERE delta > 0), 0)::text AS total, count(*)::text AS rows FROM entries
       WHERE account_id = $1 AND xid >= pg_snapshot_xmin($2::pg_snapshot) AND xid < $3::xid8
         AND NOT pg_visible_in_snapshot(xid, $2::pg_snapshot)`,
      [account, before.snapshot, interrupted.boundary],
    );
    expect(Number(summed!.rows)).toBeGreaterThan(0);
    expect(Number(summed!.rows)).toBeLessThan(33);
    expect(Number(interrupted.pending)).toBe(Number(summed!.total));
    expect(await eventsOf(account)).toHaveLength(1);

    // The retry continues from the committed chunks: B = 15, C = 45, B − C ≤ 0, so it emits.
    const event = await evaluateCrossing(smallChunks(), account, { observed_at_or_below_zero: false });
    expect(event).toMatchObject({ type: "balance_restored", balance: "15" });
    const after = await watchOf(account);
    expect(after.boundary).toBeNull();
    expect(Number(after.pending)).toBe(0);
  });

  it("with many rows since the last evaluation and no crossing, stays silent", async () => {
    const account = await harness.createAccount(uniqueId("cross"));
    await post(account, "grant", "100");
    await evaluateCrossing(harness.ledger, account, { observed_at_or_below_zero: false }); // first: restored
    for (let index = 0; index < 30; index++) await post(account, "usage", "1"); // 70
    await post(account, "grant", "1"); // 71: B − C = 70 > 0
    await horizonPast(account);
    expect(await evaluateCrossing(smallChunks(), account, { observed_at_or_below_zero: false })).toBeUndefined();
    expect((await eventsOf(account)).map((event) => event.type)).toEqual(["balance_restored"]);
  });

  it("a never-checkpointed account is folded forward before it is evaluated", async () => {
    const account = await harness.createAccount(uniqueId("cross"));
    for (let index = 0; index < 20; index++) await post(account, "usage", "1");
    await post(account, "grant", "25");
    await horizonPast(account);
    expect(await checkpointOf(account)).toBeUndefined();
    const event = await evaluateCrossing(smallChunks(), account, { observed_at_or_below_zero: false });
    expect(event).toMatchObject({ type: "balance_restored", balance: "5" });
    expect(await checkpointOf(account)).toBeDefined();
  });
});

describe("GET /v1/entries", () => {
  it("counts the table once per walk, on its first page, not on every page", async () => {
    const account = await harness.createAccount();
    for (let index = 0; index < 6; index++) await post(account, "grant", "1");
    const statements: string[] = [];
    const recording: Database = {
      ...harness.database,
      async query<Row extends object>(text: string, parameters?: readonly unknown[]) {
        statements.push(text);
        return harness.database.query<Row>(text, parameters);
      },
    };
    const context = smallChunks(recording);
    const filters = { types: undefined, search: undefined, from: undefined, to: undefined };
    const counts = () => statements.filter((text) => /COUNT\(\*\)/i.test(text)).length;
    const first = await listAllEntries(context, { limit: 2, offset: 0, after: undefined, filters });
    expect(counts()).toBe(1);
    const second = await listAllEntries(context, { limit: 2, offset: 0, after: first.next, filters });
    const third = await listAllEntries(context, { limit: 2, offset: 0, after: second.next, filters });
    expect(counts()).toBe(1);
    expect(second.total).toBe(first.total);
    expect(third.total).toBe(first.total);
    expect(first.total).toBeGreaterThanOrEqual(6);
  });
});

describe("tally's sessions", () => {
  it("run without JIT compilation, which cost a 10 ms history page 310 ms where the planner overestimated rows", async () => {
    const [setting] = await harness.database.query<{ jit: string }>("SHOW jit");
    expect(setting!.jit).toBe("off");
  });
});
