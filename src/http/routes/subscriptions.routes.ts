import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { TallyError } from "../../errors.js";
import { ELIGIBILITY_REASONS } from "../../ledger/plans/subscriptions.js";
import { allows, requireScope } from "../auth.js";
import type { AppEnv } from "../env.js";
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from "../problem.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import { AccountIdParamsSchema, ExpiresAtSchema } from "../schemas.js";
import { PlanIdSchema } from "./plans.routes.js";

/** The OpenAPI definitions of an account's subscription (src/ledger/plans/); the handlers are in subscriptions.ts. */

const PutSubscriptionSchema = z
  .strictObject({
    plan_id: PlanIdSchema,
    anchor: ExpiresAtSchema.optional().openapi({
      description:
        "Where the calendar starts (RFC 3339); default now, or the previous anchor when re-subscribing. In the past: the current " +
        "period is the one containing now, granted at once. Cannot move on an active subscription.",
      example: "2027-01-31T00:00:00Z",
    }),
  })
  .openapi("SubscriptionRequest", { example: { plan_id: "professional" } });

const PeriodSchema = z.object({ start: z.iso.datetime(), end: z.iso.datetime() });

export const SubscriptionSchema = z
  .object({
    account_id: z.string(),
    plan_id: z.string().openapi({ description: "The plan the next renewal grants." }),
    status: z.enum(["active", "canceled"]),
    anchor: z.iso.datetime(),
    current_period: PeriodSchema.nullable().openapi({ description: "The period containing now (null when canceled or not started)." }),
    next_renewal_at: z.iso.datetime().nullable(),
    eligibility: z.object({
      eligible: z.boolean().openapi({ description: "Whether a renewal now would grant." }),
      reason: z.enum(ELIGIBILITY_REASONS),
      detail: z.string(),
    }),
    last_grant: z
      .object({ entry_id: z.uuid(), plan_id: z.string(), period_start: z.iso.datetime(), period_end: z.iso.datetime() })
      .nullable(),
    created_at: z.iso.datetime(),
    canceled_at: z.iso.datetime().nullable(),
  })
  .openapi("Subscription");

const subscriptionJson = { "application/json": { schema: SubscriptionSchema } };

/** An end user may read their own subscription; a service key needs the admin scope (plans are admin business). */
const adminOrOwnAccount: MiddlewareHandler<AppEnv> = async (c, next) => {
  const principal = c.get("principal");
  if (principal.kind === "user") {
    if (principal.account_id !== c.req.param("id")) throw new TallyError("forbidden", "an end-user token can only access its own account");
  } else if (!allows(principal, "admin")) {
    throw new TallyError("forbidden", "this request needs the admin scope");
  }
  await next();
};

export const putSubscriptionRoute = createRoute({
  method: "put",
  path: "/v1/accounts/{id}/subscription",
  operationId: "putSubscription",
  summary: "Subscribe the account to a plan, or change its plan from the next renewal on",
  tags: ["plans"],
  security: BEARER_SECURITY,
  middleware: [requireScope("admin")] as const,
  request: { params: AccountIdParamsSchema, body: jsonBody(PutSubscriptionSchema) },
  responses: {
    201: { description: "Subscribed (or re-subscribed)", content: subscriptionJson },
    200: { description: "The plan changed; it applies from the next renewal", content: subscriptionJson },
    ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS, "account_not_found", "plan_not_found", "plan_archived"),
  },
});

export const getSubscriptionRoute = createRoute({
  method: "get",
  path: "/v1/accounts/{id}/subscription",
  operationId: "getSubscription",
  summary: "The account's subscription: plan, current period, next renewal, and why it is or is not eligible now",
  tags: ["plans"],
  security: BEARER_SECURITY,
  middleware: [adminOrOwnAccount] as const,
  request: { params: AccountIdParamsSchema },
  responses: {
    200: { description: "The subscription", content: subscriptionJson },
    ...errorResponses("validation_failed", ...AUTH_ERRORS, "subscription_not_found"),
  },
});

export const deleteSubscriptionRoute = createRoute({
  method: "delete",
  path: "/v1/accounts/{id}/subscription",
  operationId: "cancelSubscription",
  summary: "Cancel: no further renewals; the current period's lot keeps its expiry",
  tags: ["plans"],
  security: BEARER_SECURITY,
  middleware: [requireScope("admin")] as const,
  request: { params: AccountIdParamsSchema },
  responses: {
    200: { description: "The canceled subscription", content: subscriptionJson },
    ...errorResponses("validation_failed", ...AUTH_ERRORS, "subscription_not_found"),
  },
});
