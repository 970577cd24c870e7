/**
 * Ledger behaviour against real PostgreSQL: the database refuses to rewrite history, checkpoints appear when the
 * policy says so and never change a balance, bulk and single balance reads are exact, accounts are created once,
 * and amounts are exact from 10^-9 to 10^15.
 */
import { afterAll, describe, expect, it } from "vitest";
import { formatNanos, numericToNanos } from "../../src/ledger/core/amount.js";
import { refreshCheckpoint } from "../../src/ledger/balances/checkpoints.js";
import { createHarness, uniqueId, type ApiResponse, type Harness } from "../support/harness.js";

const harness = createHarness({ pool_max: 10 });
afterAll(() => harness.close());

// ---------------------------------------------------------------------------------------------------------------
// helpers

async function groundTruth(on: Harness, account_id: string): Promise<string> {
  const [row] = await on.database.query<{ total: string }>(
    "SELECT COALESCE(SUM(delta), 0)::text AS total FROM entries WHERE account_id = $1",
    [account_id],
  );
  return formatNanos(numericToNanos(row!.total));
}

async function apiBalance(on: Harness, account_id: string): Promise<string> {
  const response = await on.get(`/v1/balances/${account_id}`);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.balance as string;
}

function expectStatus(response: ApiResponse, status: number): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
}

async function checkpointOf(on: Harness, account_id: string): Promise<{ balance: string; xid_boundary: string } | undefined> {
  const [row] = await on.database.query<{ balance: string; xid_boundary: string }>(
    "SELECT balance::text AS balance, xid_boundary::text AS xid_boundary FROM balance_checkpoints WHERE account_id = $1",
    [account_id],
  );
  return row;
}

/** Every row of the account with every column as text: a fingerprint to show nothing changed. */
async function rowsAsText(on: Harness, account_id: string): Promise<Record<string, string>[]> {
  return on.database.query<Record<string, string>>(
    `SELECT seq::text, id::text, account_id, type, amount::text, delta::text, idempotency_key, request_hash,
            batch_id::text, description, metadata::text, created_at::text, xid::text
     FROM entries WHERE account_id = $1 ORDER BY entries.seq`,
    [account_id],
  );
}

/**
 * Waits until every transaction up to `xid` has finished everywhere in the cluster, so the next refresh's boundary
 * passes it. Another test file running at the same time may briefly hold an older transaction open.
 */
async function waitForHorizonPast(on: Harness, xid: bigint): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const [row] = await on.database.query<{ xmin: string }>("SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin");
    if (BigInt(row!.xmin) > xid || Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------

describe("the entries table is append-only in the database itself", () => {
  it("refuses UPDATE and DELETE, and the rows are unchanged", async () => {
    const account = await harness.createAccount();
    expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "5.5", idempotency_key: "c", description: "orig" }), 201);
    expectStatus(await harness.post("/v1/usage", { account_id: account, amount: "0.5", idempotency_key: "u" }), 201);
    const before = await rowsAsText(harness, account);
    expect(before).toHaveLength(2);

    for (const statement of [
      "UPDATE entries SET amount = amount + 1, delta = delta + 1 WHERE account_id = $1",
      "UPDATE entries SET description = 'rewritten' WHERE account_id = $1",
      "DELETE FROM entries WHERE account_id = $1",
    ]) {
      const error = await harness.database.query(statement, [account]).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error, statement).toBeDefined();
      expect(errorCode(error), statement).toBe("23001");
      expect(String((error as Error).message)).toMatch(/append-only/);
    }
    expect(await rowsAsText(harness, account)).toEqual(before);
    expect(await apiBalance(harness, account)).toBe("5");
  });

  it("refuses TRUNCATE, and the rows are unchanged", async () => {
    const account = await harness.createAccount();
    expectStatus(await harness.post("/v1/credits", { account_id: account, type: "grant", amount: "1", idempotency_key: "c" }), 201);
    const before = await rowsAsText(harness, account);

    // Inside a transaction that always rolls back, and with a short lock timeout: TRUNCATE queues for an ACCESS
    // EXCLUSIVE lock, and must neither stall the other test file's writers for long nor (were the trigger missing)
    // erase their rows.
    let refusal: unknown;
    for (let attempt = 0; attempt < 60; attempt++) {
      refusal = await harness.database
        .transaction(async (transaction) => {
          await transaction.query("SET LOCAL lock_timeout = '200ms'");
          await transaction.query("TRUNCATE entries");
          throw new Error("TRUNCATE was not refused");
        })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      if (errorCode(refusal) !== "55P03") break;
    }
    expect(errorCode(refusal), String(refusal)).toBe("23001");
    expect(String((refusal as Error).message)).toMatch(/append-only: TRUNCATE/);
    expect(await rowsAsText(harness, account)).toEqual(before);
  });
});

describe("checkpoint mechanics", () => {
  const always = createHarness({ random: () => 0, pool_max: 3 });
  const never = createHarness({ random: () => 0.999999, refresh_every: 1_000_000, pool_max: 3 });
  const overgrown = createHarness({ random: () => 0.999999, refresh_every: 1_000_000, delta_max: 5, pool_max: 3 });
  afterAll(() => Promise.all([always.close(), never.close(), overgrown.close()]));

  it("a write refreshes when the draw says so: a checkpoint appears after one post", async () => {
    const account = await always.createAccount();
    expect(await checkpointOf(always, account)).toBeUndefined();
    expectStatus(await always.post("/v1/credits", { account_id: account, type: "purchase", amount: "3.25", idempotency_key: "c" }), 201);
    expect(await checkpointOf(always, account)).toBeDefined();
    expectStatus(await always.post("/v1/usage", { account_id: account, amount: "0.25", idempotency_key: "u" }), 201);
    expect(await apiBalance(always, account)).toBe("3");
    expect(await groundTruth(always, account)).toBe("3");
  });

  it("no checkpoint appears when the draw never says so", async () => {
    const account = await never.createAccount();
    for (let index = 0; index < 20; index++) {
      expectStatus(await never.post("/v1/usage", { account_id: account, amount: "0.1", idempotency_key: `u${index}` }), 201);
    }
    expect(await apiBalance(never, account)).toBe("-2");
    expect(await checkpointOf(never, account)).toBeUndefined();
  });

  it("a read that sums more than delta_max rows refreshes the account, and the balance stays exact", async () => {
    const account = await overgrown.createAccount();
    let model = 0n;
    for (let index = 0; index < 10; index++) {
      const amount = `${index + 1}.00000000${index}`;
      const credit = index % 3 === 0;
      const response = credit
        ? await overgrown.post("/v1/credits", { account_id: account, type: "bonus", amount, idempotency_key: `e${index}` })
        : await overgrown.post("/v1/usage", { account_id: account, amount, idempotency_key: `e${index}` });
      expectStatus(response, 201);
      model += credit ? numericToNanos(amount) : -numericToNanos(amount);
    }
    expect(await checkpointOf(overgrown, account)).toBeUndefined();
    const [newest] = await overgrown.database.query<{ xid: string }>("SELECT MAX(xid::text::numeric)::text AS xid FROM entries WHERE account_id = $1", [account]);
    await waitForHorizonPast(overgrown, BigInt(newest!.xid));

    expect(await apiBalance(overgrown, account)).toBe(formatNanos(model));
    const checkpoint = await checkpointOf(overgrown, account);
    expect(checkpoint).toBeDefined();
    expect(formatNanos(numericToNanos(checkpoint!.balance))).toBe(formatNanos(model));
    const [above] = await overgrown.database.query<{ n: string }>(
      "SELECT COUNT(*)::text AS n FROM entries WHERE account_id = $1 AND xid >= $2::xid8",
      [account, checkpoint!.xid_boundary],
    );
    expect(above!.n).toBe("0");
    expect(await apiBalance(overgrown, account)).toBe(formatNanos(model));
    expect(await groundTruth(overgrown, account)).toBe(formatNanos(model));
  });

  it("a read of exactly delta_max rows does not refresh", async () => {
    const account = await overgrown.createAccount();
    for (let index = 0; index < 5; index++) {
      expectStatus(await overgrown.post("/v1/credits", { account_id: account, type: "grant", amount: "0.2", idempotency_key: `g${index}` }), 201);
    }
    expect(await apiBalance(overgrown, account)).toBe("1");
    expect(await checkpointOf(overgrown, account)).toBeUndefined();
  });
});

describe("bulk balances: POST /v1/balances/query", () => {
  it("answers 1000 ids in request order, exact, with the unknown ones in not_found", async () => {
    const prefix = uniqueId("bulk");
    const known = Array.from({ length: 990 }, (_, index) => `${prefix}_${String(index).padStart(4, "0")}`);
    await harness.database.query("INSERT INTO accounts (id) SELECT unnest($1::text[])", [known]);

    // Some accounts get entries: a few only deltas, a few a checkpoint plus later deltas.
    const withEntries = known.filter((_, index) => index % 33 === 0);
    await Promise.all(
      withEntries.map(async (account, position) => {
        expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: `${position}.5`, idempotency_key: "c" }), 201);
        expectStatus(await harness.post("/v1/usage", { account_id: account, amount: "0.000000007", idempotency_key: "u1" }), 201);
        if (position % 2 === 0) await refreshCheckpoint(harness.database, account);
        expectStatus(await harness.post("/v1/usage", { account_id: account, amount: "1.25", idempotency_key: "u2" }), 201);
      }),
    );

    const unknown = Array.from({ length: 10 }, () => uniqueId("missing"));
    const requested = [...known].reverse();
    unknown.forEach((id, index) => requested.splice(index * 97, 0, id));
    expect(requested).toHaveLength(1000);

    const response = await harness.post("/v1/balances/query", { account_ids: requested });
    expectStatus(response, 200);
    const truth = new Map(
      (
        await harness.database.query<{ account_id: string; total: string }>(
          "SELECT account_id, SUM(delta)::text AS total FROM entries WHERE account_id = ANY($1::text[]) GROUP BY account_id",
          [withEntries],
        )
      ).map((row) => [row.account_id, formatNanos(numericToNanos(row.total))]),
    );
    expect(truth.size).toBe(withEntries.length);
    const expected = requested
      .filter((id) => !unknown.includes(id))
      .map((account_id) => ({ account_id, balance: truth.get(account_id) ?? "0", available: truth.get(account_id) ?? "0" }));
    expect(response.body.balances).toEqual(expected);
    expect([...response.body.not_found].sort()).toEqual([...unknown].sort());
    expect(truth.get(withEntries[1]!)).toBe("0.249999993");
  });

  it("refuses 1001 ids with 400 validation_failed", async () => {
    const ids = Array.from({ length: 1001 }, (_, index) => `too_many_${index}`);
    const response = await harness.post("/v1/balances/query", { account_ids: ids });
    expectStatus(response, 400);
    expect(response.body.code).toBe("validation_failed");
  });
});

describe("POST /v1/balances/check", () => {
  it("reports sufficient and the deficit below, at and above the balance", async () => {
    const account = await harness.createAccount();
    expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "10", idempotency_key: "c" }), 201);
    const check = async (amount: string) => {
      const response = await harness.post("/v1/balances/check", { account_id: account, amount });
      expectStatus(response, 200);
      return response.body;
    };
    expect(await check("9.999999999")).toEqual({ account_id: account, balance: "10", available: "10", amount: "9.999999999", sufficient: true, deficit: "0" });
    expect(await check("10.000")).toEqual({ account_id: account, balance: "10", available: "10", amount: "10", sufficient: true, deficit: "0" });
    expect(await check("10.000000001")).toEqual({ account_id: account, balance: "10", available: "10", amount: "10.000000001", sufficient: false, deficit: "0.000000001" });
    expect(await check("1000000000000000")).toEqual({
      account_id: account,
      balance: "10",
      available: "10",
      amount: "1000000000000000",
      sufficient: false,
      deficit: "999999999999990",
    });
  });

  it("reports a negative balance (usage overdraws) exactly", async () => {
    const account = await harness.createAccount();
    expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "10", idempotency_key: "c" }), 201);
    expectStatus(await harness.post("/v1/usage", { account_id: account, amount: "10.5", idempotency_key: "u" }), 201);
    expect(await apiBalance(harness, account)).toBe("-0.5");
    const response = await harness.post("/v1/balances/check", { account_id: account, amount: "1.50" });
    expectStatus(response, 200);
    expect(response.body).toEqual({ account_id: account, balance: "-0.5", available: "-0.5", amount: "1.5", sufficient: false, deficit: "2" });
    await refreshCheckpoint(harness.database, account);
    expect(await apiBalance(harness, account)).toBe("-0.5");
    expect(await groundTruth(harness, account)).toBe("-0.5");
  });

  it("is 404 for an unknown account", async () => {
    const response = await harness.post("/v1/balances/check", { account_id: uniqueId(), amount: "1" });
    expectStatus(response, 404);
    expect(response.body.code).toBe("account_not_found");
  });
});

describe("accounts", () => {
  it("GET /v1/accounts/{id} includes the exact balance", async () => {
    const account = await harness.createAccount();
    expectStatus(await harness.post("/v1/credits", { account_id: account, type: "refund", amount: "2.000000002", idempotency_key: "c" }), 201);
    expectStatus(await harness.post("/v1/usage", { account_id: account, amount: "0.000000003", idempotency_key: "u" }), 201);
    const response = await harness.get(`/v1/accounts/${account}`);
    expectStatus(response, 200);
    expect(response.body).toMatchObject({ id: account, metadata: {}, balance: "1.999999999" });
    expect(typeof response.body.created_at).toBe("string");
    expectStatus(await harness.get(`/v1/accounts/${uniqueId()}`), 404);
  });

  it("POST /v1/accounts twice: 201, then 200 with the original metadata unchanged", async () => {
    const id = uniqueId();
    const first = await harness.post("/v1/accounts", { id, metadata: { plan: "pro", seats: 3 } });
    expectStatus(first, 201);
    expect(first.body).toMatchObject({ id, metadata: { plan: "pro", seats: 3 } });
    const second = await harness.post("/v1/accounts", { id, metadata: { plan: "free" } });
    expectStatus(second, 200);
    expect(second.body).toEqual(first.body);
    const [stored] = await harness.database.query<{ metadata: Record<string, unknown> }>("SELECT metadata FROM accounts WHERE id = $1", [id]);
    expect(stored!.metadata).toEqual({ plan: "pro", seats: 3 });
    const read = await harness.get(`/v1/accounts/${id}`);
    expect(read.body).toEqual({ ...first.body, balance: "0", available: "0" });
  });
});

describe("amount extremes", () => {
  it("three credits of 10^15 and a usage of 10^-9 balance exactly to the nano-credit", async () => {
    const account = await harness.createAccount();
    for (let index = 0; index < 3; index++) {
      const response = await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "1000000000000000", idempotency_key: `max${index}` });
      expectStatus(response, 201);
      expect(response.body.amount).toBe("1000000000000000");
    }
    const usage = await harness.post("/v1/usage", { account_id: account, amount: "0.000000001", idempotency_key: "min" });
    expectStatus(usage, 201);
    expect(usage.body.delta).toBe("-0.000000001");
    const expected = "2999999999999999.999999999";
    expect(await apiBalance(harness, account)).toBe(expected);
    expect(await groundTruth(harness, account)).toBe(expected);

    await refreshCheckpoint(harness.database, account);
    expect(await apiBalance(harness, account)).toBe(expected);
    expectStatus(await harness.post("/v1/usage", { account_id: account, amount: "0.000000001", idempotency_key: "min2" }), 201);
    expect(await apiBalance(harness, account)).toBe("2999999999999999.999999998");
    expect(await groundTruth(harness, account)).toBe("2999999999999999.999999998");
  });

  it("refuses amounts beyond 10^15 or finer than 10^-9", async () => {
    const account = await harness.createAccount();
    for (const amount of ["1000000000000000.000000001", "0.0000000001", "0", "-1", "1e3"]) {
      const response = await harness.post("/v1/credits", { account_id: account, type: "purchase", amount, idempotency_key: `bad-${amount}` });
      expectStatus(response, 400);
      expect(response.body.code).toBe("validation_failed");
    }
    expect(await groundTruth(harness, account)).toBe("0");
  });
});
