import { afterAll, describe, expect, it } from "vitest";
import { createHarness, uniqueId } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

describe("posting and reading a balance", () => {
  it("credits, usage and a batch add up exactly", async () => {
    const account = await harness.createAccount();
    expect((await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "10.5", idempotency_key: "p1" })).status).toBe(201);
    expect((await harness.post("/v1/usage", { account_id: account, amount: "0.000000405", idempotency_key: "u1" })).status).toBe(201);
    const batch = await harness.post("/v1/usage/batch", {
      entries: [
        { account_id: account, amount: "1", idempotency_key: "b1" },
        { account_id: account, amount: "2.000000001", idempotency_key: "b2" },
      ],
    });
    expect(batch.body).toEqual({ inserted: 2, replayed: 0 });
    const balance = await harness.get(`/v1/balances/${account}`);
    expect(balance.body).toEqual({ account_id: account, balance: "7.499999594", available: "7.499999594", expiring_next: null });
  });

  it("posting to an unknown account is 404 account_not_found", async () => {
    const response = await harness.post("/v1/usage", { account_id: uniqueId(), amount: "1", idempotency_key: "k" });
    expect(response.status).toBe(404);
    expect(response.body.code).toBe("account_not_found");
  });
});
