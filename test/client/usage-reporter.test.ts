import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTallyClient, TallyApiError, UsageBufferFullError, UsageFlushError, UsageReporter, type TallyClient } from "../../clients/typescript/src/index.js";
import { freshDatabase, startTally, type TallyProcess } from "../support/tally-process.js";
import { uniqueId } from "../support/harness.js";

/** The client and its usage reporter against a real tally process, which one test restarts mid-stream. */

const ADMIN_KEY = "client-test-admin-key-0123456789abcdef";
let tally: TallyProcess;
let databaseUrl: string;
let dropDatabase: () => Promise<void>;
let sql: postgres.Sql;
let client: TallyClient;

beforeAll(async () => {
  const database = await freshDatabase(inject("databaseUrl"));
  databaseUrl = database.url;
  dropDatabase = database.drop;
  tally = await startTally({ DATABASE_URL: databaseUrl, TALLY_ADMIN_KEY: ADMIN_KEY });
  sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  client = createTallyClient({ base_url: tally.url, token: ADMIN_KEY, timeout_ms: 5_000 });
});

afterAll(async () => {
  await tally?.stop();
  await sql?.end();
  await dropDatabase?.();
});

async function createAccounts(count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => uniqueId("org"));
  for (const id of ids) await client.POST("/v1/accounts", { body: { id } });
  return ids;
}

describe("the typed client", () => {
  it("returns typed data, and throws TallyApiError carrying the problem's code", async () => {
    const [account] = await createAccounts(1);
    const { data } = await client.POST("/v1/credits", { body: { account_id: account!, type: "grant", amount: "2.5", idempotency_key: "g1" } });
    expect(data?.delta).toBe("2.5");
    const refused = await client.POST("/v1/debits", { body: { account_id: account!, amount: "9", idempotency_key: "d1" } }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TallyApiError);
    expect(refused).toMatchObject({ status: 409, code: "insufficient_balance", retryable: false });
    expect((refused as TallyApiError).problem).toMatchObject({ deficit: "6.5" });
    const missing = await client.GET("/v1/balances/{account_id}", { params: { path: { account_id: "org_nobody_here" } } }).catch((error: unknown) => error);
    expect(missing).toMatchObject({ code: "account_not_found" });
  });
});

describe("UsageReporter", () => {
  it("gets every reported row into the ledger exactly once, across a tally restart mid-stream", async () => {
    const accounts = await createAccounts(5);
    const errors: Error[] = [];
    const reporter = new UsageReporter(client, {
      flush_rows: 50,
      flush_interval_ms: 20,
      retry_initial_ms: 20,
      retry_max_ms: 200,
      failures_before_error: 3,
      on_error: (error) => errors.push(error),
    });
    const rows_total = 1500;
    const expected = new Map(accounts.map((id) => [id, 0n]));
    for (let index = 0; index < rows_total; index++) {
      const account_id = accounts[index % accounts.length]!;
      // Amounts in nano-credits, so the expected sums are exact.
      const nanos = BigInt(1 + (index % 7)) * 1000n;
      expected.set(account_id, expected.get(account_id)! + nanos);
      expect(reporter.report({ account_id, amount: `0.${nanos.toString().padStart(9, "0")}`, idempotency_key: `req_${index}_${account_id}` })).toBe(true);
      if (index === 500) await tally.stop();
      if (index === 1000) tally = await startTally({ DATABASE_URL: databaseUrl, TALLY_ADMIN_KEY: ADMIN_KEY }, { port: tally.port });
      // Let the reporter's timers and requests run, as a proxy's event loop would between calls.
      if (index % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await reporter.close();
    expect(reporter.pending_rows).toBe(0);

    const rows = await sql<{ account_id: string; rows: string; distinct_keys: string; spent_nanos: string }[]>`
      SELECT account_id, count(*)::text AS rows, count(DISTINCT idempotency_key)::text AS distinct_keys,
             (sum(amount) * 1000000000)::numeric(40,0)::text AS spent_nanos
      FROM entries WHERE account_id = ANY(${accounts}) AND type = 'usage' GROUP BY account_id`;
    expect(rows.reduce((total, row) => total + Number(row.rows), 0)).toBe(rows_total);
    for (const row of rows) {
      expect(row.rows).toBe(row.distinct_keys);
      expect(BigInt(row.spent_nanos)).toBe(expected.get(row.account_id));
    }
    // The outage was long enough to be reported, and nothing else went wrong.
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors) expect(error).toBeInstanceOf(UsageFlushError);
  });

  it("takes refused rows out of a batch, hands them to on_error, and delivers the rest", async () => {
    const [account] = await createAccounts(1);
    const refused: { code: string; keys: string[] }[] = [];
    const reporter = new UsageReporter(client, {
      flush_rows: 100,
      flush_interval_ms: 60_000,
      on_error: (error, rows) => refused.push({ code: (error as TallyApiError).code, keys: rows.map((row) => row.idempotency_key) }),
    });
    reporter.report({ account_id: account!, amount: "1", idempotency_key: "ok_1" });
    reporter.report({ account_id: "org_does_not_exist_x", amount: "1", idempotency_key: "lost_1" });
    reporter.report({ account_id: account!, amount: "2" });
    await reporter.close();
    expect(refused).toEqual([{ code: "account_not_found", keys: ["lost_1"] }]);
    const [row] = await sql<{ count: string }[]>`SELECT count(*)::text AS count FROM entries WHERE account_id = ${account!}`;
    expect(row!.count).toBe("2");
  });

  it("bounds its buffer: a row reported while it is full is refused and reported, the buffered ones still land", async () => {
    const [account] = await createAccounts(1);
    const errors: Error[] = [];
    const reporter = new UsageReporter(client, { flush_rows: 100, flush_interval_ms: 60_000, buffer_rows_max: 3, on_error: (error) => errors.push(error) });
    expect([1, 2, 3, 4].map((n) => reporter.report({ account_id: account!, amount: "1", idempotency_key: `b${n}` }))).toEqual([true, true, true, false]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(UsageBufferFullError);
    await reporter.close();
    const [row] = await sql<{ count: string }[]>`SELECT count(*)::text AS count FROM entries WHERE account_id = ${account!}`;
    expect(row!.count).toBe("3");
    expect(() => reporter.report({ account_id: account!, amount: "1" })).toThrow(/closed/);
  });
});
