import { createRoute, z } from "@hono/zod-openapi";
import { errorResponses } from "../problem.js";

/** The OpenAPI definition of the Stripe webhook receiver (src/payments/stripe/); the handler is stripe-webhooks.ts. */

export const StripeWebhookAnswerSchema = z
  .object({
    received: z.literal(true),
    outcome: z.enum([
      "credited",
      "already_credited",
      "reversed",
      "nothing_to_reverse",
      "unknown_account",
      "unknown_payment",
      "not_paid",
      "zero_amount",
      "conflict",
      "malformed",
      "ignored",
    ]).openapi({ description: "What tally did. Every outcome but `ignored` is recorded with the Stripe event id." }),
    entry_id: z.uuid().optional().openapi({ description: "The purchase or reversal, when there is one." }),
  })
  .openapi("StripeWebhookAnswer");

export const stripeWebhookRoute = createRoute({
  method: "post",
  path: "/webhooks/stripe",
  operationId: "receiveStripeWebhook",
  summary: "Stripe webhook endpoint: payments become purchases, refunds become reversals",
  description:
    "Called by Stripe, not by API clients: no bearer token; the `Stripe-Signature` header is verified against " +
    "`STRIPE_WEBHOOK_SECRET` on the raw body, before it is parsed, with the Stripe library's 300 s tolerance. " +
    "The body is a Stripe event. Answers 404 when `STRIPE_WEBHOOK_SECRET` is not set.",
  tags: ["payments"],
  // No bearer token: the Stripe-Signature header authenticates the call.
  security: [],
  request: {
    headers: z.object({
      "stripe-signature": z.string().max(4096).optional().openapi({ description: "Set by Stripe: `t=…,v1=…`." }),
    }),
  },
  responses: {
    200: { description: "Received (acted on, recorded, or ignored)", content: { "application/json": { schema: StripeWebhookAnswerSchema } } },
    ...errorResponses("invalid_signature", "invalid_json", "validation_failed", "not_found", "payload_too_large"),
  },
});
