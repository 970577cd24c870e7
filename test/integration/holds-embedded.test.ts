/**
 * Holds on the embedded store (PGlite), which the README's first command uses: the same SQL, migrations, advisory
 * locks and conditional updates must run there, on its single connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedApp, openEmbeddedStore, type EmbeddedResponse } from "../support/embedded-app.js";

const clock = { current: new Date("2026-12-01T12:00:00.000Z") };
let store: Awaited<ReturnType<typeof openEmbeddedStore>>;
let call: (method: string, url: string, body?: unknown) => Promise<EmbeddedResponse>;

beforeAll(async () => {
  store = await openEmbeddedStore("tally-holds-embedded");
  call = embeddedApp(store.database, { now: () => clock.current }).call;
});

afterAll(async () => {
  await store?.close();
});

describe("holds on the embedded store", () => {
  it("grants, refuses, captures, releases, expires and reports available", async () => {
    const account_id = "org_holds_embedded";
    expect((await call("POST", "/v1/accounts", { id: account_id })).status).toBe(201);
    expect((await call("POST", "/v1/credits", { account_id, type: "purchase", amount: "10", idempotency_key: "p" })).status).toBe(201);
    const grants = await Promise.all(
      Array.from({ length: 12 }, (_, index) => call("POST", "/v1/holds", { account_id, amount: "1", idempotency_key: `h${index}` })),
    );
    expect(grants.filter((grant) => grant.status === 201)).toHaveLength(10);
    expect(grants.filter((grant) => grant.status === 409)).toHaveLength(2);
    expect((await call("GET", `/v1/balances/${account_id}`)).body).toEqual({ account_id, balance: "10", available: "0", expiring_next: null });

    const granted = grants.filter((grant) => grant.status === 201).map((grant) => grant.body.id as string);
    const capture = await call("POST", `/v1/holds/${granted[0]}/capture`, { amount: "3" });
    expect(capture.status).toBe(201);
    expect(capture.body.entry).toMatchObject({ amount: "3", hold_id: granted[0] });
    expect((await call("POST", `/v1/holds/${granted[0]}/capture`, { amount: "3" })).status).toBe(200);
    expect((await call("POST", `/v1/holds/${granted[1]}/release`)).status).toBe(200);
    expect((await call("POST", `/v1/holds/${granted[1]}/release`)).headers.get("idempotent-replayed")).toBe("true");
    // 8 holds of 1 left on a balance of 7.
    expect((await call("GET", `/v1/balances/${account_id}`)).body).toEqual({ account_id, balance: "7", available: "-1", expiring_next: null });
    clock.current = new Date(clock.current.getTime() + 600_000);
    expect((await call("GET", `/v1/balances/${account_id}`)).body).toEqual({ account_id, balance: "7", available: "7", expiring_next: null });
    const expired = await call("GET", `/v1/accounts/${account_id}/holds?status=expired`);
    expect(expired.body.holds).toHaveLength(8);
    const check = await call("POST", "/v1/balances/check", { account_id, amount: "8" });
    expect(check.body).toMatchObject({ available: "7", sufficient: false, deficit: "1" });
  });
});
