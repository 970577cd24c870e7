/**
 * Prices on the embedded store (PGlite), which the README's first command uses: the price table, its append-only
 * triggers, the cache's version check, and priced single, batched and held usage run there on its single connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestClock } from "../support/harness.js";
import { embeddedApp, openEmbeddedStore, type EmbeddedResponse } from "../support/embedded-app.js";

const clock = new TestClock(new Date("2026-12-01T12:00:00.000Z"));
let store: Awaited<ReturnType<typeof openEmbeddedStore>>;
let call: (method: string, url: string, body?: unknown) => Promise<EmbeddedResponse>;

beforeAll(async () => {
  store = await openEmbeddedStore("tally-prices-embedded");
  call = embeddedApp(store.database, { clock }).call;
});

afterAll(async () => {
  await store?.close();
});

describe("prices on the embedded store", () => {
  it("prices usage, batches, checks and holds exactly, by the version in force", async () => {
    const account_id = "org_prices_embedded";
    expect((await call("POST", "/v1/accounts", { id: account_id })).status).toBe(201);
    expect((await call("POST", "/v1/credits", { account_id, type: "purchase", amount: "1", idempotency_key: "p" })).status).toBe(201);
    const put = await call("PUT", "/v1/prices/gpt-x", { unit_prices: { input_tokens: "2.5", output_tokens: "10" }, per: "1000000" });
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({ meter: "gpt-x", version: 1, per: "1000000" });

    const usage = await call("POST", "/v1/usage", { account_id, meter: "gpt-x", quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key: "u1" });
    expect(usage.status).toBe(201);
    expect(usage.body).toMatchObject({ amount: "0.0032", meter: "gpt-x", price_version: 1 });

    const later = new Date(clock.now().getTime() + 3_600_000).toISOString();
    expect((await call("PUT", "/v1/prices/gpt-x", { unit_prices: { input_tokens: "5", output_tokens: "20" }, per: "1000000", valid_from: later })).status).toBe(201);
    const batch = await call("POST", "/v1/usage/batch", {
      entries: [
        { account_id, meter: "gpt-x", quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key: "b1" },
        { account_id, amount: "0.1", idempotency_key: "b2" },
      ],
    });
    expect(batch.body).toEqual({ inserted: 2, replayed: 0 });
    clock.advance(3_600_000);
    const after = await call("POST", "/v1/usage", { account_id, meter: "gpt-x", quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key: "u2" });
    expect(after.body).toMatchObject({ amount: "0.0064", price_version: 2 });
    // A replay after the change is the original entry at its original price.
    const replay = await call("POST", "/v1/usage", { account_id, meter: "gpt-x", quantities: { input_tokens: 812, output_tokens: 117 }, idempotency_key: "u1" });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ id: usage.body.id, amount: "0.0032", price_version: 1 });

    const unknown = await call("POST", "/v1/usage/batch", {
      entries: [
        { account_id, meter: "gpt-x", quantities: { input_tokens: 1 }, idempotency_key: "b3" },
        { account_id, meter: "gpt-y", quantities: { input_tokens: 1 }, idempotency_key: "b4" },
      ],
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.code).toBe("price_not_found");

    const balance = await call("GET", `/v1/balances/${account_id}`);
    expect(balance.body.balance).toBe("0.8872"); // 1 − 0.0032 − 0.0032 − 0.1 − 0.0064
    const check = await call("POST", "/v1/balances/check", { account_id, meter: "gpt-x", quantities: { output_tokens: 50_000 } });
    expect(check.body).toMatchObject({ amount: "1", sufficient: false, deficit: "0.1128", price_version: 2 });
    const hold = await call("POST", "/v1/holds", { account_id, meter: "gpt-x", quantities: { output_tokens: 4096 }, idempotency_key: "h1" });
    expect(hold.status).toBe(201);
    expect(hold.body.amount).toBe("0.08192");

    const stats = await call("GET", `/v1/accounts/${account_id}/stats?group_by=meter&from=2026-11-30T00:00:00Z&to=2030-01-01T00:00:00Z&interval=month`);
    expect(stats.status).toBe(200);
    expect(stats.body.by_meter).toEqual([
      { meter: null, amount: "0.1", count: 1 },
      { meter: "gpt-x", amount: "0.0128", count: 3 },
    ]);
    const listing = await call("GET", "/v1/prices/gpt-x");
    expect(listing.body.versions.map((version: { version: number }) => version.version)).toEqual([2, 1]);
    expect(listing.body.current.version).toBe(2);
  });
});
