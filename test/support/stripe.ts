import Stripe from "stripe";

/** Stripe test payloads, signed as Stripe signs them (stripe.webhooks.generateTestHeaderString). */

let sequence = 0;

export function stripeEvent(type: string, object: Record<string, unknown>, id = `evt_test_${Date.now()}_${++sequence}`) {
  return JSON.stringify({ id, object: "event", api_version: "2025-01-27.acacia", type, data: { object } });
}

export function stripeSignature(payload: string, secret: string, timestamp?: number): string {
  return Stripe.webhooks.generateTestHeaderString({ payload, secret, ...(timestamp === undefined ? {} : { timestamp }) });
}

export function paymentIntentSucceeded(input: { payment_intent: string; account_id?: string; amount: number; currency?: string }) {
  return stripeEvent("payment_intent.succeeded", {
    id: input.payment_intent,
    object: "payment_intent",
    amount: input.amount,
    amount_received: input.amount,
    currency: input.currency ?? "usd",
    status: "succeeded",
    metadata: input.account_id === undefined ? {} : { tally_account_id: input.account_id },
  });
}

export function checkoutSessionCompleted(input: { payment_intent: string; account_id?: string; amount: number; currency?: string; paid?: boolean }) {
  return stripeEvent("checkout.session.completed", {
    id: `cs_test_${input.payment_intent}`,
    object: "checkout.session",
    mode: "payment",
    payment_status: input.paid === false ? "unpaid" : "paid",
    payment_intent: input.payment_intent,
    amount_total: input.amount,
    currency: input.currency ?? "usd",
    metadata: input.account_id === undefined ? {} : { tally_account_id: input.account_id },
  });
}

export function chargeRefunded(input: { payment_intent: string; amount: number; amount_refunded: number; currency?: string }) {
  return stripeEvent("charge.refunded", {
    id: `ch_test_${input.payment_intent}`,
    object: "charge",
    payment_intent: input.payment_intent,
    amount: input.amount,
    amount_refunded: input.amount_refunded,
    currency: input.currency ?? "usd",
    refunded: input.amount_refunded === input.amount,
    metadata: {},
  });
}
