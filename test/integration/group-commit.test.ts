/**
 * Group commit (src/ledger/posting/group-commit.ts) against real PostgreSQL: concurrent single posts written as one
 * INSERT per flush must still answer each post as if it had been written alone: one row per key, replays, 409s for a
 * key reused with another body, 404 for an unknown account, a one-by-one retry when the grouped statement fails on a
 * row, no deadlock between processes, and no acknowledged row lost when the process is killed mid-flush.
 */
import { afterAll, describe, expect, it } from "vitest";
import { TallyError } from "../../src/errors.js";
import { numericToNanos } from "../../src/ledger/core/amount.js";
import type { EntryRequest } from "../../src/ledger/core/entry.js";
import { configureGroupCommit, groupCommitterOf } from "../../src/ledger/posting/group-commit.js";
import { postEntry, type PostResult } from "../../src/ledger/posting/posting.js";
import { BENCH_ADMIN_KEY, startTally } from "../../bench/lib/tally.js";
import { createHarness, uniqueId, type ApiResponse } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

function usage(account_id: string, idempotency_key: string, amount = "1", extra: Partial<EntryRequest> = {}): EntryRequest {
  return { account_id, type: "usage", amount, idempotency_key, batch_id: null, description: null, metadata: null, ...extra };
}

async function rowsOf(accounts: readonly string[]) {
  return harness.database.query<{ account_id: string; idempotency_key: string; amount: string; id: string; xid: string }>(
    "SELECT account_id, idempotency_key, amount::text AS amount, id::text AS id, xid::text AS xid FROM entries WHERE account_id = ANY($1::text[])",
    [accounts],
  );
}

/** Settles every promise, keeping each outcome in order. */
function settleAll<T>(promises: Promise<T>[]) {
  return Promise.allSettled(promises);
}

describe("grouped posting over HTTP", () => {
  it("64 concurrent posts with 8 duplicate keys and 4 unknown accounts: exactly the right rows, answers and statuses", async () => {
    const accounts = await Promise.all(Array.from({ length: 4 }, () => harness.createAccount()));
    type Planned = { body: Record<string, unknown>; expect: "new" | "same" | "different" | "unknown" };
    const planned: Planned[] = [];
    for (let index = 0; index < 52; index++) {
      planned.push({ body: { account_id: accounts[index % 4], amount: `${index + 1}`, idempotency_key: `k${index}`, metadata: { index } }, expect: "new" });
    }
    // 4 keys sent again with the same body, 4 sent again with a different amount.
    for (let index = 0; index < 4; index++) planned.push({ body: { ...planned[index]!.body }, expect: "same" });
    for (let index = 4; index < 8; index++) planned.push({ body: { ...planned[index]!.body, amount: "999" }, expect: "different" });
    for (let index = 0; index < 4; index++) {
      planned.push({ body: { account_id: uniqueId("missing"), amount: "1", idempotency_key: `m${index}` }, expect: "unknown" });
    }
    expect(planned).toHaveLength(64);
    // Interleave so duplicates arrive among the others, not last.
    const order = planned.map((_, index) => index).sort((left, right) => ((left * 37) % 64) - ((right * 37) % 64));
    const responses = new Map<number, ApiResponse>();
    await Promise.all(order.map(async (index) => responses.set(index, await harness.post("/v1/usage", planned[index]!.body))));

    const statuses = [...responses.values()].map((response) => response.status).sort();
    const count = (status: number) => statuses.filter((value) => value === status).length;
    // 52 distinct keys on real accounts: 52 rows. Of each same-body pair, one 201 and one 200; of each
    // different-body pair, one 201 and one 409; the 4 unknown accounts 404.
    expect({ 201: count(201), 200: count(200), 409: count(409), 404: count(404) }).toEqual({ 201: 52, 200: 4, 409: 4, 404: 4 });

    const rows = await rowsOf(accounts);
    expect(rows).toHaveLength(52);
    const byKey = new Map(rows.map((row) => [row.idempotency_key, row]));
    expect(byKey.size).toBe(52);
    for (let index = 0; index < 8; index++) {
      const key = `k${index}`;
      const answers = planned.flatMap((plan, at) => (plan.body.idempotency_key === key ? [{ plan, response: responses.get(at)! }] : []));
      expect(answers).toHaveLength(2);
      const created = answers.filter((answer) => answer.response.status === 201);
      expect(created).toHaveLength(1);
      const other = answers.find((answer) => answer.response.status !== 201)!;
      const stored = byKey.get(key)!;
      // The row holds the body of the post that was answered 201.
      expect(numericToNanos(stored.amount)).toBe(numericToNanos(created[0]!.plan.body.amount as string));
      expect(created[0]!.response.body.id).toBe(stored.id);
      if (index < 4) {
        expect(other.response.status).toBe(200);
        expect(other.response.headers.get("idempotent-replayed")).toBe("true");
        expect(other.response.body.id).toBe(stored.id);
      } else {
        expect(other.response.status).toBe(409);
        expect(other.response.body.code).toBe("idempotency_key_reused");
      }
    }
    for (const [index, response] of responses) {
      const plan = planned[index]!;
      if (plan.expect === "unknown") {
        expect(response.status).toBe(404);
        expect(response.body.code).toBe("account_not_found");
      }
      if (plan.expect === "new" && index >= 8) {
        expect(response.status).toBe(201);
        expect(response.body).toMatchObject({ account_id: plan.body.account_id, amount: plan.body.amount, metadata: plan.body.metadata });
        expect(byKey.get(plan.body.idempotency_key as string)!.id).toBe(response.body.id);
      }
    }
    // The posts were grouped: fewer transactions than rows.
    expect(new Set(rows.map((row) => row.xid)).size).toBeLessThan(rows.length);
  });
});

describe("grouped posting in the ledger", () => {
  it("the same key twice inside one flush makes one row: a replay for the same body, 409 for a different one", async () => {
    const account = await harness.createAccount();
    const committer = configureGroupCommit(harness.ledger, {});
    // The first post starts a flush at once; the rest queue behind it and go together into the second.
    const results = await settleAll([
      postEntry(harness.ledger, usage(account, "opener")),
      postEntry(harness.ledger, usage(account, "a", "1")),
      postEntry(harness.ledger, usage(account, "a", "1")),
      postEntry(harness.ledger, usage(account, "b", "1")),
      postEntry(harness.ledger, usage(account, "b", "2")),
    ]);
    expect(committer.stats).toMatchObject({ flushes: 2, rows: 5, fallbacks: 0, largest_flush: 4 });
    const [opener, firstA, secondA, firstB, secondB] = results;
    expect(opener).toMatchObject({ status: "fulfilled", value: { replayed: false } });
    expect(firstA).toMatchObject({ status: "fulfilled", value: { replayed: false } });
    expect(secondA).toMatchObject({ status: "fulfilled", value: { replayed: true } });
    expect((secondA as PromiseFulfilledResult<PostResult>).value.entry.id).toBe((firstA as PromiseFulfilledResult<PostResult>).value.entry.id);
    expect(firstB).toMatchObject({ status: "fulfilled", value: { replayed: false, entry: { amount: "1" } } });
    expect(secondB!.status).toBe("rejected");
    expect(((secondB as PromiseRejectedResult).reason as TallyError).code).toBe("idempotency_key_reused");
    const rows = await rowsOf([account]);
    expect(rows.map((row) => row.idempotency_key).sort()).toEqual(["a", "b", "opener"]);
    // a and b were written by one statement.
    expect(rows.find((row) => row.idempotency_key === "a")!.xid).toBe(rows.find((row) => row.idempotency_key === "b")!.xid);
  });

  it("a flush that hits a constraint violation answers every other row correctly", async () => {
    const account = await harness.createAccount();
    await postEntry(harness.ledger, usage(account, "existing", "5"));
    const committer = configureGroupCommit(harness.ledger, {});
    const missing = uniqueId("missing");
    const results = await settleAll([
      postEntry(harness.ledger, usage(account, "opener")),
      ...Array.from({ length: 10 }, (_, index) => postEntry(harness.ledger, usage(account, `ok${index}`, `${index + 1}`))),
      // Passes no HTTP validation, but here it reaches the database: entries_amount_range refuses 0.
      postEntry(harness.ledger, usage(account, "zero", "0")),
      postEntry(harness.ledger, usage(account, "existing", "5")),
      postEntry(harness.ledger, usage(account, "existing", "6")),
      postEntry(harness.ledger, usage(missing, "x")),
      postEntry(harness.ledger, usage(account, "ok0", "1")),
    ]);
    expect(committer.stats.fallbacks).toBe(1);
    const [opener, ...rest] = results;
    expect(opener).toMatchObject({ status: "fulfilled", value: { replayed: false } });
    const oks = rest.slice(0, 10);
    oks.forEach((result, index) => expect(result).toMatchObject({ status: "fulfilled", value: { replayed: false, entry: { amount: `${index + 1}` } } }));
    const [zero, sameExisting, otherExisting, unknown, repeatedOk] = rest.slice(10);
    expect(zero!.status).toBe("rejected");
    expect(((zero as PromiseRejectedResult).reason as { code?: string }).code).toBe("23514");
    expect(sameExisting).toMatchObject({ status: "fulfilled", value: { replayed: true, entry: { amount: "5" } } });
    expect(((otherExisting as PromiseRejectedResult).reason as TallyError).code).toBe("idempotency_key_reused");
    expect(((unknown as PromiseRejectedResult).reason as TallyError).code).toBe("account_not_found");
    // ok0 twice in one flush, retried one by one: one row, the other answer a replay of it.
    const okZero = [oks[0], repeatedOk] as PromiseFulfilledResult<PostResult>[];
    expect(okZero.map((result) => result.value.replayed).sort()).toEqual([false, true]);
    expect(okZero[0]!.value.entry.id).toBe(okZero[1]!.value.entry.id);
    const rows = await rowsOf([account, missing]);
    expect(rows.map((row) => row.idempotency_key).sort()).toEqual(["existing", "ok0", "ok1", "ok2", "ok3", "ok4", "ok5", "ok6", "ok7", "ok8", "ok9", "opener"]);
  });

  it("two processes posting overlapping keys in opposite orders never deadlock", async () => {
    // A second ledger context on its own pool is a second process as far as PostgreSQL can tell.
    const other = createHarness({ pool_max: 4 });
    try {
      const account = await harness.createAccount();
      const first = configureGroupCommit(harness.ledger, {});
      const second = configureGroupCommit(other.ledger, {});
      for (let round = 0; round < 8; round++) {
        const keys = Array.from({ length: 200 }, (_, index) => `r${round}-${String(index).padStart(3, "0")}`);
        const results = await settleAll([
          ...keys.map((key) => postEntry(harness.ledger, usage(account, key))),
          ...[...keys].reverse().map((key) => postEntry(other.ledger, usage(account, key))),
        ]);
        const rejected = results.filter((result) => result.status === "rejected");
        expect(rejected.map((result) => String((result as PromiseRejectedResult).reason))).toEqual([]);
        const created = results.filter((result) => !(result as PromiseFulfilledResult<PostResult>).value.replayed);
        expect(created).toHaveLength(200);
      }
      // A deadlock would have failed a grouped statement and sent its rows one by one.
      expect(first.stats.fallbacks + second.stats.fallbacks).toBe(0);
      expect(first.stats.largest_flush).toBeGreaterThan(100);
      expect(second.stats.largest_flush).toBeGreaterThan(100);
      const rows = await rowsOf([account]);
      expect(rows).toHaveLength(8 * 200);
    } finally {
      await other.close();
    }
  });

  it("bounds: a full queue refuses at once with 503, and a post that waited too long is refused unwritten", async () => {
    const account = await harness.createAccount();
    let clock = 0;
    const committer = configureGroupCommit(harness.ledger, { queue_rows_max: 2, wait_max_ms: 1_000 }, () => clock);
    const opener = postEntry(harness.ledger, usage(account, "opener"));
    const queued = [postEntry(harness.ledger, usage(account, "q1")), postEntry(harness.ledger, usage(account, "q2"))];
    const refused = await postEntry(harness.ledger, usage(account, "q3")).catch((error: unknown) => error);
    // The opener is in flight; q1 and q2 wait in the queue, which holds 2.
    expect((refused as TallyError).code).toBe("service_unavailable");
    clock = 5_000;
    await opener;
    const late = await settleAll(queued);
    for (const result of late) {
      expect(result.status).toBe("rejected");
      expect(((result as PromiseRejectedResult).reason as TallyError).code).toBe("service_unavailable");
    }
    expect(committer.waiting).toBe(0);
    expect((await rowsOf([account])).map((row) => row.idempotency_key)).toEqual(["opener"]);
  });

  it("credits posted together are each evaluated after their commit: every crossing is announced", async () => {
    const accounts = await Promise.all(Array.from({ length: 6 }, () => harness.createAccount()));
    for (const account of accounts) await postEntry(harness.ledger, usage(account, "debt", "1"));
    configureGroupCommit(harness.ledger, {});
    const heard: string[] = [];
    const unsubscribe = harness.ledger.events.hub.subscribe((event) => {
      if (event?.type === "balance_restored") heard.push(event.account_id);
    });
    try {
      const { postCredit } = await import("../../src/ledger/posting/credits.js");
      await Promise.all(
        accounts.map((account) => postCredit(harness.ledger, { ...usage(account, "topup", "2"), type: "purchase" })),
      );
    } finally {
      unsubscribe();
    }
    expect(groupCommitterOf(harness.ledger).stats.largest_flush).toBeGreaterThan(1);
    expect(heard.sort()).toEqual([...accounts].sort());
  });
});

describe("kill -9 during a flush", () => {
  it("loses no acknowledged row; a post that got no answer, retried with its key, makes exactly one row", async () => {
    const account = await harness.createAccount();
    const start = () => startTally({ database_url: harness.databaseUrl, label: "group-commit-kill" });
    let tally = await start();
    const body = (key: string) => JSON.stringify({ account_id: account, amount: "0.5", idempotency_key: key });
    const send = async (port: number, key: string) => {
      const response = await fetch(`http://127.0.0.1:${port}/v1/usage`, {
        method: "POST",
        headers: { authorization: `Bearer ${BENCH_ADMIN_KEY}`, "content-type": "application/json" },
        body: body(key),
      });
      return { status: response.status, body: (await response.json()) as { id: string } };
    };
    const acknowledged = new Map<string, string>();
    const unanswered = new Set<string>();
    let sequence = 0;
    let killed = false;
    const client = async () => {
      while (!killed) {
        const key = `kill-${sequence++}`;
        unanswered.add(key);
        try {
          const response = await send(tally.port, key);
          expect(response.status).toBe(201);
          acknowledged.set(key, response.body.id);
          unanswered.delete(key);
        } catch {
          return; // the connection died with the process: the key stays unanswered
        }
      }
    };
    const clients = Array.from({ length: 32 }, () => client());
    while (acknowledged.size < 100) await new Promise((resolve) => setTimeout(resolve, 5));
    process.kill(tally.pid, "SIGKILL");
    killed = true;
    await Promise.all(clients);
    await tally.stop();
    // Posts were in flight when the process died: the test exercised the window it is about.
    expect(unanswered.size).toBeGreaterThan(0);

    tally = await start();
    try {
      for (const key of unanswered) {
        const response = await send(tally.port, key);
        // 201 if the killed process never committed it, 200 (a replay) if it had.
        expect([200, 201]).toContain(response.status);
      }
    } finally {
      await tally.stop();
    }
    const rows = await rowsOf([account]);
    const byKey = new Map(rows.map((row) => [row.idempotency_key, row]));
    expect(byKey.size).toBe(rows.length);
    for (const [key, id] of acknowledged) expect(byKey.get(key)?.id).toBe(id);
    for (const key of unanswered) expect(byKey.has(key)).toBe(true);
    expect(rows).toHaveLength(acknowledged.size + unanswered.size);
  }, 120_000);
});
