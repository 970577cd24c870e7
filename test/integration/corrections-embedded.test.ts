/**
 * The corrections on the embedded store (PGlite): the same SQL, advisory locks and migrations, one connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedApp, openEmbeddedStore, type EmbeddedResponse } from "../support/embedded-app.js";

let store: Awaited<ReturnType<typeof openEmbeddedStore>>;
let call: (method: string, url: string, body?: unknown) => Promise<EmbeddedResponse>;

beforeAll(async () => {
  store = await openEmbeddedStore("tally-corrections");
  call = embeddedApp(store.database).call;
});

afterAll(async () => {
  await store?.close();
});

const balanceOf = async (id: string) => (await call("GET", `/v1/balances/${id}`)).body.balance;

describe("corrections on the embedded store", () => {
  it("refunds never exceed the original, even when sent all at once", async () => {
    expect((await call("POST", "/v1/accounts", { id: "org_refunds" })).status).toBe(201);
    const usage = await call("POST", "/v1/usage", { account_id: "org_refunds", amount: "10", idempotency_key: "u1" });
    expect(usage.status).toBe(201);
    const refunds = await Promise.all(
      Array.from({ length: 12 }, (_, index) => call("POST", `/v1/entries/${usage.body.id}/refund`, { amount: "1", idempotency_key: `r${index}` })),
    );
    expect(refunds.filter((response) => response.status === 201)).toHaveLength(10);
    expect(refunds.filter((response) => response.body.code === "exceeds_original")).toHaveLength(2);
    expect(await balanceOf("org_refunds")).toBe("0");
    expect((await call("GET", `/v1/entries/${usage.body.id}`)).body.refunded_amount).toBe("10");
  });

  it("transfers write both legs and adjustments reach their target", async () => {
    await call("POST", "/v1/accounts", { id: "org_from" });
    await call("POST", "/v1/accounts", { id: "org_to" });
    await call("POST", "/v1/credits", { account_id: "org_from", type: "purchase", amount: "50", idempotency_key: "p1" });
    const transfer = await call("POST", "/v1/transfers", { from_account_id: "org_from", to_account_id: "org_to", amount: "30", idempotency_key: "t1" });
    expect(transfer.status).toBe(201);
    expect(transfer.body.transfer_in.counterpart_entry_id).toBe(transfer.body.transfer_out.id);
    const refused = await call("POST", "/v1/transfers", { from_account_id: "org_from", to_account_id: "org_to", amount: "60", idempotency_key: "t2" });
    expect(refused.body.code).toBe("insufficient_balance");
    expect(await balanceOf("org_from")).toBe("20");
    expect(await balanceOf("org_to")).toBe("30");
    const adjustment = await call("POST", "/v1/accounts/org_to/adjustments", { target_balance: "12.5", reason: "fix", idempotency_key: "a1" });
    expect(adjustment.status).toBe(201);
    expect(adjustment.body).toMatchObject({ type: "adjustment", delta: "-17.5", balance_before: "30" });
    expect(await balanceOf("org_to")).toBe("12.5");
    const reversal = await call("POST", `/v1/entries/${transfer.body.transfer_in.id}/refund`, { idempotency_key: "x" });
    expect(reversal.body.code).toBe("entry_not_refundable");
  });
});
