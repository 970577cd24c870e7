import { z } from "@hono/zod-openapi";
import type { LedgerContext } from "../../ledger/core/context.js";
import { captureHold, releaseHold } from "../../ledger/holds/close.js";
import { grantHold } from "../../ledger/holds/grant.js";
import { getHold, listHolds } from "../../ledger/holds/read.js";
import { priceUsage, refuseZeroCost } from "../../ledger/prices/price-usage.js";
import { authorizeAccounts } from "../auth.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import type { Signer } from "../../signing/signer.js";
import { createRouter } from "../router.js";
import { REPLAYED_HEADER, canonicalAmount } from "../schemas.js";
import { captureHoldRoute, createHoldRoute, getHoldRoute, listHoldsRoute, releaseHoldRoute } from "./holds.routes.js";

/**
 * A hold or capture names its amount, or a meter and quantities priced now by the same rule as usage (a proxy
 * holds `max_tokens` worth of output at the model's price). A zero cost is refused, as for usage.
 */
async function amountOf(
  ledger: LedgerContext,
  body: { amount?: string | undefined; meter?: string | undefined; quantities?: Record<string, number> | undefined },
): Promise<{ amount: string; priced?: { meter: string; quantities: Record<string, number>; price_version: number } }> {
  if (body.meter === undefined || body.quantities === undefined) return { amount: canonicalAmount(body.amount!) };
  const usage = refuseZeroCost(await priceUsage(ledger, { meter: body.meter, quantities: body.quantities }));
  return { amount: usage.amount, priced: { meter: usage.meter, quantities: { ...usage.quantities }, price_version: usage.price_version } };
}

const HoldCursorSchema = z.strictObject({ before_id: z.uuid() });

/**
 * Holds: the proxy reserves the worst-case cost before a call (`POST /v1/holds`), then captures the actual cost
 * when the call has finished, or releases the hold when it failed. See src/ledger/holds/ and docs/design.md §18.
 */
export function holdRoutes(deps: { ledger: LedgerContext; signer: Signer }) {
  const { ledger, signer } = deps;
  return createRouter()
    .openapi(createHoldRoute, async (c) => {
      const body = c.req.valid("json");
      authorizeAccounts(c, [body.account_id]);
      const { amount, priced } = await amountOf(ledger, body);
      const result = await grantHold(
        ledger,
        {
          account_id: body.account_id,
          amount,
          ...(priced ? { priced_from: { meter: priced.meter, quantities: priced.quantities } } : {}),
          idempotency_key: body.idempotency_key,
          expires_in_s: body.expires_in_s,
          description: body.description ?? null,
          metadata: body.metadata ?? null,
        },
        { allow_overdraft: body.allow_overdraft },
      );
      if (result.replayed) {
        c.header(REPLAYED_HEADER, "true");
        return c.json(result.hold, 200);
      }
      return c.json(result.hold, 201);
    })
    .openapi(captureHoldRoute, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const { amount, priced } = await amountOf(ledger, body);
      const result = await captureHold(
        ledger,
        id,
        { amount, description: body.description ?? null, metadata: body.metadata ?? null, ...(priced ? { priced } : {}) },
        (account_id) => authorizeAccounts(c, [account_id]),
      );
      const answer = { hold: result.hold, entry: result.entry, hold_status: result.hold_status };
      if (result.replayed) {
        c.header(REPLAYED_HEADER, "true");
        return c.json(answer, 200);
      }
      return c.json(answer, 201);
    })
    .openapi(releaseHoldRoute, async (c) => {
      const { id } = c.req.valid("param");
      const result = await releaseHold(ledger, id, (account_id) => authorizeAccounts(c, [account_id]));
      if (result.replayed) c.header(REPLAYED_HEADER, "true");
      return c.json(result.hold, 200);
    })
    .openapi(getHoldRoute, async (c) => {
      const { id } = c.req.valid("param");
      const principal = c.get("principal");
      const visible = (account_id: string) => principal.kind !== "user" || principal.account_id === account_id;
      return c.json(await getHold(ledger, id, visible), 200);
    })
    .openapi(listHoldsRoute, async (c) => {
      const { id } = c.req.valid("param");
      const { status, limit, cursor } = c.req.valid("query");
      authorizeAccounts(c, [id]);
      // The cursor is bound to the account and the status filter, so it cannot continue another listing.
      const binding = ["holds", id, status ?? null];
      const before_id = cursor === undefined ? undefined : (await decodeCursor(signer, binding, cursor, HoldCursorSchema)).before_id;
      const page = await listHolds(ledger, id, { status, limit, before_id });
      const next_cursor = page.next_before_id === undefined ? null : await encodeCursor(signer, binding, { before_id: page.next_before_id });
      return c.json({ holds: page.holds, next_cursor }, 200);
    });
}
