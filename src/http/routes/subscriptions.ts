import type { LedgerContext } from "../../ledger/core/context.js";
import { cancelSubscription, getSubscription, putSubscription } from "../../ledger/plans/subscriptions.js";
import { createRouter } from "../router.js";
import { deleteSubscriptionRoute, getSubscriptionRoute, putSubscriptionRoute } from "./subscriptions.routes.js";

/** An account's plan subscription (src/ledger/plans/; docs/design.md, "Plans and renewals"). */
export function subscriptionRoutes(deps: { ledger: LedgerContext }) {
  const { ledger } = deps;
  return createRouter()
    .openapi(putSubscriptionRoute, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const result = await putSubscription(ledger, id, {
        plan_id: body.plan_id,
        anchor: body.anchor === undefined ? undefined : new Date(body.anchor),
      });
      return c.json(result.subscription, result.created ? 201 : 200);
    })
    .openapi(getSubscriptionRoute, async (c) => {
      const { id } = c.req.valid("param");
      return c.json(await getSubscription(ledger, id), 200);
    })
    .openapi(deleteSubscriptionRoute, async (c) => {
      const { id } = c.req.valid("param");
      return c.json(await cancelSubscription(ledger, id), 200);
    });
}
