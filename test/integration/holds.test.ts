/**
 * Holds against real PostgreSQL: grants serialized per account that never reserve more than the balance, captures
 * and releases that are idempotent under concurrent calls, expiry by the (injected) clock with nothing written,
 * `available` on every balance answer, and the crossing guarantee for grants refused at or below zero.
 */
import { SignJWT } from "jose";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatNanos } from "../../src/ledger/core/amount.js";
import { pruneHolds } from "../../src/ledger/holds/retention.js";
import { createHarness, JWT_AUDIENCE, JWT_SECRET, uniqueId, type ApiResponse, type Harness } from "../support/harness.js";

/** The ledger's clock: tests move it instead of sleeping. */
const clock = { current: new Date("2026-12-01T10:00:00.000Z") };
function advance(milliseconds: number): void {
  clock.current = new Date(clock.current.getTime() + milliseconds);
}

let harness: Harness;
beforeAll(() => {
  harness = createHarness({ now: () => clock.current });
});
afterAll(async () => {
  await harness.close();
});

function expectStatus(response: ApiResponse, status: number): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
}

async function fundedAccount(amount: string): Promise<string> {
  const account_id = await harness.createAccount();
  if (amount !== "0") {
    expectStatus(
      await harness.post("/v1/credits", { account_id, type: "purchase", amount, idempotency_key: uniqueId("buy") }),
      201,
    );
  }
  return account_id;
}

async function hold(account_id: string, amount: string, extra: Record<string, unknown> = {}): Promise<ApiResponse> {
  return harness.post("/v1/holds", { account_id, amount, idempotency_key: uniqueId("hold"), ...extra });
}

async function balanceOf(account_id: string): Promise<{ balance: string; available: string }> {
  const response = await harness.get(`/v1/balances/${account_id}`);
  expectStatus(response, 200);
  return { balance: response.body.balance, available: response.body.available };
}

async function usageRowsOf(hold_id: string): Promise<{ amount: string; type: string }[]> {
  return harness.database.query<{ amount: string; type: string }>(
    "SELECT amount::text AS amount, type FROM entries WHERE hold_id = $1::uuid",
    [hold_id],
  );
}

describe("granting holds", () => {
  it("1. balance 10, 40 concurrent holds of 1: exactly 10 granted, 30 refused, available 0, balance still 10", async () => {
    const account_id = await fundedAccount("10");
    const responses = await Promise.all(Array.from({ length: 40 }, () => hold(account_id, "1")));
    const granted = responses.filter((response) => response.status === 201);
    const refused = responses.filter((response) => response.status === 409);
    expect(granted).toHaveLength(10);
    expect(refused).toHaveLength(30);
    for (const response of refused) {
      expect(response.body.code).toBe("insufficient_balance");
      expect(response.body.available).toBe("0");
      expect(response.body.deficit).toBe("1");
    }
    expect(await balanceOf(account_id)).toEqual({ balance: "10", available: "0" });
    const active = await harness.get(`/v1/accounts/${account_id}/holds?status=active`);
    expect(active.body.holds).toHaveLength(10);
    // Nothing was written for the refusals.
    const [count] = await harness.database.query<{ n: string }>("SELECT COUNT(*)::text AS n FROM holds WHERE account_id = $1", [account_id]);
    expect(count!.n).toBe("10");
  });

  it("answers 201 with the hold, replays the same request with 200, and refuses a reused key with 409", async () => {
    const account_id = await fundedAccount("10");
    const body = { account_id, amount: "2.50", idempotency_key: uniqueId("hold"), description: "gpt call", metadata: { model: "x" } };
    const first = await harness.post("/v1/holds", body);
    expectStatus(first, 201);
    expect(first.body).toMatchObject({ account_id, amount: "2.5", status: "active", closed_at: null, captured_amount: null });
    expect(first.body.created_at).toBe(clock.current.toISOString());
    expect(first.body.expires_at).toBe(new Date(clock.current.getTime() + 600_000).toISOString());
    const replay = await harness.post("/v1/holds", { ...body, amount: "2.5" });
    expectStatus(replay, 200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body.id).toBe(first.body.id);
    const reused = await harness.post("/v1/holds", { ...body, amount: "3" });
    expectStatus(reused, 409);
    expect(reused.body.code).toBe("idempotency_key_reused");
    expect(await balanceOf(account_id)).toEqual({ balance: "10", available: "7.5" });
  });

  it("grants with allow_overdraft beyond available, and the hold still counts against it", async () => {
    const account_id = await fundedAccount("1");
    expectStatus(await hold(account_id, "3"), 409);
    expectStatus(await hold(account_id, "3", { allow_overdraft: true }), 201);
    expect(await balanceOf(account_id)).toEqual({ balance: "1", available: "-2" });
  });

  it("refuses the grant beyond 10,000 active holds per account, and counts only unexpired active ones", async () => {
    const account_id = await fundedAccount("100000");
    // 10,000 active holds written directly (the API would take minutes); expired or closed ones do not count.
    await harness.database.query(
      `INSERT INTO holds (id, account_id, amount, idempotency_key, request_hash, created_at, expires_at)
       SELECT gen_random_uuid(), $1, 1, 'bulk-' || n, 'x', $2::timestamptz, $2::timestamptz + interval '1 hour'
       FROM generate_series(1, 10000) AS n`,
      [account_id, clock.current.toISOString()],
    );
    const refused = await hold(account_id, "1");
    expectStatus(refused, 409);
    expect(refused.body.code).toBe("too_many_active_holds");
    expect((await balanceOf(account_id)).available).toBe("90000");
    // One of them released: room for exactly one more.
    await harness.database.query(
      "UPDATE holds SET status = 'released', closed_at = $2::timestamptz WHERE account_id = $1 AND idempotency_key = 'bulk-1'",
      [account_id, clock.current.toISOString()],
    );
    expectStatus(await hold(account_id, "1"), 201);
    expectStatus(await hold(account_id, "1"), 409);
  });

  it("6. a hold refused at balance 0 is an observation: balance_depleted, then a purchase emits balance_restored", async () => {
    const account_id = await harness.createAccount();
    // A first credit and usage back to 0, so the account has a watch row and no marker before the refusal.
    expectStatus(await harness.post("/v1/credits", { account_id, type: "grant", amount: "2", idempotency_key: "g" }), 201);
    expectStatus(await harness.post("/v1/usage", { account_id, amount: "2", idempotency_key: "u" }), 201);
    const eventsOf = () =>
      harness.database.query<{ type: string; balance: string }>(
        "SELECT type, trim_scale(balance)::text AS balance FROM balance_events WHERE account_id = $1 ORDER BY id",
        [account_id],
      );
    expect((await eventsOf()).map((event) => event.type)).toEqual(["balance_restored"]);
    const refused = await hold(account_id, "1");
    expectStatus(refused, 409);
    expect(refused.body).toMatchObject({ code: "insufficient_balance", balance: "0", available: "0", deficit: "1" });
    expect((await eventsOf()).map((event) => event.type)).toEqual(["balance_restored", "balance_depleted"]);
    expectStatus(await harness.post("/v1/credits", { account_id, type: "purchase", amount: "5", idempotency_key: "p" }), 201);
    const events = await eventsOf();
    expect(events.map((event) => event.type)).toEqual(["balance_restored", "balance_depleted", "balance_restored"]);
    expect(events.at(-1)!.balance).toBe("5");
  });

  it("a hold refused while the balance is positive (only available is short) is not an observation", async () => {
    const account_id = await fundedAccount("2");
    expectStatus(await hold(account_id, "2"), 201);
    expectStatus(await hold(account_id, "1"), 409);
    const events = await harness.database.query<{ type: string }>("SELECT type FROM balance_events WHERE account_id = $1", [account_id]);
    expect(events.map((event) => event.type)).toEqual(["balance_restored"]);
  });
});

describe("capturing and releasing", () => {
  it("2. hold 5 on balance 10, capture 3: balance 7, available 7, one usage entry of 3 naming the hold", async () => {
    const account_id = await fundedAccount("10");
    const held = await hold(account_id, "5");
    expectStatus(held, 201);
    expect(await balanceOf(account_id)).toEqual({ balance: "10", available: "5" });
    const captured = await harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "3", description: "1,204 tokens" });
    expectStatus(captured, 201);
    expect(captured.body.hold_status).toBe("active");
    expect(captured.body.hold).toMatchObject({ id: held.body.id, status: "captured", captured_amount: "3" });
    expect(captured.body.entry).toMatchObject({ type: "usage", amount: "3", delta: "-3", hold_id: held.body.id, description: "1,204 tokens" });
    expect(await balanceOf(account_id)).toEqual({ balance: "7", available: "7" });
    expect(await usageRowsOf(held.body.id)).toEqual([{ amount: "3.000000000", type: "usage" }]);
    // History lists the entry, not the hold.
    const entry = await harness.get(`/v1/entries/${captured.body.entry.id}`);
    expect(entry.body.hold_id).toBe(held.body.id);
    const history = await harness.get(`/v1/accounts/${account_id}/entries?limit=1`);
    expect(history.body.items[0]).toMatchObject({ id: captured.body.entry.id, type: "usage", amount: "3", hold_id: held.body.id });
    const all = await harness.get(`/v1/entries?search=1%2C204`);
    expect(all.body.items.find((item: { id: string }) => item.id === captured.body.entry.id)?.hold_id).toBe(held.body.id);
  });

  it("3. hold 5, capture 8: balance 2 (usage is never refused), hold captured", async () => {
    const account_id = await fundedAccount("10");
    const held = await hold(account_id, "5");
    const captured = await harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "8" });
    expectStatus(captured, 201);
    expect(captured.body.hold.status).toBe("captured");
    expect(await balanceOf(account_id)).toEqual({ balance: "2", available: "2" });
    expect((await harness.get(`/v1/holds/${held.body.id}`)).body.status).toBe("captured");
  });

  it("4. hold 5 for 1 s: after expiry available is back to 10; capture 4 still records, hold_status expired; release then 409", async () => {
    const account_id = await fundedAccount("10");
    const held = await hold(account_id, "5", { expires_in_s: 1 });
    expectStatus(held, 201);
    advance(999);
    expect(await balanceOf(account_id)).toEqual({ balance: "10", available: "5" });
    advance(1); // the expires_at instant itself
    expect(await balanceOf(account_id)).toEqual({ balance: "10", available: "10" });
    expect((await harness.get(`/v1/holds/${held.body.id}`)).body.status).toBe("expired");
    const expired = await harness.get(`/v1/accounts/${account_id}/holds?status=expired`);
    expect(expired.body.holds.map((listed: { id: string }) => listed.id)).toEqual([held.body.id]);
    expect((await harness.get(`/v1/accounts/${account_id}/holds?status=active`)).body.holds).toEqual([]);
    const captured = await harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "4" });
    expectStatus(captured, 201);
    expect(captured.body.hold_status).toBe("expired");
    expect(captured.body.hold.status).toBe("captured");
    expect(await balanceOf(account_id)).toEqual({ balance: "6", available: "6" });
    const release = await harness.post(`/v1/holds/${held.body.id}/release`, {});
    expectStatus(release, 409);
    expect(release.body.code).toBe("hold_not_active");
    // The replay still says the capture came late.
    const replay = await harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "4" });
    expectStatus(replay, 200);
    expect(replay.body.hold_status).toBe("expired");
  });

  it("5. two concurrent captures with the same body: one usage row, one 201 and one replay", async () => {
    for (let round = 0; round < 5; round++) {
      const account_id = await fundedAccount("10");
      const held = await hold(account_id, "5");
      const [first, second] = await Promise.all([
        harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "4.5" }),
        harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "4.50" }),
      ]);
      expect([first!.status, second!.status].sort()).toEqual([200, 201]);
      const replay = first!.status === 200 ? first! : second!;
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(first!.body.entry.id).toBe(second!.body.entry.id);
      expect(await usageRowsOf(held.body.id)).toHaveLength(1);
      expect(await balanceOf(account_id)).toEqual({ balance: "5.5", available: "5.5" });
    }
  });

  it("twenty concurrent captures of one hold make one usage row", async () => {
    const account_id = await fundedAccount("10");
    const held = await hold(account_id, "5");
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "1" })),
    );
    expect(responses.filter((response) => response.status === 201)).toHaveLength(1);
    expect(responses.filter((response) => response.status === 200)).toHaveLength(19);
    expect(await usageRowsOf(held.body.id)).toHaveLength(1);
  });

  it("a capture racing a release: exactly one closes the hold, and the ledger agrees with the winner", async () => {
    for (let round = 0; round < 5; round++) {
      const account_id = await fundedAccount("10");
      const held = await hold(account_id, "5");
      const [capture, release] = await Promise.all([
        harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "2" }),
        harness.post(`/v1/holds/${held.body.id}/release`, {}),
      ]);
      const rows = await usageRowsOf(held.body.id);
      if (capture!.status === 201) {
        expectStatus(release!, 409);
        expect(rows).toHaveLength(1);
        expect(await balanceOf(account_id)).toEqual({ balance: "8", available: "8" });
      } else {
        expectStatus(capture!, 409);
        expect(capture!.body.code).toBe("hold_not_active");
        expectStatus(release!, 200);
        expect(rows).toHaveLength(0);
        expect(await balanceOf(account_id)).toEqual({ balance: "10", available: "10" });
      }
    }
  });

  it("a capture with a different body, or after a release, is 409 hold_not_active; release is idempotent", async () => {
    const account_id = await fundedAccount("10");
    const captured = await hold(account_id, "5");
    expectStatus(await harness.post(`/v1/holds/${captured.body.id}/capture`, { amount: "3" }), 201);
    const different = await harness.post(`/v1/holds/${captured.body.id}/capture`, { amount: "3", description: "other" });
    expectStatus(different, 409);
    expect(different.body.code).toBe("hold_not_active");

    const released = await hold(account_id, "4");
    expect(await balanceOf(account_id)).toEqual({ balance: "7", available: "3" });
    const first = await harness.post(`/v1/holds/${released.body.id}/release`, {});
    expectStatus(first, 200);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    expect(first.body).toMatchObject({ status: "released", captured_amount: null });
    const again = await harness.post(`/v1/holds/${released.body.id}/release`, {});
    expectStatus(again, 200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const late = await harness.post(`/v1/holds/${released.body.id}/capture`, { amount: "1" });
    expectStatus(late, 409);
    expect(late.body.code).toBe("hold_not_active");
    expect(await usageRowsOf(released.body.id)).toEqual([]);
    expect(await balanceOf(account_id)).toEqual({ balance: "7", available: "7" });
    const listed = await harness.get(`/v1/accounts/${account_id}/holds?status=released`);
    expect(listed.body.holds.map((listedHold: { id: string }) => listedHold.id)).toEqual([released.body.id]);
  });
});

describe("holds under concurrent load", () => {
  it("available never reads below zero while grants, captures below the hold and releases race, and the ledger adds up", async () => {
    const account_id = await fundedAccount("10");
    let running = true;
    const readings: string[] = [];
    // A reader polling available throughout: with no plain usage and every capture at most its hold, a snapshot
    // that saw a capture's usage without its hold closed (or grants beyond the balance) would read below zero.
    const poller = (async () => {
      while (running) readings.push((await balanceOf(account_id)).available);
    })();
    const outcomes = { granted: 0, refused: 0, captured: 0, released: 0 };
    await Promise.all(
      Array.from({ length: 12 }, async (_, worker) => {
        for (let round = 0; round < 6; round++) {
          const held = await hold(account_id, "1");
          if (held.status === 409) {
            outcomes.refused++;
            continue;
          }
          expectStatus(held, 201);
          outcomes.granted++;
          if ((worker + round) % 3 === 0) {
            expectStatus(await harness.post(`/v1/holds/${held.body.id}/release`, {}), 200);
            outcomes.released++;
          } else {
            expectStatus(await harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "0.25" }), 201);
            outcomes.captured++;
          }
        }
      }),
    );
    running = false;
    await poller;
    expect(readings.length).toBeGreaterThan(0);
    expect(readings.filter((available) => available.startsWith("-"))).toEqual([]);
    expect(outcomes.granted).toBe(outcomes.captured + outcomes.released);
    const [totals] = await harness.database.query<{ rows: string; captured: string; active: string }>(
      `SELECT (SELECT COUNT(*) FROM entries WHERE account_id = $1 AND hold_id IS NOT NULL)::text AS rows,
              (SELECT COUNT(*) FROM holds WHERE account_id = $1 AND status = 'captured')::text AS captured,
              (SELECT COUNT(*) FROM holds WHERE account_id = $1 AND status = 'active')::text AS active`,
      [account_id],
    );
    expect(totals).toEqual({ rows: String(outcomes.captured), captured: String(outcomes.captured), active: "0" });
    const expected = formatNanos(10_000_000_000n - BigInt(outcomes.captured) * 250_000_000n);
    expect(await balanceOf(account_id)).toEqual({ balance: expected, available: expected });
  });
});

describe("available on every balance answer", () => {
  it("single, bulk, account, /v1/me and check all carry available; check judges on it", async () => {
    const account_id = await fundedAccount("10");
    expectStatus(await hold(account_id, "6"), 201);
    expect(await balanceOf(account_id)).toEqual({ balance: "10", available: "4" });
    const bulk = await harness.post("/v1/balances/query", { account_ids: [account_id] });
    expect(bulk.body.balances).toEqual([{ account_id, balance: "10", available: "4", expiring_next: null }]);
    const account = await harness.get(`/v1/accounts/${account_id}`);
    expect(account.body).toMatchObject({ balance: "10", available: "4" });
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(account_id)
      .setAudience(JWT_AUDIENCE)
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(JWT_SECRET));
    const me = await harness.get("/v1/me", token);
    expect(me.body).toEqual({ account_id, balance: "10", available: "4", expiring_next: null });
    const check = await harness.post("/v1/balances/check", { account_id, amount: "5" });
    expect(check.body).toEqual({ account_id, balance: "10", available: "4", amount: "5", sufficient: false, deficit: "1" });
    const fits = await harness.post("/v1/balances/check", { account_id, amount: "4" });
    expect(fits.body).toMatchObject({ sufficient: true, deficit: "0" });
  });
});

describe("usage never waits on holds", () => {
  it("posts usage and captures while a grant holds the account's lock and a capture holds a hold's row", async () => {
    const account_id = await fundedAccount("10");
    const other = await hold(account_id, "1");
    const free = await hold(account_id, "1");
    const sql = postgres(harness.databaseUrl, { max: 1 });
    try {
      await sql.begin(async (transaction) => {
        // What an in-flight grant and an in-flight capture hold, kept open across the requests below.
        await transaction`SELECT pg_advisory_xact_lock(12, hashtext(${account_id}))`;
        await transaction`UPDATE holds SET status = 'active' WHERE id = ${other.body.id}::uuid`;
        const usage = await harness.post("/v1/usage", { account_id, amount: "1", idempotency_key: uniqueId("u") });
        expectStatus(usage, 201);
        expectStatus(await harness.post(`/v1/holds/${free.body.id}/capture`, { amount: "1" }), 201);
        expect(await balanceOf(account_id)).toEqual({ balance: "8", available: "7" });
      });
    } finally {
      await sql.end();
    }
  });
});

describe("bad input and access", () => {
  it("7. refuses amount 0, expires_in_s 0 or 86,401, an unknown hold id (404) and another user's hold (404), writing nothing", async () => {
    const account_id = await fundedAccount("10");
    for (const body of [
      { account_id, amount: "0", idempotency_key: "k1" },
      { account_id, amount: "1", idempotency_key: "k2", expires_in_s: 0 },
      { account_id, amount: "1", idempotency_key: "k3", expires_in_s: 86_401 },
      { account_id, amount: "1", idempotency_key: "k4", expires_in_s: 1.5 },
      { account_id, amount: "-1", idempotency_key: "k5" },
      { account_id, amount: "1", idempotency_key: "k6", unknown: true },
    ]) {
      const response = await harness.post("/v1/holds", body);
      expectStatus(response, 400);
      expect(response.body.code).toBe("validation_failed");
    }
    expectStatus(await hold(account_id, "1", { expires_in_s: 86_400 }), 201);
    const [count] = await harness.database.query<{ n: string }>("SELECT COUNT(*)::text AS n FROM holds WHERE account_id = $1", [account_id]);
    expect(count!.n).toBe("1");

    const missing = "0190a8f6-0000-7000-8000-000000000000";
    for (const response of [
      await harness.get(`/v1/holds/${missing}`),
      await harness.post(`/v1/holds/${missing}/capture`, { amount: "1" }),
      await harness.post(`/v1/holds/${missing}/release`, {}),
    ]) {
      expectStatus(response, 404);
      expect(response.body.code).toBe("hold_not_found");
    }
    expectStatus(await harness.get("/v1/holds/not-a-uuid"), 400);
    const held = await hold(account_id, "1");
    expectStatus(await harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "0" }), 400);
    expectStatus(await hold(uniqueId("nobody"), "1"), 404);

    const userToken = (sub: string) =>
      new SignJWT({})
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(sub)
        .setAudience(JWT_AUDIENCE)
        .setExpirationTime("5m")
        .sign(new TextEncoder().encode(JWT_SECRET));
    const stranger = await userToken(await harness.createAccount());
    const foreign = await harness.get(`/v1/holds/${held.body.id}`, stranger);
    expectStatus(foreign, 404);
    expect(foreign.body.code).toBe("hold_not_found");
    expectStatus(await harness.get(`/v1/accounts/${account_id}/holds`, stranger), 403);
    expectStatus(await harness.post(`/v1/holds/${held.body.id}/capture`, { amount: "1" }, stranger), 403);
    expectStatus(await harness.post("/v1/holds", { account_id, amount: "1", idempotency_key: "x" }, stranger), 403);
    const owner = await userToken(account_id);
    expectStatus(await harness.get(`/v1/holds/${held.body.id}`, owner), 200);
    expectStatus(await harness.get(`/v1/accounts/${account_id}/holds`, owner), 200);
    expectStatus(await harness.get(`/v1/holds/${held.body.id}`, null), 401);
    const readOnly = await harness.serviceKey(["balances:read"]);
    expectStatus(await hold(account_id, "1").then(() => harness.post("/v1/holds", { account_id, amount: "1", idempotency_key: "y" }, readOnly)), 403);
    expect(await usageRowsOf(held.body.id)).toEqual([]);
  });

  it("pages an account's holds newest first with a cursor", async () => {
    const account_id = await fundedAccount("10");
    const ids: string[] = [];
    for (let index = 0; index < 5; index++) {
      advance(1);
      ids.push((await hold(account_id, "1")).body.id);
    }
    const first = await harness.get(`/v1/accounts/${account_id}/holds?limit=3`);
    expect(first.body.holds.map((listed: { id: string }) => listed.id)).toEqual(ids.slice(2).reverse());
    const second = await harness.get(`/v1/accounts/${account_id}/holds?limit=3&cursor=${first.body.next_cursor}`);
    expect(second.body.holds.map((listed: { id: string }) => listed.id)).toEqual(ids.slice(0, 2).reverse());
    expect(second.body.next_cursor).toBeNull();
    expectStatus(await harness.get(`/v1/accounts/${account_id}/holds?status=pending`), 400);
    expectStatus(await harness.get(`/v1/accounts/${uniqueId("nobody")}/holds`), 404);
  });
});

describe("retention", () => {
  it("deletes holds ended before HOLD_RETENTION_DAYS, oldest first in bounded batches, and keeps the rest", async () => {
    // Years before every other test's holds (other files share the database and prune nothing older than theirs).
    const saved = clock.current;
    clock.current = new Date("2019-01-01T00:00:00.000Z");
    try {
      const account_id = await fundedAccount("100");
      const captured = await hold(account_id, "1");
      expectStatus(await harness.post(`/v1/holds/${captured.body.id}/capture`, { amount: "1" }), 201);
      const released = await hold(account_id, "1");
      expectStatus(await harness.post(`/v1/holds/${released.body.id}/release`, {}), 200);
      const expired = await hold(account_id, "1", { expires_in_s: 60 }); // never closed: ended when it expired
      advance(40 * 86_400_000);
      const recent = await hold(account_id, "1"); // ended recently: closed today
      expectStatus(await harness.post(`/v1/holds/${recent.body.id}/release`, {}), 200);
      const open = await hold(account_id, "1", { expires_in_s: 86_400 });
      const ids = [captured, released, expired, recent, open].map((response) => response.body.id as string);

      const ledger = { ...harness.ledger, clock: { now: () => clock.current } };
      // A bound of one batch of two rows deletes the two oldest ended holds and stops.
      const left = async () =>
        (await harness.database.query<{ id: string }>("SELECT id::text AS id FROM holds WHERE account_id = $1", [account_id]))
          .map((row) => row.id)
          .sort();
      expect(await pruneHolds(ledger, { retention_days: 30, batch_rows: 2, batches_max: 1 })).toBe(2);
      expect(await left()).toEqual(ids.slice(2).sort());
      expect(await pruneHolds(ledger, { retention_days: 30 })).toBe(1);
      expect(await left()).toEqual(ids.slice(3).sort());
      expectStatus(await harness.get(`/v1/holds/${ids[0]}`), 404);
      expectStatus(await harness.get(`/v1/holds/${ids[4]}`), 200);
      // The capture's usage entry is the ledger and stays.
      expect(await usageRowsOf(ids[0]!)).toEqual([{ amount: "1.000000000", type: "usage" }]);
    } finally {
      clock.current = saved;
    }
  });
});
