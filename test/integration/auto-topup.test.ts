import { afterAll, describe, expect, it } from "vitest";
import { canonicalNumeric } from "../../src/ledger/core/amount.js";
import { connectPostgres } from "../../src/db/postgres.js";
import { AutoTopupDetector, DETECTOR_DEFAULTS, startAutoTopupDetector } from "../../src/ledger/auto-topup/detector.js";
import { evaluateAutoTopup } from "../../src/ledger/auto-topup/evaluate.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { createLogger } from "../../src/logger.js";
import { createHarness, TestClock, uniqueId, type Harness } from "../support/harness.js";
import { SseReader } from "../support/sse.js";

/**
 * Auto top-up (src/ledger/auto-topup/): evaluations are driven by hand here (evaluateAutoTopup, detector passes),
 * so each step is deterministic; one test runs the background detector to show usage is noticed on its own.
 */

const clock = new TestClock(new Date("2026-03-10T12:00:00Z"));
const harness = createHarness({ clock });
const system = createHarness();
afterAll(async () => {
  await harness.close();
  await system.close();
});

async function post(on: Harness, path: string, body: Record<string, unknown>) {
  const response = await on.post(path, { idempotency_key: uniqueId("key"), ...body });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body;
}

async function requestsOf(on: Harness, account_id: string) {
  return on.database.query<{ id: string; type: string; amount: string; balance: string; request_id: string }>(
    `SELECT id::text AS id, type, amount::text AS amount, balance::text AS balance, request_id::text AS request_id
     FROM balance_events WHERE account_id = $1 AND type = 'auto_topup_requested' ORDER BY id`,
    [account_id],
  );
}

const amounts = (rows: { amount: string }[]) => rows.map((row) => canonicalNumeric(row.amount));

describe("auto top-up rules API", () => {
  it("PUT creates (201) and replaces (200), GET reads, DELETE removes; bad bodies are 400 and change nothing", async () => {
    const account = await harness.createAccount();
    const path = `/v1/accounts/${account}/auto-topup`;
    const created = await harness.request("PUT", path, { body: { threshold: "5", amount: "20", monthly_limit: "50" } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      account_id: account, threshold: "5", amount: "20", target_balance: null, monthly_limit: "50", enabled: true,
      requested_this_month: "0", last_request: null,
    });
    const replaced = await harness.request("PUT", path, { body: { threshold: "0", target_balance: "100.5", monthly_limit: "500", enabled: false } });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ threshold: "0", amount: null, target_balance: "100.5", enabled: false });
    for (const body of [
      { threshold: "5", monthly_limit: "50" },
      { threshold: "5", amount: "20", target_balance: "30", monthly_limit: "50" },
      { threshold: "5", target_balance: "5", monthly_limit: "50" },
      { threshold: "-1", amount: "20", monthly_limit: "50" },
      { threshold: "5", amount: "0", monthly_limit: "50" },
      { threshold: "5", amount: "20", monthly_limit: "50", surprise: true },
    ]) {
      const refused = await harness.request("PUT", path, { body });
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body.code).toBe("validation_failed");
    }
    expect((await harness.get(path)).body).toMatchObject({ target_balance: "100.5", enabled: false });
    expect((await harness.request("DELETE", path)).status).toBe(204);
    expect((await harness.get(path)).body.code).toBe("not_found");
    expect((await harness.request("DELETE", path)).body.code).toBe("not_found");
    const nobody = `/v1/accounts/${uniqueId("nobody")}/auto-topup`;
    expect((await harness.request("PUT", nobody, { body: { threshold: "5", amount: "20", monthly_limit: "50" } })).body.code).toBe("account_not_found");
    expect((await harness.get(nobody)).body.code).toBe("account_not_found");
  });

  it("checks scopes: accounts:write to change, balances:read to read", async () => {
    const account = await harness.createAccount();
    const path = `/v1/accounts/${account}/auto-topup`;
    const reader = await harness.serviceKey(["balances:read"]);
    const writer = await harness.serviceKey(["accounts:write"]);
    const body = { threshold: "5", amount: "20", monthly_limit: "50" };
    expect((await harness.request("PUT", path, { body, token: reader })).status).toBe(403);
    expect((await harness.request("PUT", path, { body, token: null })).status).toBe(401);
    expect((await harness.request("PUT", path, { body, token: writer })).status).toBe(201);
    expect((await harness.get(path, reader)).status).toBe(200);
    expect((await harness.request("DELETE", path, { token: reader })).status).toBe(403);
    expect((await harness.request("DELETE", path, { token: writer })).status).toBe(204);
  });
});

describe("auto top-up requests", () => {
  it("threshold 5, amount 20, monthly limit 50: one request per crossing, a partial 10 on the third, none past the limit", async () => {
    clock.set(new Date("2026-03-10T12:00:00Z"));
    const { ledger } = harness;
    const account = await harness.createAccount();
    await post(harness, "/v1/credits", { account_id: account, type: "purchase", amount: "10" });
    await harness.request("PUT", `/v1/accounts/${account}/auto-topup`, { body: { threshold: "5", amount: "20", monthly_limit: "50" } });
    expect(await evaluateAutoTopup(ledger, account)).toBeUndefined();

    // Usage takes the balance from 10 to 4: one request of 20.
    await post(harness, "/v1/usage", { account_id: account, amount: "6" });
    const first = await evaluateAutoTopup(ledger, account);
    expect(first).toMatchObject({ type: "auto_topup_requested", account_id: account, amount: "20", balance: "4", request_id: expect.any(String) });
    // More usage before the top-up: no second request, however often it is evaluated.
    await post(harness, "/v1/usage", { account_id: account, amount: "1" });
    expect(await evaluateAutoTopup(ledger, account)).toBeUndefined();
    expect(await evaluateAutoTopup(ledger, account)).toBeUndefined();
    expect((await harness.get(`/v1/accounts/${account}/auto-topup`)).body).toMatchObject({
      requested_this_month: "20",
      last_request: { id: first!.request_id, amount: "20", balance: "4", status: "open" },
    });

    // The billing side fulfils it: a purchase keyed by the request id (3 + 20 = 23).
    await post(harness, "/v1/credits", { account_id: account, type: "purchase", amount: "20", idempotency_key: first!.request_id });
    expect(await evaluateAutoTopup(ledger, account)).toBeUndefined();
    expect((await harness.get(`/v1/accounts/${account}/auto-topup`)).body.last_request.status).toBe("fulfilled");

    // Second crossing: 23 → 4, a request of 20 (40 of the 50), fulfilled: 24.
    await post(harness, "/v1/usage", { account_id: account, amount: "19" });
    const second = await evaluateAutoTopup(ledger, account);
    expect(second).toMatchObject({ amount: "20", balance: "4" });
    await post(harness, "/v1/credits", { account_id: account, type: "purchase", amount: "20", idempotency_key: second!.request_id });

    // Third crossing in the same month: 24 → 4, a partial request of the 10 left.
    await post(harness, "/v1/usage", { account_id: account, amount: "20" });
    const third = await evaluateAutoTopup(ledger, account);
    expect(third).toMatchObject({ amount: "10", balance: "4" });
    await post(harness, "/v1/credits", { account_id: account, type: "purchase", amount: "10", idempotency_key: third!.request_id });

    // A fourth crossing: nothing is left this month, so no request.
    await post(harness, "/v1/usage", { account_id: account, amount: "10" });
    expect(await evaluateAutoTopup(ledger, account)).toBeUndefined();
    expect(amounts(await requestsOf(harness, account))).toEqual(["20", "20", "10"]);
    expect((await harness.get(`/v1/accounts/${account}/auto-topup`)).body.requested_this_month).toBe("50");

    // A new UTC month starts a new sum (the balance is still at 4, at or below the threshold).
    clock.set(new Date("2026-04-01T00:00:00Z"));
    expect(await evaluateAutoTopup(ledger, account)).toMatchObject({ amount: "20", balance: "4" });
    expect((await harness.get(`/v1/accounts/${account}/auto-topup`)).body.requested_this_month).toBe("20");
    await harness.request("DELETE", `/v1/accounts/${account}/auto-topup`);
  });

  it("an unfulfilled request blocks the next until it expires (one hour); the expired one still counts toward the month", async () => {
    clock.set(new Date("2026-05-20T08:00:00Z"));
    const { ledger } = harness;
    const account = await harness.createAccount();
    await harness.request("PUT", `/v1/accounts/${account}/auto-topup`, { body: { threshold: "0", amount: "30", monthly_limit: "50" } });
    await post(harness, "/v1/usage", { account_id: account, amount: "1" });
    expect(await evaluateAutoTopup(ledger, account)).toMatchObject({ amount: "30", balance: "-1" });
    clock.advance(59 * 60 * 1000);
    expect(await evaluateAutoTopup(ledger, account)).toBeUndefined();
    clock.advance(60 * 1000);
    expect((await harness.get(`/v1/accounts/${account}/auto-topup`)).body.last_request.status).toBe("expired");
    expect(await evaluateAutoTopup(ledger, account)).toMatchObject({ amount: "20", balance: "-1" });
    await harness.request("DELETE", `/v1/accounts/${account}/auto-topup`);
  });

  it("the balance back above the threshold ends the block; target_balance requests what reaches the target", async () => {
    clock.set(new Date("2026-06-02T08:00:00Z"));
    const { ledger } = harness;
    const account = await harness.createAccount();
    await post(harness, "/v1/credits", { account_id: account, type: "grant", amount: "12" });
    await harness.request("PUT", `/v1/accounts/${account}/auto-topup`, { body: { threshold: "10", target_balance: "100", monthly_limit: "1000" } });
    await post(harness, "/v1/usage", { account_id: account, amount: "4.5" });
    expect(await evaluateAutoTopup(ledger, account)).toMatchObject({ amount: "92.5", balance: "7.5" });
    // A grant (not the requested purchase) lifts the balance above 10: the next crossing requests again.
    await post(harness, "/v1/credits", { account_id: account, type: "grant", amount: "5" });
    expect(await evaluateAutoTopup(ledger, account)).toBeUndefined();
    expect((await harness.get(`/v1/accounts/${account}/auto-topup`)).body.last_request.status).toBe("superseded");
    await post(harness, "/v1/usage", { account_id: account, amount: "3" });
    expect(await evaluateAutoTopup(ledger, account)).toMatchObject({ amount: "90.5", balance: "9.5" });
    // A disabled rule requests nothing.
    await harness.request("PUT", `/v1/accounts/${account}/auto-topup`, { body: { threshold: "10", target_balance: "100", monthly_limit: "1000", enabled: false } });
    await post(harness, "/v1/credits", { account_id: account, type: "grant", amount: "5" });
    await post(harness, "/v1/usage", { account_id: account, amount: "5" });
    expect(await evaluateAutoTopup(ledger, account)).toBeUndefined();
    await harness.request("DELETE", `/v1/accounts/${account}/auto-topup`);
  });
});

describe("auto top-up detection", () => {
  it("32 concurrent writers on one account, two processes detecting meanwhile: exactly one request", async () => {
    const account = await system.createAccount();
    await post(system, "/v1/credits", { account_id: account, type: "purchase", amount: "100" });
    await system.request("PUT", `/v1/accounts/${account}/auto-topup`, { body: { threshold: "50", amount: "20", monthly_limit: "1000" } });
    // A second "process": its own pool and ledger context on the same database.
    const otherDatabase = connectPostgres({ url: system.databaseUrl, pool_max: 4, statement_timeout_ms: 60_000, acquire_timeout_ms: 60_000, connect_timeout_ms: 10_000 });
    const other = createLedgerContext({ database: otherDatabase, logger: createLogger("silent"), refresh_every: 1000, delta_max: 5000 });
    const detectors = [startAutoTopupDetector(system.ledger, { interval_ms: 5 }), startAutoTopupDetector(other, { interval_ms: 5 })];
    try {
      // 32 writers × 2 posts of 1: 100 → 36, crossing 50 once, with the detectors running throughout.
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          for (let post = 0; post < 2; post++) {
            const response = await system.post("/v1/usage", { account_id: account, amount: "1", idempotency_key: uniqueId("use") });
            expect(response.status).toBe(201);
          }
        }),
      );
      // Many passes at once in both processes, after the last write.
      await Promise.all([system.ledger, other, system.ledger, other].map((context) => new AutoTopupDetector(context, DETECTOR_DEFAULTS).pass()));
      await Promise.all(detectors.map((detector) => detector.stop()));
      await Promise.all([system.ledger, other].map((context) => new AutoTopupDetector(context, DETECTOR_DEFAULTS).pass()));
      const requests = await requestsOf(system, account);
      expect(amounts(requests)).toEqual(["20"]);
      const [counted] = await system.database.query<{ count: string }>("SELECT COUNT(*)::text AS count FROM auto_topup_requests WHERE account_id = $1", [account]);
      expect(counted?.count).toBe("1");
    } finally {
      await Promise.all(detectors.map((detector) => detector.stop()));
      await otherDatabase.close();
      await system.request("DELETE", `/v1/accounts/${account}/auto-topup`);
    }
  });

  it("the background detector notices usage by itself, and the request reaches GET /v1/events", async () => {
    const account = await system.createAccount();
    await post(system, "/v1/credits", { account_id: account, type: "purchase", amount: "10" });
    await system.request("PUT", `/v1/accounts/${account}/auto-topup`, { body: { threshold: "5", amount: "20", monthly_limit: "50" } });
    const controller = new AbortController();
    const stream = await system.app.request("/v1/events", { headers: { authorization: `Bearer ${(await import("../support/harness.js")).ADMIN_KEY}` }, signal: controller.signal });
    expect(stream.status).toBe(200);
    const reader = new SseReader(stream);
    const detector = startAutoTopupDetector(system.ledger, { interval_ms: 50 });
    try {
      await post(system, "/v1/usage", { account_id: account, amount: "6" });
      let message;
      for (let attempt = 0; attempt < 60 && !message; attempt++) {
        const next = await reader.next(500);
        if (next?.event === "auto_topup_requested" && JSON.parse(next.data).account_id === account) message = next;
      }
      expect(message, "no auto_topup_requested event arrived").toBeDefined();
      expect(JSON.parse(message!.data)).toMatchObject({ type: "auto_topup_requested", account_id: account, amount: "20", balance: "4", request_id: expect.any(String) });
    } finally {
      controller.abort();
      await detector.stop();
      await system.request("DELETE", `/v1/accounts/${account}/auto-topup`);
    }
  });

  it("a detector pass evaluates only rules with new entries, a changed rule, or an expired request", async () => {
    clock.set(new Date("2026-07-01T10:00:00Z"));
    const account = await harness.createAccount();
    await harness.request("PUT", `/v1/accounts/${account}/auto-topup`, { body: { threshold: "5", amount: "20", monthly_limit: "100" } });
    const detector = new AutoTopupDetector(harness.ledger, DETECTOR_DEFAULTS);
    const due = async () => {
      const [row] = await harness.database.query<{ evaluated: boolean }>(
        "SELECT evaluated_snapshot IS NOT NULL AS evaluated FROM auto_topup_rules WHERE account_id = $1",
        [account],
      );
      return row!.evaluated;
    };
    await detector.pass();
    expect(await due()).toBe(true);
    expect(amounts(await requestsOf(harness, account))).toEqual(["20"]);
    await detector.pass();
    expect(amounts(await requestsOf(harness, account))).toEqual(["20"]);
    // The open request expires: the next pass requests again without any new entry.
    clock.advance(60 * 60 * 1000 + 1);
    await detector.pass();
    expect(amounts(await requestsOf(harness, account))).toEqual(["20", "20"]);
    // A fulfilling purchase is noticed (new entry): the balance is 20, above 5, nothing more is requested.
    const [last] = (await requestsOf(harness, account)).slice(-1);
    await post(harness, "/v1/credits", { account_id: account, type: "purchase", amount: "20", idempotency_key: last!.request_id });
    await detector.pass();
    expect((await harness.get(`/v1/accounts/${account}/auto-topup`)).body.last_request.status).toBe("fulfilled");
    await post(harness, "/v1/usage", { account_id: account, amount: "16" });
    await detector.pass();
    expect(amounts(await requestsOf(harness, account))).toEqual(["20", "20", "20"]);
    await harness.request("DELETE", `/v1/accounts/${account}/auto-topup`);
  });
});
