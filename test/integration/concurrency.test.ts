/**
 * Concurrency against real PostgreSQL: many real pooled connections racing on one account. These tests prove the
 * properties the lock-free design rests on: exact balances under concurrent writes and refreshes, a checkpoint that
 * cannot skip a row whose transaction commits late, idempotency under identical concurrent requests, strict debits
 * that never overdraw, overlapping batches that cannot deadlock, and a checkpoint boundary that only moves forward.
 *
 * Every amount is compared as an exact decimal string or as BigInt nano-credits, never as a JS number.
 */
import { randomInt } from "node:crypto";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { formatNanos, numericToNanos } from "../../src/ledger/core/amount.js";
import { refreshCheckpoint } from "../../src/ledger/balances/checkpoints.js";
import { uuidv7 } from "../../src/ledger/core/ids.js";
import { createHarness, type ApiResponse, type Harness } from "../support/harness.js";

// ---------------------------------------------------------------------------------------------------------------
// helpers

/** A random amount of 1 nano-credit to `max_nanos`, as the canonical decimal string and as nanos. */
function randomAmount(max_nanos = 1_000_000_000_000): { text: string; nanos: bigint } {
  const nanos = BigInt(randomInt(1, max_nanos + 1));
  return { text: formatNanos(nanos), nanos };
}

/** The ground truth: the plain sum of every entry of the account, straight from the table. */
async function groundTruth(harness: Harness, account_id: string): Promise<string> {
  const [row] = await harness.database.query<{ total: string }>(
    "SELECT COALESCE(SUM(delta), 0)::text AS total FROM entries WHERE account_id = $1",
    [account_id],
  );
  return formatNanos(numericToNanos(row!.total));
}

async function apiBalance(harness: Harness, account_id: string): Promise<string> {
  const response = await harness.get(`/v1/balances/${account_id}`);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.balance as string;
}

interface CheckpointRow {
  balance: string;
  xid_boundary: string;
}

async function checkpointOf(harness: Harness, account_id: string): Promise<CheckpointRow | undefined> {
  const [row] = await harness.database.query<CheckpointRow>(
    "SELECT balance::text AS balance, xid_boundary::text AS xid_boundary FROM balance_checkpoints WHERE account_id = $1",
    [account_id],
  );
  return row;
}

/**
 * The checkpoint together with the sum of the rows below its boundary, read in one statement. Every transaction
 * below the boundary had finished when the checkpoint was taken, so the two must agree in any later snapshot.
 */
async function checkpointWithFold(
  harness: Harness,
  account_id: string,
): Promise<{ balance: bigint; boundary: bigint; below: bigint } | undefined> {
  const [row] = await harness.database.query<{ balance: string; xid_boundary: string; below: string }>(
    `SELECT checkpoint.balance::text AS balance, checkpoint.xid_boundary::text AS xid_boundary,
            (SELECT COALESCE(SUM(delta), 0) FROM entries
              WHERE account_id = checkpoint.account_id AND xid < checkpoint.xid_boundary)::text AS below
     FROM balance_checkpoints AS checkpoint WHERE checkpoint.account_id = $1`,
    [account_id],
  );
  if (!row) return undefined;
  return { balance: numericToNanos(row.balance), boundary: BigInt(row.xid_boundary), below: numericToNanos(row.below) };
}

function expectStatus(response: ApiResponse, status: number): void {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
}

function shuffle<T>(items: T[]): T[] {
  for (let index = items.length - 1; index > 0; index--) {
    const other = randomInt(0, index + 1);
    [items[index], items[other]] = [items[other]!, items[index]!];
  }
  return items;
}

async function rowsForKey(harness: Harness, account_id: string, key: string): Promise<{ id: string; amount: string }[]> {
  return harness.database.query<{ id: string; amount: string }>(
    "SELECT id::text AS id, amount::text AS amount FROM entries WHERE account_id = $1 AND idempotency_key = $2",
    [account_id, key],
  );
}

// ---------------------------------------------------------------------------------------------------------------

describe("32 concurrent writers on one account, every write refreshing the checkpoint", () => {
  const harness = createHarness({ refresh_every: 1, pool_max: 40 });
  afterAll(() => harness.close());

  it("ends exactly at the BigInt model, the ground truth and the checkpointed balance", async () => {
    const account = await harness.createAccount();
    const WRITERS = 32;
    const POSTS = 40;
    const writer = async (w: number): Promise<bigint> => {
      let model = 0n;
      for (let p = 0; p < POSTS; p++) {
        const amount = randomAmount();
        const credit = randomInt(0, 3) === 0;
        const response = credit
          ? await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: amount.text, idempotency_key: `w${w}-p${p}` })
          : await harness.post("/v1/usage", { account_id: account, amount: amount.text, idempotency_key: `w${w}-p${p}` });
        expectStatus(response, 201);
        expect(response.body.amount).toBe(amount.text);
        model += credit ? amount.nanos : -amount.nanos;
      }
      return model;
    };
    const totals = await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    const model = formatNanos(totals.reduce((sum, total) => sum + total, 0n));

    const [count] = await harness.database.query<{ n: string }>("SELECT COUNT(*)::text AS n FROM entries WHERE account_id = $1", [account]);
    expect(count!.n).toBe(String(WRITERS * POSTS));
    expect(await groundTruth(harness, account)).toBe(model);
    expect(await apiBalance(harness, account)).toBe(model);

    const checkpoint = await checkpointOf(harness, account);
    expect(checkpoint).toBeDefined();
    const consistent = await checkpointWithFold(harness, account);
    expect(consistent!.balance).toBe(consistent!.below);

    await refreshCheckpoint(harness.database, account);
    expect(await apiBalance(harness, account)).toBe(model);
    const after = await checkpointWithFold(harness, account);
    expect(after!.boundary).toBeGreaterThanOrEqual(BigInt(checkpoint!.xid_boundary));
    expect(after!.balance).toBe(after!.below);
  });
});

describe("a transaction that commits late (smaller seq, still in flight across refreshes)", () => {
  const harness = createHarness({ refresh_every: 1, pool_max: 20 });
  afterAll(() => harness.close());

  it("is never skipped by the checkpoint: the boundary stays at or below its xid until it commits", async () => {
    const account = await harness.createAccount();
    let model = 0n;
    for (let index = 0; index < 5; index++) {
      const amount = randomAmount();
      expectStatus(await harness.post("/v1/credits", { account_id: account, type: "grant", amount: amount.text, idempotency_key: `before-${index}` }), 201);
      model += amount.nanos;
    }
    await refreshCheckpoint(harness.database, account);
    const initial = await checkpointOf(harness, account);
    expect(initial).toBeDefined();

    const raw = postgres(harness.databaseUrl, { max: 1, onnotice: () => {} });
    const connection = await raw.reserve();
    let open = false;
    try {
      await connection`BEGIN`;
      open = true;
      const rawAmount = "7.000000003";
      const [inserted] = await connection<{ seq: string; xid: string; current: string }[]>`
        INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id, description, metadata)
        VALUES (${uuidv7()}::uuid, ${account}, 'purchase', ${rawAmount}::numeric, ${rawAmount}::numeric, 'raw-late',
                ${"ab".repeat(32)}, NULL, NULL, NULL)
        RETURNING seq::text AS seq, xid::text AS xid, pg_current_xact_id()::text AS current`;
      const rawXid = BigInt(inserted!.xid);
      const rawSeq = BigInt(inserted!.seq);
      expect(inserted!.current).toBe(inserted!.xid);

      // Other writes commit while the raw transaction is open; each one refreshes (refresh_every = 1), and explicit
      // refreshes run too, concurrently with the writes.
      const during: Promise<unknown>[] = [];
      let duringModel = 0n;
      for (let index = 0; index < 20; index++) {
        const amount = randomAmount();
        const credit = index % 2 === 0;
        duringModel += credit ? amount.nanos : -amount.nanos;
        during.push(
          (credit
            ? harness.post("/v1/credits", { account_id: account, type: "purchase", amount: amount.text, idempotency_key: `during-${index}` })
            : harness.post("/v1/usage", { account_id: account, amount: amount.text, idempotency_key: `during-${index}` })
          ).then((response) => expectStatus(response, 201)),
        );
        if (index % 4 === 0) during.push(refreshCheckpoint(harness.database, account));
      }
      await Promise.all(during);
      for (let index = 0; index < 5; index++) await refreshCheckpoint(harness.database, account);
      model += duringModel;

      // The scenario a seq-bounded checkpoint gets wrong: rows with larger seq committed, the smaller one did not.
      const [seqs] = await harness.database.query<{ min_seq: string }>(
        "SELECT MIN(seq)::text AS min_seq FROM entries WHERE account_id = $1 AND idempotency_key LIKE 'during-%'",
        [account],
      );
      expect(BigInt(seqs!.min_seq)).toBeGreaterThan(rawSeq);

      const whileOpen = await checkpointWithFold(harness, account);
      expect(whileOpen).toBeDefined();
      expect(whileOpen!.boundary).toBeLessThanOrEqual(rawXid);
      expect(whileOpen!.boundary).toBeGreaterThanOrEqual(BigInt(initial!.xid_boundary));
      expect(whileOpen!.balance).toBe(whileOpen!.below);
      // The uncommitted row is in neither the ground truth nor the balance yet.
      expect(await groundTruth(harness, account)).toBe(formatNanos(model));
      expect(await apiBalance(harness, account)).toBe(formatNanos(model));

      await connection`COMMIT`;
      open = false;
      model += numericToNanos(rawAmount);

      // The balance includes the late row at once (it sits at or above the boundary)...
      expect(await groundTruth(harness, account)).toBe(formatNanos(model));
      expect(await apiBalance(harness, account)).toBe(formatNanos(model));

      // ...and a refresh now folds it: the boundary passes its xid once every older transaction in the cluster has
      // finished (another test file may briefly hold one), and the folded balance includes it.
      let after = await checkpointWithFold(harness, account);
      const deadline = Date.now() + 15_000;
      while (after!.boundary <= rawXid && Date.now() < deadline) {
        await refreshCheckpoint(harness.database, account);
        after = await checkpointWithFold(harness, account);
        if (after!.boundary <= rawXid) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(after!.boundary).toBeGreaterThan(rawXid);
      expect(after!.balance).toBe(after!.below);
      expect(formatNanos(after!.balance)).toBe(formatNanos(model));
      expect(await apiBalance(harness, account)).toBe(formatNanos(model));
      expect(await groundTruth(harness, account)).toBe(formatNanos(model));
    } finally {
      if (open) await connection`ROLLBACK`;
      connection.release();
      await raw.end({ timeout: 5 });
    }
  });
});

describe("concurrent identical requests", () => {
  const harness = createHarness({ pool_max: 40 });
  afterAll(() => harness.close());
  const N = 50;

  async function expectOneWrite(responses: ApiResponse[], account: string, key: string): Promise<void> {
    const created = responses.filter((response) => response.status === 201);
    const replayed = responses.filter((response) => response.status === 200);
    expect(created, JSON.stringify(responses.filter((r) => r.status !== 200 && r.status !== 201).map((r) => r.body))).toHaveLength(1);
    expect(replayed).toHaveLength(N - 1);
    const id = created[0]!.body.id as string;
    expect(created[0]!.headers.get("Idempotent-Replayed")).toBeNull();
    for (const response of replayed) {
      expect(response.headers.get("Idempotent-Replayed")).toBe("true");
      expect(response.body).toEqual(created[0]!.body);
    }
    const rows = await rowsForKey(harness, account, key);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.id).toBe(id);
  }

  it("50 identical usage posts make one row: one 201, 49 replays of the same entry", async () => {
    const account = await harness.createAccount();
    const body = { account_id: account, amount: "0.123456789", idempotency_key: "same-usage", description: "d", metadata: { a: 1 } };
    const responses = await Promise.all(Array.from({ length: N }, () => harness.post("/v1/usage", body)));
    await expectOneWrite(responses, account, "same-usage");
    expect(await apiBalance(harness, account)).toBe("-0.123456789");
  });

  it("50 identical credits make one row", async () => {
    const account = await harness.createAccount();
    const body = { account_id: account, type: "purchase", amount: "12.5", idempotency_key: "same-credit" };
    const responses = await Promise.all(Array.from({ length: N }, () => harness.post("/v1/credits", body)));
    await expectOneWrite(responses, account, "same-credit");
    expect(await apiBalance(harness, account)).toBe("12.5");
  });

  it("50 identical strict debits make one row and debit once", async () => {
    const account = await harness.createAccount();
    expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "100", idempotency_key: "c" }), 201);
    const body = { account_id: account, amount: "1.000000001", idempotency_key: "same-debit" };
    const responses = await Promise.all(Array.from({ length: N }, () => harness.post("/v1/debits", body)));
    await expectOneWrite(responses, account, "same-debit");
    expect(await apiBalance(harness, account)).toBe("98.999999999");
    expect(await groundTruth(harness, account)).toBe("98.999999999");
  });

  it("identical strict and overdraft-allowed debits racing on one key make one row", async () => {
    const account = await harness.createAccount();
    expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "10", idempotency_key: "c" }), 201);
    const base = { account_id: account, amount: "3", idempotency_key: "mixed-debit" };
    const responses = await Promise.all(
      Array.from({ length: N }, (_, index) =>
        harness.post("/v1/debits", index % 2 === 0 ? base : { ...base, allow_overdraft: true }),
      ),
    );
    await expectOneWrite(responses, account, "mixed-debit");
    expect(await apiBalance(harness, account)).toBe("7");
  });

  it("the same key with different bodies: one 201, the rest 409 idempotency_key_reused, one row", async () => {
    for (const path of ["/v1/usage", "/v1/credits", "/v1/debits"] as const) {
      const account = await harness.createAccount();
      if (path === "/v1/debits") {
        expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "1000", idempotency_key: "c" }), 201);
      }
      const responses = await Promise.all(
        Array.from({ length: N }, (_, index) =>
          harness.post(path, {
            account_id: account,
            amount: String(index + 1),
            idempotency_key: "contested",
            ...(path === "/v1/credits" ? { type: "bonus" } : {}),
          }),
        ),
      );
      const created = responses.filter((response) => response.status === 201);
      const conflicts = responses.filter((response) => response.status === 409);
      expect(created, `${path}: ${JSON.stringify(responses.filter((r) => r.status !== 409).map((r) => r.status))}`).toHaveLength(1);
      expect(conflicts).toHaveLength(N - 1);
      for (const conflict of conflicts) expect(conflict.body.code).toBe("idempotency_key_reused");
      const rows = await rowsForKey(harness, account, "contested");
      expect(rows).toHaveLength(1);
      expect(rows[0]!.id).toBe(created[0]!.body.id);
      expect(formatNanos(numericToNanos(rows[0]!.amount))).toBe(created[0]!.body.amount);
      expect(await apiBalance(harness, account)).toBe(await groundTruth(harness, account));
    }
  });
});

describe("strict debits racing for the last credits", () => {
  const harness = createHarness({ pool_max: 40 });
  afterAll(() => harness.close());

  it("40 strict debits of 1 against a balance of 10: exactly 10 succeed, 30 are refused, the balance ends at 0", async () => {
    const account = await harness.createAccount();
    expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: "10", idempotency_key: "c" }), 201);

    let racing = true;
    const samples: string[] = [];
    const sampler = (async () => {
      while (racing) samples.push(await apiBalance(harness, account));
    })();
    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, index) => harness.post("/v1/debits", { account_id: account, amount: "1", idempotency_key: `d${index}` })),
    );
    racing = false;
    await sampler;

    const created = responses.filter((response) => response.status === 201);
    const refused = responses.filter((response) => response.status === 409);
    expect(created).toHaveLength(10);
    expect(refused).toHaveLength(30);
    for (const response of refused) {
      expect(response.body.code).toBe("insufficient_balance");
      expect(response.body.account_id).toBe(account);
      expect(response.body.balance).toBe("0");
      expect(response.body.amount).toBe("1");
      expect(response.body.deficit).toBe("1");
    }
    for (const sample of samples) expect(numericToNanos(sample)).toBeGreaterThanOrEqual(0n);
    expect(await apiBalance(harness, account)).toBe("0");
    expect(await groundTruth(harness, account)).toBe("0");
    const [count] = await harness.database.query<{ n: string }>(
      "SELECT COUNT(*)::text AS n FROM entries WHERE account_id = $1 AND type = 'removal'",
      [account],
    );
    expect(count!.n).toBe("10");
  });

  it("random strict debits mixed with concurrent usage never take more than the credits", async () => {
    const account = await harness.createAccount();
    let credits = 0n;
    for (let index = 0; index < 5; index++) {
      // 5 to 10 credits each: at least 25 in all.
      const amount = randomAmount(5_000_000_000);
      amount.nanos += 5_000_000_000n;
      amount.text = formatNanos(amount.nanos);
      credits += amount.nanos;
      expectStatus(await harness.post("/v1/credits", { account_id: account, type: "purchase", amount: amount.text, idempotency_key: `c${index}` }), 201);
    }
    // 60 debits of up to 5 credits each against at most 50 credits: the race for the last credits is real. Usage
    // (at most 12 in all) cannot drain the account before the first debit, so some debits always succeed.
    const debits = Array.from({ length: 60 }, () => randomAmount(5_000_000_000));
    const usage = Array.from({ length: 60 }, () => randomAmount(200_000_000));
    const work: Promise<{ kind: "debit" | "usage"; nanos: bigint; response: ApiResponse }>[] = [];
    for (let index = 0; index < 60; index++) {
      const debit = debits[index]!;
      const use = usage[index]!;
      work.push(
        harness
          .post("/v1/debits", { account_id: account, amount: debit.text, idempotency_key: `d${index}` })
          .then((response) => ({ kind: "debit" as const, nanos: debit.nanos, response })),
      );
      work.push(
        harness
          .post("/v1/usage", { account_id: account, amount: use.text, idempotency_key: `u${index}` })
          .then((response) => ({ kind: "usage" as const, nanos: use.nanos, response })),
      );
    }
    const results = await Promise.all(work);

    let debited = 0n;
    let used = 0n;
    let refused = 0;
    for (const { kind, nanos, response } of results) {
      if (kind === "usage") {
        expectStatus(response, 201); // usage is never refused
        used += nanos;
      } else if (response.status === 201) {
        debited += nanos;
      } else {
        expectStatus(response, 409);
        refused++;
        expect(response.body.code).toBe("insufficient_balance");
        const balance = numericToNanos(response.body.balance as string);
        expect(balance).toBeLessThan(nanos);
        expect(response.body.deficit).toBe(formatNanos(nanos - balance));
      }
    }
    expect(debited).toBeLessThanOrEqual(credits);
    expect(debited).toBeGreaterThan(0n);
    expect(refused).toBeGreaterThan(0);
    const expected = formatNanos(credits - debited - used);
    expect(await groundTruth(harness, account)).toBe(expected);
    expect(await apiBalance(harness, account)).toBe(expected);

    // Strict debits take their xid while holding the account's lock, so xid order is their serialization order;
    // every successful one must have fitted in what the credits left after the strict debits before it.
    const removals = await harness.database.query<{ amount: string }>(
      "SELECT amount::text AS amount FROM entries WHERE account_id = $1 AND type = 'removal' ORDER BY xid",
      [account],
    );
    let running = credits;
    for (const removal of removals) {
      running -= numericToNanos(removal.amount);
      expect(running).toBeGreaterThanOrEqual(0n);
    }
  });
});

describe("concurrent overlapping usage batches", () => {
  const harness = createHarness({ pool_max: 40 });
  afterAll(() => harness.close());

  it("share keys in different orders without deadlock; every key is written once and the counts add up", async () => {
    const accounts = await Promise.all([harness.createAccount(), harness.createAccount(), harness.createAccount()]);
    const pool = Array.from({ length: 240 }, (_, index) => ({
      account_id: accounts[index % accounts.length]!,
      amount: randomAmount(1_000_000_000).text,
      idempotency_key: `k${index}`,
      description: `row ${index}`,
    }));
    const BATCHES = 12;
    const bodies = Array.from({ length: BATCHES }, () => {
      const picked = shuffle([...pool]).slice(0, 160);
      // A few exact repeats inside one batch: they count as replayed, not as errors.
      return shuffle([...picked, ...picked.slice(0, 5)]);
    });
    const responses = await Promise.all(bodies.map((entries) => harness.post("/v1/usage/batch", { entries })));

    let inserted = 0;
    responses.forEach((response, index) => {
      expectStatus(response, 200);
      expect(response.body.inserted + response.body.replayed).toBe(bodies[index]!.length);
      inserted += response.body.inserted as number;
    });
    const used = new Set(bodies.flat().map((entry) => `${entry.account_id}/${entry.idempotency_key}`));
    expect(inserted).toBe(used.size);

    const rows = await harness.database.query<{ account_id: string; idempotency_key: string; n: string }>(
      "SELECT account_id, idempotency_key, COUNT(*)::text AS n FROM entries WHERE account_id = ANY($1::text[]) GROUP BY 1, 2",
      [accounts],
    );
    expect(rows).toHaveLength(used.size);
    for (const row of rows) {
      expect(row.n).toBe("1");
      expect(used.has(`${row.account_id}/${row.idempotency_key}`)).toBe(true);
    }
    for (const account of accounts) {
      const expected = pool
        .filter((entry) => entry.account_id === account && used.has(`${account}/${entry.idempotency_key}`))
        .reduce((sum, entry) => sum - numericToNanos(entry.amount), 0n);
      expect(await groundTruth(harness, account)).toBe(formatNanos(expected));
      expect(await apiBalance(harness, account)).toBe(formatNanos(expected));
    }
  });

  it("a batch refused for a reused key writes nothing, and batches waiting on its keys still complete", async () => {
    const accounts = await Promise.all([harness.createAccount(), harness.createAccount()]);
    const first = accounts[0]!;
    expectStatus(await harness.post("/v1/usage", { account_id: first, amount: "1", idempotency_key: "pre" }), 201);
    const pool = Array.from({ length: 120 }, (_, index) => ({
      account_id: accounts[index % accounts.length]!,
      amount: randomAmount(1_000_000_000).text,
      idempotency_key: `k${index}`,
    }));
    // Poisoned batches carry "pre" with a different amount: refused as a whole, after their other rows were
    // inserted (speculatively) and other batches had started waiting on those keys.
    const bodies = Array.from({ length: 10 }, (_, index) => {
      const picked = shuffle([...pool]).slice(0, 90);
      const poisoned = index % 4 === 0;
      return { poisoned, entries: poisoned ? shuffle([...picked, { account_id: first, amount: "2", idempotency_key: "pre" }]) : picked };
    });
    const responses = await Promise.all(bodies.map(({ entries }) => harness.post("/v1/usage/batch", { entries })));

    const used = new Set<string>([`${first}/pre`]);
    let inserted = 0;
    responses.forEach((response, index) => {
      const body = bodies[index]!;
      if (body.poisoned) {
        expectStatus(response, 409);
        expect(response.body.code).toBe("idempotency_key_reused");
        expect(body.entries[response.body.index as number]!.idempotency_key).toBe("pre");
      } else {
        expectStatus(response, 200);
        expect(response.body.inserted + response.body.replayed).toBe(body.entries.length);
        inserted += response.body.inserted as number;
        for (const entry of body.entries) used.add(`${entry.account_id}/${entry.idempotency_key}`);
      }
    });
    expect(inserted).toBe(used.size - 1);

    const rows = await harness.database.query<{ account_id: string; idempotency_key: string; amount: string }>(
      "SELECT account_id, idempotency_key, amount::text AS amount FROM entries WHERE account_id = ANY($1::text[])",
      [accounts],
    );
    expect(rows).toHaveLength(used.size);
    for (const row of rows) expect(used.has(`${row.account_id}/${row.idempotency_key}`)).toBe(true);
    expect(rows.find((row) => row.idempotency_key === "pre")!.amount).toMatch(/^1(\.0*)?$/);
    for (const account of accounts) {
      expect(await apiBalance(harness, account)).toBe(await groundTruth(harness, account));
    }
  });
});

describe("concurrent refreshes interleaved with writers", () => {
  const harness = createHarness({ refresh_every: 3, pool_max: 40 });
  afterAll(() => harness.close());

  it("never move the boundary backward, always store a consistent pair, and keep the balance exact", async () => {
    const account = await harness.createAccount();
    let writing = true;
    const samples: { balance: bigint; boundary: bigint; below: bigint }[] = [];
    const sampler = (async () => {
      while (writing) {
        const sample = await checkpointWithFold(harness, account);
        if (sample) samples.push(sample);
      }
    })();
    const refresher = async () => {
      while (writing) await refreshCheckpoint(harness.database, account);
    };
    const refreshers = Array.from({ length: 8 }, refresher);

    const writer = async (w: number): Promise<bigint> => {
      let model = 0n;
      for (let p = 0; p < 25; p++) {
        const amount = randomAmount();
        const credit = p % 3 === 0;
        const response = credit
          ? await harness.post("/v1/credits", { account_id: account, type: "refund", amount: amount.text, idempotency_key: `w${w}-${p}` })
          : await harness.post("/v1/usage", { account_id: account, amount: amount.text, idempotency_key: `w${w}-${p}` });
        expectStatus(response, 201);
        model += credit ? amount.nanos : -amount.nanos;
      }
      return model;
    };
    let totals: bigint[];
    try {
      totals = await Promise.all(Array.from({ length: 16 }, (_, w) => writer(w)));
    } finally {
      writing = false;
      await Promise.all([sampler, ...refreshers]);
    }
    const model = formatNanos(totals.reduce((sum, total) => sum + total, 0n));

    expect(samples.length).toBeGreaterThan(10);
    let previous = 0n;
    for (const sample of samples) {
      expect(sample.boundary).toBeGreaterThanOrEqual(previous);
      expect(sample.balance).toBe(sample.below);
      previous = sample.boundary;
    }

    await Promise.all(Array.from({ length: 10 }, () => refreshCheckpoint(harness.database, account)));
    let final = await checkpointWithFold(harness, account);
    expect(final!.boundary).toBeGreaterThanOrEqual(previous);
    // The boundary did move forward: once no older transaction is running anywhere in the cluster (another test
    // file may briefly hold one), a refresh passes the first boundary sampled.
    const deadline = Date.now() + 15_000;
    while (final!.boundary <= samples[0]!.boundary && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      await refreshCheckpoint(harness.database, account);
      final = await checkpointWithFold(harness, account);
    }
    expect(final!.boundary).toBeGreaterThan(samples[0]!.boundary);
    expect(final!.balance).toBe(final!.below);
    expect(await groundTruth(harness, account)).toBe(model);
    expect(await apiBalance(harness, account)).toBe(model);
  });
});

