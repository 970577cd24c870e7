import { expiringNext } from "../../ledger/lots/expiring-next.js";
import { createRoute, z } from "@hono/zod-openapi";
import { createAccount, getAccount, listAccounts } from "../../ledger/core/accounts.js";
import { getBalanceAndAvailable } from "../../ledger/balances/balances.js";
import { formatNanos } from "../../ledger/core/amount.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import type { Signer } from "../../signing/signer.js";
import { authorizeAccounts, ownAccountId, requireScope, requireServiceScope } from "../auth.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import { BODY_ERRORS, AUTH_ERRORS, errorResponses } from "../problem.js";
import { createRouter } from "../router.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import {
  AccountIdParamsSchema,
  AccountIdSchema,
  AccountSchema,
  AccountWithBalanceSchema,
  BalanceSchema,
  MetadataSchema,
  PageQuerySchema,
} from "../schemas.js";

const CreateAccountSchema = z.strictObject({ id: AccountIdSchema, metadata: MetadataSchema.optional() });
const CreateOwnAccountSchema = z.strictObject({ metadata: MetadataSchema.optional() });
const AccountCursorSchema = z.strictObject({ after_id: AccountIdSchema });
/** What an accounts cursor is bound to: this listing (it has no filters). */
export const ACCOUNTS_CURSOR_BINDING = ["accounts"];

export function accountRoutes(deps: { ledger: LedgerContext; signer: Signer }) {
  const { ledger, signer } = deps;
  return createRouter()
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/accounts",
        operationId: "createAccount",
        summary: "Create an account (or return the existing one)",
        tags: ["accounts"],
        security: BEARER_SECURITY,
        middleware: [requireScope("accounts:write")] as const,
        request: { body: jsonBody(CreateAccountSchema) },
        responses: {
          201: { description: "Created", content: { "application/json": { schema: AccountSchema } } },
          200: { description: "Already existed; returned unchanged", content: { "application/json": { schema: AccountSchema } } },
          ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const body = c.req.valid("json");
        const { account, created } = await createAccount(ledger, { id: body.id, metadata: body.metadata ?? {} });
        return created ? c.json(account, 201) : c.json(account, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/accounts/{id}",
        operationId: "getAccount",
        summary: "An account with its balance",
        tags: ["accounts"],
        security: BEARER_SECURITY,
        middleware: [requireScope("balances:read")] as const,
        request: { params: AccountIdParamsSchema },
        responses: {
          200: { description: "The account", content: { "application/json": { schema: AccountWithBalanceSchema } } },
          ...errorResponses("validation_failed", "account_not_found", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        authorizeAccounts(c, [id]);
        return c.json(await getAccount(ledger, id), 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/accounts",
        operationId: "listAccounts",
        summary: "Accounts in id order, with balances",
        tags: ["accounts"],
        security: BEARER_SECURITY,
        middleware: [requireServiceScope("balances:read")] as const,
        request: { query: PageQuerySchema },
        responses: {
          200: {
            description: "A page of accounts",
            content: {
              "application/json": {
                schema: z.object({ accounts: z.array(AccountWithBalanceSchema), next_cursor: z.string().nullable() }),
              },
            },
          },
          ...errorResponses("validation_failed", "invalid_cursor", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const { limit, cursor } = c.req.valid("query");
        const after_id = cursor === undefined ? undefined : (await decodeCursor(signer, ACCOUNTS_CURSOR_BINDING, cursor, AccountCursorSchema)).after_id;
        const page = await listAccounts(ledger, { limit, after_id });
        const next_cursor = page.next_after_id === undefined ? null : await encodeCursor(signer, ACCOUNTS_CURSOR_BINDING, { after_id: page.next_after_id });
        return c.json({ accounts: page.accounts, next_cursor }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/me",
        operationId: "getOwnBalance",
        summary: "The balance of the token's own account",
        tags: ["me"],
        security: BEARER_SECURITY,
        middleware: [requireScope("balances:read")] as const,
        responses: {
          200: { description: "Own balance", content: { "application/json": { schema: BalanceSchema } } },
          ...errorResponses("account_not_found", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const account_id = ownAccountId(c);
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
        path: "/v1/me",
        operationId: "createOwnAccount",
        summary: "Create the token's own account (or return it)",
        tags: ["me"],
        security: BEARER_SECURITY,
        middleware: [requireScope("balances:read")] as const,
        request: { body: { ...jsonBody(CreateOwnAccountSchema), required: false } },
        responses: {
          201: { description: "Created", content: { "application/json": { schema: AccountSchema } } },
          200: { description: "Already existed", content: { "application/json": { schema: AccountSchema } } },
          ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const account_id = ownAccountId(c);
        const body = c.req.valid("json") ?? {};
        const { account, created } = await createAccount(ledger, { id: account_id, metadata: body.metadata ?? {} });
        return created ? c.json(account, 201) : c.json(account, 200);
      },
    );
}
