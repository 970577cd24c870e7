import Stripe from "stripe";
import { TallyError } from "../../errors.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import { handleStripeEvent, type StripeEvent, type StripeSettings } from "../../payments/stripe/handle.js";
import { createRouter } from "../router.js";
import { stripeWebhookRoute } from "./stripe-webhooks.routes.js";

/**
 * POST /webhooks/stripe: outside bearer auth; Stripe's signature is the authentication. The raw bytes are verified
 * with the official library (stripe.webhooks.constructEvent, its default tolerance of 300 s, judged by the ledger
 * clock) before anything is parsed; a bad or stale signature is 400 and writes nothing.
 */
export function stripeWebhookRoutes(deps: { ledger: LedgerContext; stripe: StripeSettings | undefined }) {
  const { ledger, stripe } = deps;
  return createRouter().openapi(stripeWebhookRoute, async (c) => {
    if (!stripe) throw new TallyError("not_found", "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET is not set)");
    const signature = c.req.valid("header")["stripe-signature"];
    if (signature === undefined) throw new TallyError("invalid_signature", "the Stripe-Signature header is missing");
    const raw = Buffer.from(await c.req.arrayBuffer());
    let event: StripeEvent;
    try {
      event = Stripe.webhooks.constructEvent(
        raw,
        signature,
        stripe.webhook_secret,
        undefined,
        undefined,
        ledger.now().getTime(),
      ) as unknown as StripeEvent;
    } catch (error) {
      if (error instanceof Stripe.errors.StripeSignatureVerificationError) {
        // The library's message, not the header or the body: neither is logged or echoed.
        throw new TallyError("invalid_signature", (error.message.split("\n")[0] ?? "").trim() || "the signature does not verify");
      }
      if (error instanceof SyntaxError) throw new TallyError("invalid_json", "the signed body is not valid JSON");
      throw error;
    }
    if (typeof event?.id !== "string" || typeof event.type !== "string" || typeof event.data !== "object" || event.data === null) {
      throw new TallyError("validation_failed", "the signed body is not a Stripe event (id, type, data)");
    }
    const handled = await handleStripeEvent(ledger, stripe, event);
    return c.json({ received: true as const, ...handled }, 200);
  });
}
