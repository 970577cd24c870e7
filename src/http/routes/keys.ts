import { createRoute, z } from "@hono/zod-openapi";
import { createServiceKey, listServiceKeys, revokeServiceKey, SERVICE_KEYS_LISTED_MAX } from "../../auth/service-keys.js";
import { SCOPES, type Scope } from "../../auth/scopes.js";
import type { Orm } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import { requireServiceScope } from "../auth.js";
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from "../problem.js";
import { createRouter } from "../router.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";

/**
 * Service keys over the API (admin scope), so keys can be managed while tally runs, including on the embedded store
 * whose single-process lock keeps the CLI out. The secret is in the creation response only; tally keeps its hash.
 */

const KeyIdSchema = z
  .string()
  .regex(/^[0-9a-f]{16}$/, "must be the 16-hex-digit key id")
  .openapi({ param: { name: "id", in: "path" }, example: "29c9fa24c6ca8431" });

const ScopeSchema = z.enum(SCOPES);

const CreateKeySchema = z
  .strictObject({
    name: z.string().trim().min(1).max(200).openapi({ example: "proxy" }),
    scopes: z.array(ScopeSchema).min(1).max(SCOPES.length),
    expires_at: z.iso
      .datetime({ offset: true })
      .optional()
      .openapi({ description: "From this moment the key is refused; omit for a key that does not expire." }),
  })
  .openapi("CreateKeyRequest", { example: { name: "proxy", scopes: ["usage:write", "balances:read"] } });

const KeySchema = z
  .object({
    id: z.string().openapi({ pattern: "^[0-9a-f]{16}$", example: "29c9fa24c6ca8431" }),
    name: z.string(),
    scopes: z.array(ScopeSchema),
    created_at: z.iso.datetime(),
    expires_at: z.iso.datetime().nullable(),
    revoked_at: z.iso.datetime().nullable(),
  })
  .openapi("ServiceKey");

const CreatedKeySchema = KeySchema.extend({
  key: z.string().openapi({ description: "The bearer credential. Shown in this response only: store it now." }),
}).openapi("CreatedServiceKey");

const iso = (time: string | null) => (time === null ? null : new Date(time).toISOString());

export function keyRoutes(deps: { orm: Orm; now?: () => Date }) {
  const now = deps.now ?? (() => new Date());
  return createRouter()
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/keys",
        operationId: "createKey",
        summary: "Create a service key; its secret is in this response only",
        tags: ["keys"],
        security: BEARER_SECURITY,
        middleware: [requireServiceScope("admin")] as const,
        request: { body: jsonBody(CreateKeySchema) },
        responses: {
          201: { description: "Created", content: { "application/json": { schema: CreatedKeySchema } } },
          ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const body = c.req.valid("json");
        if (body.expires_at !== undefined && new Date(body.expires_at) <= now()) {
          throw new TallyError("validation_failed", "expires_at must be in the future", {
            errors: [{ field: "expires_at", message: "must be in the future" }],
          });
        }
        const scopes = [...new Set(body.scopes)] as Scope[];
        const created = await createServiceKey(deps.orm, { name: body.name, scopes, expires_at: body.expires_at });
        c.header("cache-control", "no-store");
        return c.json(
          {
            id: created.id,
            name: body.name,
            scopes,
            created_at: iso(created.created_at)!,
            expires_at: body.expires_at === undefined ? null : iso(body.expires_at),
            revoked_at: null,
            key: created.key,
          },
          201,
        );
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/keys",
        operationId: "listKeys",
        summary: `Service keys, oldest first (at most ${SERVICE_KEYS_LISTED_MAX}), without their secrets`,
        tags: ["keys"],
        security: BEARER_SECURITY,
        middleware: [requireServiceScope("admin")] as const,
        responses: {
          200: {
            description: "The keys, revoked ones included",
            content: { "application/json": { schema: z.object({ items: z.array(KeySchema) }).openapi("ServiceKeyList") } },
          },
          ...errorResponses(...AUTH_ERRORS),
        },
      }),
      async (c) => {
        const keys = await listServiceKeys(deps.orm);
        return c.json(
          {
            items: keys.map((key) => ({
              id: key.id,
              name: key.name,
              scopes: key.scopes as Scope[],
              created_at: iso(key.created_at)!,
              expires_at: iso(key.expires_at),
              revoked_at: iso(key.revoked_at),
            })),
          },
          200,
        );
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/v1/keys/{id}",
        operationId: "revokeKey",
        summary: "Revoke a service key; running servers stop accepting it within 5 s",
        tags: ["keys"],
        security: BEARER_SECURITY,
        middleware: [requireServiceScope("admin")] as const,
        request: { params: z.object({ id: KeyIdSchema }) },
        responses: {
          204: { description: "Revoked" },
          ...errorResponses("validation_failed", ...AUTH_ERRORS, "not_found"),
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        if (!(await revokeServiceKey(deps.orm, id))) throw new TallyError("not_found", `no active key with id ${id}`);
        return c.body(null, 204);
      },
    );
}
