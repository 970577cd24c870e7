/**
 * History pages deep in a long account cost O(page) even once PostgreSQL has switched the page statements (prepared
 * by postgres.js) to generic plans: the cursor's bound must stay an index condition, never `$n IS NULL OR …`, which
 * a generic plan can only apply as a filter over every item above the cursor.
 */
import { afterAll, describe, expect, it } from "vitest";
import { ALL_ENTRIES_PAGE_SQL, GROUPED_PAGE_SQL, UNGROUPED_PAGE_SQL } from "../../src/ledger/history/history-sql.js";
import { genericPlanReads } from "../support/generic-plan.js";
import { createHarness } from "../support/harness.js";
import { rollUpFully } from "../support/history-model.js";

const harness = createHarness();
afterAll(() => harness.close());

const ROWS = 3000;
const PAGE = 51;

describe("a page deep in a long history, planned generically", () => {
  it("never reads and discards the rows above its cursor, on grouped, ungrouped and all-accounts listings", async () => {
    const account = await harness.createAccount();
    // 3,000 single entries, then 3,000 batched rows in 30 batches of 100: one transaction each.
    await harness.database.query(
      `INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash)
       SELECT gen_random_uuid(), $1, 'usage', 0.01, -0.01, 'single-' || g, md5(g::text) || md5((-g)::text)
       FROM generate_series(1, $2::int) AS g`,
      [account, ROWS],
    );
    await harness.database.query(
      `INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id)
       SELECT gen_random_uuid(), $1, 'usage', 0.01, -0.01, 'batched-' || g, md5(g::text) || md5((-g)::text),
              md5($1 || (g / 100)::text)::uuid
       FROM generate_series(1, $2::int) AS g`,
      [account, ROWS],
    );
    await rollUpFully(harness, account);
    const [{ snapshot }] = (await harness.database.query<{ snapshot: string }>("SELECT pg_current_snapshot()::text AS snapshot")) as [
      { snapshot: string },
    ];
    // A cursor near the oldest single entries: most rows lie above it.
    const [cursor] = await harness.database.query<{ seq: string; id: string }>(
      `SELECT seq::text AS seq, id::text AS id FROM entries WHERE account_id = $1 AND batch_id IS NULL ORDER BY seq OFFSET 100 LIMIT 1`,
      [account],
    );
    const pageParameters = [account, snapshot, cursor!.seq, PAGE, null, null, null, null];
    for (const [name, text] of [
      ["grouped", GROUPED_PAGE_SQL],
      ["ungrouped", UNGROUPED_PAGE_SQL],
    ] as const) {
      for (const relation of ["entries", "batch_aggregates"]) {
        const reads = await genericPlanReads(harness.databaseUrl, text, pageParameters, relation);
        // Rows read and thrown away are the rows above the cursor when the bound is a filter. (Below it, a small
        // account may be read whole by a bitmap scan and sorted: that is bounded by what lies below, not above.)
        const discarded = reads.reduce((sum, read) => sum + read.discarded, 0);
        expect(discarded, `${name} page, ${relation}: ${JSON.stringify(reads)}`).toBeLessThanOrEqual(PAGE);
      }
    }
    const all = await genericPlanReads(harness.databaseUrl, ALL_ENTRIES_PAGE_SQL, [snapshot, cursor!.id, PAGE, null, null, null, null], "entries");
    expect(all.length).toBeGreaterThan(0);
    // The all-accounts listing reads every account. Rows other test files commit after the snapshot are read and
    // dropped by its visibility test when their ids lie below the cursor: counted as discarded, they failed this
    // check now and then. Counted after the EXPLAIN, they are at least as many as it saw; the defect this guards
    // against discards every row above the cursor instead (half the table: thousands).
    const [late] = await harness.database.query<{ rows: number }>(
      "SELECT count(*)::int AS rows FROM entries WHERE id < $1::uuid AND NOT pg_visible_in_snapshot(xid, $2::pg_snapshot)",
      [cursor!.id, snapshot],
    );
    expect(all.reduce((sum, read) => sum + read.discarded, 0), JSON.stringify(all)).toBeLessThanOrEqual(PAGE + late!.rows);
  });
});
