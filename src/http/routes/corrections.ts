import type { Context } from "hono";
import { TallyError } from "../../errors.js";
import { canonicalNumeric } from "../../ledger/core/amount.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import { postAdjustment } from "../../ledger/corrections/adjustments.js";
import { refundEntry } from "../../ledger/corrections/refunds.js";
import { postTransfer } from "../../ledger/corrections/transfers.js";
import { allows, authorizeAccounts } from "../auth.js";
import type { AppEnv } from "../env.js";
import { createRouter } from "../router.js";
import { REPLAYED_HEADER, canonicalAmount } from "../schemas.js";
import { adjustmentRoute, refundRoute, transferRoute } from "./corrections.routes.js";

/** 201 for a new write, 200 with Idempotent-Replayed for a replay, as every write answers. */
function respond<Body extends object>(c: Context<AppEnv>, body: Body, replayed: boolean) {
  if (replayed) c.header(REPLAYED_HEADER, "true");
  return c.json(body, replayed ? 200 : 201);
}

/** Refunds and reversals, transfers, and adjustments (src/ledger/corrections/). */
export function correctionRoutes(deps: { ledger: LedgerContext }) {
  const { ledger } = deps;
  return createRouter()
    .openapi(refundRoute, async (c) => {
      const { entry_id } = c.req.valid("param");
      const body = c.req.valid("json");
      const result = await refundEntry(
        ledger,
        {
          entry_id,
          amount: body.amount === undefined ? undefined : canonicalAmount(body.amount),
          idempotency_key: body.idempotency_key,
          description: body.description ?? null,
          metadata: body.metadata ?? null,
          allow_overdraft: body.allow_overdraft,
        },
        (original, correction) => {
          authorizeAccounts(c, [original.account_id]);
          const scope = correction === "refund" ? "credits:write" : "debits:write";
          if (!allows(c.get("principal"), scope)) {
            throw new TallyError("forbidden", `a ${correction} of a ${original.type} needs the ${scope} scope`);
          }
        },
      );
      return respond(c, result.entry, result.replayed);
    })
    .openapi(transferRoute, async (c) => {
      const body = c.req.valid("json");
      authorizeAccounts(c, [body.from_account_id, body.to_account_id]);
      const result = await postTransfer(ledger, {
        from_account_id: body.from_account_id,
        to_account_id: body.to_account_id,
        amount: canonicalAmount(body.amount),
        idempotency_key: body.idempotency_key,
        description: body.description ?? null,
        metadata: body.metadata ?? null,
        allow_overdraft: body.allow_overdraft,
      });
      return respond(c, result.transfer, result.replayed);
    })
    .openapi(adjustmentRoute, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const shared = { account_id: id, idempotency_key: body.idempotency_key, reason: body.reason, metadata: body.metadata ?? null };
      const result = await postAdjustment(
        ledger,
        body.target_balance !== undefined
          ? { ...shared, target_balance: canonicalNumeric(body.target_balance) }
          : { ...shared, amount: canonicalNumeric(body.amount!) },
      );
      return respond(c, { ...result.entry, balance_before: result.balance_before }, result.replayed);
    });
}
