import { deleteAutoTopupRule, getAutoTopupRule, putAutoTopupRule } from "../../ledger/auto-topup/rules.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import { formatNanos } from "../../ledger/core/amount.js";
import { authorizeAccounts } from "../auth.js";
import { createRouter } from "../router.js";
import { canonicalAmount } from "../schemas.js";
import { deleteAutoTopupRoute, getAutoTopupRoute, putAutoTopupRoute, thresholdNanos } from "./auto-topup.routes.js";

/**
 * Auto top-up rules (src/ledger/auto-topup/, docs/design.md §26): when the balance falls to or below the threshold,
 * tally emits one auto_topup_requested event, and the billing side posts the purchase with the request id as its
 * idempotency key.
 */
export function autoTopupRoutes(deps: { ledger: LedgerContext }) {
  const { ledger } = deps;
  return createRouter()
    .openapi(putAutoTopupRoute, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const { rule, created } = await putAutoTopupRule(ledger, id, {
        threshold: formatNanos(thresholdNanos(body.threshold)),
        amount: body.amount === undefined ? null : canonicalAmount(body.amount),
        target_balance: body.target_balance === undefined ? null : canonicalAmount(body.target_balance),
        monthly_limit: canonicalAmount(body.monthly_limit),
        enabled: body.enabled,
      });
      return c.json(rule, created ? 201 : 200);
    })
    .openapi(getAutoTopupRoute, async (c) => {
      const { id } = c.req.valid("param");
      authorizeAccounts(c, [id]);
      return c.json(await getAutoTopupRule(ledger, id), 200);
    })
    .openapi(deleteAutoTopupRoute, async (c) => {
      const { id } = c.req.valid("param");
      await deleteAutoTopupRule(ledger, id);
      return c.body(null, 204);
    });
}
