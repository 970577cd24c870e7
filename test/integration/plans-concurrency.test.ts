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

/**
 * Subscribes `count` new accounts to `plan_id`, anchored an hour ago, so all are due at once: one through
 * putSubscription, the rest as the same rows written in one statement (the race under test is the renewal's).
 */
async function dueAccounts(plan_id: string, count: number): Promise<string[]> {
  const accounts = Array.from({ length: count }, () => uniqueId("renew"));
  await first.database.query("INSERT INTO accounts (id) SELECT unnest($1::text[])", [accounts]);
  const anchor = new Date(clock.now().getTime() - 3_600_000);
  const subscribed = await putSubscription(first.ledger, accounts[0]!, { plan_id, anchor });
  expect(subscribed.subscription.next_renewal_at).toBe(anchor.toISOString());
  await first.database.query(
    `INSERT INTO plan_subscriptions (account_id, plan_id, anchor, status, next_renewal_at, created_at, updated_at)
     SELECT account_id, $2, $3::timestamptz, 'active', $3::timestamptz, now(), now() FROM unnest($1::text[]) AS account_id`,
    [accounts.slice(1), plan_id, anchor.toISOString()],
  );
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
    try {
      // An operator's run takes no claims: it races the schedulers on the row locks alone.
      const operator = runRenewals(second.ledger, { plan_id, limit: 1000, dry_run: false });
      const stillDue = async () =>
        (
          await first.database.query<{ due: string }>(
            "SELECT count(*)::text AS due FROM plan_subscriptions WHERE plan_id = $1 AND next_renewal_at <= $2::timestamptz",
            [plan_id, clock.now().toISOString()],
          )
        )[0]!.due;
      await waitUntil(async () => (await stillDue()) === "0", 500_000);
      expect((await operator).failed).toBe(0);
    } finally {
      // Stopped whatever happened, so a failure here cannot leave schedulers running into the next test.
      await Promise.all(schedulers.map((scheduler) => scheduler.stop()));
    }

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
    // Minutes on a loaded 2-core machine shared with other suites; the bound is the wait above, not a timing claim.
  }, 600_000);

  it("a scheduler stopped mid-wave finishes the batch it holds and leaves no claim behind", async () => {
    const plan_id = await createPlan();
    const accounts = await dueAccounts(plan_id, 300);
    const scheduler = startRenewalScheduler(first.ledger, { interval_ms: 1 });
    const granted = async () =>
      Number(
        (
          await first.database.query<{ granted: string }>(
            "SELECT count(*)::text AS granted FROM entries WHERE account_id = ANY($1::text[]) AND type = 'grant'",
            [accounts],
          )
        )[0]!.granted,
      );
    try {
      await waitUntil(async () => (await granted()) > 0, 120_000);
    } finally {
      await scheduler.stop();
    }
    const [rows] = await first.database.query<{ claimed: string; recorded: string }>(
      `SELECT count(*) FILTER (WHERE claim_expires_at IS NOT NULL)::text AS claimed,
              count(*) FILTER (WHERE granted_entry_id IS NOT NULL)::text AS recorded
       FROM plan_subscriptions WHERE plan_id = $1`,
      [plan_id],
    );
    // Every claimed account was renewed and released before stop() returned, and every grant is recorded.
    expect(rows!.claimed).toBe("0");
    expect(Number(rows!.recorded)).toBe(await granted());
  }, 300_000);

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
