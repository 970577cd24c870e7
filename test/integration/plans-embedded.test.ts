import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renewDueSubscriptions } from "../../src/ledger/plans/scheduler.js";
import { embeddedApp, openEmbeddedStore } from "../support/embedded-app.js";
import { TestClock } from "../support/harness.js";

let store: Awaited<ReturnType<typeof openEmbeddedStore>>;

beforeAll(async () => {
  store = await openEmbeddedStore("tally-plans-embedded");
});

afterAll(async () => {
  await store?.close();
});

describe("plans and renewals on the embedded store", () => {
  it("subscribes, previews, renews by scheduler and by run, rolls over, and cancels", async () => {
    const clock = new TestClock(new Date("2027-01-31T00:00:10.000Z"));
    const { ledger, call } = embeddedApp(store.database, { clock });
    expect((await call("POST", "/v1/accounts", { id: "org_gift" })).status).toBe(201);
    const plan = await call("POST", "/v1/plans", { id: "gift", name: "Gift", credits: "100", period: "month", rollover: "40" });
    expect(plan.status).toBe(201);
    expect(plan.body).toMatchObject({ period: "month", rollover: "40", priority: 10, archived: false });
    const subscribed = await call("PUT", "/v1/accounts/org_gift/subscription", { plan_id: "gift", anchor: "2027-01-31T00:00:00Z" });
    expect(subscribed.status).toBe(201);

    const preview = await call("POST", "/v1/renewals/run", { dry_run: true });
    expect(preview.body).toMatchObject({ granted: 1, renewals: [{ account_id: "org_gift", amount: "100", entry_id: null }] });
    // The scheduler's claim (FOR UPDATE SKIP LOCKED) and renewal run on PGlite as on PostgreSQL.
    expect(await renewDueSubscriptions(ledger)).toMatchObject({ claimed: 1, granted: 1, failed: 0 });
    expect(await renewDueSubscriptions(ledger)).toMatchObject({ claimed: 0 });
    expect((await call("POST", "/v1/usage", { account_id: "org_gift", amount: "30", idempotency_key: "u1" })).status).toBe(201);

    clock.set(new Date("2027-02-28T00:00:05.000Z"));
    const renewed = await call("POST", "/v1/renewals/run", { dry_run: false });
    expect(renewed.body).toMatchObject({ processed: 1, granted: 1, renewals: [{ rollover: "40", amount: "140", period_end: "2027-03-31T00:00:00.000Z" }] });
    expect((await call("GET", "/v1/balances/org_gift")).body).toMatchObject({ balance: "140" });
    expect((await call("DELETE", "/v1/accounts/org_gift/subscription")).body).toMatchObject({ status: "canceled" });
    clock.set(new Date("2027-03-31T00:00:05.000Z"));
    expect((await call("POST", "/v1/renewals/run", { dry_run: false })).body).toMatchObject({ processed: 0, granted: 0 });
  });
});
