import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLots } from "../../src/ledger/lots/audit.js";
import { sweepExpiredLots } from "../../src/ledger/lots/sweep.js";
import { embeddedApp, openEmbeddedStore } from "../support/embedded-app.js";
import { TestClock } from "../support/harness.js";

const HOUR_MS = 3_600_000;
let store: Awaited<ReturnType<typeof openEmbeddedStore>>;

beforeAll(async () => {
  store = await openEmbeddedStore("tally-lots-embedded");
});

afterAll(async () => {
  await store?.close();
});

describe("credit lots on the embedded store", () => {
  it("orders consumption, expires on read and by sweep, voids, lists and audits", async () => {
    const clock = new TestClock();
    const { ledger, call } = embeddedApp(store.database, { clock });
    const inOneHour = new Date(clock.now().getTime() + HOUR_MS).toISOString();
    expect((await call("POST", "/v1/accounts", { id: "org_lots" })).status).toBe(201);
    const plan = await call("POST", "/v1/credits", { account_id: "org_lots", type: "grant", amount: "100", idempotency_key: "plan", priority: 10, expires_at: inOneHour });
    expect(plan.status).toBe(201);
    expect(plan.body).toMatchObject({ priority: 10, expires_at: inOneHour });
    const purchase = await call("POST", "/v1/credits", { account_id: "org_lots", type: "purchase", amount: "50", idempotency_key: "buy" });
    const bonus = await call("POST", "/v1/credits", { account_id: "org_lots", type: "bonus", amount: "5", idempotency_key: "bonus", expires_at: inOneHour });
    expect((await call("POST", "/v1/usage", { account_id: "org_lots", amount: "30", idempotency_key: "u1" })).status).toBe(201);
    const balance = await call("GET", "/v1/balances/org_lots");
    expect(balance.body).toEqual({ account_id: "org_lots", balance: "125", available: "125", expiring_next: { expires_at: inOneHour, amount: "75" } });
    const open = await call("GET", "/v1/accounts/org_lots/lots");
    expect(open.body.lots.map((lot: { entry_id: string; remaining: string }) => [lot.entry_id, lot.remaining])).toEqual([
      [plan.body.id, "70"],
      [bonus.body.id, "5"],
      [purchase.body.id, "50"],
    ]);
    expect((await call("POST", `/v1/credits/${bonus.body.id}/expire`)).body).toMatchObject({ status: "expired", expired_amount: "5" });
    clock.advance(HOUR_MS + 1);
    expect((await call("GET", "/v1/balances/org_lots")).body).toEqual({ account_id: "org_lots", balance: "50", available: "50", expiring_next: null });
    expect((await sweepExpiredLots(ledger)).lots_expired).toBe(0);
    const audit = await auditLots(ledger, "org_lots");
    expect(audit).toMatchObject({ agrees: true, expirations_checked: 2 });
  });
});
