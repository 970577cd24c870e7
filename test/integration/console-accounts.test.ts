/**
 * The console's account list (src/ledger/balances/account-search.ts): balance, available, held and the next expiring
 * credit for a whole page from one statement, agreeing with what the API answers account by account.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/port.js";
import { searchAccounts, type AccountSearchRow } from "../../src/ledger/balances/account-search.js";
import { PAGE_UNFOLDED_ENTRIES_MAX } from "../../src/ledger/lots/expiring-page.js";
import { createHarness, uniqueId } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

const DAY_MS = 86_400_000;
const inDays = (days: number) => new Date(Date.now() + days * DAY_MS).toISOString();

async function created(status: Promise<{ status: number; body: unknown }>) {
  const response = await status;
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body as { id: string };
}
const credit = (account_id: string, amount: string, expires_at?: string) =>
  created(harness.post("/v1/credits", { account_id, type: "grant", amount, idempotency_key: uniqueId("k"), ...(expires_at ? { expires_at } : {}) }));
const usage = (account_id: string, amount: string) => created(harness.post("/v1/usage", { account_id, amount, idempotency_key: uniqueId("k") }));

async function listed(prefix: string): Promise<Map<string, AccountSearchRow>> {
  const page = await searchAccounts(harness.ledger, { prefix, order: "id", limit: 50, offset: 0 });
  return new Map(page.accounts.map((account) => [account.id, account]));
}

async function api(account_id: string) {
  const response = await harness.get(`/v1/balances/${account_id}`);
  expect(response.status).toBe(200);
  return response.body as { balance: string; available: string; expiring_next: { expires_at: string; amount: string } | null };
}

describe("account list figures", () => {
  it("match the API's balance, available and expiring_next, with holds and lots in several states", async () => {
    const prefix = uniqueId("list");
    const t1 = inDays(2);
    const t2 = inDays(5);
    // Expiring and never-expiring credit, then usage after them: exact from the entries after the fold.
    const spent = await harness.createAccount(`${prefix}_spent`);
    await credit(spent, "10", t1);
    await credit(spent, "5");
    await usage(spent, "3");
    // Usage larger than the first lot, then a credit that first pays the overage.
    const overage = await harness.createAccount(`${prefix}_overage`);
    await credit(overage, "10", t1);
    await usage(overage, "12");
    await credit(overage, "4", t2);
    // Holds: available is the balance less them.
    const held = await harness.createAccount(`${prefix}_held`);
    await credit(held, "20");
    expect((await harness.post("/v1/holds", { account_id: held, amount: "4.5", idempotency_key: uniqueId("h") })).status).toBe(201);
    // Nothing expiring at all.
    const plain = await harness.createAccount(`${prefix}_plain`);
    await credit(plain, "1");
    await usage(plain, "2");

    const rows = await listed(prefix);
    expect([...rows.keys()].sort()).toEqual([held, overage, plain, spent].sort());
    for (const [id, row] of rows) {
      const answer = await api(id);
      expect({ balance: row.balance, available: row.available }, id).toEqual({ balance: answer.balance, available: answer.available });
      expect(row.expiring_next === null ? null : { expires_at: row.expiring_next.expires_at, amount: row.expiring_next.amount }, id).toEqual(answer.expiring_next);
      if (row.expiring_next) expect(row.expiring_next.exact).toBe(true);
    }
    expect(rows.get(spent)!.expiring_next).toEqual({ expires_at: t1, amount: "7", exact: true });
    expect(rows.get(overage)!.expiring_next).toEqual({ expires_at: t2, amount: "2", exact: true });
    expect(rows.get(held)).toMatchObject({ balance: "20", available: "15.5", held: "4.5", expiring_next: null });
    expect(rows.get(plain)).toMatchObject({ balance: "-1", available: "-1", held: "0", expiring_next: null });
  });

  it("past the cap of entries since the fold, shows a bound that the exact figure never exceeds", async () => {
    const prefix = uniqueId("bound");
    const id = await harness.createAccount(`${prefix}_a`);
    await credit(id, "100", inDays(1));
    await credit(id, "50", inDays(3));
    const rows = Array.from({ length: PAGE_UNFOLDED_ENTRIES_MAX + 1 }, () => ({ account_id: id, amount: "0.1", idempotency_key: uniqueId("k") }));
    expect((await harness.post("/v1/usage/batch", { entries: rows })).status).toBe(200);
    const bound = (await listed(prefix)).get(id)!.expiring_next!;
    expect(bound.exact).toBe(false);
    // The API's read applies every one of those entries in its lot view.
    const exact = (await api(id)).expiring_next!;
    expect(exact.amount).toBe("49.9");
    expect(BigInt(Date.parse(bound.expires_at))).toBeLessThanOrEqual(BigInt(Date.parse(exact.expires_at)));
    expect(Number(bound.amount)).toBeGreaterThanOrEqual(Number(exact.amount));
  });

  it("reads a page of fifty accounts with one statement", async () => {
    const prefix = uniqueId("count");
    for (let index = 0; index < 50; index++) {
      const id = await harness.createAccount(`${prefix}_${String(index).padStart(2, "0")}`);
      await credit(id, "3", inDays(1));
      await usage(id, "1");
    }
    let statements = 0;
    const counting: Database = { ...harness.database, query: (text, parameters) => (statements++, harness.database.query(text, parameters)) };
    const page = await searchAccounts({ ...harness.ledger, database: counting }, { prefix, order: "balance", limit: 50, offset: 0 });
    expect(page.accounts).toHaveLength(50);
    expect(page.accounts.every((account) => account.expiring_next?.amount === "2" && account.expiring_next.exact)).toBe(true);
    expect(statements).toBe(1);
  });
});
