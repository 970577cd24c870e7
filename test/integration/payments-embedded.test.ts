/**
 * Stripe webhooks and auto top-up on the embedded store (PGlite), which the README's first command uses: the same
 * migrations, snapshot functions, row locks (FOR UPDATE SKIP LOCKED) and advisory locks on its single connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoTopupDetector, DETECTOR_DEFAULTS } from "../../src/ledger/auto-topup/detector.js";
import type { LedgerContext } from "../../src/ledger/core/context.js";
import { embeddedApp, openEmbeddedStore, type EmbeddedResponse } from "../support/embedded-app.js";
import { TestClock } from "../support/harness.js";
import { chargeRefunded, checkoutSessionCompleted, paymentIntentSucceeded, stripeSignature } from "../support/stripe.js";

const SECRET = "whsec_embedded_0123456789abcdef0123456789";
const clock = new TestClock(new Date("2026-12-01T12:00:00.000Z"));
let store: Awaited<ReturnType<typeof openEmbeddedStore>>;
let call: (method: string, url: string, body?: unknown) => Promise<EmbeddedResponse>;
let stripe: (payload: string) => Promise<{ status: number; body: any }>;
let ledger: LedgerContext;

beforeAll(async () => {
  store = await openEmbeddedStore("tally-payments-embedded");
  const embedded = embeddedApp(store.database, { clock, stripe: { webhook_secret: SECRET, credits_per_unit_nanos: 1_000_000_000n } });
  ({ call, ledger } = embedded);
  stripe = async (payload) => {
    // Signed at the ledger clock's time: the route judges the tolerance by it.
    const signature = stripeSignature(payload, SECRET, Math.floor(clock.now().getTime() / 1000));
    const response = await embedded.app.request("/webhooks/stripe", {
      method: "POST",
      headers: { "content-type": "application/json", "stripe-signature": signature },
      body: payload,
    });
    return { status: response.status, body: await response.json() };
  };
});

afterAll(async () => {
  await store?.close();
});

describe("payments on the embedded store", () => {
  it("a Stripe payment credits once, a refund reverses it, and auto top-up requests once per crossing", async () => {
    const account_id = "org_payments_embedded";
    expect((await call("POST", "/v1/accounts", { id: account_id })).status).toBe(201);
    const pi = "pi_embedded_1";
    const answers = await Promise.all([
      stripe(paymentIntentSucceeded({ payment_intent: pi, account_id, amount: 1000 })),
      stripe(checkoutSessionCompleted({ payment_intent: pi, account_id, amount: 1000 })),
    ]);
    expect(answers.map((answer) => answer.body.outcome).sort()).toEqual(["already_credited", "credited"]);
    expect((await call("GET", `/v1/balances/${account_id}`)).body.balance).toBe("10");

    expect((await call("PUT", `/v1/accounts/${account_id}/auto-topup`, { threshold: "5", amount: "20", monthly_limit: "50" })).status).toBe(201);
    const detector = new AutoTopupDetector(ledger, DETECTOR_DEFAULTS);
    expect(await detector.pass()).toEqual({ evaluated: 1, requested: 0 });
    expect(await detector.pass()).toEqual({ evaluated: 0, requested: 0 });

    // A refund of 6 USD: 10 → 4, at or below the threshold.
    expect((await stripe(chargeRefunded({ payment_intent: pi, amount: 1000, amount_refunded: 600 }))).body.outcome).toBe("reversed");
    expect((await stripe(chargeRefunded({ payment_intent: pi, amount: 1000, amount_refunded: 600 }))).body.outcome).toBe("nothing_to_reverse");
    expect(await detector.pass()).toEqual({ evaluated: 1, requested: 1 });
    expect((await call("POST", "/v1/usage", { account_id, amount: "1", idempotency_key: "u1" })).status).toBe(201);
    expect(await detector.pass()).toEqual({ evaluated: 1, requested: 0 });
    const rule = (await call("GET", `/v1/accounts/${account_id}/auto-topup`)).body;
    expect(rule).toMatchObject({ requested_this_month: "20", last_request: { amount: "20", balance: "4", status: "open" } });

    // Fulfilled by a Stripe payment whose payment intent id the billing side chose as the request id.
    const request_id = rule.last_request.id as string;
    expect((await call("POST", "/v1/credits", { account_id, type: "purchase", amount: "20", idempotency_key: request_id })).status).toBe(201);
    expect(await detector.pass()).toEqual({ evaluated: 1, requested: 0 });
    expect((await call("GET", `/v1/accounts/${account_id}/auto-topup`)).body.last_request.status).toBe("fulfilled");
    const events = await store.database.query<{ type: string }>(
      "SELECT type FROM balance_events WHERE account_id = $1 AND type = 'auto_topup_requested'",
      [account_id],
    );
    expect(events).toHaveLength(1);
  });
});
