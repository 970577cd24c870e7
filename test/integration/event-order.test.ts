/**
 * The two properties the mutation check found unprotected (issue 8, item 8):
 * - a credit that takes a balance from exactly zero to above zero, with nobody watching, emits balance_restored
 *   (the crossing rule is B − C ≤ 0, not < 0);
 * - event ids commit in id order (the global event-id lock), so a stream resumed after id N neither skips an event
 *   that committed late nor repeats one.
 */
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { APPEND_EVENT_SQL } from "../../src/ledger/events/crossings.js";
import { SseReader } from "../support/sse.js";
import { createHarness, uniqueId } from "../support/harness.js";

const harness = createHarness({ pool_max: 40 });
afterAll(() => harness.close());

let keySequence = 0;
const credit = (account: string, amount: string) =>
  harness.post("/v1/credits", { account_id: account, type: "grant", amount, idempotency_key: `c${keySequence++}` });
const usage = (account: string, amount: string) =>
  harness.post("/v1/usage", { account_id: account, amount, idempotency_key: `u${keySequence++}` });

async function eventsOf(account: string): Promise<{ type: string; balance: string }[]> {
  return harness.database.query<{ type: string; balance: string }>(
    "SELECT type, balance::text AS balance FROM balance_events WHERE account_id = $1 ORDER BY id",
    [account],
  );
}

async function waitUntil(condition: () => Promise<boolean>, timeout_ms: number): Promise<boolean> {
  const deadline = Date.now() + timeout_ms;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

async function openStream(headers: Record<string, string>): Promise<SseReader> {
  const token = await harness.serviceKey(["events:read"]);
  const response = await harness.app.request("/v1/events", { headers: { authorization: `Bearer ${token}`, ...headers } });
  expect(response.status).toBe(200);
  return new SseReader(response);
}

/** Reads the stream until `done` holds or nothing arrives for `quiet_ms`; returns the events of `accounts`. */
async function drain(reader: SseReader, accounts: Set<string>, quiet_ms: number, done?: (seen: string[]) => boolean) {
  const seen: { id: string; account_id: string }[] = [];
  for (;;) {
    if (done?.(seen.map((event) => event.id))) break;
    const message = await reader.next(quiet_ms);
    if (!message) break;
    const event = JSON.parse(message.data) as { id: string; account_id: string };
    if (accounts.has(event.account_id)) seen.push({ id: event.id, account_id: event.account_id });
  }
  return seen;
}

describe("the crossing rule at exactly zero", () => {
  it("a credit from exactly zero to above zero with no observation emits balance_restored", async () => {
    const account = await harness.createAccount();
    expect((await credit(account, "10")).status).toBe(201); // a new account's first credit: restored
    expect((await usage(account, "10")).status).toBe(201); // exactly 0, and nobody reads it
    expect(await eventsOf(account)).toEqual([{ type: "balance_restored", balance: "10.000000000" }]);
    // B = 5 and C = 5: B − C = 0. The balance was exactly zero, at which a gateway blocks, so this credit crossed.
    expect((await credit(account, "5")).status).toBe(201);
    expect(await eventsOf(account)).toEqual([
      { type: "balance_restored", balance: "10.000000000" },
      { type: "balance_restored", balance: "5.000000000" },
    ]);
    // And a credit on top of a positive balance still emits nothing.
    expect((await credit(account, "1")).status).toBe(201);
    expect(await eventsOf(account)).toHaveLength(2);
  });
});

describe("event ids commit in order, so SSE resume is exact", () => {
  /** An account that has been evaluated once and now sits at exactly zero, unobserved: its next credit emits. */
  async function accountAtZero(): Promise<string> {
    const account = await harness.createAccount(uniqueId("order"));
    await credit(account, "1");
    await usage(account, "1");
    return account;
  }

  it("an event that takes its id first but commits late is neither skipped nor repeated after a resume", async () => {
    const [late, early] = [await accountAtZero(), await accountAtZero()];
    const accounts = new Set([late, early]);
    const stream = await openStream({});
    // A transaction that appends an event for `late` with tally's own statement (which takes the global event-id
    // lock and the next id) and then does not commit yet: an evaluation that took its id first but commits late.
    const blocker = postgres(harness.databaseUrl, { max: 1, onnotice: () => {} });
    const reserved = await blocker.reserve();
    try {
      await reserved`BEGIN`;
      await reserved.unsafe(APPEND_EVENT_SQL, [late, "balance_restored", "1"]);
      const [reservedId] = await harness.database.query<{ id: string }>(
        "SELECT last_value::text AS id FROM pg_sequences WHERE sequencename = 'balance_events_id_seq'",
      );
      // A second evaluation takes a larger id. It must not commit before the first (with the global event-id lock it
      // waits for it); whatever it does, give the stream time to read anything that did commit.
      let earlyDone = false;
      const earlyCredit = credit(early, "1").then((response) => ((earlyDone = true), response));
      await waitUntil(async () => {
        if (earlyDone) return true;
        const [row] = await harness.database.query<{ waiting: string }>(
          `SELECT count(*)::text AS waiting FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event = 'advisory'`,
        );
        return row!.waiting !== "0";
      }, 10_000);
      const beforeRelease = await drain(stream, accounts, 300);
      await reserved`COMMIT`;
      expect((await earlyCredit).status).toBe(201);
      // The reader keeps going: more on the same stream, then a forced disconnect and a resume from its last id.
      const onStream = [...beforeRelease, ...(await drain(stream, accounts, 1_500, (ids) => ids.length + beforeRelease.length >= 2))];
      await stream.close();
      const resumed = await openStream({ "last-event-id": stream.lastEventId! });
      const afterResume = await drain(resumed, accounts, 1_000);
      await resumed.close();

      const stored = await harness.database.query<{ id: string; account_id: string }>(
        "SELECT id::text AS id, account_id FROM balance_events WHERE account_id = ANY($1::text[]) AND id > $2::bigint ORDER BY balance_events.id",
        [[...accounts], reservedId!.id === null ? "0" : String(BigInt(reservedId!.id) - 1n)],
      );
      expect(stored.map((event) => event.account_id)).toEqual([late, early]);
      // Every event exactly once, in id order: none skipped by the resume, none sent twice.
      expect([...onStream, ...afterResume]).toEqual(stored);
    } finally {
      await reserved`ROLLBACK`.catch(() => {});
      reserved.release();
      await blocker.end();
    }
  });

  it("many concurrent crossings reach a resuming stream exactly once each", async () => {
    const accounts = await Promise.all(Array.from({ length: 24 }, () => accountAtZero()));
    const watched = new Set(accounts);
    const [start] = await harness.database.query<{ id: string }>("SELECT COALESCE(MAX(id), 0)::text AS id FROM balance_events");
    let reader = await openStream({ "last-event-id": start!.id });
    const received: { id: string; account_id: string }[] = [];
    // Three waves of concurrent credits; between waves the reader disconnects and resumes from its last id.
    for (let wave = 0; wave < 3; wave++) {
      const credits = Promise.all(accounts.map(async (account) => {
        await credit(account, "1"); // from zero: restored
        await usage(account, "1"); // back to zero, unobserved
      }));
      const reading = drain(reader, watched, 1_500, (ids) => ids.length >= accounts.length);
      await credits;
      received.push(...(await reading));
      const last = reader.lastEventId!;
      await reader.close();
      reader = await openStream({ "last-event-id": last });
    }
    received.push(...(await drain(reader, watched, 1_000)));
    await reader.close();
    const stored = await harness.database.query<{ id: string; account_id: string }>(
      "SELECT id::text AS id, account_id FROM balance_events WHERE account_id = ANY($1::text[]) AND id > $2::bigint ORDER BY balance_events.id",
      [accounts, start!.id],
    );
    expect(stored).toHaveLength(accounts.length * 3);
    expect(received).toEqual(stored);
  });
});
