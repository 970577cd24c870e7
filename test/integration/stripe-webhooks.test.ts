import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { canonicalNumeric } from "../../src/ledger/core/amount.js";
import { createHarness, STRIPE_WEBHOOK_SECRET, uniqueId, type Harness } from "../support/harness.js";
import { chargeRefunded, checkoutSessionCompleted, paymentIntentSucceeded, stripeEvent, stripeSignature } from "../support/stripe.js";

const harness = createHarness();
afterAll(() => harness.close());

function send(payload: string, options: { secret?: string; timestamp?: number; signature?: string | null; on?: Harness } = {}) {
  const signature =
    options.signature === null ? undefined : (options.signature ?? stripeSignature(payload, options.secret ?? STRIPE_WEBHOOK_SECRET, options.timestamp));
  return (options.on ?? harness).request("POST", "/webhooks/stripe", {
    body: payload,
    token: null,
    headers: { "content-type": "application/json", ...(signature === undefined ? {} : { "stripe-signature": signature }) },
  });
}

const paymentIntent = () => `pi_test_${randomBytes(8).toString("hex")}`;
const eventIdOf = (payload: string) => (JSON.parse(payload) as { id: string }).id;

async function balanceOf(account_id: string): Promise<string> {
  const response = await harness.get(`/v1/balances/${account_id}`);
  expect(response.status).toBe(200);
  return response.body.balance;
}

async function entriesOf(account_id: string): Promise<{ type: string; amount: string; idempotency_key: string; original_entry_id?: string }[]> {
  const rows = await harness.database.query<{ type: string; amount: string; idempotency_key: string; original_entry_id: string | null }>(
    "SELECT type, amount::text AS amount, idempotency_key, original_entry_id::text AS original_entry_id FROM entries WHERE account_id = $1 ORDER BY seq",
    [account_id],
  );
  return rows.map((row) => ({ type: row.type, amount: canonicalNumeric(row.amount), idempotency_key: row.idempotency_key, ...(row.original_entry_id ? { original_entry_id: row.original_entry_id } : {}) }));
}

async function recorded(event_id: string) {
  const [row] = await harness.database.query<{ outcome: string; account_id: string | null }>(
    "SELECT outcome, account_id FROM stripe_events WHERE id = $1",
    [event_id],
  );
  return row;
}

describe("POST /webhooks/stripe: payments", () => {
  it("payment_intent.succeeded and checkout.session.completed for one payment make one purchase, keyed by the payment intent", async () => {
    const account = await harness.createAccount();
    const pi = paymentIntent();
    const succeeded = await send(paymentIntentSucceeded({ payment_intent: pi, account_id: account, amount: 2500 }));
    expect(succeeded.status).toBe(200);
    expect(succeeded.body).toMatchObject({ received: true, outcome: "credited", entry_id: expect.any(String) });
    const completed = await send(checkoutSessionCompleted({ payment_intent: pi, account_id: account, amount: 2500 }));
    expect(completed.status).toBe(200);
    expect(completed.body).toEqual({ received: true, outcome: "already_credited", entry_id: succeeded.body.entry_id });
    expect(await entriesOf(account)).toEqual([{ type: "purchase", amount: "25", idempotency_key: pi }]);
    expect(await balanceOf(account)).toBe("25");
  });

  it("the two events arriving together, in either order, still make one purchase", async () => {
    const account = await harness.createAccount();
    const pi = paymentIntent();
    const payloads = [
      checkoutSessionCompleted({ payment_intent: pi, account_id: account, amount: 999 }),
      paymentIntentSucceeded({ payment_intent: pi, account_id: account, amount: 999 }),
    ];
    // Each event twice, as Stripe redelivers: four requests, one purchase.
    const answers = await Promise.all([...payloads, ...payloads].map((payload) => send(payload)));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    expect(answers.filter((answer) => answer.body.outcome === "credited")).toHaveLength(1);
    expect(await entriesOf(account)).toEqual([{ type: "purchase", amount: "9.99", idempotency_key: pi }]);
  });

  it("converts minor units by the currency's exponent at the configured rate, exactly", async () => {
    const rated = createHarness({ stripe: { webhook_secret: STRIPE_WEBHOOK_SECRET, credits_per_unit_nanos: 2_500_000_000n } });
    try {
      const account = await rated.createAccount();
      const yen = paymentIntent();
      const dinar = paymentIntent();
      expect((await send(paymentIntentSucceeded({ payment_intent: yen, account_id: account, amount: 1234, currency: "jpy" }), { on: rated })).status).toBe(200);
      expect((await send(paymentIntentSucceeded({ payment_intent: dinar, account_id: account, amount: 5125, currency: "KWD" }), { on: rated })).status).toBe(200);
      // 1234 JPY × 2.5 = 3085; 5.125 KWD × 2.5 = 12.8125.
      expect((await entriesOf(account)).map((entry) => entry.amount)).toEqual(["3085", "12.8125"]);
    } finally {
      await rated.close();
    }
  });

  it("an unpaid checkout session credits nothing", async () => {
    const account = await harness.createAccount();
    const payload = checkoutSessionCompleted({ payment_intent: paymentIntent(), account_id: account, amount: 500, paid: false });
    expect((await send(payload)).body).toMatchObject({ outcome: "not_paid" });
    expect(await entriesOf(account)).toEqual([]);
  });

  it("an unknown or missing account is answered 200, recorded, and credits nothing", async () => {
    const missing = uniqueId("nobody");
    const unknown = paymentIntentSucceeded({ payment_intent: paymentIntent(), account_id: missing, amount: 100 });
    const answer = await send(unknown);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ received: true, outcome: "unknown_account" });
    expect(await recorded(eventIdOf(unknown))).toEqual({ outcome: "unknown_account", account_id: missing });
    const unnamed = paymentIntentSucceeded({ payment_intent: paymentIntent(), amount: 100 });
    expect((await send(unnamed)).body.outcome).toBe("unknown_account");
    expect(await recorded(eventIdOf(unnamed))).toEqual({ outcome: "unknown_account", account_id: null });
    const [counted] = await harness.database.query<{ count: string }>("SELECT COUNT(*)::text AS count FROM entries WHERE account_id = $1", [missing]);
    expect(counted?.count).toBe("0");
  });

  it("other event types are answered 200 and ignored", async () => {
    const payload = stripeEvent("customer.created", { id: "cus_test", object: "customer" });
    const answer = await send(payload);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ received: true, outcome: "ignored" });
    expect(await recorded(eventIdOf(payload))).toBeUndefined();
  });
});

describe("POST /webhooks/stripe: signatures", () => {
  it("a tampered body, a wrong secret, a stale timestamp or no signature is 400 and writes nothing", async () => {
    const account = await harness.createAccount();
    const payload = paymentIntentSucceeded({ payment_intent: paymentIntent(), account_id: account, amount: 1000 });
    const tampered = payload.replace('"amount_received":1000', '"amount_received":9000');
    expect(tampered).not.toBe(payload);
    const attempts = [
      // Signed for the original body, sent with another.
      await send(tampered, { signature: stripeSignature(payload, STRIPE_WEBHOOK_SECRET) }),
      await send(payload, { secret: "whsec_someone_else_0123456789abcdef" }),
      // The library's tolerance is 300 s.
      await send(payload, { timestamp: Math.floor(Date.now() / 1000) - 301 }),
      await send(payload, { signature: null }),
      await send(payload, { signature: "t=1,v1=00" }),
    ];
    for (const attempt of attempts) {
      expect(attempt.status).toBe(400);
      expect(attempt.body).toMatchObject({ code: "invalid_signature" });
      expect(attempt.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
    expect(await entriesOf(account)).toEqual([]);
    expect(await recorded(eventIdOf(payload))).toBeUndefined();
    // Inside the tolerance the same payload is accepted: the refusals above were about the signature.
    expect((await send(payload, { timestamp: Math.floor(Date.now() / 1000) - 250 })).body.outcome).toBe("credited");
  });

  it("a signed body that is not JSON is 400 invalid_json", async () => {
    const answer = await send("{not json");
    expect(answer.status).toBe(400);
    expect(answer.body.code).toBe("invalid_json");
  });

  it("answers 404 when STRIPE_WEBHOOK_SECRET is not set", async () => {
    const unconfigured = createHarness({ stripe: null });
    try {
      const payload = paymentIntentSucceeded({ payment_intent: paymentIntent(), account_id: "org_1", amount: 100 });
      const answer = await send(payload, { on: unconfigured });
      expect(answer.status).toBe(404);
      expect(answer.body.code).toBe("not_found");
    } finally {
      await unconfigured.close();
    }
  });

  it("needs no bearer token, and a bearer token does not replace the signature", async () => {
    const payload = paymentIntentSucceeded({ payment_intent: paymentIntent(), account_id: "org_1", amount: 100 });
    const answer = await harness.request("POST", "/webhooks/stripe", { body: payload, headers: { "content-type": "application/json" } });
    expect(answer.status).toBe(400);
    expect(answer.body.code).toBe("invalid_signature");
  });
});

describe("POST /webhooks/stripe: refunds", () => {
  async function paidAccount(amount: number) {
    const account = await harness.createAccount();
    const pi = paymentIntent();
    const credited = await send(paymentIntentSucceeded({ payment_intent: pi, account_id: account, amount }));
    expect(credited.body.outcome).toBe("credited");
    return { account, pi, purchase: credited.body.entry_id as string };
  }

  it("charge.refunded reverses the purchase by the running total: repeats and late reports reverse nothing more", async () => {
    const { account, pi, purchase } = await paidAccount(5000);
    const first = chargeRefunded({ payment_intent: pi, amount: 5000, amount_refunded: 1000 });
    expect((await send(first)).body.outcome).toBe("reversed");
    expect(await balanceOf(account)).toBe("40");
    // The same event redelivered, and a new event with the same total: nothing more.
    expect((await send(first)).body.outcome).toBe("nothing_to_reverse");
    expect((await send(chargeRefunded({ payment_intent: pi, amount: 5000, amount_refunded: 1000 }))).body.outcome).toBe("nothing_to_reverse");
    expect((await send(chargeRefunded({ payment_intent: pi, amount: 5000, amount_refunded: 3500 }))).body.outcome).toBe("reversed");
    // A report of an older total arriving late.
    expect((await send(chargeRefunded({ payment_intent: pi, amount: 5000, amount_refunded: 2000 }))).body.outcome).toBe("nothing_to_reverse");
    expect(await balanceOf(account)).toBe("15");
    const reversals = (await entriesOf(account)).filter((entry) => entry.type === "reversal");
    expect(reversals.map((entry) => [entry.amount, entry.original_entry_id])).toEqual([
      ["10", purchase],
      ["25", purchase],
    ]);
  });

  it("concurrent reports of different totals reverse the highest total exactly once", async () => {
    const { account, pi } = await paidAccount(10_000);
    const totals = [1000, 4000, 2500, 4000, 7500, 1000, 7500, 6000];
    const answers = await Promise.all(totals.map((total) => send(chargeRefunded({ payment_intent: pi, amount: 10_000, amount_refunded: total }))));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    const reversed = (await entriesOf(account)).filter((entry) => entry.type === "reversal");
    const sum = reversed.reduce((total, entry) => total + Number(entry.amount) * 100, 0);
    expect(sum).toBe(7500);
    expect(await balanceOf(account)).toBe("25");
  });

  it("a full refund of a spent balance is reversed anyway (the money has gone back), and never beyond the purchase", async () => {
    const { account, pi } = await paidAccount(1000);
    expect((await harness.post("/v1/usage", { account_id: account, amount: "8", idempotency_key: uniqueId("use") })).status).toBe(201);
    expect((await send(chargeRefunded({ payment_intent: pi, amount: 1000, amount_refunded: 1000 }))).body.outcome).toBe("reversed");
    expect(await balanceOf(account)).toBe("-8");
  });

  it("a refund of a payment tally never credited is answered 200 and recorded", async () => {
    const payload = chargeRefunded({ payment_intent: paymentIntent(), amount: 100, amount_refunded: 100 });
    const answer = await send(payload);
    expect(answer.status).toBe(200);
    expect(answer.body.outcome).toBe("unknown_payment");
    expect((await recorded(eventIdOf(payload)))?.outcome).toBe("unknown_payment");
  });
});
