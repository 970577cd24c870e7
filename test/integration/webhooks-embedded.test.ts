import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/port.js";
import { databaseSecretBox } from "../../src/webhooks/secret-box.js";
import { runWebhooksOnce, type WebhookWorkerOptions } from "../../src/webhooks/worker.js";
import { embeddedApp, openEmbeddedStore } from "../support/embedded-app.js";
import { TestClock } from "../support/harness.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

/** The same outbox on the embedded store (PGlite): one connection, the same SQL. */
let store: { database: Database; close(): Promise<void> };
let receiver: WebhookReceiver;
const clock = new TestClock();
const OPTIONS: WebhookWorkerOptions = {
  allow_private_networks: true,
  attempt_timeout_ms: 5000,
  in_flight_per_endpoint_max: 4,
  concurrency_max: 16,
  poll_interval_ms: 1000,
  random: () => 0.5,
};

beforeAll(async () => {
  store = await openEmbeddedStore("tally-webhooks");
  receiver = await startWebhookReceiver();
});
afterAll(async () => {
  await receiver.close();
  await store.close();
});

describe("webhooks on the embedded store", () => {
  it("creates an endpoint, retries a failure, delivers signed, pages the log and rotates", async () => {
    const { ledger, call } = embeddedApp(store.database, { clock });
    const box = databaseSecretBox(store.database);
    const endpoint = await call("POST", "/v1/webhook-endpoints", { url: receiver.url, events: ["balance_depleted", "balance_restored"] });
    expect(endpoint.status).toBe(201);
    let failures = 0;
    receiver.respond = () => (failures++ < 1 ? 500 : 200);
    expect((await call("POST", "/v1/accounts", { id: "acct_embedded" })).status).toBe(201);
    expect((await call("GET", "/v1/balances/acct_embedded")).body.balance).toBe("0");
    expect(await runWebhooksOnce(ledger, box, OPTIONS)).toEqual({ attempted: 1, succeeded: 0 });
    expect(await runWebhooksOnce(ledger, box, OPTIONS)).toEqual({ attempted: 0, succeeded: 0 });
    clock.advance(5000);
    expect(await runWebhooksOnce(ledger, box, OPTIONS)).toEqual({ attempted: 1, succeeded: 1 });
    const delivered = receiver.received.at(-1)!;
    expect(new Webhook(endpoint.body.secret).verify(delivered.body, delivered.headers as Record<string, string>)).toMatchObject({
      type: "balance_depleted",
      data: { account_id: "acct_embedded" },
    });

    await call("POST", "/v1/credits", { account_id: "acct_embedded", type: "grant", amount: "1", idempotency_key: "embedded-grant" });
    expect(await runWebhooksOnce(ledger, box, OPTIONS)).toEqual({ attempted: 1, succeeded: 1 });
    const page = await call("GET", `/v1/webhook-endpoints/${endpoint.body.id}/deliveries?limit=1`);
    expect(page.body.deliveries[0]).toMatchObject({ event_type: "balance_restored", status: "succeeded", attempts: 1 });
    const next = await call("GET", `/v1/webhook-endpoints/${endpoint.body.id}/deliveries?limit=1&cursor=${encodeURIComponent(page.body.next_cursor)}`);
    expect(next.body.deliveries[0]).toMatchObject({ event_type: "balance_depleted", status: "succeeded", attempts: 2 });
    expect(next.body.deliveries[0].attempt_log.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(["failed", "succeeded"]);

    const rotated = await call("POST", `/v1/webhook-endpoints/${endpoint.body.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    const retried = await call("POST", `/v1/webhook-endpoints/${endpoint.body.id}/deliveries/${page.body.deliveries[0].id}/retry`);
    expect(retried.body.status).toBe("pending");
    expect(await runWebhooksOnce(ledger, box, OPTIONS)).toEqual({ attempted: 1, succeeded: 1 });
    const again = receiver.received.at(-1)!;
    expect(new Webhook(rotated.body.secret).verify(again.body, again.headers as Record<string, string>)).toBeTruthy();
    expect((await call("DELETE", `/v1/webhook-endpoints/${endpoint.body.id}`)).status).toBe(204);
  });
});
