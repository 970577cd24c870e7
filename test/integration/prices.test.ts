/**
 * Prices against real PostgreSQL: the price table (versions, valid_from by the injected clock), usage posted as
 * meter and quantities and priced exactly by the documented rule (round up once to 1e-9), estimates, checks and
 * holds priced the same way, idempotency bound to meter and quantities, unknown meters refused with nothing
 * written, bad input refused, stats by meter, and a price change seen by a second process within 1 s.
 */
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configurePriceCache } from "../../src/ledger/prices/price-cache.js";
import { createHarness, JWT_AUDIENCE, JWT_SECRET, TestClock, uniqueId, type ApiResponse, type Harness } from "../support/harness.js";

const clock = new TestClock(new Date());
let harness: Harness;
beforeAll(() => {
  harness = createHarness({ clock });
});
afterAll(async () => {
  await harness.close();
});

function expectStatus(response: ApiResponse, status: number): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
}

async function putPrice(meter: string, body: Record<string, unknown>, token?: string | null): Promise<ApiResponse> {
  return harness.request("PUT", `/v1/prices/${encodeURIComponent(meter)}`, { body, token });
}

async function pricedMeter(unit_prices: Record<string, string>, per = "1000000"): Promise<string> {
  const meter = uniqueId("gpt-x");
  expectStatus(await putPrice(meter, { unit_prices, per }), 201);
  return meter;
}

async function fundedAccount(amount: string): Promise<string> {
  const account_id = await harness.createAccount();
  expectStatus(await harness.post("/v1/credits", { account_id, type: "purchase", amount, idempotency_key: uniqueId("buy") }), 201);
  return account_id;
}

async function balanceOf(account_id: string): Promise<string> {
  const response = await harness.get(`/v1/balances/${account_id}`);
  expectStatus(response, 200);
  return response.body.balance;
}

async function entryCount(account_id: string): Promise<number> {
  const [row] = await harness.database.query<{ count: string }>("SELECT COUNT(*)::text AS count FROM entries WHERE account_id = $1", [account_id]);
  return Number(row!.count);
}

async function versionCount(meter: string): Promise<number> {
  const [row] = await harness.database.query<{ count: string }>("SELECT COUNT(*)::text AS count FROM prices WHERE meter = $1", [meter]);
  return Number(row!.count);
}

describe("the issue's exact behaviour", () => {
  it("1. gpt-x at 2.5 in / 10 out per million: 812 in + 117 out costs 0.00320, and the balance moves by exactly that", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5", output_tokens: "10" });
    const account_id = await fundedAccount("1");
    const response = await harness.post("/v1/usage", {
      account_id,
      meter,
      quantities: { input_tokens: 812, output_tokens: 117 },
      idempotency_key: uniqueId("req"),
    });
    expectStatus(response, 201);
    expect(response.body).toMatchObject({
      type: "usage",
      amount: "0.0032",
      delta: "-0.0032",
      meter,
      quantities: { input_tokens: 812, output_tokens: 117 },
      price_version: 1,
    });
    expect(await balanceOf(account_id)).toBe("0.9968");
    // The entry keeps what explains it, read back from the ledger.
    const stored = await harness.get(`/v1/entries/${response.body.id}`);
    expectStatus(stored, 200);
    expect(stored.body).toMatchObject({ meter, quantities: { input_tokens: 812, output_tokens: 117 }, price_version: 1, amount: "0.0032" });
  });

  it("2. more than 9 fractional digits: the total is rounded up once to the next 1e-9", async () => {
    const cheap = await pricedMeter({ input_tokens: "0.15" });
    const estimate = async (meter: string, quantities: Record<string, number>) => {
      const response = await harness.post("/v1/prices/estimate", { meter, quantities });
      expectStatus(response, 200);
      return response.body.amount as string;
    };
    // The issue's example: 0.15 per million, 1 token = 0.00000015, exactly representable.
    expect(await estimate(cheap, { input_tokens: 1 })).toBe("0.00000015");
    const tiny = await pricedMeter({ input_tokens: "0.0015", output_tokens: "0.0005" });
    // 1.5e-9 rounds up to 2e-9; 5e-10 rounds up to 1e-9 (never to zero).
    expect(await estimate(tiny, { input_tokens: 1 })).toBe("0.000000002");
    expect(await estimate(tiny, { output_tokens: 1 })).toBe("0.000000001");
    // Rounded once, on the total: 1.5e-9 + 5e-10 = 2e-9 exactly (rounding each quantity would give 3e-9).
    expect(await estimate(tiny, { input_tokens: 1, output_tokens: 1 })).toBe("0.000000002");
    // Usage follows the same rule, and the balance moves by exactly the rounded amount.
    const account_id = await fundedAccount("1");
    const usage = await harness.post("/v1/usage", { account_id, meter: tiny, quantities: { output_tokens: 1 }, idempotency_key: uniqueId("req") });
    expectStatus(usage, 201);
    expect(usage.body.amount).toBe("0.000000001");
    expect(await balanceOf(account_id)).toBe("0.999999999");
  });

  it("3. a version valid from T+1h: usage at T is priced old, at T+1h new, and each entry names its version", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5", output_tokens: "10" });
    const later = new Date(clock.now().getTime() + 3_600_000);
    const scheduled = await putPrice(meter, { unit_prices: { input_tokens: "5", output_tokens: "20" }, per: "1000000", valid_from: later.toISOString() });
    expectStatus(scheduled, 201);
    expect(scheduled.body).toMatchObject({ meter, version: 2, valid_from: later.toISOString() });
    const account_id = await fundedAccount("1");
    const quantities = { input_tokens: 812, output_tokens: 117 };
    const before = await harness.post("/v1/usage", { account_id, meter, quantities, idempotency_key: uniqueId("req") });
    expectStatus(before, 201);
    expect(before.body).toMatchObject({ amount: "0.0032", price_version: 1 });
    const listing = await harness.get(`/v1/prices/${meter}`);
    expect(listing.body.current.version).toBe(1);
    expect(listing.body.versions.map((version: { version: number }) => version.version)).toEqual([2, 1]);
    clock.advance(3_600_000);
    try {
      const after = await harness.post("/v1/usage", { account_id, meter, quantities, idempotency_key: uniqueId("req") });
      expectStatus(after, 201);
      expect(after.body).toMatchObject({ amount: "0.0064", price_version: 2 });
      expect((await harness.get(`/v1/prices/${meter}`)).body.current.version).toBe(2);
      expect(await balanceOf(account_id)).toBe("0.9904");
    } finally {
      clock.advance(-3_600_000);
    }
  });

  it("4. an unknown meter is 422 price_not_found with nothing written; a batch with one unknown meter is refused whole", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5" });
    const account_id = await fundedAccount("1");
    const unknown = uniqueId("no-such-model");
    const single = await harness.post("/v1/usage", { account_id, meter: unknown, quantities: { input_tokens: 1 }, idempotency_key: uniqueId("req") });
    expectStatus(single, 422);
    expect(single.body).toMatchObject({ code: "price_not_found", meter: unknown });
    const batch = await harness.post("/v1/usage/batch", {
      entries: [
        { account_id, meter, quantities: { input_tokens: 1000 }, idempotency_key: uniqueId("req") },
        { account_id, amount: "0.5", idempotency_key: uniqueId("req") },
        { account_id, meter: unknown, quantities: { input_tokens: 1 }, idempotency_key: uniqueId("req") },
      ],
    });
    expectStatus(batch, 422);
    expect(batch.body).toMatchObject({ code: "price_not_found", meter: unknown, field: "entries[2].meter" });
    expect(await entryCount(account_id)).toBe(1); // only the purchase
    expect(await balanceOf(account_id)).toBe("1");
  });

  it("5. seed 004's table as per-request prices: image_generation costs 10, and a check reports sufficient and deficit", async () => {
    const suffix = uniqueId("seed");
    const image_generation = `image_generation.${suffix}`;
    const chatgpt_message = `chatgpt_message.${suffix}`;
    expectStatus(await putPrice(image_generation, { unit_prices: { requests: "10" }, per: "1" }), 201);
    expectStatus(await putPrice(chatgpt_message, { unit_prices: { requests: "5" }, per: "1" }), 201);
    const account_id = await fundedAccount("12");
    const check = async (meter: string) => {
      const response = await harness.post("/v1/balances/check", { account_id, meter, quantities: { requests: 1 } });
      expectStatus(response, 200);
      return response.body;
    };
    expect(await check(image_generation)).toMatchObject({ amount: "10", sufficient: true, deficit: "0", meter: image_generation, price_version: 1 });
    const usage = await harness.post("/v1/usage", { account_id, meter: image_generation, quantities: { requests: 1 }, idempotency_key: uniqueId("req") });
    expectStatus(usage, 201);
    expect(usage.body.amount).toBe("10");
    expect(await balanceOf(account_id)).toBe("2");
    expect(await check(image_generation)).toMatchObject({ amount: "10", sufficient: false, deficit: "8" });
    expect(await check(chatgpt_message)).toMatchObject({ amount: "5", sufficient: false, deficit: "3" });
  });

  it("6. a price change made by one process is used by another within 1 s", async () => {
    const other = createHarness({ clock });
    try {
      const meter = await pricedMeter({ requests: "1" }, "1");
      const estimateIn = async (process: Harness) => {
        const response = await process.post("/v1/prices/estimate", { meter, quantities: { requests: 1 } });
        expectStatus(response, 200);
        return response.body;
      };
      // The other process has the meter cached (its check ran after the first version committed).
      expect(await estimateIn(other)).toMatchObject({ amount: "1", price_version: 1 });
      expectStatus(await putPrice(meter, { unit_prices: { requests: "3" }, per: "1" }), 201);
      // The writing process sees its own change at once.
      expect(await estimateIn(harness)).toMatchObject({ amount: "3", price_version: 2 });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await estimateIn(other)).toMatchObject({ amount: "3", price_version: 2 });
      const account_id = await fundedAccount("10");
      const usage = await other.post("/v1/usage", { account_id, meter, quantities: { requests: 2 }, idempotency_key: uniqueId("req") });
      expect(usage.body).toMatchObject({ amount: "6", price_version: 2 });
    } finally {
      await other.close();
    }
  });

  it("6b. a warm cache answers without a database round trip; a stale one checks once for many concurrent requests", async () => {
    const meter = await pricedMeter({ requests: "1" }, "1");
    const cache = configurePriceCache(harness.ledger, 60_000);
    const estimate = () => harness.post("/v1/prices/estimate", { meter, quantities: { requests: 1 } });
    const answers = await Promise.all(Array.from({ length: 20 }, estimate));
    for (const answer of answers) expectStatus(answer, 200);
    expect(cache.stats.checks).toBe(1);
    for (let index = 0; index < 10; index++) expectStatus(await estimate(), 200);
    expect(cache.stats).toEqual({ checks: 1, loads: 1 });
    configurePriceCache(harness.ledger, 500);
  });

  it("7. bad input is 400 and writes nothing", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5", output_tokens: "10" });
    const account_id = await fundedAccount("1");
    const post = (extra: Record<string, unknown>) =>
      harness.post("/v1/usage", { account_id, idempotency_key: uniqueId("req"), ...extra });
    const cases: [Record<string, unknown>, string][] = [
      [{ meter, quantities: { input_tokens: -1 } }, "quantities.input_tokens"],
      [{ meter, quantities: { input_tokens: 1.5 } }, "quantities.input_tokens"],
      [{ meter, quantities: { input_tokens: 2 ** 53 } }, "quantities.input_tokens"],
      [{ meter, quantities: { input_tokens: "1" } }, "quantities.input_tokens"],
      [{ meter, quantities: Object.fromEntries(Array.from({ length: 17 }, (_, index) => [`q_${"abcdefghijklmnopq"[index]}`, 1])) }, "quantities"],
      [{ meter, quantities: { cached_input_tokens: 5 } }, "quantities.cached_input_tokens"],
      [{ meter, quantities: {} }, "quantities"],
      [{ meter, quantities: { input_tokens: 1 }, amount: "0.1" }, "amount"],
      [{ meter }, "quantities"],
      [{ quantities: { input_tokens: 1 } }, "meter"],
      [{}, "amount"],
      [{ meter: "has space", quantities: { input_tokens: 1 } }, "meter"],
    ];
    for (const [body, field] of cases) {
      const response = await post(body);
      expectStatus(response, 400);
      expect(response.body.code, JSON.stringify(body)).toBe("validation_failed");
      expect(response.body.errors.map((error: { field: string }) => error.field), JSON.stringify(body)).toContain(field);
    }
    const batch = await harness.post("/v1/usage/batch", {
      entries: [
        { account_id, meter, quantities: { input_tokens: 1 }, idempotency_key: uniqueId("req") },
        { account_id, meter, quantities: { input_tokens: -1 }, idempotency_key: uniqueId("req") },
      ],
    });
    expectStatus(batch, 400);
    expect(await entryCount(account_id)).toBe(1);

    const prices: [Record<string, unknown>, string][] = [
      [{ unit_prices: { input_tokens: "0.0000000015" }, per: "1000000" }, "unit_prices.input_tokens"],
      [{ unit_prices: { input_tokens: "-1" }, per: "1000000" }, "unit_prices.input_tokens"],
      [{ unit_prices: { input_tokens: 2.5 }, per: "1000000" }, "unit_prices.input_tokens"],
      [{ unit_prices: { Input: "1" }, per: "1000000" }, "unit_prices.Input"],
      [{ unit_prices: Object.fromEntries(Array.from({ length: 17 }, (_, index) => [`q_${"abcdefghijklmnopq"[index]}`, "1"])), per: "1" }, "unit_prices"],
      [{ unit_prices: { input_tokens: "1" }, per: "100" }, "per"],
      [{ unit_prices: { input_tokens: "1" }, per: "1", valid_from: new Date(clock.now().getTime() - 60_000).toISOString() }, "valid_from"],
    ];
    for (const [body, field] of prices) {
      const response = await putPrice(meter, body);
      expectStatus(response, 400);
      expect(response.body.errors.map((error: { field: string }) => error.field), JSON.stringify(body)).toContain(field);
    }
    expect(await versionCount(meter)).toBe(1);
  });
});

describe("idempotency", () => {
  it("a replay with different token counts is 409; a replay after a price change returns the original entry and price", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5", output_tokens: "10" });
    const account_id = await fundedAccount("1");
    const idempotency_key = uniqueId("req");
    const body = { account_id, meter, quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key };
    const first = await harness.post("/v1/usage", body);
    expectStatus(first, 201);
    const different = await harness.post("/v1/usage", { ...body, quantities: { input_tokens: 812, output_tokens: 118 } });
    expectStatus(different, 409);
    expect(different.body.code).toBe("idempotency_key_reused");
    const otherMeter = await harness.post("/v1/usage", { ...body, meter: await pricedMeter({ input_tokens: "2.5", output_tokens: "10" }) });
    expectStatus(otherMeter, 409);
    expectStatus(await putPrice(meter, { unit_prices: { input_tokens: "100", output_tokens: "100" }, per: "1000000" }), 201);
    const replay = await harness.post("/v1/usage", { ...body, quantities: { output_tokens: 117, input_tokens: 812 } });
    expectStatus(replay, 200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toMatchObject({ id: first.body.id, amount: "0.0032", price_version: 1 });
    // Even a price that no longer prices the quantities answers the replay rather than refusing it.
    expectStatus(await putPrice(meter, { unit_prices: { requests: "1" }, per: "1" }), 201);
    const late = await harness.post("/v1/usage", body);
    expectStatus(late, 200);
    expect(late.body).toMatchObject({ id: first.body.id, amount: "0.0032", price_version: 1 });
    // A batch replay of priced rows is a replay too.
    const row = { account_id, meter, quantities: { requests: 2 }, idempotency_key: uniqueId("req") };
    expect((await harness.post("/v1/usage/batch", { entries: [row] })).body).toEqual({ inserted: 1, replayed: 0 });
    expect((await harness.post("/v1/usage/batch", { entries: [row] })).body).toEqual({ inserted: 0, replayed: 1 });
    // 1 − 0.0032 − 2 requests at version 3's price of 1.
    expect(await balanceOf(account_id)).toBe("-1.0032");
  });

  it("a batch replayed after price changes returns the original rows at their original prices; other token counts are 409", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5", output_tokens: "10" });
    const account_id = await fundedAccount("1");
    const rows = [
      { account_id, meter, quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key: uniqueId("req") },
      { account_id, meter, quantities: { input_tokens: 1000, output_tokens: 100 }, idempotency_key: uniqueId("req") },
    ];
    expect((await harness.post("/v1/usage/batch", { entries: rows })).body).toEqual({ inserted: 2, replayed: 0 });
    const original = await harness.database.query<{ idempotency_key: string; amount: string; price_version: number }>(
      "SELECT idempotency_key, amount::text AS amount, price_version FROM entries WHERE account_id = $1 AND type = 'usage' ORDER BY amount",
      [account_id],
    );
    // 812 × 2.5e-6 + 117 × 1e-5 and 1000 × 2.5e-6 + 100 × 1e-5, both at version 1.
    expect(original.map((row) => [row.amount, row.price_version])).toEqual([["0.003200000", 1], ["0.003500000", 1]]);
    // The version in force changes through the clock: a version valid from T+1h, then the clock moves past it.
    const later = new Date(clock.now().getTime() + 3_600_000);
    expectStatus(await putPrice(meter, { unit_prices: { input_tokens: "100", output_tokens: "100" }, per: "1000000", valid_from: later.toISOString() }), 201);
    clock.advance(3_600_000);
    try {
      const replay = await harness.post("/v1/usage/batch", { entries: rows });
      expectStatus(replay, 200);
      expect(replay.body).toEqual({ inserted: 0, replayed: 2 });
      // Then a price that no longer prices these quantities at all, and one under which they cost nothing.
      expectStatus(await putPrice(meter, { unit_prices: { requests: "1" }, per: "1" }), 201);
      expect((await harness.post("/v1/usage/batch", { entries: rows })).body).toEqual({ inserted: 0, replayed: 2 });
      expectStatus(await putPrice(meter, { unit_prices: { input_tokens: "0", output_tokens: "0" }, per: "1" }), 201);
      expect((await harness.post("/v1/usage/batch", { entries: rows })).body).toEqual({ inserted: 0, replayed: 2 });
      // A new row beside the replayed ones is priced by the version in force now (version 4 prices it at 0: refused whole).
      const fresh = { account_id, meter, quantities: { input_tokens: 1, output_tokens: 1 }, idempotency_key: uniqueId("req") };
      const refused = await harness.post("/v1/usage/batch", { entries: [...rows, fresh] });
      expectStatus(refused, 422);
      expect(refused.body.code).toBe("zero_cost_usage");
      // Other token counts under a used key are 409, whatever the price in force; nothing is written.
      const changed = [rows[0], { ...rows[1]!, quantities: { input_tokens: 1000, output_tokens: 101 } }];
      const conflict = await harness.post("/v1/usage/batch", { entries: changed });
      expectStatus(conflict, 409);
      expect(conflict.body.code).toBe("idempotency_key_reused");
      expectStatus(await putPrice(meter, { unit_prices: { input_tokens: "1", output_tokens: "1" }, per: "1000000" }), 201);
      expectStatus(await harness.post("/v1/usage/batch", { entries: changed }), 409);
      const after = await harness.database.query<{ idempotency_key: string; amount: string; price_version: number }>(
        "SELECT idempotency_key, amount::text AS amount, price_version FROM entries WHERE account_id = $1 AND type = 'usage' ORDER BY amount",
        [account_id],
      );
      expect(after).toEqual(original);
      expect(await balanceOf(account_id)).toBe("0.9933");
    } finally {
      clock.advance(-3_600_000);
    }
  });

  it("concurrent identical priced posts make one row (group commit)", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5", output_tokens: "10" });
    const account_id = await fundedAccount("1");
    const idempotency_key = uniqueId("req");
    const body = { account_id, meter, quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key };
    const others = Array.from({ length: 10 }, () => ({ account_id, meter, quantities: { input_tokens: 1000, output_tokens: 100 }, idempotency_key: uniqueId("req") }));
    const answers = await Promise.all([...Array.from({ length: 10 }, () => harness.post("/v1/usage", body)), ...others.map((other) => harness.post("/v1/usage", other))]);
    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(11);
    expect(answers.filter((answer) => answer.status === 200)).toHaveLength(9);
    // 0.0032 + 10 × (1000 × 2.5e-6 + 100 × 1e-5 = 0.0035)
    expect(await balanceOf(account_id)).toBe("0.9618");
    const rows = await harness.database.query<{ meter: string; price_version: number; quantities: Record<string, number> }>(
      "SELECT meter, price_version, quantities FROM entries WHERE account_id = $1 AND type = 'usage'",
      [account_id],
    );
    expect(rows).toHaveLength(11);
    for (const row of rows) expect(row).toMatchObject({ meter, price_version: 1 });
  });
});

describe("batches, holds, zero cost and stats", () => {
  it("a batch mixes amounts and priced rows, each priced by its own meter", async () => {
    const gpt = await pricedMeter({ input_tokens: "2.5", output_tokens: "10" });
    const image = await pricedMeter({ requests: "0.04" }, "1");
    const account_id = await fundedAccount("1");
    const response = await harness.post("/v1/usage/batch", {
      entries: [
        { account_id, meter: gpt, quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key: uniqueId("req") },
        { account_id, meter: image, quantities: { requests: 2 }, idempotency_key: uniqueId("req") },
        { account_id, amount: "0.1", idempotency_key: uniqueId("req") },
      ],
    });
    expect(response.body).toEqual({ inserted: 3, replayed: 0 });
    expect(await balanceOf(account_id)).toBe("0.8168");
    const stats = await harness.get(`/v1/accounts/${account_id}/stats?group_by=meter`);
    expectStatus(stats, 200);
    expect(stats.body.totals.spent).toBe("0.1832");
    expect(stats.body.by_meter).toEqual([
      { meter: null, amount: "0.1", count: 1 },
      { meter: image, amount: "0.08", count: 1 },
      { meter: gpt, amount: "0.0032", count: 1 },
    ]);
    expect((await harness.get(`/v1/accounts/${account_id}/stats`)).body.by_meter).toBeUndefined();
  });

  it("holds reserve max_tokens worth of output and capture the measured tokens, priced the same way", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5", output_tokens: "10" });
    const account_id = await fundedAccount("0.05");
    const held = await harness.post("/v1/holds", { account_id, meter, quantities: { input_tokens: 812, output_tokens: 4096 }, idempotency_key: uniqueId("hold") });
    expectStatus(held, 201);
    expect(held.body.amount).toBe("0.04299"); // 812 × 2.5e-6 + 4096 × 1e-5
    const refused = await harness.post("/v1/holds", { account_id, meter, quantities: { input_tokens: 812, output_tokens: 4096 }, idempotency_key: uniqueId("hold") });
    expectStatus(refused, 409);
    // Retrying the hold after a price change replays it at its original amount; other token counts are 409.
    expectStatus(await putPrice(meter, { unit_prices: { input_tokens: "5", output_tokens: "20" }, per: "1000000" }), 201);
    const retried = await harness.post("/v1/holds", { account_id, meter, quantities: { input_tokens: 812, output_tokens: 4096 }, idempotency_key: held.body.idempotency_key });
    expectStatus(retried, 200);
    expect(retried.body).toMatchObject({ id: held.body.id, amount: "0.04299" });
    expectStatus(await harness.post("/v1/holds", { account_id, meter, quantities: { input_tokens: 812, output_tokens: 4095 }, idempotency_key: held.body.idempotency_key }), 409);
    const capture = await harness.post(`/v1/holds/${held.body.id}/capture`, { meter, quantities: { input_tokens: 812, output_tokens: 117 } });
    expectStatus(capture, 201);
    // The capture is priced now, by version 2: 812 × 5e-6 + 117 × 2e-5.
    expect(capture.body.entry).toMatchObject({ amount: "0.0064", meter, price_version: 2, quantities: { input_tokens: 812, output_tokens: 117 } });
    expect(await balanceOf(account_id)).toBe("0.0436");
  });

  it("usage that costs exactly zero is 422 zero_cost_usage with nothing written; its estimate is 0", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5", cached_input_tokens: "0" });
    const account_id = await fundedAccount("1");
    const response = await harness.post("/v1/usage", { account_id, meter, quantities: { cached_input_tokens: 5000 }, idempotency_key: uniqueId("req") });
    expectStatus(response, 422);
    expect(response.body.code).toBe("zero_cost_usage");
    expect(await entryCount(account_id)).toBe(1);
    const estimate = await harness.post("/v1/prices/estimate", { meter, quantities: { cached_input_tokens: 5000 } });
    expect(estimate.body).toMatchObject({ amount: "0", price_version: 1 });
    // A free quantity next to a priced one costs only the priced one.
    const mixed = await harness.post("/v1/usage", { account_id, meter, quantities: { cached_input_tokens: 5000, input_tokens: 400 }, idempotency_key: uniqueId("req") });
    expect(mixed.body.amount).toBe("0.001");
  });
});

describe("history explains every charge", () => {
  it("entries show meter, quantities and price_version in history, the all-entries listing and one entry; batch items do not", async () => {
    const meter = await pricedMeter({ input_tokens: "2.5", output_tokens: "10" });
    const account_id = await fundedAccount("1");
    const tag = uniqueId("explain");
    const quantities = { input_tokens: 812, output_tokens: 117 };
    const first = await harness.post("/v1/usage", { account_id, meter, quantities, idempotency_key: uniqueId("req"), description: `${tag} one` });
    expectStatus(first, 201);
    const later = new Date(clock.now().getTime() + 3_600_000);
    expectStatus(await putPrice(meter, { unit_prices: { input_tokens: "5", output_tokens: "20" }, per: "1000000", valid_from: later.toISOString() }), 201);
    clock.advance(3_600_000);
    try {
      const second = await harness.post("/v1/usage", { account_id, meter, quantities, idempotency_key: uniqueId("req"), description: `${tag} two` });
      expectStatus(second, 201);
      const batch_id = crypto.randomUUID();
      // A batch is inserted in key order: these keys make the amount row the newer of the two.
      const batch_key = uniqueId("req");
      const batch = await harness.post("/v1/usage/batch", {
        entries: [
          { account_id, meter, quantities: { input_tokens: 1000 }, idempotency_key: `${batch_key}-1`, batch_id },
          { account_id, amount: "0.1", idempotency_key: `${batch_key}-2`, batch_id },
        ],
      });
      expect(batch.body).toEqual({ inserted: 2, replayed: 0 });

      const explained = (item: Record<string, unknown>) => [item.type, item.amount, item.meter, item.quantities, item.price_version, item.batch_count];
      const grouped = await harness.get(`/v1/accounts/${account_id}/entries`);
      expectStatus(grouped, 200);
      expect(grouped.body.items.map(explained)).toEqual([
        ["usage", "0.105", undefined, undefined, undefined, 2],
        ["usage", "0.0064", meter, { input_tokens: 812, output_tokens: 117 }, 2, 1],
        ["usage", "0.0032", meter, { input_tokens: 812, output_tokens: 117 }, 1, 1],
        ["purchase", "1", undefined, undefined, undefined, 1],
      ]);
      // A batch item stands for rows that may differ: it names no meter at all (not even null).
      expect(Object.keys(grouped.body.items[0])).not.toContain("meter");
      expect(Object.keys(grouped.body.items[3])).not.toContain("meter");
      expect(grouped.body.items.map((item: { balance_after: string }) => item.balance_after)).toEqual(["0.8854", "0.9904", "0.9968", "1"]);

      const ungrouped = await harness.get(`/v1/accounts/${account_id}/entries?group_batches=false`);
      expectStatus(ungrouped, 200);
      // 1000 input tokens at 5 per million under version 2.
      expect(ungrouped.body.items.map(explained)).toEqual([
        ["usage", "0.1", undefined, undefined, undefined, 1],
        ["usage", "0.005", meter, { input_tokens: 1000 }, 2, 1],
        ["usage", "0.0064", meter, { input_tokens: 812, output_tokens: 117 }, 2, 1],
        ["usage", "0.0032", meter, { input_tokens: 812, output_tokens: 117 }, 1, 1],
        ["purchase", "1", undefined, undefined, undefined, 1],
      ]);

      const all = await harness.get(`/v1/entries?search=${encodeURIComponent(tag)}`);
      expectStatus(all, 200);
      expect(all.body.items.map((item: Record<string, unknown>) => [item.description, item.amount, item.meter, item.quantities, item.price_version])).toEqual([
        [`${tag} two`, "0.0064", meter, { input_tokens: 812, output_tokens: 117 }, 2],
        [`${tag} one`, "0.0032", meter, { input_tokens: 812, output_tokens: 117 }, 1],
      ]);

      const one = await harness.get(`/v1/entries/${first.body.id}`);
      expectStatus(one, 200);
      expect(one.body).toMatchObject({ id: first.body.id, amount: "0.0032", meter, quantities: { input_tokens: 812, output_tokens: 117 }, price_version: 1, refunded_amount: "0" });
    } finally {
      clock.advance(-3_600_000);
    }
  });
});

describe("the price table", () => {
  it("lists meters with their current and scheduled versions, page by page", async () => {
    const prefix = uniqueId("list");
    const meters = [`${prefix}.a`, `${prefix}.b`, `${prefix}.c`];
    for (const meter of meters) expectStatus(await putPrice(meter, { unit_prices: { requests: "1" }, per: "1" }), 201);
    const later = new Date(clock.now().getTime() + 60_000).toISOString();
    expectStatus(await putPrice(meters[1]!, { unit_prices: { requests: "2" }, per: "1", valid_from: later }), 201);
    const seen: { meter: string; current: { version: number } | null; scheduled: { version: number }[] }[] = [];
    let cursor: string | null = null;
    do {
      const page: ApiResponse = await harness.get(`/v1/prices?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      expectStatus(page, 200);
      expect(page.body.prices.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.prices);
      cursor = page.body.next_cursor;
    } while (cursor !== null);
    const mine = seen.filter((entry) => entry.meter.startsWith(prefix));
    expect(mine.map((entry) => entry.meter)).toEqual(meters);
    expect(mine[1]).toMatchObject({ current: { version: 1 }, scheduled: [{ version: 2, valid_from: later }] });
    expectStatus(await harness.get(`/v1/prices/${uniqueId("missing")}`), 404);
    expectStatus(await harness.get("/v1/prices?cursor=forged"), 400);
  });

  it("a meter with a slash is one path segment when encoded (openai/gpt-4o-mini)", async () => {
    const meter = `openai/${uniqueId("gpt-4o-mini")}@2024`;
    const put = await putPrice(meter, { unit_prices: { input_tokens: "0.15", output_tokens: "0.6" }, per: "1000000" });
    expectStatus(put, 201);
    expect(put.body.meter).toBe(meter);
    const read = await harness.get(`/v1/prices/${encodeURIComponent(meter)}`);
    expectStatus(read, 200);
    expect(read.body.current).toMatchObject({ meter, version: 1 });
    const account_id = await fundedAccount("1");
    const usage = await harness.post("/v1/usage", { account_id, meter, quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key: uniqueId("req") });
    expect(usage.body).toMatchObject({ amount: "0.000192", meter });
  });

  it("concurrent PUTs of one meter get consecutive versions", async () => {
    const meter = uniqueId("race");
    const answers = await Promise.all(Array.from({ length: 8 }, (_, index) => putPrice(meter, { unit_prices: { requests: String(index + 1) }, per: "1" })));
    for (const answer of answers) expectStatus(answer, 201);
    expect(answers.map((answer) => answer.body.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("the table is append-only in the database itself", async () => {
    const meter = await pricedMeter({ requests: "1" }, "1");
    await expect(harness.database.query("UPDATE prices SET per = 1000 WHERE meter = $1", [meter])).rejects.toThrow(/append-only/);
    await expect(harness.database.query("DELETE FROM prices WHERE meter = $1", [meter])).rejects.toThrow(/append-only/);
  });

  it("security: writing needs admin; reading needs a service key; an end user sees no prices", async () => {
    const meter = await pricedMeter({ requests: "1" }, "1");
    const usage_key = await harness.serviceKey(["usage:write"]);
    expectStatus(await putPrice(meter, { unit_prices: { requests: "2" }, per: "1" }, usage_key), 403);
    expectStatus(await putPrice(meter, { unit_prices: { requests: "2" }, per: "1" }, null), 401);
    expectStatus(await harness.get(`/v1/prices/${meter}`, usage_key), 200);
    expectStatus(await harness.get(`/v1/prices/${meter}`, await harness.serviceKey(["balances:read"])), 200);
    expectStatus(await harness.get("/v1/prices", await harness.serviceKey(["metrics:read"])), 403);
    expectStatus(await harness.request("POST", "/v1/prices/estimate", { body: { meter, quantities: { requests: 1 } }, token: usage_key }), 200);
    const account_id = await harness.createAccount();
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(account_id)
      .setAudience(JWT_AUDIENCE)
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(JWT_SECRET));
    expectStatus(await harness.get("/v1/prices", token), 403);
    expectStatus(await harness.get(`/v1/prices/${meter}`, token), 403);
    expect(await versionCount(meter)).toBe(1);
  });
});
