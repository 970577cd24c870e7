import { z } from "@hono/zod-openapi";
import { TallyError } from "../../errors.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import { versionInForceRecord, meterPricesPage } from "../../ledger/prices/price-listing.js";
import { meterVersions, putPrice } from "../../ledger/prices/price-table.js";
import { priceUsage } from "../../ledger/prices/price-usage.js";
import type { Signer } from "../../signing/signer.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import { createRouter } from "../router.js";
import { estimateRoute, getPriceRoute, listPricesRoute, putPriceRoute } from "./prices.routes.js";

const MeterCursorSchema = z.strictObject({ after_meter: z.string() });
const VersionCursorSchema = z.strictObject({ before_version: z.number().int() });

/**
 * Prices: the versioned price table usage is priced with (src/ledger/prices/, docs/design.md §24). Writing takes the
 * admin scope; any service key reads and estimates.
 */
export function priceRoutes(deps: { ledger: LedgerContext; signer: Signer }) {
  const { ledger, signer } = deps;
  return createRouter()
    .openapi(putPriceRoute, async (c) => {
      const { meter } = c.req.valid("param");
      const body = c.req.valid("json");
      const price = await putPrice(ledger, {
        meter,
        unit_prices: body.unit_prices,
        per: body.per,
        valid_from: body.valid_from === undefined ? undefined : new Date(body.valid_from),
      });
      return c.json(price, 201);
    })
    .openapi(listPricesRoute, async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const binding = ["prices"];
      const after_meter = cursor === undefined ? undefined : (await decodeCursor(signer, binding, cursor, MeterCursorSchema)).after_meter;
      const page = await meterPricesPage(ledger, { after_meter, limit });
      const next_cursor = page.last_meter === undefined ? null : await encodeCursor(signer, binding, { after_meter: page.last_meter });
      return c.json({ prices: page.prices, next_cursor }, 200);
    })
    .openapi(getPriceRoute, async (c) => {
      const { meter } = c.req.valid("param");
      const { limit, cursor } = c.req.valid("query");
      const binding = ["price", meter];
      const before_version =
        cursor === undefined ? undefined : (await decodeCursor(signer, binding, cursor, VersionCursorSchema)).before_version;
      const versions = await meterVersions(ledger, meter, { limit: limit + 1, before_version });
      if (versions.length === 0 && before_version === undefined) throw new TallyError("not_found", `meter ${meter} has no price`);
      const shown = versions.slice(0, limit);
      const next_cursor =
        versions.length > limit ? await encodeCursor(signer, binding, { before_version: shown[shown.length - 1]!.version }) : null;
      const current = await versionInForceRecord(ledger, meter);
      return c.json({ meter, current, versions: shown, next_cursor }, 200);
    })
    .openapi(estimateRoute, async (c) => {
      const body = c.req.valid("json");
      const priced = await priceUsage(ledger, body);
      return c.json({ meter: priced.meter, quantities: priced.quantities, amount: priced.amount, price_version: priced.price_version }, 200);
    });
}
