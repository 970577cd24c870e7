import { createRoute, z } from "@hono/zod-openapi";
import { TallyError } from "../../errors.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import { auditLots } from "../../ledger/lots/audit.js";
import type { Signer } from "../../signing/signer.js";
import { LOT_LIST_STATUSES, creditAccount, listLots, voidLot } from "../../ledger/lots/listing.js";
import { ensureAccountsExist } from "../../ledger/posting/posting.js";
import { authorizeAccounts, requireScope } from "../auth.js";
import { AUTH_ERRORS, errorResponses } from "../problem.js";
import { createRouter } from "../router.js";
import { BEARER_SECURITY } from "../route-parts.js";
import { AccountIdParamsSchema, LIMITS } from "../schemas.js";

const LotSchema = z
  .object({
    entry_id: z.uuid().openapi({ description: "The credit entry that opened the lot." }),
    type: z.string(),
    priority: z.number().int(),
    amount: z.string(),
    remaining: z.string().openapi({ description: "The amount not yet consumed (0 once consumed or expired)." }),
    expires_at: z.iso.datetime().nullable(),
    status: z.enum(["open", "consumed", "expired"]),
    created_at: z.iso.datetime(),
    closed_at: z.iso.datetime().nullable(),
    expiration_entry_id: z.uuid().nullable().openapi({ description: "The expiration entry that ended the lot, if one did." }),
    expired_amount: z.string().nullable(),
  })
  .openapi("Lot");

const AuditSchema = z
  .object({
    account_id: z.string(),
    entries_read: z.number().int(),
    expirations_checked: z.number().int(),
    lots_checked: z.number().int(),
    agrees: z.boolean(),
    expiration_disagreements: z.array(
      z.object({ expiration_entry_id: z.uuid(), lot_id: z.uuid(), written: z.string(), recomputed: z.string() }),
    ),
    lot_disagreements: z.array(
      z.object({
        lot_id: z.uuid(),
        stored_status: z.string(),
        stored_remaining: z.string(),
        recomputed_status: z.string(),
        recomputed_remaining: z.string(),
      }),
    ),
  })
  .openapi("LotAudit");

const query = (name: string) => ({ param: { name, in: "query" as const } });

const LotsQuerySchema = z.strictObject({
  status: z.enum(LOT_LIST_STATUSES).default("open").openapi(query("status")),
  limit: z.coerce.number().int().min(1).max(LIMITS.page_size_max).default(LIMITS.page_size_default).openapi(query("limit")),
  cursor: z.string().max(LIMITS.cursor_length_max).optional().openapi(query("cursor")),
  audit: z
    .enum(["true", "false"])
    .default("false")
    .openapi({
      ...query("audit"),
      description: "Recompute every lot from the entries alone and report disagreements (admin only; O(entries)).",
    }),
});

export function lotRoutes(deps: { ledger: LedgerContext; signer: Signer }) {
  const { ledger, signer } = deps;
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/accounts/{id}/lots",
        operationId: "listLots",
        summary: "An account's credit lots in consumption order (open by default), optionally audited",
        tags: ["lots"],
        security: BEARER_SECURITY,
        middleware: [requireScope("balances:read")] as const,
        request: { params: AccountIdParamsSchema, query: LotsQuerySchema },
        responses: {
          200: {
            description: "One page of lots; with `audit=true`, also the recomputation",
            content: {
              "application/json": {
                schema: z
                  .object({ lots: z.array(LotSchema), next_cursor: z.string().nullable(), audit: AuditSchema.optional() })
                  .openapi("LotPage"),
              },
            },
          },
          ...errorResponses("validation_failed", "invalid_cursor", "account_not_found", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        const { status, limit, cursor, audit } = c.req.valid("query");
        authorizeAccounts(c, [id]);
        const principal = c.get("principal");
        if (audit === "true" && (principal.kind !== "service" || !principal.scopes.has("admin"))) {
          throw new TallyError("forbidden", "audit=true needs a service key with the admin scope");
        }
        await ensureAccountsExist(ledger, [id]);
        const page = await listLots(ledger, { account_id: id, status, limit, cursor, signer });
        if (audit === "true") return c.json({ ...page, audit: await auditLots(ledger, id) }, 200);
        return c.json(page, 200);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/credits/{entry_id}/expire",
        operationId: "voidLot",
        summary: "End a lot now: what remains of it leaves the balance as an expiration entry (idempotent)",
        tags: ["lots"],
        security: BEARER_SECURITY,
        middleware: [requireScope("credits:write")] as const,
        request: { params: z.object({ entry_id: z.uuid().openapi({ param: { name: "entry_id", in: "path" } }) }) },
        responses: {
          200: { description: "The lot after voiding (unchanged if it had already ended)", content: { "application/json": { schema: LotSchema } } },
          ...errorResponses("validation_failed", "not_found", ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const { entry_id } = c.req.valid("param");
        const account_id = await creditAccount(ledger, entry_id);
        authorizeAccounts(c, [account_id]);
        return c.json(await voidLot(ledger, account_id, entry_id), 200);
      },
    );
}
