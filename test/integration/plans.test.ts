import { SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { canonicalNumeric } from "../../src/ledger/core/amount.js";
import { createHarness, JWT_AUDIENCE, JWT_SECRET, TestClock, uniqueId } from "../support/harness.js";

// Time is the ledger's clock, moved by hand: no test waits for a period to pass.
const clock = new TestClock(new Date("2027-01-31T09:00:30.000Z"));
const harness = createHarness({ clock });
afterAll(() => harness.close());

async function createPlan(fields: Record<string, unknown> = {}): Promise<string> {
  const id = uniqueId("plan");
  const response = await harness.post("/v1/plans", { id, name: "Standard", credits: "2500", period: "month", ...fields });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return id;
}

async function subscribe(account: string, plan_id: string, anchor?: string) {
  const response = await harness.request("PUT", `/v1/accounts/${account}/subscription`, {
    body: { plan_id, ...(anchor === undefined ? {} : { anchor }) },
  });
  expect([200, 201], JSON.stringify(response.body)).toContain(response.status);
  return response.body;
}

async function run(account_ids: string[], dry_run = false) {
  const response = await harness.post("/v1/renewals/run", { account_ids, dry_run, limit: 1000 });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body;
}

interface GrantRow {
  id: string;
  amount: string;
  expires_at: string;
  metadata: { period_start: string; period_end: string; rollover: string; credits: string };
  priority: number;
}

async function grants(account: string): Promise<GrantRow[]> {
  const rows = await harness.database.query<GrantRow>(
    `SELECT id::text AS id, amount::text AS amount, expires_at, metadata, priority FROM entries
     WHERE account_id = $1 AND type = 'grant' ORDER BY seq`,
    [account],
  );
  return rows.map((row) => ({ ...row, amount: canonicalNumeric(row.amount), expires_at: new Date(row.expires_at).toISOString() }));
}

async function expirations(account: string): Promise<{ lot_id: string; amount: string }[]> {
  const rows = await harness.database.query<{ lot_id: string; amount: string }>(
    "SELECT lot_id::text AS lot_id, amount::text AS amount FROM entries WHERE account_id = $1 AND type = 'expiration' ORDER BY seq",
    [account],
  );
  return rows.map((row) => ({ lot_id: row.lot_id, amount: canonicalNumeric(row.amount) }));
}

async function usage(account: string, amount: string) {
  const response = await harness.post("/v1/usage", { account_id: account, amount, idempotency_key: uniqueId("usage") });
  expect(response.status).toBe(201);
}

async function balance(account: string): Promise<string> {
  return (await harness.get(`/v1/balances/${account}`)).body.balance;
}

async function userToken(account: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(account)
    .setAudience(JWT_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode(JWT_SECRET));
}

describe("1. monthly periods follow the calendar from the anchor", () => {
  it("a plan of 2,500 anchored Jan 31 grants on Jan 31, Feb 28 and Mar 31, each expiring at the next", async () => {
    clock.set(new Date("2027-01-31T09:00:30.000Z"));
    const plan = await createPlan();
    const account = await harness.createAccount();
    const subscription = await subscribe(account, plan, "2027-01-31T09:00:00Z");
    expect(subscription).toMatchObject({
      status: "active",
      current_period: { start: "2027-01-31T09:00:00.000Z", end: "2027-02-28T09:00:00.000Z" },
      next_renewal_at: "2027-01-31T09:00:00.000Z",
      eligibility: { eligible: true, reason: "due" },
    });
    for (const [now, start, end] of [
      ["2027-01-31T09:00:30.000Z", "2027-01-31T09:00:00.000Z", "2027-02-28T09:00:00.000Z"],
      ["2027-02-28T09:00:10.000Z", "2027-02-28T09:00:00.000Z", "2027-03-31T09:00:00.000Z"],
      ["2027-03-31T09:00:10.000Z", "2027-03-31T09:00:00.000Z", "2027-04-30T09:00:00.000Z"],
    ]) {
      clock.set(new Date(now!));
      const result = await run([account]);
      expect(result).toMatchObject({ processed: 1, granted: 1, skipped: 0, failed: 0 });
      expect(result.renewals[0]).toMatchObject({ period_start: start, period_end: end, amount: "2500", rollover: "0" });
      // A second run in the same period grants nothing: the row says it is granted (and is no longer due).
      expect(await run([account])).toMatchObject({ processed: 0, granted: 0 });
    }
    const written = await grants(account);
    expect(written.map((grant) => [grant.amount, grant.metadata.period_start, grant.expires_at, grant.priority])).toEqual([
      ["2500", "2027-01-31T09:00:00.000Z", "2027-02-28T09:00:00.000Z", 10],
      ["2500", "2027-02-28T09:00:00.000Z", "2027-03-31T09:00:00.000Z", 10],
      ["2500", "2027-03-31T09:00:00.000Z", "2027-04-30T09:00:00.000Z", 10],
    ]);
    // Each period's lot expired, unconsumed, as the next began (the read cuts, as the sweep would); the balance is
    // the current period's grant only.
    expect(await balance(account)).toBe("2500");
    expect(await expirations(account)).toEqual([
      { lot_id: written[0]!.id, amount: "2500" },
      { lot_id: written[1]!.id, amount: "2500" },
    ]);
    const after = (await harness.get(`/v1/accounts/${account}/subscription`)).body;
    expect(after).toMatchObject({
      next_renewal_at: "2027-04-30T09:00:00.000Z",
      eligibility: { eligible: false, reason: "already_granted" },
      last_grant: { entry_id: written[2]!.id, period_start: "2027-03-31T09:00:00.000Z", period_end: "2027-04-30T09:00:00.000Z" },
    });
    // Renewals are ordinary grants: in the account's history and its stats.
    const history = await harness.get(`/v1/accounts/${account}/entries?type=grant`);
    expect(history.status).toBe(200);
    expect(JSON.stringify(history.body)).toContain(written[2]!.id);
  });

  it("an anchor three periods in the past grants the current period only, at once", async () => {
    clock.set(new Date("2027-05-20T12:00:00.000Z"));
    const plan = await createPlan({ period: 30, credits: "100" });
    const account = await harness.createAccount();
    const subscription = await subscribe(account, plan, "2027-01-20T12:00:00Z");
    // Jan 20 + 4 × 30 days = May 20: the current period starts now-ish, after four missed ones.
    expect(subscription.current_period).toEqual({ start: "2027-05-20T12:00:00.000Z", end: "2027-06-19T12:00:00.000Z" });
    expect(await run([account])).toMatchObject({ granted: 1 });
    expect((await grants(account)).map((grant) => [grant.amount, grant.expires_at])).toEqual([["100", "2027-06-19T12:00:00.000Z"]]);
  });
});

describe("3. rollover", () => {
  it("max 500: 800 unconsumed carries 500 and 300 leaves; then 200 unconsumed carries 200", async () => {
    clock.set(new Date("2027-06-01T00:00:01.000Z"));
    const plan = await createPlan({ rollover: "500" });
    const account = await harness.createAccount();
    await subscribe(account, plan, "2027-06-01T00:00:00Z");
    expect(await run([account])).toMatchObject({ granted: 1 });
    await usage(account, "1700");
    expect(await balance(account)).toBe("800");

    clock.set(new Date("2027-07-01T00:00:05.000Z"));
    const second = await run([account]);
    expect(second.renewals[0]).toMatchObject({ credits: "2500", rollover: "500", amount: "3000" });
    let written = await grants(account);
    // The old lot ends as any lot does (its expiration records the 800 it had left), and 500 of it comes back
    // inside the new grant: 300 left the account.
    expect(await expirations(account)).toEqual([{ lot_id: written[0]!.id, amount: "800" }]);
    expect(written[1]).toMatchObject({ amount: "3000", expires_at: "2027-08-01T00:00:00.000Z" });
    expect(await balance(account)).toBe("3000");

    await usage(account, "2800");
    clock.set(new Date("2027-08-01T00:00:05.000Z"));
    const third = await run([account]);
    expect(third.renewals[0]).toMatchObject({ rollover: "200", amount: "2700" });
    written = await grants(account);
    expect((await expirations(account))[1]).toEqual({ lot_id: written[1]!.id, amount: "200" });
    expect(await balance(account)).toBe("2700");
  });

  it("nothing carries across a gap: after downtime the current period gets the plan's credits only", async () => {
    clock.set(new Date("2027-06-01T00:00:01.000Z"));
    const plan = await createPlan({ rollover: "500" });
    const account = await harness.createAccount();
    await subscribe(account, plan, "2027-06-01T00:00:00Z");
    await run([account]);
    clock.set(new Date("2027-09-15T00:00:00.000Z"));
    expect((await run([account])).renewals[0]).toMatchObject({ period_start: "2027-09-01T00:00:00.000Z", rollover: "0", amount: "2500" });
  });
});

describe("4. dry run", () => {
  it("lists what would be granted, writes nothing, and the real run grants exactly that", async () => {
    clock.set(new Date("2027-06-01T00:00:01.000Z"));
    const plan = await createPlan({ rollover: "1000", credits: "2000", period: 30 });
    const accounts = [await harness.createAccount(), await harness.createAccount(), await harness.createAccount()];
    for (const account of accounts) await subscribe(account, plan, "2027-06-01T00:00:00Z");
    await run([accounts[0]!]);
    await usage(accounts[0]!, "1250");
    clock.set(new Date("2027-07-01T00:00:02.000Z"));
    const count = async () =>
      (await harness.database.query<{ rows: string }>("SELECT count(*)::text AS rows FROM entries WHERE account_id = ANY($1::text[])", [accounts]))[0]!.rows;
    const subscriptionRows = () =>
      harness.database.query("SELECT * FROM plan_subscriptions WHERE account_id = ANY($1::text[]) ORDER BY account_id", [accounts]);
    const entriesBefore = await count();
    const rowsBefore = await subscriptionRows();

    const preview = await run(accounts, true);
    expect(preview).toMatchObject({ dry_run: true, processed: 3, granted: 3, failed: 0 });
    expect(preview.renewals.every((renewal: { entry_id: string | null }) => renewal.entry_id === null)).toBe(true);
    const first = preview.renewals.find((renewal: { account_id: string }) => renewal.account_id === accounts[0]);
    expect(first).toMatchObject({ rollover: "750", amount: "2750", period_start: "2027-07-01T00:00:00.000Z" });
    expect(await count()).toBe(entriesBefore);
    expect(await subscriptionRows()).toEqual(rowsBefore);

    const real = await run(accounts);
    expect(real).toMatchObject({ dry_run: false, processed: 3, granted: 3, failed: 0, errors: [] });
    const strip = (renewals: { entry_id: string | null }[]) => renewals.map(({ entry_id: _entry_id, ...rest }) => rest);
    expect(strip(real.renewals)).toEqual(strip(preview.renewals));
    for (const renewal of real.renewals) {
      const [written] = (await grants(renewal.account_id)).filter((grant) => grant.id === renewal.entry_id);
      expect(written).toMatchObject({ amount: renewal.amount, expires_at: renewal.period_end });
    }
  });
});

describe("5. cancel and re-subscribe", () => {
  it("a canceled subscription gets no further grant; re-subscribing never grants the same period twice", async () => {
    clock.set(new Date("2027-06-01T00:00:01.000Z"));
    const plan = await createPlan();
    const other = await createPlan({ credits: "9000" });
    const account = await harness.createAccount();
    await subscribe(account, plan, "2027-06-01T00:00:00Z");
    await run([account]);

    clock.set(new Date("2027-06-10T00:00:00.000Z"));
    const canceled = await harness.request("DELETE", `/v1/accounts/${account}/subscription`);
    expect(canceled.status).toBe(200);
    expect(canceled.body).toMatchObject({ status: "canceled", next_renewal_at: null, eligibility: { eligible: false, reason: "canceled" } });
    // The current lot keeps its expiry.
    const [lot] = (await harness.get(`/v1/accounts/${account}/lots`)).body.lots;
    expect(lot).toMatchObject({ status: "open", remaining: "2500", expires_at: "2027-07-01T00:00:00.000Z" });

    // Re-subscribing mid-period, to the same plan or another, with the old anchor or a new one: nothing more this period.
    for (const [plan_id, anchor] of [[other, "2027-06-10T00:00:00Z"], [plan, "2027-06-01T00:00:00Z"], [other, undefined]] as const) {
      await harness.request("DELETE", `/v1/accounts/${account}/subscription`);
      const again = await subscribe(account, plan_id, anchor);
      expect(again.eligibility.eligible).toBe(false);
      expect(await run([account])).toMatchObject({ granted: 0 });
    }
    expect(await grants(account)).toHaveLength(1);

    // Canceled through the next period: no grant at all.
    await harness.request("DELETE", `/v1/accounts/${account}/subscription`);
    clock.set(new Date("2027-07-01T00:00:05.000Z"));
    expect(await run([account])).toMatchObject({ processed: 0, granted: 0 });
    clock.set(new Date("2027-07-20T00:00:05.000Z"));
    expect(await run([account])).toMatchObject({ granted: 0 });
    expect(await grants(account)).toHaveLength(1);
    expect(await balance(account)).toBe("0");

    // Re-subscribed later, with the old anchor: the current period (Jul 1 to Aug 1) was never granted, so it is due.
    const back = await subscribe(account, plan);
    expect(back).toMatchObject({ anchor: "2027-06-01T00:00:00.000Z", eligibility: { eligible: true } });
    expect((await run([account])).renewals[0]).toMatchObject({ period_start: "2027-07-01T00:00:00.000Z", amount: "2500" });
  });

  it("a plan change takes effect at the next renewal; an archived plan renews but takes no new subscriptions", async () => {
    clock.set(new Date("2027-06-01T00:00:01.000Z"));
    const plan = await createPlan();
    const bigger = await createPlan({ credits: "6000" });
    const account = await harness.createAccount();
    await subscribe(account, plan, "2027-06-01T00:00:00Z");
    await run([account]);
    const changed = await harness.request("PUT", `/v1/accounts/${account}/subscription`, { body: { plan_id: bigger } });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ plan_id: bigger, eligibility: { eligible: false, reason: "already_granted" } });
    expect(await run([account])).toMatchObject({ granted: 0 });

    const archived = await harness.request("PATCH", `/v1/plans/${bigger}`, { body: { archived: true } });
    expect(archived.body).toMatchObject({ archived: true });
    const newcomer = await harness.createAccount();
    const refused = await harness.request("PUT", `/v1/accounts/${newcomer}/subscription`, { body: { plan_id: bigger } });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe("plan_archived");

    clock.set(new Date("2027-07-01T00:00:05.000Z"));
    expect((await run([account])).renewals[0]).toMatchObject({ plan_id: bigger, amount: "6000" });
    // A plan change rewrites no past grant.
    await harness.request("PATCH", `/v1/plans/${bigger}`, { body: { credits: "7000" } });
    expect((await grants(account)).map((grant) => grant.amount)).toEqual(["2500", "6000"]);
  });
});

describe("7. bad input", () => {
  it("unknown plans are 404; bad periods, credits and rollovers are 400; nothing is written", async () => {
    const account = await harness.createAccount();
    const unknown = await harness.request("PUT", `/v1/accounts/${account}/subscription`, { body: { plan_id: "no_such_plan" } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe("plan_not_found");
    expect((await harness.get(`/v1/accounts/${account}/subscription`)).body.code).toBe("subscription_not_found");
    expect((await harness.post("/v1/renewals/run", { plan_id: "no_such_plan", dry_run: true })).status).toBe(404);
    expect((await harness.get("/v1/plans/no_such_plan")).status).toBe(404);

    const base = { name: "Bad", credits: "100", period: "month" };
    for (const [fields, field] of [
      [{ period: 0 }, "period"],
      [{ period: 367 }, "period"],
      [{ period: "year" }, "period"],
      [{ credits: "-5" }, "credits"],
      [{ credits: "0" }, "credits"],
      [{ rollover: "101" }, "rollover"],
      [{ credits: "1000000000000000", rollover: "1" }, "rollover"],
      [{ priority: 101 }, "priority"],
      [{ id: "has space" }, "id"],
    ] as const) {
      const id = uniqueId("bad_plan");
      const response = await harness.post("/v1/plans", { id, ...base, ...fields });
      expect(response.status, JSON.stringify(fields)).toBe(400);
      expect(response.body.code).toBe("validation_failed");
      expect(response.body.errors.map((error: { field: string }) => error.field), JSON.stringify(fields)).toContain(field);
      expect((await harness.get(`/v1/plans/${id}`)).status).toBe(404);
    }

    const plan = await createPlan({ credits: "100", rollover: "50" });
    // Lowering credits below the stored rollover is refused too, and changes nothing.
    const lowered = await harness.request("PATCH", `/v1/plans/${plan}`, { body: { credits: "40" } });
    expect(lowered.status).toBe(400);
    expect(lowered.body.errors[0].field).toBe("rollover");
    expect((await harness.get(`/v1/plans/${plan}`)).body).toMatchObject({ credits: "100", rollover: "50" });
    expect((await harness.post("/v1/plans", { id: plan, ...base })).status).toBe(409);

    expect((await harness.request("PUT", `/v1/accounts/${account}/subscription`, { body: { plan_id: plan, anchor: "yesterday" } })).status).toBe(400);
    expect((await harness.request("PUT", `/v1/accounts/no_such_account/subscription`, { body: { plan_id: plan } })).status).toBe(404);
    expect((await harness.post("/v1/renewals/run", { dry_run: true, limit: 0 })).status).toBe(400);
    expect((await harness.post("/v1/renewals/run", { limit: 5 })).status).toBe(400);
    const rows = await harness.database.query("SELECT 1 FROM plan_subscriptions WHERE account_id = $1", [account]);
    expect(rows).toHaveLength(0);
  });
});

describe("scopes", () => {
  it("plans and renewals are admin-only; an end user reads their own subscription and no other", async () => {
    clock.set(new Date("2027-06-01T00:00:01.000Z"));
    const plan = await createPlan();
    const account = await harness.createAccount();
    const stranger = await harness.createAccount();
    await subscribe(account, plan);
    await subscribe(stranger, plan);
    const user = await userToken(account);
    expect((await harness.get(`/v1/accounts/${account}/subscription`, user)).body).toMatchObject({ account_id: account, plan_id: plan });
    expect((await harness.get(`/v1/accounts/${stranger}/subscription`, user)).status).toBe(403);
    expect((await harness.request("PUT", `/v1/accounts/${account}/subscription`, { body: { plan_id: plan }, token: user })).status).toBe(403);
    expect((await harness.request("DELETE", `/v1/accounts/${account}/subscription`, { token: user })).status).toBe(403);
    expect((await harness.post("/v1/renewals/run", { dry_run: true }, user)).status).toBe(403);
    const reader = await harness.serviceKey(["balances:read", "credits:write"]);
    expect((await harness.get(`/v1/accounts/${account}/subscription`, reader)).status).toBe(403);
    expect((await harness.get("/v1/plans", reader)).status).toBe(403);
    expect((await harness.post("/v1/plans", { id: uniqueId("plan"), name: "x", credits: "1", period: "day" }, reader)).status).toBe(403);
    expect((await harness.get("/v1/plans", null)).status).toBe(401);
    const admin = await harness.serviceKey(["admin"]);
    expect((await harness.get(`/v1/plans/${plan}`, admin)).status).toBe(200);
  });

  it("lists plans in pages with a signed cursor", async () => {
    await createPlan();
    await createPlan();
    const first = await harness.get("/v1/plans?limit=1");
    expect(first.body.plans).toHaveLength(1);
    const second = await harness.get(`/v1/plans?limit=1&cursor=${encodeURIComponent(first.body.next_cursor)}`);
    expect(second.body.plans[0].id > first.body.plans[0].id).toBe(true);
    expect((await harness.get(`/v1/plans?cursor=${first.body.next_cursor.slice(0, -2)}xx`)).body.code).toBe("invalid_cursor");
  });
});
