import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalNumeric, numericToNanos } from "../../src/ledger/core/amount.js";
import { observeAtOrBelowZero } from "../../src/ledger/events/crossings.js";
import { listEventsAfter, pruneEvents } from "../../src/ledger/events/events.js";
import { DEFAULT_NOTIFY_CHANNEL } from "../../src/ledger/core/context.js";
import { createHarness, uniqueId } from "../support/harness.js";

const harness = createHarness({ pool_max: 30 });
let listener: postgres.Sql;
/** Every restoration NOTIFY received on a real LISTEN connection, by account. */
const notified = new Map<string, { event_id: string; balance: string }[]>();
const waiters = new Set<() => void>();

beforeAll(async () => {
  listener = postgres(harness.databaseUrl, { max: 1, onnotice: () => {} });
  await listener.listen(DEFAULT_NOTIFY_CHANNEL, (payload) => {
    const event = JSON.parse(payload);
    const list = notified.get(event.account_id) ?? [];
    list.push({ event_id: event.id, balance: event.balance });
    notified.set(event.account_id, list);
    for (const wake of waiters) wake();
  });
});
afterAll(async () => {
  await listener.end();
  await harness.close();
});

async function waitForNotification(account: string, count: number, timeout_ms = 5_000): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while ((notified.get(account)?.length ?? 0) < count && Date.now() < deadline) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 50);
      waiters.add(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

async function events(account: string): Promise<{ type: string; balance: string }[]> {
  const rows = await harness.database.query<{ type: string; balance: string }>(
    "SELECT type, balance::text AS balance FROM balance_events WHERE account_id = $1 ORDER BY id",
    [account],
  );
  return rows.map((row) => ({ type: row.type, balance: canonicalNumeric(row.balance) }));
}

let keySequence = 0;
const credit = (account: string, amount: string) =>
  harness.post("/v1/credits", { account_id: account, type: "grant", amount, idempotency_key: `c${keySequence++}` });
const usage = (account: string, amount: string) =>
  harness.post("/v1/usage", { account_id: account, amount, idempotency_key: `u${keySequence++}` });

describe("balance_restored on LISTEN", () => {
  it("a credit that takes an observed-empty account above zero notifies with the balance", async () => {
    const account = await harness.createAccount();
    expect((await harness.get(`/v1/balances/${account}`)).body.balance).toBe("0");
    expect(await events(account)).toEqual([{ type: "balance_depleted", balance: "0" }]);
    expect((await credit(account, "2.5")).status).toBe(201);
    await waitForNotification(account, 1);
    expect(notified.get(account)).toEqual([{ event_id: expect.any(String), balance: "2.5" }]);
    expect((await events(account)).map((event) => event.type)).toEqual(["balance_depleted", "balance_restored"]);
  });

  it("a grant to an account that has been positive since its first credit does not notify", async () => {
    const account = await harness.createAccount();
    await credit(account, "10");
    await waitForNotification(account, 1);
    const before = notified.get(account)?.length;
    expect(before).toBe(1); // the first credit took a new account from zero to positive
    for (let index = 0; index < 5; index++) await credit(account, "1");
    expect((await harness.get(`/v1/balances/${account}`)).body.balance).toBe("15");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(notified.get(account)?.length).toBe(before);
    expect((await events(account)).filter((event) => event.type === "balance_restored")).toHaveLength(1);
  });

  it("a credit that crosses zero with nobody watching still notifies", async () => {
    const account = await harness.createAccount();
    await credit(account, "1");
    await waitForNotification(account, 1);
    await usage(account, "6"); // -5, never read
    await credit(account, "10"); // +5: this credit crossed
    await waitForNotification(account, 2);
    expect(notified.get(account)?.at(-1)?.balance).toBe("5");
  });

  it("two concurrent credits from below zero cannot both decide it was already positive", async () => {
    for (let round = 0; round < 10; round++) {
      const account = await harness.createAccount();
      await credit(account, "1");
      await usage(account, "11"); // -10, unobserved
      // 15 each: after both, B = 20, and B minus either credit's own amount is 5 > 0, so the seed's rule
      // ("before = after − own amount") would emit nothing. The first credit to commit did cross zero.
      await Promise.all([credit(account, "15"), credit(account, "15")]);
      await waitForNotification(account, 2);
      expect(notified.get(account)?.length, `round ${round}`).toBeGreaterThanOrEqual(2);
      // No storm: at most one event per credit.
      expect(notified.get(account)!.length).toBeLessThanOrEqual(3);
    }
  });

  it("a strict debit refused at zero is an observation; the next credit notifies", async () => {
    const account = await harness.createAccount();
    const refused = await harness.post("/v1/debits", { account_id: account, amount: "1", idempotency_key: "d1" });
    expect(refused.status).toBe(409);
    expect(await events(account)).toEqual([{ type: "balance_depleted", balance: "0" }]);
    await credit(account, "3");
    await waitForNotification(account, 1);
    expect(notified.get(account)).toHaveLength(1);
  });

  it("a balance check at zero is an observation too", async () => {
    const account = await harness.createAccount();
    await credit(account, "1");
    await waitForNotification(account, 1);
    await usage(account, "1"); // exactly zero, unobserved
    const check = await harness.post("/v1/balances/check", { account_id: account, amount: "1" });
    expect(check.body).toMatchObject({ balance: "0", sufficient: false, deficit: "1" });
    expect((await events(account)).at(-1)).toEqual({ type: "balance_depleted", balance: "0" });
    await credit(account, "1");
    await waitForNotification(account, 2);
    expect(notified.get(account)).toHaveLength(2);
  });

  it("an observation whose re-check under the lock finds a credit already landed emits at once", async () => {
    const account = await harness.createAccount();
    await credit(account, "1");
    await waitForNotification(account, 1);
    // As if a read had just served a balance of zero and a credit committed before the observation took the lock:
    // the balance is positive again by the time the observation is registered.
    await observeAtOrBelowZero(harness.ledger, [account]);
    await waitForNotification(account, 2);
    expect(notified.get(account)?.at(-1)?.balance).toBe("1");
    expect((await events(account)).map((event) => event.type)).toEqual(["balance_restored", "balance_restored"]);
  });
});

describe("a simulated gateway never stays blocked on a positive balance", () => {
  /**
   * The gateway blocks on any balance it reads at or below zero, and on every balance_restored it hears it
   * re-reads the balance (an observation itself) and unblocks if positive. It never polls at the end.
   */
  class Gateway {
    readonly blocked = new Set<string>();
    private pending: Promise<unknown>[] = [];
    // Answers can arrive out of order (docs/design.md §14, examples/gateway.ts): every read takes a ticket when it
    // starts, and an answer older than the last one applied to its account is dropped.
    private nextTicket = 1;
    private readonly appliedTicket = new Map<string, number>();
    constructor(private readonly accounts: Set<string>) {}
    async read(account: string): Promise<void> {
      const ticket = this.nextTicket++;
      const response = await harness.get(`/v1/balances/${account}`);
      if (ticket < (this.appliedTicket.get(account) ?? 0)) return;
      this.appliedTicket.set(account, ticket);
      if (numericToNanos(response.body.balance) <= 0n) this.blocked.add(account);
      else this.blocked.delete(account);
    }
    hear(account: string): void {
      if (this.accounts.has(account)) this.pending.push(this.read(account));
    }
    async settle(): Promise<void> {
      // Drain re-reads, including ones scheduled by notifications that arrive while draining.
      for (let quiet = 0; quiet < 3; ) {
        const batch = this.pending;
        this.pending = [];
        if (batch.length === 0) {
          quiet++;
          await new Promise((resolve) => setTimeout(resolve, 100));
        } else {
          quiet = 0;
          await Promise.all(batch);
        }
      }
    }
  }

  it("over many randomized rounds of concurrent credits, usage and reads", async () => {
    const rounds = 40;
    const accounts = new Set<string>();
    const gateway = new Gateway(accounts);
    const unlisten = await listener.listen(DEFAULT_NOTIFY_CHANNEL, (payload) => gateway.hear(JSON.parse(payload).account_id));
    let random = 12345;
    const next = (bound: number) => {
      random = (random * 1103515245 + 12345) % 2 ** 31;
      return random % bound;
    };
    let unblockedAtPositive = 0;
    try {
      for (let round = 0; round < rounds; round++) {
        const account = await harness.createAccount(uniqueId("gw"));
        accounts.add(account);
        await gateway.read(account); // a new account is blocked
        expect(gateway.blocked.has(account)).toBe(true);
        const actions: Promise<unknown>[] = [];
        for (let step = 0; step < 24; step++) {
          const kind = next(3);
          const amount = `${1 + next(5)}.${String(next(1000)).padStart(3, "0")}`;
          if (kind === 0) actions.push(credit(account, amount));
          else if (kind === 1) actions.push(usage(account, amount));
          else actions.push(gateway.read(account));
          if (next(4) === 0) await new Promise((resolve) => setTimeout(resolve, next(5)));
        }
        await Promise.all(actions);
      }
      await gateway.settle();
      for (const account of accounts) {
        const [truth] = await harness.database.query<{ balance: string }>(
          "SELECT COALESCE(SUM(delta), 0)::text AS balance FROM entries WHERE account_id = $1",
          [account],
        );
        if (numericToNanos(truth!.balance) > 0n) {
          expect(gateway.blocked.has(account), `${account} ends at ${truth!.balance} but is blocked`).toBe(false);
          unblockedAtPositive++;
        }
      }
      // The rounds must actually exercise the property: most end positive.
      expect(unblockedAtPositive).toBeGreaterThan(rounds / 4);
    } finally {
      await unlisten.unlisten();
    }
  });
});

describe("GET /v1/events", () => {
  async function open(after: string | undefined, headers: Record<string, string> = {}) {
    const { SseReader } = await import("../support/sse.js");
    const token = await harness.serviceKey(["events:read"]);
    const query = after === undefined ? "" : `?after=${after}`;
    const response = await harness.app.request(`/v1/events${query}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    return new SseReader(response);
  }

  async function collect(reader: { next(ms: number): Promise<{ id?: string; event?: string; data: string } | undefined> }, accounts: Set<string>, count: number) {
    const got: { id: string; type: string; account_id: string }[] = [];
    while (got.length < count) {
      const message = await reader.next(5_000);
      if (!message) break;
      const event = JSON.parse(message.data);
      expect(message.id).toBe(event.id);
      expect(message.event).toBe(event.type);
      if (accounts.has(event.account_id)) got.push({ id: event.id, type: event.type, account_id: event.account_id });
    }
    return got;
  }

  it("replays after a forced disconnect without losing an event, via Last-Event-ID and ?after=", async () => {
    const [start] = await harness.database.query<{ id: string }>("SELECT COALESCE(MAX(id), 0)::text AS id FROM balance_events");
    const accounts = new Set<string>();
    const makeEvents = async (count: number) => {
      for (let index = 0; index < count; index++) {
        const account = await harness.createAccount(uniqueId("sse"));
        accounts.add(account);
        await harness.get(`/v1/balances/${account}`); // balance_depleted
        await credit(account, "1"); // balance_restored
      }
    };
    const first = await open(start!.id);
    await makeEvents(3);

    const seen = await collect(first, accounts, 6);
    // The stream opened with an id-only message naming where it starts.
    expect(first.firstEventId).toBe(start!.id);
    expect(seen.map((event) => event.type)).toEqual(["balance_depleted", "balance_restored", "balance_depleted", "balance_restored", "balance_depleted", "balance_restored"]);
    await first.close(); // forced disconnect
    await makeEvents(4); // happen while nobody is connected
    const resumed = await open(undefined, { "last-event-id": seen.at(-1)!.id });
    const missed = await collect(resumed, accounts, 8);
    await resumed.close();
    expect(missed).toHaveLength(8);
    const all = [...seen, ...missed].map((event) => BigInt(event.id));
    expect(all).toEqual([...all].sort((left, right) => (left < right ? -1 : 1)));
    expect(new Set(all).size).toBe(all.length);
    const [stored] = await harness.database.query<{ count: string }>(
      "SELECT count(*)::text AS count FROM balance_events WHERE account_id = ANY($1::text[])",
      [[...accounts]],
    );
    expect(Number(stored!.count)).toBe(14);
    // ?after= resumes the same way.
    const again = await open(seen.at(-1)!.id);
    expect((await collect(again, accounts, 8)).map((event) => event.id)).toEqual(missed.map((event) => event.id));
    await again.close();
  });

  it("needs the events:read scope and a service key", async () => {
    const token = await harness.serviceKey(["balances:read"]);
    expect((await harness.get("/v1/events", token)).status).toBe(403);
    expect((await harness.get("/v1/events", null)).status).toBe(401);
    expect((await harness.get("/v1/events?after=-1")).status).toBe(400);
  });
});

describe("listing events", () => {
  it("orders ids numerically across a digit boundary (9 before 10)", async () => {
    // Move the id sequence (forward only) to just below the next power of ten, then make events across it.
    const [current] = await harness.database.query<{ id: string }>("SELECT COALESCE(MAX(id), 0)::text AS id FROM balance_events");
    const boundary = 10n ** BigInt(current!.id.length + 1);
    await harness.database.query("SELECT setval(pg_get_serial_sequence('balance_events', 'id'), $1::bigint)", [String(boundary - 3n)]);
    const accounts: string[] = [];
    for (let index = 0; index < 4; index++) {
      const account = await harness.createAccount(uniqueId("digits"));
      accounts.push(account);
      await harness.get(`/v1/balances/${account}`); // one balance_depleted each
    }
    const listed = await listEventsAfter(harness.database, String(boundary - 3n), 500);
    const ids = listed.map((event) => BigInt(event.id));
    expect(ids).toEqual([...ids].sort((left, right) => (left < right ? -1 : 1)));
    expect(ids[0]).toBe(boundary - 2n);
    expect(ids.some((id) => id >= boundary)).toBe(true);
  });
});

describe("retention", () => {
  it("prunes events older than the window, in bounded batches, and keeps newer ones", async () => {
    const account = uniqueId("old");
    await harness.database.query(
      "INSERT INTO balance_events (account_id, type, balance, created_at) SELECT $1, 'balance_restored', 1, now() - interval '30 days' FROM generate_series(1, 25)",
      [account],
    );
    await harness.database.query("INSERT INTO balance_events (account_id, type, balance) VALUES ($1, 'balance_restored', 1)", [account]);
    const deleted = await pruneEvents(harness.database, { retention_days: 7, batch_rows: 10, batches_max: 2 });
    expect(deleted).toBeGreaterThanOrEqual(20); // two batches of ten; the rest waits for the next run
    await pruneEvents(harness.database, { retention_days: 7, batch_rows: 10, batches_max: 10 });
    expect(await events(account)).toEqual([{ type: "balance_restored", balance: "1" }]);
  });
});
