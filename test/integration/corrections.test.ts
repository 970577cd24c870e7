/**
 * Linked corrections against real PostgreSQL: refunds and reversals that never exceed their original (also under
 * 40 concurrent requests), transfers whose two legs commit together or not at all (also when the statement or the
 * connection fails between them), adjustments to a target, and the bad input each route refuses. Amounts are
 * compared as exact decimal strings.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { formatNanos, numericToNanos } from "../../src/ledger/core/amount.js";
import { createHarness, JWT_AUDIENCE, JWT_SECRET, uniqueId, type ApiResponse, type Harness } from "../support/harness.js";

const harness: Harness = createHarness({ pool_max: 50 });
afterAll(() => harness.close());

let keyCounter = 0;
const nextKey = (prefix = "k") => `${prefix}-${++keyCounter}-${uniqueId("")}`;

function expectStatus(response: ApiResponse, status: number): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
}

function expectProblem(response: ApiResponse, status: number, code: string): void {
  expectStatus(response, status);
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

/** The ground truth: the plain sum of the account's entries, straight from the table. */
async function ledgerSum(account_id: string): Promise<string> {
  const [row] = await harness.database.query<{ total: string }>(
    "SELECT COALESCE(SUM(delta), 0)::text AS total FROM entries WHERE account_id = $1",
    [account_id],
  );
  return formatNanos(numericToNanos(row!.total));
}

async function rowCount(account_ids: string[]): Promise<number> {
  const [row] = await harness.database.query<{ count: string }>(
    "SELECT count(*)::text AS count FROM entries WHERE account_id = ANY($1::text[])",
    [account_ids],
  );
  return Number(row!.count);
}

async function balance(account_id: string): Promise<string> {
  const response = await harness.get(`/v1/balances/${account_id}`);
  expectStatus(response, 200);
  return response.body.balance;
}

async function usage(account_id: string, amount: string): Promise<string> {
  const response = await harness.post("/v1/usage", { account_id, amount, idempotency_key: nextKey("u") });
  expectStatus(response, 201);
  return response.body.id;
}

async function credit(account_id: string, amount: string, type = "purchase"): Promise<string> {
  const response = await harness.post("/v1/credits", { account_id, type, amount, idempotency_key: nextKey("c") });
  expectStatus(response, 201);
  return response.body.id;
}

const refund = (entry_id: string, body: Record<string, unknown>, token?: string | null) =>
  harness.post(`/v1/entries/${entry_id}/refund`, { idempotency_key: nextKey("r"), ...body }, token);

async function events(account_id: string): Promise<{ type: string; balance: string }[]> {
  const rows = await harness.database.query<{ type: string; balance: string }>(
    "SELECT type, balance::text AS balance FROM balance_events WHERE account_id = $1 ORDER BY id",
    [account_id],
  );
  return rows.map((row) => ({ type: row.type, balance: formatNanos(numericToNanos(row.balance)) }));
}

describe("refunds and reversals", () => {
  it("usage 10, refund 4, 4, 4: the third is refused with 2 left and the balance moved by +8", async () => {
    const account = await harness.createAccount();
    const original = await usage(account, "10");
    expect(await balance(account)).toBe("-10");
    const first = await refund(original, { amount: "4", description: "partial" });
    expectStatus(first, 201);
    expect(first.body).toMatchObject({ account_id: account, type: "refund", amount: "4", delta: "4", original_entry_id: original });
    expectStatus(await refund(original, { amount: "4" }), 201);
    const third = await refund(original, { amount: "4" });
    expectProblem(third, 409, "exceeds_original");
    expect(third.body).toMatchObject({
      original_entry_id: original,
      original_amount: "10",
      refunded_amount: "8",
      remaining: "2",
      amount: "4",
    });
    expect(await balance(account)).toBe("-2");
    expect(await ledgerSum(account)).toBe("-2");
    const detail = await harness.get(`/v1/entries/${original}`);
    expectStatus(detail, 200);
    expect(detail.body).toMatchObject({ id: original, type: "usage", amount: "10", refunded_amount: "8" });
    expect(detail.body.original_entry_id).toBeUndefined();

    // Without an amount, a refund takes what is left; after that nothing is left.
    const rest = await refund(original, {});
    expectStatus(rest, 201);
    expect(rest.body.amount).toBe("2");
    const none = await refund(original, {});
    expectProblem(none, 409, "exceeds_original");
    expect(none.body).toMatchObject({ remaining: "0", refunded_amount: "10" });
    expect(await balance(account)).toBe("0");
  });

  it("a retried refund is a replay, even without an amount; the key on another original is a conflict", async () => {
    const account = await harness.createAccount();
    const original = await usage(account, "3");
    const other = await usage(account, "1");
    const body = { idempotency_key: nextKey("r"), description: "goodwill" };
    const first = await harness.post(`/v1/entries/${original}/refund`, body);
    expectStatus(first, 201);
    const again = await harness.post(`/v1/entries/${original}/refund`, body);
    expectStatus(again, 200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    expectProblem(await harness.post(`/v1/entries/${other}/refund`, body), 409, "idempotency_key_reused");
    expect(await rowCount([account])).toBe(3);
    expect(await ledgerSum(account)).toBe("-1");
  });

  it("40 concurrent refunds of 1 against usage of 10: exactly 10 succeed", async () => {
    const account = await harness.createAccount();
    const original = await usage(account, "10");
    const responses = await Promise.all(Array.from({ length: 40 }, () => refund(original, { amount: "1" })));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(10);
    expect(statuses.filter((status) => status === 409)).toHaveLength(30);
    for (const response of responses.filter((r) => r.status === 409)) expect(response.body.code).toBe("exceeds_original");
    expect(await ledgerSum(account)).toBe("0");
    expect(await balance(account)).toBe("0");
    expect((await harness.get(`/v1/entries/${original}`)).body.refunded_amount).toBe("10");
  });

  it("purchase 100, spend 90, reverse 100: strict refused, with allow_overdraft the balance is -90", async () => {
    const account = await harness.createAccount();
    const purchase = await credit(account, "100");
    await usage(account, "90");
    const strict = await refund(purchase, { amount: "100" });
    expectProblem(strict, 409, "insufficient_balance");
    expect(strict.body).toMatchObject({ balance: "10", amount: "100", deficit: "90" });
    expect(await rowCount([account])).toBe(2);
    const forced = await refund(purchase, { allow_overdraft: true });
    expectStatus(forced, 201);
    expect(forced.body).toMatchObject({ type: "reversal", amount: "100", delta: "-100", original_entry_id: purchase });
    expect(await balance(account)).toBe("-90");
    expect((await harness.get(`/v1/entries/${purchase}`)).body.refunded_amount).toBe("100");
    expectProblem(await refund(purchase, { amount: "0.000000001", allow_overdraft: true }), 409, "exceeds_original");
  });

  it("a strict reversal the balance covers is written; corrections cannot themselves be corrected", async () => {
    const account = await harness.createAccount();
    const grant = await credit(account, "5", "grant");
    const reversal = await refund(grant, { amount: "2.5" });
    expectStatus(reversal, 201);
    expect(await balance(account)).toBe("2.5");
    const again = await refund(reversal.body.id, {});
    expectProblem(again, 409, "entry_not_refundable");
    expect(again.body).toMatchObject({ entry_id: reversal.body.id, type: "reversal" });
  });

  it("a refund restores a blocked account and the gateway is told", async () => {
    const account = await harness.createAccount();
    await credit(account, "2");
    const original = await usage(account, "5");
    expect(await balance(account)).toBe("-3"); // an observation at or below zero: the gateway blocks
    expect(await events(account)).toEqual([
      { type: "balance_restored", balance: "2" },
      { type: "balance_depleted", balance: "-3" },
    ]);
    expectStatus(await refund(original, { amount: "4" }), 201);
    expect(await events(account)).toEqual([
      { type: "balance_restored", balance: "2" },
      { type: "balance_depleted", balance: "-3" },
      { type: "balance_restored", balance: "1" },
    ]);
  });

  it("bad input: unknown entry, another account's entry, wrong scope, above what is left, amount 0", async () => {
    const account = await harness.createAccount();
    const other = await harness.createAccount();
    const original = await usage(account, "2");
    const purchase = await credit(account, "7");
    expectProblem(await refund("0190b6a0-0000-7000-8000-00000000dead", { amount: "1" }), 404, "not_found");
    expectProblem(await refund("not-a-uuid", { amount: "1" }), 400, "validation_failed");
    // End users hold no write scope at all, on their own account or any other.
    expectProblem(await refund(original, { amount: "1" }, await userToken(other)), 403, "forbidden");
    expectProblem(await refund(original, { amount: "1" }, await userToken(account)), 403, "forbidden");
    // A refund is a credit and a reversal a debit: each needs its own scope.
    const creditsOnly = await harness.serviceKey(["credits:write"]);
    const debitsOnly = await harness.serviceKey(["debits:write"]);
    const readOnly = await harness.serviceKey(["history:read"]);
    expectProblem(await refund(original, { amount: "1" }, readOnly), 403, "forbidden");
    expectProblem(await refund(original, { amount: "1" }, debitsOnly), 403, "forbidden");
    expectProblem(await refund(purchase, { amount: "1" }, creditsOnly), 403, "forbidden");
    expectStatus(await refund(original, { amount: "1" }, creditsOnly), 201);
    expectStatus(await refund(purchase, { amount: "1" }, debitsOnly), 201);
    const above = await refund(original, { amount: "1.000000001" });
    expectProblem(above, 409, "exceeds_original");
    expect(above.body.remaining).toBe("1");
    expectProblem(await refund(original, { amount: "0" }), 400, "validation_failed");
    expectProblem(await refund(original, { amount: "-1" }), 400, "validation_failed");
    expectProblem(await refund(original, { amount: "1", extra: true }), 400, "validation_failed");
    expectProblem(await harness.post(`/v1/entries/${original}/refund`, { amount: "1" }), 400, "validation_failed");
    expect(await rowCount([account, other])).toBe(4);
    expect(await ledgerSum(account)).toBe("5"); // -2 + 7, then a refund of 1 and a reversal of 1
  });
});

describe("transfers", () => {
  const transfer = (body: Record<string, unknown>, token?: string | null) =>
    harness.post("/v1/transfers", { idempotency_key: nextKey("t"), ...body }, token);

  it("30 from A (50) to B (-5): A 20, B 25, B restored; the replay writes nothing; 60 more is refused on both sides", async () => {
    const a = await harness.createAccount();
    const b = await harness.createAccount();
    await credit(a, "50");
    await usage(b, "5");
    expect(await balance(b)).toBe("-5"); // the gateway blocks B
    const body = { from_account_id: a, to_account_id: b, amount: "30", idempotency_key: nextKey("t"), description: "move" };
    const first = await harness.post("/v1/transfers", body);
    expectStatus(first, 201);
    const { transfer_out: out, transfer_in: incoming } = first.body;
    expect(first.body).toMatchObject({ from_account_id: a, to_account_id: b, amount: "30" });
    expect(out).toMatchObject({ account_id: a, type: "transfer_out", delta: "-30", counterpart_entry_id: incoming.id, transfer_id: first.body.id });
    expect(incoming).toMatchObject({ account_id: b, type: "transfer_in", delta: "30", counterpart_entry_id: out.id, transfer_id: first.body.id });
    expect(await balance(a)).toBe("20");
    expect(await balance(b)).toBe("25");
    expect(await events(b)).toEqual([
      { type: "balance_depleted", balance: "-5" },
      { type: "balance_restored", balance: "25" },
    ]);

    const rowsBefore = await rowCount([a, b]);
    const replay = await harness.post("/v1/transfers", body);
    expectStatus(replay, 200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(first.body);
    expect(await rowCount([a, b])).toBe(rowsBefore);
    expectProblem(await harness.post("/v1/transfers", { ...body, amount: "31" }), 409, "idempotency_key_reused");

    const refused = await transfer({ from_account_id: a, to_account_id: b, amount: "60" });
    expectProblem(refused, 409, "insufficient_balance");
    expect(refused.body).toMatchObject({ account_id: a, balance: "20", deficit: "40" });
    expect(await rowCount([a, b])).toBe(rowsBefore);
    expect(await ledgerSum(a)).toBe("20");
    expect(await ledgerSum(b)).toBe("25");

    // The legs show their links in history and on their own.
    const history = await harness.get(`/v1/accounts/${b}/entries`);
    expect(history.body.items[0]).toMatchObject({ id: incoming.id, type: "transfer_in", counterpart_entry_id: out.id, transfer_id: first.body.id });
    const detail = await harness.get(`/v1/entries/${out.id}`);
    expect(detail.body).toMatchObject({ counterpart_entry_id: incoming.id, transfer_id: first.body.id });
  });

  it("with allow_overdraft the source may go below zero", async () => {
    const a = await harness.createAccount();
    const b = await harness.createAccount();
    expectStatus(await transfer({ from_account_id: a, to_account_id: b, amount: "1.5", allow_overdraft: true }), 201);
    expect(await balance(a)).toBe("-1.5");
    expect(await balance(b)).toBe("1.5");
  });

  it("a failing statement between the two legs writes neither", async () => {
    const a = await harness.createAccount();
    const b = await harness.createAccount();
    await credit(a, "10");
    // A trigger that fails the destination leg's INSERT of this one account only (other tests are unaffected).
    const fn = `fail_${b.replace(/[^a-z0-9_]/gi, "_")}`;
    await harness.database.query(
      `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`,
    );
    await harness.database.query(
      `CREATE TRIGGER ${fn} BEFORE INSERT ON entries FOR EACH ROW WHEN (NEW.account_id = '${b}' AND NEW.type = 'transfer_in') EXECUTE FUNCTION ${fn}()`,
    );
    try {
      const failed = await transfer({ from_account_id: a, to_account_id: b, amount: "4" });
      expectProblem(failed, 500, "internal_error");
      expect(JSON.stringify(failed.body)).not.toContain("injected");
      expect(await rowCount([a, b])).toBe(1);
      expect(await balance(a)).toBe("10");
    } finally {
      await harness.database.query(`DROP TRIGGER ${fn} ON entries`);
      await harness.database.query(`DROP FUNCTION ${fn}()`);
    }
    // The same key works once the failure is gone: nothing of the failed attempt was kept.
    expectStatus(await transfer({ from_account_id: a, to_account_id: b, amount: "4" }), 201);
    expect(await rowCount([a, b])).toBe(3);
  });

  it("a process killed between the two legs writes neither", async () => {
    const a = await harness.createAccount();
    const b = await harness.createAccount();
    await credit(a, "10");
    const key = nextKey("t");
    const child = spawn(process.execPath, ["--import", "tsx", "test/support/transfer-child.ts", harness.databaseUrl, a, b, "4", key], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const lines = createInterface({ input: child.stdout! });
      let backendPid: number | undefined;
      for await (const line of lines) {
        const match = /^between (\d+)$/.exec(line);
        if (match) {
          backendPid = Number(match[1]);
          break;
        }
        throw new Error(`unexpected output from the child: ${line}`);
      }
      expect(backendPid).toBeDefined();
      // The source leg is written, but only inside the child's open transaction.
      const [open] = await harness.database.query<{ inserted: string }>(
        "SELECT count(*)::text AS inserted FROM pg_locks WHERE pid = $1 AND locktype = 'transactionid'",
        [backendPid],
      );
      expect(Number(open!.inserted)).toBeGreaterThan(0);
      expect(await rowCount([a, b])).toBe(1);
      child.kill("SIGKILL");
      // PostgreSQL rolls back the transaction when the dead process's connection closes; wait until it has.
      for (let attempt = 0; attempt < 200; attempt++) {
        const [gone] = await harness.database.query<{ alive: string }>("SELECT count(*)::text AS alive FROM pg_stat_activity WHERE pid = $1", [backendPid]);
        if (gone!.alive === "0") break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const [alive] = await harness.database.query<{ alive: string }>("SELECT count(*)::text AS alive FROM pg_stat_activity WHERE pid = $1", [backendPid]);
      expect(alive!.alive).toBe("0");
    } finally {
      child.kill("SIGKILL");
    }
    expect(await rowCount([a, b])).toBe(1);
    expect(await ledgerSum(a)).toBe("10");
    expect(await ledgerSum(b)).toBe("0");
    // The retry with the same key is a fresh transfer: nothing of the killed attempt holds the key.
    const retry = await harness.post("/v1/transfers", { from_account_id: a, to_account_id: b, amount: "4", idempotency_key: key });
    expectStatus(retry, 201);
    expect(await ledgerSum(a)).toBe("6");
    expect(await ledgerSum(b)).toBe("4");
  });

  it("bad input: unknown account, the same account twice, amount 0, wrong scope, end users", async () => {
    const a = await harness.createAccount();
    const b = await harness.createAccount();
    await credit(a, "10");
    const missing = uniqueId("missing");
    const unknown = await transfer({ from_account_id: a, to_account_id: missing, amount: "1" });
    expectProblem(unknown, 404, "account_not_found");
    expect(unknown.body.account_ids).toEqual([missing]);
    expectProblem(await transfer({ from_account_id: missing, to_account_id: a, amount: "1" }), 404, "account_not_found");
    const same = await transfer({ from_account_id: a, to_account_id: a, amount: "1" });
    expectProblem(same, 400, "validation_failed");
    expect(same.body.errors).toEqual([{ field: "to_account_id", message: "must differ from from_account_id" }]);
    expectProblem(await transfer({ from_account_id: a, to_account_id: b, amount: "0" }), 400, "validation_failed");
    expectProblem(await transfer({ from_account_id: a, to_account_id: b }), 400, "validation_failed");
    expectProblem(await transfer({ from_account_id: a, to_account_id: b, amount: "1" }, await harness.serviceKey(["credits:write", "debits:write"])), 403, "forbidden");
    expectProblem(await transfer({ from_account_id: a, to_account_id: b, amount: "1" }, await userToken(a)), 403, "forbidden");
    expectStatus(await transfer({ from_account_id: a, to_account_id: b, amount: "1" }, await harness.serviceKey(["transfers:write"])), 201);
    expect(await rowCount([a, b])).toBe(3);
  });

  it("concurrent strict transfers out of one account never overdraw it, and every write has both legs", async () => {
    const a = await harness.createAccount();
    const b = await harness.createAccount();
    const c = await harness.createAccount();
    await credit(a, "10");
    const responses = await Promise.all(
      Array.from({ length: 30 }, (_, index) => transfer({ from_account_id: a, to_account_id: index % 2 ? b : c, amount: "1" })),
    );
    expect(responses.filter((response) => response.status === 201)).toHaveLength(10);
    expect(responses.filter((response) => response.status === 409)).toHaveLength(20);
    expect(await ledgerSum(a)).toBe("0");
    const [legs] = await harness.database.query<{ outs: string; ins: string; unpaired: string }>(
      `SELECT count(*) FILTER (WHERE type = 'transfer_out')::text AS outs, count(*) FILTER (WHERE type = 'transfer_in')::text AS ins,
              count(*) FILTER (WHERE e.transfer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM entries o WHERE o.id = e.counterpart_entry_id AND o.counterpart_entry_id = e.id))::text AS unpaired
       FROM entries e WHERE account_id = ANY($1::text[])`,
      [[a, b, c]],
    );
    expect(legs).toEqual({ outs: "10", ins: "10", unpaired: "0" });
  });
});

describe("corrections racing other writes", () => {
  it("strict reversals racing strict debits on one account never overdraw it and never deadlock", async () => {
    const account = await harness.createAccount();
    const purchase = await credit(account, "10");
    const reversals = Array.from({ length: 20 }, () => refund(purchase, { amount: "1" }));
    const debits = Array.from({ length: 20 }, () =>
      harness.post("/v1/debits", { account_id: account, amount: "1", idempotency_key: nextKey("d") }),
    );
    const responses = await Promise.all([...reversals, ...debits]);
    const written = responses.filter((response) => response.status === 201);
    expect(written).toHaveLength(10);
    for (const response of responses.filter((r) => r.status !== 201)) {
      expect(response.status, JSON.stringify(response.body)).toBe(409);
      expect(["exceeds_original", "insufficient_balance"]).toContain(response.body.code);
    }
    expect(await ledgerSum(account)).toBe("0");
    const reversed = written.filter((response) => response.body.type === "reversal").length;
    expect((await harness.get(`/v1/entries/${purchase}`)).body.refunded_amount).toBe(String(reversed));
  });

  it("transfers in both directions at once never deadlock and keep both sums exact", async () => {
    const a = await harness.createAccount();
    const b = await harness.createAccount();
    await credit(a, "100");
    await credit(b, "100");
    const responses = await Promise.all(
      Array.from({ length: 30 }, (_, index) =>
        harness.post("/v1/transfers", {
          from_account_id: index % 2 ? a : b,
          to_account_id: index % 2 ? b : a,
          amount: "1.5",
          idempotency_key: nextKey("t"),
        }),
      ),
    );
    for (const response of responses) expectStatus(response, 201);
    expect(await ledgerSum(a)).toBe("100");
    expect(await ledgerSum(b)).toBe("100");
    expect(await rowCount([a, b])).toBe(62);
  });
});

describe("adjustments", () => {
  const adjust = (account: string, body: Record<string, unknown>, token?: string | null) =>
    harness.post(`/v1/accounts/${account}/adjustments`, { idempotency_key: nextKey("a"), reason: "support ticket", ...body }, token);

  it("to target 0 on a balance of 12.5: one adjustment entry of -12.5", async () => {
    const account = await harness.createAccount();
    await credit(account, "20");
    await usage(account, "7.5");
    const response = await adjust(account, { target_balance: "0" });
    expectStatus(response, 201);
    expect(response.body).toMatchObject({ type: "adjustment", amount: "12.5", delta: "-12.5", description: "support ticket", balance_before: "12.5" });
    const adjustments = await harness.database.query<{ delta: string }>(
      "SELECT delta::text AS delta FROM entries WHERE account_id = $1 AND type = 'adjustment'",
      [account],
    );
    expect(adjustments.map((row) => formatNanos(numericToNanos(row.delta)))).toEqual(["-12.5"]);
    expect(await balance(account)).toBe("0");
    expectProblem(await adjust(account, { target_balance: "0" }), 409, "nothing_to_adjust");
  });

  it("up to a target, by a signed amount, replayed by key, and restoring a blocked account", async () => {
    const account = await harness.createAccount();
    await usage(account, "3");
    expect(await balance(account)).toBe("-3");
    const body = { target_balance: "10", reason: "migration", idempotency_key: nextKey("a") };
    const up = await harness.post(`/v1/accounts/${account}/adjustments`, body);
    expectStatus(up, 201);
    expect(up.body).toMatchObject({ amount: "13", delta: "13", balance_before: "-3" });
    expect(await events(account)).toEqual([
      { type: "balance_depleted", balance: "-3" },
      { type: "balance_restored", balance: "10" },
    ]);
    await usage(account, "1");
    const replay = await harness.post(`/v1/accounts/${account}/adjustments`, body);
    expectStatus(replay, 200);
    expect(replay.body).toMatchObject({ id: up.body.id, delta: "13", balance_before: null });
    expect(await balance(account)).toBe("9");
    expectStatus(await adjust(account, { amount: "-0.000000001" }), 201);
    expectStatus(await adjust(account, { amount: "2" }), 201);
    expect(await balance(account)).toBe("10.999999999");
  });

  it("bad input and scope: admin only, exactly one of target and amount, amount 0", async () => {
    const account = await harness.createAccount();
    expectProblem(await adjust(account, { target_balance: "1" }, await harness.serviceKey(["credits:write", "debits:write"])), 403, "forbidden");
    expectProblem(await adjust(account, { target_balance: "1" }, await userToken(account)), 403, "forbidden");
    expectStatus(await adjust(account, { target_balance: "1" }, await harness.serviceKey(["admin"])), 201);
    expectProblem(await adjust(account, { target_balance: "1", amount: "1" }), 400, "validation_failed");
    expectProblem(await adjust(account, {}), 400, "validation_failed");
    expectProblem(await adjust(account, { amount: "0" }), 400, "validation_failed");
    expectProblem(await adjust(account, { amount: "-0" }), 400, "validation_failed");
    expectProblem(await adjust(account, { amount: "1e3" }), 400, "validation_failed");
    expectProblem(await adjust(account, { target_balance: "-1000000000000000.1" }), 400, "validation_failed");
    expectProblem(await adjust(account, { amount: "1", reason: "" }), 400, "validation_failed");
    expectProblem(await adjust(uniqueId("missing"), { amount: "1" }), 404, "account_not_found");
    expect(await rowCount([account])).toBe(1);
  });

  it("a target is exact as of the adjustment's serialized read: usage committed alongside still counts", async () => {
    const account = await harness.createAccount();
    await credit(account, "100");
    const usages = Array.from({ length: 20 }, () => usage(account, "1"));
    const adjustment = adjust(account, { target_balance: "50" });
    await Promise.all(usages);
    const response = await adjustment;
    expectStatus(response, 201);
    // Whatever usage the read saw, the adjustment brought that balance to 50; the rest still counts after it.
    const before = numericToNanos(response.body.balance_before);
    const seen = 100_000_000_000n - before; // nanos of usage the adjustment's read included
    expect(numericToNanos(response.body.delta)).toBe(50_000_000_000n - before);
    expect(numericToNanos(await balance(account))).toBe(50_000_000_000n - (20_000_000_000n - seen));
    expect(await ledgerSum(account)).toBe(await balance(account));
  });
});

describe("history and stats", () => {
  it("history lists the links, and stats report corrections on their own lines", async () => {
    const a = await harness.createAccount();
    const b = await harness.createAccount();
    const purchase = await credit(a, "100");
    const spent = await usage(a, "10");
    const refunded = await refund(spent, { amount: "4" });
    const reversed = await refund(purchase, { amount: "5" });
    expectStatus(await harness.post("/v1/transfers", { from_account_id: a, to_account_id: b, amount: "20", idempotency_key: nextKey("t") }), 201);
    expectStatus(await harness.post("/v1/transfers", { from_account_id: b, to_account_id: a, amount: "3", idempotency_key: nextKey("t") }), 201);
    expectStatus(await harness.post(`/v1/accounts/${a}/adjustments`, { amount: "-1.5", reason: "fix", idempotency_key: nextKey("a") }), 201);

    const history = await harness.get(`/v1/accounts/${a}/entries?group_batches=false`);
    expectStatus(history, 200);
    const byType = Object.fromEntries(history.body.items.map((item: { type: string }) => [item.type, item]));
    expect(byType.refund).toMatchObject({ id: refunded.body.id, original_entry_id: spent, balance_after: "94" });
    expect(byType.reversal).toMatchObject({ id: reversed.body.id, original_entry_id: purchase });
    expect(byType.transfer_out.counterpart_entry_id).toBeDefined();
    expect(byType.usage.original_entry_id).toBeUndefined();
    expect(history.body.page_start_balance).toBe("70.5");
    const filtered = await harness.get(`/v1/accounts/${a}/entries?type=refund&type=reversal&type=transfer_in&type=transfer_out&type=adjustment&type=usage&type=purchase`);
    expect(filtered.body.total).toBe(7);
    const all = await harness.get(`/v1/entries?type=reversal&search=`.replace("&search=", ""));
    expect(all.body.items.find((item: { id: string }) => item.id === reversed.body.id)).toMatchObject({ original_entry_id: purchase });

    const stats = await harness.get(`/v1/accounts/${a}/stats`);
    expectStatus(stats, 200);
    expect(stats.body.totals).toMatchObject({
      spent: "10",
      earned: "100",
      refunded: "4",
      reversed: "5",
      transferred_in: "3",
      transferred_out: "20",
      adjusted: "-1.5",
      net: "70.5",
      count: 7,
    });
    expect(stats.body.totals.by_type.adjustment).toEqual({ amount: "1.5", count: 1 });
  });
});
