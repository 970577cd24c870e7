import { afterAll, describe, expect, it } from "vitest";
import { canonicalNumeric } from "../../src/ledger/core/amount.js";
import { listEventsAfter } from "../../src/ledger/events/events.js";
import { auditLots } from "../../src/ledger/lots/audit.js";
import { END_OF_TRANSACTION, loadFoldState, loadUnfolded } from "../../src/ledger/lots/lot-store.js";
import { postLotCredit } from "../../src/ledger/lots/lot-credits.js";
import { FOLD_CHUNK_ROWS, foldLots } from "../../src/ledger/lots/settle.js";
import { sweepExpiredLots } from "../../src/ledger/lots/sweep.js";
import { genericPlanReads } from "../support/generic-plan.js";
import { createHarness, TestClock, uniqueId } from "../support/harness.js";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const clock = new TestClock();
const harness = createHarness({ pool_max: 40, clock });
// A second "process": its own pool and ledger context over the same database and the same clock.
const other = createHarness({ pool_max: 20, clock });
afterAll(async () => {
  await harness.close();
  await other.close();
});

let keySequence = 0;
const later = (milliseconds: number) => new Date(clock.now().getTime() + milliseconds).toISOString();

async function credit(account: string, amount: string, lot: { priority?: number; expires_at?: string; type?: string } = {}) {
  const response = await harness.post("/v1/credits", {
    account_id: account,
    type: lot.type ?? "grant",
    amount,
    idempotency_key: `credit-${keySequence++}`,
    ...(lot.priority === undefined ? {} : { priority: lot.priority }),
    ...(lot.expires_at === undefined ? {} : { expires_at: lot.expires_at }),
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body.id as string;
}

async function usage(account: string, amount: string) {
  const response = await harness.post("/v1/usage", { account_id: account, amount, idempotency_key: `usage-${keySequence++}` });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
}

async function lots(account: string, status = "all"): Promise<Map<string, { remaining: string; status: string }>> {
  const response = await harness.get(`/v1/accounts/${account}/lots?status=${status}&limit=500`);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return new Map(response.body.lots.map((lot: { entry_id: string; remaining: string; status: string }) => [lot.entry_id, lot]));
}

async function balance(account: string): Promise<string> {
  const response = await harness.get(`/v1/balances/${account}`);
  expect(response.status).toBe(200);
  return response.body.balance;
}

async function expirations(account: string): Promise<{ lot_id: string; amount: string }[]> {
  const rows = await harness.database.query<{ lot_id: string; amount: string }>(
    "SELECT lot_id::text AS lot_id, amount::text AS amount FROM entries WHERE account_id = $1 AND type = 'expiration' ORDER BY seq",
    [account],
  );
  return rows.map((row) => ({ lot_id: row.lot_id, amount: canonicalNumeric(row.amount) }));
}

async function ledgerSum(account: string): Promise<string> {
  const [row] = await harness.database.query<{ total: string }>(
    "SELECT COALESCE(SUM(delta), 0)::text AS total FROM entries WHERE account_id = $1",
    [account],
  );
  return canonicalNumeric(row!.total);
}

describe("consumption order", () => {
  it("1. priority first: A (100, priority 1) and B (100, priority 2), usage 120: A 0, B 80", async () => {
    const account = await harness.createAccount();
    const b = await credit(account, "100", { priority: 2 });
    const a = await credit(account, "100", { priority: 1 });
    await usage(account, "120");
    const all = await lots(account);
    expect(all.get(a)).toMatchObject({ remaining: "0", status: "consumed" });
    expect(all.get(b)).toMatchObject({ remaining: "80", status: "open" });
    const open = await harness.get(`/v1/accounts/${account}/lots`);
    expect(open.body.lots.map((lot: { entry_id: string }) => lot.entry_id)).toEqual([b]);
  });

  it("2. same priority, earlier expiry first: A in 30 days, B in 100 years, usage 120: A 0, B 80", async () => {
    const account = await harness.createAccount();
    const b = await credit(account, "100", { expires_at: later(100 * 365 * DAY_MS) });
    const a = await credit(account, "100", { expires_at: later(30 * DAY_MS) });
    await usage(account, "120");
    const all = await lots(account);
    expect(all.get(a)).toMatchObject({ remaining: "0", status: "consumed" });
    expect(all.get(b)).toMatchObject({ remaining: "80", status: "open" });
  });

  it("lots that never expire come after expiring ones, then creation order breaks ties", async () => {
    const account = await harness.createAccount();
    const never = await credit(account, "10");
    const first = await credit(account, "10", { expires_at: later(DAY_MS) });
    const second = await credit(account, "10", { expires_at: later(DAY_MS) });
    await usage(account, "15");
    const all = await lots(account);
    expect(all.get(first)).toMatchObject({ remaining: "0" });
    expect(all.get(second)).toMatchObject({ remaining: "5" });
    expect(all.get(never)).toMatchObject({ remaining: "10" });
  });
});

describe("expiry", () => {
  it("3. A (100, 1 h) and B (100, never), usage 30: at A's expiry an expiration of 70 is written; balance 100", async () => {
    const account = await harness.createAccount();
    const a = await credit(account, "100", { expires_at: later(HOUR_MS) });
    await credit(account, "100");
    await usage(account, "30");
    clock.advance(HOUR_MS + 1);
    await sweepExpiredLots(harness.ledger);
    expect(await expirations(account)).toEqual([{ lot_id: a, amount: "70" }]);
    expect(await balance(account)).toBe("100");
    expect((await lots(account)).get(a)).toMatchObject({ status: "expired", remaining: "0" });
    // The history shows it like any entry, linked to its lot; stats report it apart from spent.
    const history = await harness.get(`/v1/accounts/${account}/entries`);
    const item = history.body.items.find((candidate: { type: string }) => candidate.type === "expiration");
    expect(item).toMatchObject({ type: "expiration", amount: "70", description: `lot ${a} expired` });
    expect((await harness.get(`/v1/entries/${item.id}`)).body).toMatchObject({ type: "expiration", amount: "70", lot_id: a });
    const stats = await harness.get(`/v1/accounts/${account}/stats?from=${encodeURIComponent(new Date(Date.now() - DAY_MS).toISOString())}&to=${encodeURIComponent(new Date(Date.now() + DAY_MS).toISOString())}`);
    expect(stats.body.totals).toMatchObject({ spent: "30", earned: "200", expired: "70", net: "100" });
  });

  it("4. usage before any grant is paid by the next grant; its expiry takes the balance to 0 and emits balance_depleted", async () => {
    const account = await harness.createAccount();
    await usage(account, "50");
    const grant = await credit(account, "100", { expires_at: later(HOUR_MS) });
    expect((await lots(account)).get(grant)).toMatchObject({ remaining: "50", status: "open" });
    clock.advance(HOUR_MS + 1);
    await sweepExpiredLots(harness.ledger);
    expect(await expirations(account)).toEqual([{ lot_id: grant, amount: "50" }]);
    expect(await balance(account)).toBe("0");
    const events = await harness.database.query<{ type: string; balance: string; lot_id: string | null; amount: string | null }>(
      "SELECT type, balance::text AS balance, lot_id::text AS lot_id, amount::text AS amount FROM balance_events WHERE account_id = $1 ORDER BY id",
      [account],
    );
    // (The grant itself took the balance from -50 to 50, which may have announced balance_restored before.)
    const afterExpiry = events.slice(events.findIndex((event) => event.type === "credits_expired"));
    expect(afterExpiry.map((event) => event.type)).toEqual(["credits_expired", "balance_depleted"]);
    expect(canonicalNumeric(afterExpiry[0]!.amount!)).toBe("50");
    expect(afterExpiry[0]!.lot_id).toBe(grant);
    expect(canonicalNumeric(afterExpiry[1]!.balance)).toBe("0");
    // The event stream carries it with its lot and amount.
    const [first] = await harness.database.query<{ id: string }>(
      "SELECT (MIN(id) - 1)::text AS id FROM balance_events WHERE account_id = $1 AND type = 'credits_expired'",
      [account],
    );
    const streamed = (await listEventsAfter(harness.database, first!.id, 500)).filter((event) => event.account_id === account);
    expect(streamed[0]).toMatchObject({ type: "credits_expired", lot_id: grant, amount: "50", balance: "0" });
  });

  it("5. a lot consumed to zero before its expiry writes no expiration entry", async () => {
    const account = await harness.createAccount();
    const lot = await credit(account, "40", { expires_at: later(HOUR_MS) });
    await usage(account, "40");
    clock.advance(HOUR_MS + 1);
    await sweepExpiredLots(harness.ledger);
    expect(await balance(account)).toBe("0");
    expect(await expirations(account)).toEqual([]);
    expect((await lots(account)).get(lot)).toMatchObject({ status: "consumed", remaining: "0" });
  });

  it("6. a read one millisecond after expiry, with no sweep, already excludes the expired remainder", async () => {
    const account = await harness.createAccount();
    const lot = await credit(account, "25", { expires_at: later(HOUR_MS) });
    await credit(account, "5");
    await usage(account, "10");
    expect(await balance(account)).toBe("20");
    expect((await harness.get(`/v1/balances/${account}`)).body.expiring_next).toEqual({
      expires_at: new Date(clock.now().getTime() + HOUR_MS).toISOString(),
      amount: "15",
    });
    clock.advance(HOUR_MS + 1);
    expect(await balance(account)).toBe("5");
    expect(await expirations(account)).toEqual([{ lot_id: lot, amount: "15" }]);
    expect((await harness.get(`/v1/balances/${account}`)).body.expiring_next).toBeNull();
  });

  it("a strict debit after expiry cannot spend expired credit", async () => {
    const account = await harness.createAccount();
    await credit(account, "10", { expires_at: later(HOUR_MS) });
    clock.advance(HOUR_MS + 1);
    const response = await harness.post("/v1/debits", { account_id: account, amount: "1", idempotency_key: `d${keySequence++}` });
    expect(response.status).toBe(409);
    expect(response.body.balance).toBe("0");
  });

  it("a usage row in flight at the cut is after the expiry: neither missed nor counted twice", async () => {
    const account = await harness.createAccount();
    const a = await credit(account, "100", { expires_at: later(HOUR_MS) });
    const b = await credit(account, "100");
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inserted!: () => void;
    const insertedSignal = new Promise<void>((resolve) => (inserted = resolve));
    const writer = harness.database.transaction(async (transaction) => {
      await transaction.query(
        `INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash)
         VALUES (gen_random_uuid(), $1, 'usage', 30, -30, $2, 'held')`,
        [account, `held-${keySequence++}`],
      );
      inserted();
      await held;
    });
    await insertedSignal;
    clock.advance(HOUR_MS + 1);
    // The read cuts while the usage is uncommitted: A expires whole.
    expect(await balance(account)).toBe("100");
    release();
    await writer;
    expect(await expirations(account)).toEqual([{ lot_id: a, amount: "100" }]);
    expect(await balance(account)).toBe("70");
    expect((await lots(account)).get(b)).toMatchObject({ remaining: "70" });
    const audit = await auditLots(harness.ledger, account);
    expect(audit.agrees, JSON.stringify(audit)).toBe(true);
    expect(audit.expirations_checked).toBe(1);
  });
});

describe("void", () => {
  it("ends a lot now for its remaining amount, once", async () => {
    const account = await harness.createAccount();
    const lot = await credit(account, "60", { expires_at: later(DAY_MS) });
    await usage(account, "15");
    const first = await harness.post(`/v1/credits/${lot}/expire`, undefined);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({ entry_id: lot, status: "expired", remaining: "0", expired_amount: "45" });
    const again = await harness.post(`/v1/credits/${lot}/expire`, undefined);
    expect(again.body).toMatchObject({ status: "expired", expired_amount: "45", expiration_entry_id: first.body.expiration_entry_id });
    expect(await expirations(account)).toEqual([{ lot_id: lot, amount: "45" }]);
    expect(await balance(account)).toBe("0");
  });

  it("voids a credit without an expiry too; an unknown or debit id is 404; scopes are checked", async () => {
    const account = await harness.createAccount();
    const lot = await credit(account, "7");
    const readOnly = await harness.serviceKey(["balances:read"]);
    expect((await harness.post(`/v1/credits/${lot}/expire`, undefined, readOnly)).status).toBe(403);
    expect((await harness.post(`/v1/credits/${lot}/expire`, undefined, null)).status).toBe(401);
    expect((await harness.post(`/v1/credits/${lot}/expire`, undefined)).body).toMatchObject({ status: "expired", expired_amount: "7" });
    expect((await harness.post(`/v1/credits/00000000-0000-7000-8000-000000000000/expire`, undefined)).status).toBe(404);
    expect((await harness.post(`/v1/credits/not-a-uuid/expire`, undefined)).status).toBe(400);
  });
});

describe("listing and audit", () => {
  it("pages open lots in consumption order and filters by status", async () => {
    const account = await harness.createAccount();
    const ids: string[] = [];
    for (let index = 0; index < 5; index++) ids.push(await credit(account, "1", { priority: 10 - index }));
    await usage(account, "1");
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { lots: { entry_id: string }[]; next_cursor: string | null } } = await harness.get(
        `/v1/accounts/${account}/lots?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
      );
      expect(page.status).toBe(200);
      seen.push(...page.body.lots.map((lot) => lot.entry_id));
      cursor = page.body.next_cursor;
    } while (cursor);
    // Priority 6 (the last posted) was consumed first; the rest are open, lowest priority first.
    expect(seen).toEqual([ids[3], ids[2], ids[1], ids[0]]);
    const consumed = await harness.get(`/v1/accounts/${account}/lots?status=consumed`);
    expect(consumed.body.lots.map((lot: { entry_id: string }) => lot.entry_id)).toEqual([ids[4]]);
    expect((await harness.get(`/v1/accounts/${account}/lots?status=bogus`)).status).toBe(400);
    expect((await harness.get(`/v1/accounts/${account}/lots?cursor=nonsense`)).status).toBe(400);
    expect((await harness.get(`/v1/accounts/${uniqueId()}/lots`)).status).toBe(404);
  });

  it("audit=true is admin-only and agrees with the fold", async () => {
    const account = await harness.createAccount();
    await credit(account, "5", { expires_at: later(HOUR_MS) });
    await usage(account, "2");
    const voided = await credit(account, "4");
    // A void is a cut: it folds every committed entry, so the audit has stored lots to compare.
    expect((await harness.post(`/v1/credits/${voided}/expire`, undefined)).body).toMatchObject({ expired_amount: "4" });
    const reader = await harness.serviceKey(["balances:read"]);
    expect((await harness.get(`/v1/accounts/${account}/lots?audit=true`, reader)).status).toBe(403);
    const response = await harness.get(`/v1/accounts/${account}/lots?audit=true`);
    expect(response.status).toBe(200);
    expect(response.body.audit).toMatchObject({
      agrees: true,
      lots_checked: 2,
      expirations_checked: 1,
      expiration_disagreements: [],
      lot_disagreements: [],
    });
  });

  it("the audit reports an expiration that disagrees with the recomputation", async () => {
    const account = await harness.createAccount();
    const lot = await credit(account, "5");
    // A forged expiration with the wrong amount (as a bug would write it): the audit must name it.
    await harness.database.query(
      `INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, lot_id, cut_snapshot)
       VALUES (gen_random_uuid(), $1, 'expiration', 3, -3, $2, 'forged', $3::uuid, pg_current_snapshot())`,
      [account, `forged-${keySequence++}`, lot],
    );
    const audit = await auditLots(harness.ledger, account);
    expect(audit.agrees).toBe(false);
    expect(audit.expiration_disagreements).toEqual([
      expect.objectContaining({ lot_id: lot, written: "3", recomputed: "5" }),
    ]);
  });
});

describe("bad input", () => {
  it("9. expires_at in the past or not RFC 3339, priority 101, -1 or 1.5: 400 and nothing written", async () => {
    const account = await harness.createAccount();
    const bodies = [
      { expires_at: later(-1) },
      { expires_at: "2030-01-01" },
      { expires_at: "2030-01-01 10:00:00Z" },
      { expires_at: "tomorrow" },
      { priority: 101 },
      { priority: -1 },
      { priority: 1.5 },
      { priority: "5" },
    ];
    for (const extra of bodies) {
      const response = await harness.post("/v1/credits", {
        account_id: account,
        type: "grant",
        amount: "10",
        idempotency_key: `bad-${keySequence++}`,
        ...extra,
      });
      expect(response.status, JSON.stringify(extra)).toBe(400);
      expect(response.body.code).toBe("validation_failed");
    }
    const [row] = await harness.database.query<{ count: string }>(
      "SELECT (SELECT COUNT(*) FROM entries WHERE account_id = $1) + (SELECT COUNT(*) FROM credit_lots WHERE account_id = $1) AS count",
      [account],
    );
    expect(Number(row!.count)).toBe(0);
  });
});

describe("concurrency", () => {
  it("7. two processes sweeping 1,000 due lots write exactly one expiration per lot", async () => {
    const accounts = await Promise.all(Array.from({ length: 100 }, () => harness.createAccount()));
    const expiresAt = later(HOUR_MS);
    const expected = new Map<string, string>();
    let next = 0;
    const work = accounts.flatMap((account, accountIndex) =>
      Array.from({ length: 10 }, (_, lotIndex) => ({ account, amount: `${lotIndex + 1}`, priority: lotIndex, accountIndex })),
    );
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let item = work[next++]; item !== undefined; item = work[next++]) {
          const { entry } = await postLotCredit(harness.ledger, {
            account_id: item.account,
            type: "grant",
            amount: item.amount,
            idempotency_key: `sweep-${keySequence++}`,
            batch_id: null,
            description: null,
            metadata: null,
            priority: item.priority,
            expires_at: expiresAt,
          });
          expected.set(entry.id, item.amount);
        }
      }),
    );
    // Usage of 3 on each account consumes lots 1 (1) and 2 (2) entirely: 800 lots remain whole, 200 write nothing.
    await Promise.all(accounts.map((account) => usage(account, "3")));
    clock.advance(HOUR_MS + 1);
    const [mine, theirs] = await Promise.all([
      sweepExpiredLots(harness.ledger, { concurrency: 8 }),
      sweepExpiredLots(other.ledger, { concurrency: 8 }),
    ]);
    // (Earlier tests' lots that came due with this clock move are swept too.)
    expect(mine.lots_expired + theirs.lots_expired).toBeGreaterThanOrEqual(800);
    expect(Math.min(mine.lots_expired, theirs.lots_expired)).toBeGreaterThan(0);
    const rows = await harness.database.query<{ lot_id: string; amount: string; count: string }>(
      `SELECT lot_id::text AS lot_id, MIN(amount)::text AS amount, COUNT(*)::text AS count FROM entries
       WHERE account_id = ANY($1::text[]) AND type = 'expiration' GROUP BY lot_id`,
      [accounts],
    );
    expect(rows.length).toBe(800);
    for (const row of rows) {
      expect(row.count).toBe("1");
      expect(canonicalNumeric(row.amount)).toBe(expected.get(row.lot_id));
    }
    for (const account of accounts.slice(0, 5)) expect(await balance(account)).toBe("0");
  }, 120_000);

  it("8. 32 writers posting usage across the expiry instant: the audit agrees and the balance is the sum of the entries", async () => {
    const account = await harness.createAccount();
    const a = await credit(account, "2000", { priority: 10, expires_at: later(HOUR_MS) });
    await credit(account, "1500", { priority: 50 });
    const c = await credit(account, "500", { priority: 60, expires_at: later(HOUR_MS) });
    const perWriter = 24;
    let posted = 0;
    let expired = false;
    const amounts = ["0.7", "1.3", "2", "0.000000001", "3.5"];
    const writers = Array.from({ length: 32 }, (_, writer) =>
      (async () => {
        for (let index = 0; index < perWriter; index++) {
          const response = await (writer % 2 === 0 ? harness : other).post("/v1/usage", {
            account_id: account,
            amount: amounts[(writer + index) % amounts.length],
            idempotency_key: `w${writer}-${index}-${keySequence}`,
          });
          expect(response.status).toBe(201);
          posted++;
        }
      })(),
    );
    // Once about half the usage is in, the clock passes the expiry while the writers keep going; two sweepers and
    // readers from both processes race to cut.
    const racers = (async () => {
      while (posted < (32 * perWriter) / 2) await new Promise((resolve) => setImmediate(resolve));
      clock.advance(HOUR_MS + 1);
      expired = true;
      await Promise.all([
        sweepExpiredLots(harness.ledger),
        sweepExpiredLots(other.ledger),
        harness.get(`/v1/balances/${account}`),
        other.get(`/v1/balances/${account}`),
        other.get(`/v1/accounts/${account}/lots`),
      ]);
    })();
    await Promise.all([...writers, racers]);
    expect(expired).toBe(true);
    const written = await expirations(account);
    expect(written.map((row) => row.lot_id).sort()).toEqual([a, c].sort());
    const audit = await auditLots(harness.ledger, account);
    expect(audit, JSON.stringify(audit)).toMatchObject({ agrees: true, expirations_checked: 2, expiration_disagreements: [] });
    const total = await ledgerSum(account);
    expect(await balance(account)).toBe(total);
    expect(await other.get(`/v1/balances/${account}`).then((response) => response.body.balance)).toBe(total);
    // With the balance positive, the open lots hold exactly the balance.
    const open = [...(await lots(account, "open")).values()];
    const held = open.reduce((sum, lot) => sum + Number(lot.remaining) * 1e9, 0);
    expect(Math.round(held)).toBe(Math.round(Number(total) * 1e9));
  }, 120_000);
});

describe("reads after a fold", () => {
  it("start after the fold's last transaction once it is finished, even when its last chunk was exactly full", async () => {
    const account = await harness.createAccount();
    const lastXid = async () =>
      (await harness.database.query<{ xid: string }>("SELECT max(xid)::text AS xid FROM entries WHERE account_id = $1", [account]))[0]!.xid;
    /** Folds until the fold records that it finished the transaction `xid` (and every one before it). */
    const foldPast = async (xid: string) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        // A fold never passes a transaction still running anywhere (another test file's): retry until the horizon has.
        await foldLots(harness.ledger, account);
        const state = await loadFoldState(harness.database, account);
        if (state.position_seq === END_OF_TRANSACTION && BigInt(state.position_xid!) >= BigInt(xid)) return state;
        if (Date.now() > deadline) throw new Error(`the fold did not finish transaction ${xid}: ${JSON.stringify(state)}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    };
    await credit(account, "100");
    await foldPast(await lastXid());
    // Then one transaction of exactly two chunks of usage rows, as a large batch is (every row shares its xid): two
    // full chunks, then a fold that finds nothing new must record that the transaction is finished.
    await harness.database.query(
      `INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash)
       SELECT gen_random_uuid(), $1, 'usage', 0.01, -0.01, 'large-' || g, md5(g::text) || md5((-g)::text)
       FROM generate_series(1, $2::int) AS g`,
      [account, FOLD_CHUNK_ROWS * 2],
    );
    const state = await foldPast(await lastXid());

    // The statement a lot view runs, with its parameters, planned generically as a prepared statement is after a few
    // executions: the 4,000 rows of the last transaction must not be read to find that none is after it.
    let captured: { text: string; parameters: readonly unknown[] } | undefined;
    const capturing = {
      query: async <Row extends object>(text: string, parameters: readonly unknown[] = []) => {
        captured = { text, parameters };
        return harness.database.query<Row>(text, parameters);
      },
    };
    const { entries } = await loadUnfolded(capturing, account, state, { below_horizon: false, limit: 5001 });
    expect(entries).toEqual([]);
    const nodes = await genericPlanReads(harness.databaseUrl, captured!.text, captured!.parameters, "entries");
    expect(nodes.length).toBeGreaterThan(0);
    for (const node of nodes) expect(node.returned + node.discarded).toBeLessThan(10);
  });
});
