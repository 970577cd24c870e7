import { afterAll, describe, expect, it } from "vitest";
import { putSubscription } from "../../src/ledger/plans/subscriptions.js";
import { runRenewals } from "../../src/ledger/plans/run.js";
import { RENEWAL_CLAIM_LEASE_MS, renewDueSubscriptions, startRenewalScheduler } from "../../src/ledger/plans/scheduler.js";
import { createHarness, TestClock, uniqueId } from "../support/harness.js";

const ACCOUNTS = 1000;
const clock = new TestClock();
// Two "processes": each its own pool and ledger context over the same database, on the same clock.
const first = createHarness({ pool_max: 20, clock });
const second = createHarness({ pool_max: 20, clock });
afterAll(async () => {
  await first.close();
  await second.close();
});

async function createPlan(): Promise<string> {
  const id = uniqueId("plan");
  const response = await first.post("/v1/plans", { id, name: "Professional", credits: "2000", period: 30 });
  expect(response.status).toBe(201);
  return id;
}

/** Subscribes `count` new accounts to `plan_id`, anchored an hour ago, so all are due at once. */
async function dueAccounts(plan_id: string, count: number): Promise<string[]> {
  const accounts = Array.from({ length: count }, () => uniqueId("renew"));
  await first.database.query("INSERT INTO accounts (id) SELECT unnest($1::text[])", [accounts]);
  const anchor = new Date(clock.now().getTime() - 3_600_000);
  const queue = [...accounts];
  const worker = async () => {
    for (let account = queue.pop(); account !== undefined; account = queue.pop()) {
      await putSubscription(first.ledger, account, { plan_id, anchor });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return accounts;
}

async function waitUntil(condition: () => Promise<boolean>, timeout_ms: number): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("2. renewals with several processes", () => {
  it("two schedulers and an operator run over 1,000 due accounts grant exactly 1,000 times", async () => {
    const plan_id = await createPlan();
    const accounts = await dueAccounts(plan_id, ACCOUNTS);
    const schedulers = [
      startRenewalScheduler(first.ledger, { interval_ms: 1 }),
      startRenewalScheduler(second.ledger, { interval_ms: 1 }),
    ];
    // An operator's run takes no claims: it races the schedulers on the row locks alone.
    const operator = runRenewals(second.ledger, { plan_id, limit: 1000, dry_run: false });
    const stillDue = async () =>
      (
        await first.database.query<{ due: string }>(
          "SELECT count(*)::text AS due FROM plan_subscriptions WHERE plan_id = $1 AND next_renewal_at <= $2::timestamptz",
          [plan_id, clock.now().toISOString()],
        )
      )[0]!.due;
    await waitUntil(async () => (await stillDue()) === "0", 180_000);
    const operatorResult = await operator;
    await Promise.all(schedulers.map((scheduler) => scheduler.stop()));
    expect(operatorResult.failed).toBe(0);

    const [counts] = await first.database.query<{ grants: string; accounts: string }>(
      `SELECT count(*)::text AS grants, count(DISTINCT account_id)::text AS accounts FROM entries
       WHERE account_id = ANY($1::text[]) AND type = 'grant'`,
      [accounts],
    );
    expect(counts).toEqual({ grants: String(ACCOUNTS), accounts: String(ACCOUNTS) });
    // Every row points at its one grant, is queued for the period's end and holds no claim.
    const [rows] = await first.database.query<{ pointing: string; claimed: string }>(
      `SELECT count(*) FILTER (WHERE subscription.granted_entry_id = entry.id)::text AS pointing,
              count(*) FILTER (WHERE subscription.claim_expires_at IS NOT NULL)::text AS claimed
       FROM plan_subscriptions AS subscription
       JOIN entries AS entry ON entry.account_id = subscription.account_id AND entry.type = 'grant'
       WHERE subscription.plan_id = $1 AND subscription.next_renewal_at = subscription.granted_period_end`,
      [plan_id],
    );
    expect(rows).toEqual({ pointing: String(ACCOUNTS), claimed: "0" });
  });

  it("a claim left by a process that died delays its renewal until the lease lapses, and no longer", async () => {
    const plan_id = await createPlan();
    const [account] = await dueAccounts(plan_id, 1);
    // A claimer that took the row and died before renewing it.
    await first.database.query("UPDATE plan_subscriptions SET claim_expires_at = $2::timestamptz WHERE account_id = $1", [
      account,
      new Date(clock.now().getTime() + RENEWAL_CLAIM_LEASE_MS).toISOString(),
    ]);
    await renewDueSubscriptions(second.ledger);
    const grants = async () =>
      (await first.database.query("SELECT 1 FROM entries WHERE account_id = $1 AND type = 'grant'", [account])).length;
    expect(await grants()).toBe(0);
    clock.advance(RENEWAL_CLAIM_LEASE_MS + 1);
    await renewDueSubscriptions(second.ledger);
    expect(await grants()).toBe(1);
  });
});
