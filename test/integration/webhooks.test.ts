import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { refusedAddress } from "../../src/webhooks/address-guard.js";
import { claimForEndpoint, recordAttempt } from "../../src/webhooks/outbox.js";
import { retryDelayMs } from "../../src/webhooks/schedule.js";
import { databaseSecretBox } from "../../src/webhooks/secret-box.js";
import { outboxPolicy, runWebhooksOnce, type WebhookWorkerOptions } from "../../src/webhooks/worker.js";
import { createHarness, TestClock, uniqueId, type Harness } from "../support/harness.js";
import { startWebhookReceiver, type ReceivedWebhook, type WebhookReceiver } from "../support/webhook-receiver.js";

const clock = new TestClock();
const harness = createHarness({ clock });
const box = databaseSecretBox(harness.database);
let receiver: WebhookReceiver;
const created: string[] = [];

/** Jitter factor 1: the schedule is exactly 5 s, 15 s, 45 s, … */
const OPTIONS: WebhookWorkerOptions = {
  allow_private_networks: true,
  attempt_timeout_ms: 5000,
  in_flight_per_endpoint_max: 16,
  concurrency_max: 64,
  poll_interval_ms: 1000,
  retry_base_ms: 5000,
  random: () => 0.5,
};

beforeAll(async () => {
  receiver = await startWebhookReceiver();
});
beforeEach(() => {
  // Receivers check webhook-timestamp against their own clock: each test starts at the real time.
  clock.set(new Date());
});
afterEach(async () => {
  // Endpoints see every account's events; one left behind would keep receiving the next tests' events.
  for (const id of created.splice(0)) await harness.request("DELETE", `/v1/webhook-endpoints/${id}`);
  receiver.respond = () => 200;
});
afterAll(async () => {
  await receiver.close();
  await harness.close();
});

async function createEndpoint(body: Record<string, unknown> = {}, target: WebhookReceiver = receiver) {
  const response = await harness.post("/v1/webhook-endpoints", { url: target.url, events: ["*"], ...body });
  expect(response.status).toBe(201);
  created.push(response.body.id);
  return response.body as { id: string; secret: string; url: string; events: string[] };
}

/** A balance_depleted event for a new account: a read that finds it at zero. */
async function depletedEvent(): Promise<string> {
  const account = await harness.createAccount();
  expect((await harness.get(`/v1/balances/${account}`)).body.balance).toBe("0");
  return account;
}

/**
 * Passes until nothing is due at the current clock, or until `until` holds. Endpoints see every account's events,
 * so other test files running at the same time add deliveries of their own; those are delivered too, and the cap
 * on passes keeps a busy suite from holding a test forever.
 */
async function deliverDue(options: WebhookWorkerOptions = OPTIONS, context = harness.ledger, until?: () => boolean) {
  for (let pass = 0; pass < 200; pass++) {
    const result = await runWebhooksOnce(context, box, options);
    if (until ? until() : result.attempted === 0) return;
  }
  if (until) throw new Error("the awaited deliveries did not arrive within 200 passes");
}

const forAccount = (account: string) => receiver.received.filter((request) => request.json.data.account_id === account);

async function deliveriesOf(endpoint_id: string, query = "") {
  const response = await harness.get(`/v1/webhook-endpoints/${endpoint_id}/deliveries${query}`);
  expect(response.status).toBe(200);
  return response.body as { deliveries: any[]; next_cursor: string | null };
}

/**
 * The first delivery in the endpoint's log that `matches`, paging through it: other test files' events reach the
 * endpoint too, and can push the one sought off the first page.
 */
async function findDelivery(endpoint_id: string, matches: (delivery: any) => boolean) {
  let query = "?limit=500";
  for (let page = 0; page < 20; page++) {
    const { deliveries, next_cursor } = await deliveriesOf(endpoint_id, query);
    const found = deliveries.find(matches);
    if (found || next_cursor === null) return found;
    query = `?limit=500&cursor=${encodeURIComponent(next_cursor)}`;
  }
  return undefined;
}

/** The delivery of `account`'s (only) event to the endpoint, found by its event id among other tests' deliveries. */
async function deliveryOf(endpoint_id: string, account: string) {
  const [event] = await harness.database.query<{ id: string }>("SELECT id::text AS id FROM balance_events WHERE account_id = $1", [account]);
  return findDelivery(endpoint_id, (item) => item.event_id === event!.id);
}

function verify(secret: string, request: ReceivedWebhook): unknown {
  return new Webhook(secret).verify(request.body, request.headers as Record<string, string>);
}

describe("webhook endpoints", () => {
  it("shows the secret once, keeps it encrypted, and lists, changes and deletes endpoints", async () => {
    const endpoint = await createEndpoint({ events: ["balance_restored", "balance_depleted", "balance_restored"], description: "billing" });
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(endpoint.events).toEqual(["balance_depleted", "balance_restored"]);
    const [row] = await harness.database.query<{ secret_encrypted: string }>("SELECT secret_encrypted FROM webhook_endpoints WHERE id = $1", [endpoint.id]);
    expect(row!.secret_encrypted).not.toContain(endpoint.secret.slice(6, 20));
    expect(await box.open(endpoint.id, row!.secret_encrypted)).toBe(endpoint.secret);
    // Bound to its endpoint: the same ciphertext does not open as another endpoint's.
    await expect(box.open(uniqueId(), row!.secret_encrypted)).rejects.toThrow();

    const read = await harness.get(`/v1/webhook-endpoints/${endpoint.id}`);
    expect(read.status).toBe(200);
    expect(read.body).not.toHaveProperty("secret");
    expect(read.body).toMatchObject({ url: receiver.url, description: "billing", enabled: true, disabled_reason: null });
    expect((await harness.get("/v1/webhook-endpoints")).body.items.map((item: { id: string }) => item.id)).toContain(endpoint.id);

    const patched = await harness.request("PATCH", `/v1/webhook-endpoints/${endpoint.id}`, { body: { events: ["credits_expired"], enabled: false } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ events: ["credits_expired"], enabled: false, disabled_reason: "disabled by an administrator" });
    const enabled = await harness.request("PATCH", `/v1/webhook-endpoints/${endpoint.id}`, { body: { enabled: true, description: null } });
    expect(enabled.body).toMatchObject({ enabled: true, disabled_reason: null, disabled_at: null, description: null });

    expect((await harness.request("DELETE", `/v1/webhook-endpoints/${endpoint.id}`)).status).toBe(204);
    expect((await harness.get(`/v1/webhook-endpoints/${endpoint.id}`)).body.code).toBe("webhook_endpoint_not_found");
    expect((await harness.request("DELETE", `/v1/webhook-endpoints/${endpoint.id}`)).status).toBe(404);
  });

  it("refuses bad input with 400 and writes nothing", async () => {
    const before = await harness.database.query<{ count: string }>("SELECT count(*)::text AS count FROM webhook_endpoints");
    const refused = [
      { url: "ftp://example.com/hook", events: ["*"] },
      { url: "file:///etc/passwd", events: ["*"] },
      { url: "https://user:password@example.com/hook", events: ["*"] },
      { url: "not a url", events: ["*"] },
      { url: `https://example.com/${"a".repeat(2100)}`, events: ["*"] },
      { url: "https://example.com/hook", events: [] },
      { url: "https://example.com/hook", events: ["balance_exploded"] },
      { url: "https://example.com/hook", events: ["*"], secret: "mine" },
    ];
    for (const body of refused) {
      const response = await harness.post("/v1/webhook-endpoints", body);
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(response.body.code).toBe("validation_failed");
    }
    const ghost = "0190a9f4-0000-7000-8000-000000000000";
    expect((await harness.request("PATCH", `/v1/webhook-endpoints/${ghost}`, { body: { enabled: true } })).status).toBe(404);
    expect((await harness.request("PATCH", `/v1/webhook-endpoints/${ghost}`, { body: {} })).status).toBe(400);
    expect((await harness.post(`/v1/webhook-endpoints/not-a-uuid/rotate-secret`, {})).status).toBe(400);
    const after = await harness.database.query<{ count: string }>("SELECT count(*)::text AS count FROM webhook_endpoints");
    expect(after).toEqual(before);
  });

  it("needs the admin scope", async () => {
    const endpoint = await createEndpoint();
    const writer = await harness.serviceKey(["usage:write", "credits:write", "events:read"]);
    expect((await harness.post("/v1/webhook-endpoints", { url: receiver.url, events: ["*"] }, null)).status).toBe(401);
    for (const [method, path] of [
      ["POST", "/v1/webhook-endpoints"],
      ["GET", "/v1/webhook-endpoints"],
      ["GET", `/v1/webhook-endpoints/${endpoint.id}`],
      ["PATCH", `/v1/webhook-endpoints/${endpoint.id}`],
      ["DELETE", `/v1/webhook-endpoints/${endpoint.id}`],
      ["POST", `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`],
      ["GET", `/v1/webhook-endpoints/${endpoint.id}/deliveries`],
    ] as const) {
      const response = await harness.request(method, path, { token: writer, body: method === "GET" || method === "DELETE" ? undefined : { url: receiver.url, events: ["*"] } });
      expect(response.status, `${method} ${path}`).toBe(403);
    }
    expect((await harness.get(`/v1/webhook-endpoints/${endpoint.id}`)).status).toBe(200);
  });
});

describe("delivery", () => {
  it("retries a receiver that fails three times on the backoff schedule; the fourth attempt lands, signed", async () => {
    const endpoint = await createEndpoint();
    const account = await depletedEvent();
    let failures = 0;
    receiver.respond = (request) => (request.json.data.account_id === account && failures++ < 3 ? 503 : 200);
    await deliverDue();
    expect(forAccount(account).map((request) => request.status)).toEqual([503]);
    // Not due before its backoff has passed: 5 s, then 15 s, then 45 s (jitter fixed at ×1 here).
    for (const [index, delay_ms] of [5000, 15_000, 45_000].entries()) {
      clock.advance(delay_ms - 1000);
      await deliverDue();
      expect(forAccount(account)).toHaveLength(index + 1);
      clock.advance(1000);
      await deliverDue();
      expect(forAccount(account)).toHaveLength(index + 2);
    }
    const attempts = forAccount(account);
    expect(attempts.map((request) => request.status)).toEqual([503, 503, 503, 200]);
    const event = attempts[3]!;
    expect(verify(endpoint.secret, event)).toEqual(event.json);
    expect(event.json).toMatchObject({ type: "balance_depleted", data: { type: "balance_depleted", account_id: account, balance: "0" } });
    expect(new Set(attempts.map((request) => request.headers["webhook-id"]))).toEqual(new Set([event.json.data.id]));
    expect(() => verify("whsec_" + Buffer.alloc(32, 1).toString("base64"), event)).toThrow();
    expect(() => new Webhook(endpoint.secret).verify(event.body.replace('"0"', '"1"'), event.headers as Record<string, string>)).toThrow();

    const delivery = await findDelivery(endpoint.id, (item) => item.event_id === event.json.data.id);
    expect(delivery).toMatchObject({ status: "succeeded", attempts: 4, last_response_status: 200, next_attempt_at: null, last_error: null });
    expect(delivery.attempt_log.map((attempt: { outcome: string; response_status: number }) => [attempt.outcome, attempt.response_status])).toEqual([
      ["failed", 503],
      ["failed", 503],
      ["failed", 503],
      ["succeeded", 200],
    ]);
    expect(delivery.attempt_log[0].response_excerpt).toBe("no thanks (503)");
  });

  it("delivers only the subscribed types, with the stream's fields", async () => {
    const endpoint = await createEndpoint({ events: ["balance_restored"] });
    const account = await depletedEvent();
    await harness.post("/v1/credits", { account_id: account, type: "grant", amount: "2.5", idempotency_key: uniqueId("k") });
    await deliverDue();
    const received = forAccount(account);
    expect(received.map((request) => request.json.type)).toEqual(["balance_restored"]);
    expect(received[0]!.json.data).toMatchObject({ type: "balance_restored", account_id: account, balance: "2.5" });
    expect(received[0]!.json.timestamp).toBe(received[0]!.json.data.time);
    expect(verify(endpoint.secret, received[0]!)).toBeTruthy();
  });

  it("refuses an endpoint on 127.0.0.1 unless private networks are allowed", async () => {
    const endpoint = await createEndpoint();
    const account = await depletedEvent();
    await deliverDue({ ...OPTIONS, allow_private_networks: false });
    expect(forAccount(account)).toHaveLength(0);
    const delivery = await deliveryOf(endpoint.id, account);
    expect(delivery.status).toBe("pending");
    expect(delivery.last_error).toMatch(/^refused: 127\.0\.0\.1 is a loopback, private/);
    expect(delivery.attempt_log[0]).toMatchObject({ outcome: "failed", response_status: null });

    // By name too: "localhost" is refused after DNS resolution.
    await harness.request("PATCH", `/v1/webhook-endpoints/${endpoint.id}`, { body: { url: receiver.url.replace("127.0.0.1", "localhost") } });
    clock.advance(60_000);
    await deliverDue({ ...OPTIONS, allow_private_networks: false });
    expect(forAccount(account)).toHaveLength(0);
    const again = await deliveryOf(endpoint.id, account);
    expect(again.last_error).toMatch(/^refused: (127\.0\.0\.1|::1) is a loopback/);

    await harness.request("PATCH", `/v1/webhook-endpoints/${endpoint.id}`, { body: { url: receiver.url } });
    clock.advance(10 * 60_000);
    await deliverDue({ ...OPTIONS, allow_private_networks: true });
    expect(forAccount(account).map((request) => request.status)).toEqual([200]);
  });

  it("ends an attempt at its timeout, and reads a large answer only up to the cap", async () => {
    const endpoint = await createEndpoint();
    const silent = await depletedEvent();
    // This receiver never answers the first account's delivery.
    receiver.respond = (request) => (request.json.data.account_id === silent ? new Promise<number>(() => {}) : 200);
    await deliverDue({ ...OPTIONS, attempt_timeout_ms: 300 });
    const delivery = await deliveryOf(endpoint.id, silent);
    expect(delivery).toMatchObject({ status: "pending", last_error: "timed out after 300 ms", last_response_status: null });

    // A receiver that answers 500 with 1 MiB and keeps the connection open: tally keeps 256 characters and does not
    // wait for the rest.
    const server = createServer((_request, response) => {
      response.writeHead(500, { "content-type": "text/plain" });
      response.write("x".repeat(1 << 20));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      await harness.request("DELETE", `/v1/webhook-endpoints/${endpoint.id}`);
      const large = await createEndpoint({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/large` });
      const account = await depletedEvent();
      await deliverDue({ ...OPTIONS, attempt_timeout_ms: 5000 });
      const answer = await deliveryOf(large.id, account);
      expect(answer.last_response_status).toBe(500);
      expect(answer.attempt_log[0].response_excerpt).toBe("x".repeat(256));
      expect(answer.attempt_log[0].error).toBe("the receiver answered 500");
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("classifies addresses: loopback, private, link-local and metadata refused, public allowed", () => {
    for (const address of ["127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "::", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1"]) {
      expect(refusedAddress(address), address).toBeDefined();
    }
    for (const address of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "172.32.0.1"]) {
      expect(refusedAddress(address), address).toBeUndefined();
    }
  });

  it("signs with the previous secret too for a day after a rotation", async () => {
    const endpoint = await createEndpoint();
    const rotated = await harness.post(`/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, {});
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(endpoint.secret);
    const account = await depletedEvent();
    await deliverDue();
    const [request] = forAccount(account);
    expect(String(request!.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    expect(verify(rotated.body.secret, request!)).toBeTruthy();
    expect(verify(endpoint.secret, request!)).toBeTruthy();

    clock.advance(24 * 60 * 60 * 1000 + 1000);
    const later = await depletedEvent();
    await deliverDue();
    const [next] = forAccount(later);
    const signatures = String(next!.headers["webhook-signature"]).split(" ");
    const signedAt = new Date(Number(next!.headers["webhook-timestamp"]) * 1000);
    expect(signatures).toEqual([new Webhook(rotated.body.secret).sign(String(next!.headers["webhook-id"]), signedAt, next!.body)]);
  });

  it("disables an endpoint that failed for 24 hours, says so, and resumes when enabled", async () => {
    clock.set(new Date());
    const endpoint = await createEndpoint();
    const account = await depletedEvent();
    // Every delivery fails, other tests' included: one success would end the endpoint's run of failures.
    receiver.respond = () => 500;
    await deliverDue();
    for (let hour = 0; hour < 25; hour++) {
      clock.advance(60 * 60 * 1000);
      await deliverDue();
    }
    const read = (await harness.get(`/v1/webhook-endpoints/${endpoint.id}`)).body;
    expect(read.enabled).toBe(false);
    expect(read.disabled_reason).toMatch(/^every attempt failed for 24 hours \(since .*\); last error: the receiver answered 500$/);
    const delivery = await deliveryOf(endpoint.id, account);
    // Our delivery's last attempt falls exactly 24 h after it was made. Other test files' events reach this endpoint
    // too (every endpoint gets every event), and one of them can start the run of failures a moment earlier, so the
    // endpoint may be disabled just before that last attempt: the delivery is then left pending, never sent.
    expect(["failed", "pending"]).toContain(delivery.status);
    expect(delivery.attempts).toBeGreaterThan(8);
    expect(delivery.attempts).toBeLessThan(20);

    // Disabled: nothing new is fanned out or sent.
    const quiet = await depletedEvent();
    clock.advance(60_000);
    await deliverDue();
    expect(forAccount(quiet)).toHaveLength(0);

    // A manual retry of the failed delivery and re-enabling: both the old and the new event arrive.
    receiver.respond = () => 200;
    const retried = await harness.post(`/v1/webhook-endpoints/${endpoint.id}/deliveries/${delivery.id}/retry`, {});
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ status: "pending", finished_at: null });
    const enabled = await harness.request("PATCH", `/v1/webhook-endpoints/${endpoint.id}`, { body: { enabled: true } });
    expect(enabled.body).toMatchObject({ enabled: true, disabled_reason: null, failing_since: null });
    await deliverDue();
    expect(forAccount(quiet).map((request) => request.status)).toEqual([200]);
    expect(forAccount(account).at(-1)!.status).toBe(200);
    clock.set(new Date());
  });

  it("a manual retry of a failed delivery makes one attempt", async () => {
    const endpoint = await createEndpoint();
    const account = await depletedEvent();
    receiver.respond = () => 500;
    await deliverDue();
    const delivery = await deliveryOf(endpoint.id, account);
    await harness.database.query("UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, finished_at = now() WHERE id = $1", [delivery.id]);
    const retried = await harness.post(`/v1/webhook-endpoints/${endpoint.id}/deliveries/${delivery.id}/retry`, {});
    expect(retried.body).toMatchObject({ status: "pending" });
    await deliverDue();
    const after = await deliveryOf(endpoint.id, account);
    expect(after).toMatchObject({ status: "failed", attempts: 2, next_attempt_at: null });
    // Two failures a moment apart are not 24 hours of failure.
    expect((await harness.get(`/v1/webhook-endpoints/${endpoint.id}`)).body).toMatchObject({ enabled: true, failing_since: expect.any(String) });
    expect((await harness.post(`/v1/webhook-endpoints/${endpoint.id}/deliveries/0190a9f4-0000-7000-8000-000000000000/retry`, {})).body.code).toBe(
      "webhook_delivery_not_found",
    );
  });

  it("pages the delivery log with signed cursors", async () => {
    const endpoint = await createEndpoint({ events: ["balance_depleted"] });
    const accounts = [await depletedEvent(), await depletedEvent(), await depletedEvent()];
    await deliverDue();
    const first = await deliveriesOf(endpoint.id, "?limit=2");
    expect(first.deliveries).toHaveLength(2);
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = await deliveriesOf(endpoint.id, `?limit=2&cursor=${encodeURIComponent(first.next_cursor!)}`);
    const seen = [...first.deliveries, ...second.deliveries].map((item) => item.event_id);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeGreaterThanOrEqual(accounts.length);
    expect(seen).toEqual([...seen].sort((left, right) => Number(BigInt(right) - BigInt(left))));
    const tampered = first.next_cursor!.slice(0, -2) + (first.next_cursor!.endsWith("AA") ? "BB" : "AA");
    expect((await harness.get(`/v1/webhook-endpoints/${endpoint.id}/deliveries?cursor=${tampered}`)).body.code).toBe("invalid_cursor");
    // A cursor from one listing does not continue another's.
    const other = await createEndpoint();
    expect((await harness.get(`/v1/webhook-endpoints/${other.id}/deliveries?limit=2&cursor=${encodeURIComponent(first.next_cursor!)}`)).status).toBe(400);
    expect((await harness.get(`/v1/webhook-endpoints/${endpoint.id}/deliveries?limit=501`)).status).toBe(400);
  });

  it("a result from a process that lost its lease is dropped", async () => {
    const endpoint = await createEndpoint();
    await depletedEvent();
    const policy = outboxPolicy(OPTIONS);
    const [first] = await claimForEndpoint(harness.ledger, endpoint.id, policy, 1);
    expect(first).toBeDefined();
    // Nothing more while the lease holds, whatever the in-flight limit leaves room for.
    expect((await claimForEndpoint(harness.ledger, endpoint.id, policy, 10)).filter((item) => item.id === first!.id)).toHaveLength(0);
    clock.advance(policy.lease_ms + 1);
    const [taken] = (await claimForEndpoint(harness.ledger, endpoint.id, policy, 10)).filter((item) => item.id === first!.id);
    expect(taken).toMatchObject({ id: first!.id, attempt: 2 });
    expect(await recordAttempt(harness.ledger, first!, { status: 200, duration_ms: 1 }, policy)).toMatchObject({ recorded: false });
    expect(await recordAttempt(harness.ledger, taken!, { status: 500, duration_ms: 1 }, policy)).toMatchObject({ recorded: true });
    const delivery = await findDelivery(endpoint.id, (item) => item.id === first!.id);
    expect(delivery).toMatchObject({ status: "pending", attempts: 2, last_response_status: 500 });
    expect(delivery.attempt_log.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(["interrupted", "failed"]);
    clock.set(new Date());
  });
});

describe("several processes", () => {
  let second: Harness;
  beforeAll(() => {
    second = createHarness({ clock });
  });
  afterAll(() => second.close());

  it("share the work: every event delivered once, never more than N in flight per endpoint", async () => {
    clock.set(new Date());
    const slow = await startWebhookReceiver();
    try {
      await createEndpoint({}, slow);
      slow.respond = () => new Promise((resolve) => setTimeout(() => resolve(200), 20));
      const accounts = await Promise.all(Array.from({ length: 12 }, () => depletedEvent()));
      const options = { ...OPTIONS, in_flight_per_endpoint_max: 2 };
      const arrived = () => slow.received.filter((request) => accounts.includes(request.json.data.account_id));
      const allArrived = () => arrived().length >= 12;
      // Two processes (two pools), each running two workers at once.
      await Promise.all([
        deliverDue(options, harness.ledger, allArrived),
        deliverDue(options, harness.ledger, allArrived),
        deliverDue(options, second.ledger, allArrived),
        deliverDue(options, second.ledger, allArrived),
      ]);
      await deliverDue(options, harness.ledger);
      const mine = arrived();
      expect(mine).toHaveLength(12);
      expect(new Set(mine.map((request) => request.headers["webhook-id"])).size).toBe(12);
      expect(slow.in_flight_max).toBeLessThanOrEqual(2);
      expect(slow.in_flight_max).toBe(2);
    } finally {
      await slow.close();
    }
  });
});

describe("the retry schedule", () => {
  it("grows threefold from the base, caps at 3 h, and jitters within ±25 %", () => {
    expect([1, 2, 3, 4].map((attempt) => retryDelayMs(attempt, 5000, () => 0.5))).toEqual([5000, 15_000, 45_000, 135_000]);
    expect(retryDelayMs(20, 5000, () => 0.5)).toBe(3 * 60 * 60 * 1000);
    expect(retryDelayMs(1, 5000, () => 0)).toBe(3750);
    expect(retryDelayMs(1, 5000, () => 0.999999)).toBe(6250);
  });
});
