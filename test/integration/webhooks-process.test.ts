import postgres from "postgres";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { freshDatabase, startTally, type TallyProcess } from "../support/tally-process.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

/**
 * Behaviour 4 of issue 15 across crashes: real tally processes (src/main.ts) deliver from the outbox in the
 * database; each is killed with SIGKILL between attempts, and the next process carries on where it stopped.
 */
const ADMIN_KEY = "webhook-process-admin-key-0123456789abcdef";
let database: { url: string; drop: () => Promise<void> };
let sql: postgres.Sql;
let receiver: WebhookReceiver;
const processes: TallyProcess[] = [];

// Retries after about 1 s, 3 s, 9 s: long enough to kill a process between two attempts, short for a test.
const environment = () => ({
  DATABASE_URL: database.url,
  TALLY_ADMIN_KEY: ADMIN_KEY,
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
  WEBHOOK_RETRY_BASE_MS: "1000",
  WEBHOOK_POLL_INTERVAL_MS: "100",
  WEBHOOK_ATTEMPT_TIMEOUT_MS: "2000",
  EXPIRY_SWEEP_INTERVAL_MS: "0",
});

beforeAll(async () => {
  database = await freshDatabase(inject("databaseUrl"));
  sql = postgres(database.url, { max: 1, onnotice: () => {} });
  receiver = await startWebhookReceiver();
});
afterAll(async () => {
  for (const process of processes) await process.kill();
  await receiver.close();
  await sql.end();
  await database.drop();
});

async function start(): Promise<TallyProcess> {
  const process = await startTally(environment());
  processes.push(process);
  return process;
}

async function call(tally: TallyProcess, method: string, path: string, body?: unknown) {
  const response = await fetch(`${tally.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as any };
}

/** Waits until the outbox records `count` finished attempts (so a kill now falls between two attempts). */
async function finishedAttempts(count: number, timeout_ms = 30_000): Promise<number> {
  const deadline = Date.now() + timeout_ms;
  for (;;) {
    const [row] = await sql<{ count: number }[]>`SELECT count(*)::int AS count FROM webhook_delivery_attempts WHERE finished_at IS NOT NULL`;
    if (row!.count >= count) return row!.count;
    if (Date.now() > deadline) throw new Error(`only ${row!.count} attempts finished`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("webhook delivery across crashes", () => {
  it("a receiver failing three times gets the event on the fourth attempt, though tally was killed between attempts", async () => {
    let first = await start();
    const endpoint = await call(first, "POST", "/v1/webhook-endpoints", { url: receiver.url, events: ["*"] });
    expect(endpoint.status).toBe(201);
    let failures = 0;
    receiver.respond = () => (failures++ < 3 ? 500 : 200);
    expect((await call(first, "POST", "/v1/accounts", { id: "acct_crash" })).status).toBe(201);
    expect((await call(first, "GET", "/v1/balances/acct_crash")).body.balance).toBe("0"); // balance_depleted

    await finishedAttempts(1);
    await first.kill();
    const second = await start();
    await finishedAttempts(2);
    await second.kill();
    first = await start();

    const deadline = Date.now() + 40_000;
    while (!receiver.received.some((request) => request.status === 200) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(receiver.received.map((request) => request.status)).toEqual([500, 500, 500, 200]);
    const delivered = receiver.received[3]!;
    expect(new Webhook(endpoint.body.secret).verify(delivered.body, delivered.headers as Record<string, string>)).toMatchObject({
      type: "balance_depleted",
      data: { account_id: "acct_crash", balance: "0" },
    });

    // The delivery log, read from the third process, shows the four attempts. The receiver has answered before
    // tally records the answer: wait (bounded) for the record rather than race it.
    let log = await call(first, "GET", `/v1/webhook-endpoints/${endpoint.body.id}/deliveries`);
    while (log.body.deliveries?.[0]?.status === "pending" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      log = await call(first, "GET", `/v1/webhook-endpoints/${endpoint.body.id}/deliveries`);
    }
    expect(log.status).toBe(200);
    expect(log.body.deliveries).toHaveLength(1);
    expect(log.body.deliveries[0]).toMatchObject({ status: "succeeded", attempts: 4, last_response_status: 200 });
    expect(log.body.deliveries[0].attempt_log.map((attempt: { outcome: string }) => attempt.outcome)).toEqual([
      "failed",
      "failed",
      "failed",
      "succeeded",
    ]);
    // Nothing in the logs of any process quotes the secret.
    for (const process of processes) expect(process.logs.join("\n")).not.toContain(endpoint.body.secret.slice(6));
  }, 120_000);
});
