import { createRoute, z } from "@hono/zod-openapi";
import { formatNanos } from "../../ledger/core/amount.js";
import {
  BULK_BALANCE_ACCOUNTS_MAX,
  checkBalance,
  getBalanceAndAvailable,
  getBalances,
} from "../../ledger/balances/balances.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import { expiringNext } from "../../ledger/lots/expiring-next.js";
import { authorizeAccounts, requireScope } from "../auth.js";
import { priceUsage } from "../../ledger/prices/price-usage.js";
import { amountOrQuantities, meteredFields } from "./prices.schemas.js";
import { BODY_ERRORS, AUTH_ERRORS, errorResponses } from "../problem.js";
import { createRouter } from "../router.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import { AccountIdSchema, AmountSchema, AvailableSchema, BalanceSchema, amountNanos } from "../schemas.js";


const BulkQuerySchema = z.strictObject({
  account_ids: z.array(AccountIdSchema).min(1).max(BULK_BALANCE_ACCOUNTS_MAX),
});
const BulkResultSchema = z
  .object({
    balances: z.array(BalanceSchema),
    not_found: z.array(z.string()).openapi({ description: "Requested ids that are not accounts." }),
  })
  .openapi("Balances");
const CheckSchema = z
  .strictObject({ account_id: AccountIdSchema, amount: AmountSchema.optional(), ...meteredFields })
  .superRefine(amountOrQuantities)
  .openapi("BalanceCheckRequest", { example: { account_id: "org_42", meter: "gpt-x", quantities: { input_tokens: 812, output_tokens: 4096 } } });
const CheckResultSchema = z
  .object({
    account_id: z.string(),
    balance: z.string(),
    available: AvailableSchema,
    amount: z.string(),
    sufficient: z.boolean().openapi({ description: "Whether `available` (not the balance) covers the amount." }),
    deficit: z.string().openapi({ description: "How much `available` lacks; \"0\" when sufficient." }),
    meter: z.string().optional().openapi({ description: "When priced from meter and quantities: the meter." }),
    price_version: z.number().int().optional().openapi({ description: "When priced: the version `amount` was computed from." }),
  })
  .openapi("BalanceCheck");

export function balanceRoutes(deps: { ledger: LedgerContext }) {
  const { ledger } = deps;
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/balances/{account_id}",
        operationId: "getBalance",
        summary: "One account's balance",
        tags: ["balances"],
        security: BEARER_SECURITY,
        middleware: [requireScope("balances:read")] as const,
        request: { params: z.object({ account_id: AccountIdSchema.openapi({ param: { name: "account_id", in: "path" } }) }) },
        responses: {
          200: { description: "The balance", content: { "application/json": { schema: BalanceSchema } } },
          ...errorResponses("validation_failed", "account_not_found", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const { account_id } = c.req.valid("param");
        authorizeAccounts(c, [account_id]);
        const { balance, available, lots_expiring } = await getBalanceAndAvailable(ledger, account_id);
        const expiring = await expiringNext(ledger, [account_id], new Set(lots_expiring ? [account_id] : []));
        return c.json(
          { account_id, balance: formatNanos(balance), available: formatNanos(available), expiring_next: expiring.get(account_id) ?? null },
          200,
        );
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/balances/query",
        operationId: "queryBalances",
        summary: `Balances of up to ${BULK_BALANCE_ACCOUNTS_MAX} accounts in one query`,
        tags: ["balances"],
        security: BEARER_SECURITY,
        middleware: [requireScope("balances:read")] as const,
        request: { body: jsonBody(BulkQuerySchema) },
        responses: {
          200: { description: "Balances in request order", content: { "application/json": { schema: BulkResultSchema } } },
          ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const { account_ids } = c.req.valid("json");
        authorizeAccounts(c, account_ids);
        const { balances, available, missing, lots_expiring } = await getBalances(ledger, account_ids);
        const ordered = [...new Set(account_ids)].filter((id) => balances.has(id));
        const expiring = await expiringNext(ledger, ordered, lots_expiring);
        return c.json(
          {
            balances: ordered.map((account_id) => ({
              account_id,
              balance: formatNanos(balances.get(account_id)!),
              available: formatNanos(available.get(account_id)!),
              expiring_next: expiring.get(account_id) ?? null,
            })),
            not_found: missing,
          },
          200,
        );
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/balances/check",
        operationId: "checkBalance",
        summary: "Would a debit of this amount fit? (advisory; reserves nothing)",
        tags: ["balances"],
        security: BEARER_SECURITY,
        middleware: [requireScope("balances:read")] as const,
        request: { body: jsonBody(CheckSchema) },
        responses: {
          200: { description: "The check", content: { "application/json": { schema: CheckResultSchema } } },
          ...errorResponses(...BODY_ERRORS, "account_not_found", "price_not_found", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const body = c.req.valid("json");
        authorizeAccounts(c, [body.account_id]);
        if (body.meter === undefined || body.quantities === undefined) {
          return c.json(await checkBalance(ledger, body.account_id, amountNanos(body.amount!)), 200);
        }
        const usage = await priceUsage(ledger, { meter: body.meter, quantities: body.quantities });
        const check = await checkBalance(ledger, body.account_id, usage.nanos);
        return c.json({ ...check, meter: usage.meter, price_version: usage.price_version }, 200);
      },
    );
}
