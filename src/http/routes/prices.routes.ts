import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { TallyError } from "../../errors.js";
import { PRICE_LIMITS } from "../../ledger/prices/price-rules.js";
import { allows, requireScope } from "../auth.js";
import type { AppEnv } from "../env.js";
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from "../problem.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import { LIMITS } from "../schemas.js";
import { EstimateResultSchema, EstimateSchema, MeterSchema, PriceSchema, PutPriceSchema } from "./prices.schemas.js";

/** The OpenAPI definitions of the price routes (src/ledger/prices/); the handlers are in prices.ts. */

/**
 * Prices are read by the services that price with them: the proxy (`usage:write`) estimates, the gateway
 * (`balances:read`) checks. End users do not list them (their `balances:read` is for their own account only).
 */
export const requireService: MiddlewareHandler<AppEnv> = async (c, next) => {
  const principal = c.get("principal");
  if (principal.kind === "user" || !(allows(principal, "usage:write") || allows(principal, "balances:read"))) {
    throw new TallyError("forbidden", "prices are read with a service key that has the usage:write or balances:read scope");
  }
  await next();
};

const MeterParamsSchema = z.object({ meter: MeterSchema.openapi({ param: { name: "meter", in: "path" } }) });

const PageSchema = z.strictObject({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(PRICE_LIMITS.page_size_max)
    .default(PRICE_LIMITS.page_size_default)
    .openapi({ param: { name: "limit", in: "query" }, example: 50 }),
  cursor: z
    .string()
    .max(LIMITS.cursor_length_max)
    .optional()
    .openapi({ param: { name: "cursor", in: "query" } }),
});

const MeterPricesSchema = z
  .object({
    meter: z.string(),
    current: PriceSchema.nullable().openapi({ description: "The version in force now; null if every version is still scheduled." }),
    scheduled: z.array(PriceSchema).openapi({ description: "Versions that take effect later, oldest first." }),
  })
  .openapi("MeterPrices");

const priceJson = { "application/json": { schema: PriceSchema } };

export const putPriceRoute = createRoute({
  method: "put",
  path: "/v1/prices/{meter}",
  operationId: "putPrice",
  summary: "Add a version of a meter's price, effective from valid_from (default now); earlier versions are kept",
  tags: ["prices"],
  security: BEARER_SECURITY,
  middleware: [requireScope("admin")] as const,
  request: { params: MeterParamsSchema, body: jsonBody(PutPriceSchema) },
  responses: {
    201: { description: "The new version", content: priceJson },
    ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS),
  },
});

export const listPricesRoute = createRoute({
  method: "get",
  path: "/v1/prices",
  operationId: "listPrices",
  summary: "Every meter's price in force and its scheduled versions, by meter name",
  tags: ["prices"],
  security: BEARER_SECURITY,
  middleware: [requireService] as const,
  request: { query: PageSchema },
  responses: {
    200: {
      description: "One page of meters",
      content: {
        "application/json": {
          schema: z.object({ prices: z.array(MeterPricesSchema), next_cursor: z.string().nullable() }).openapi("PriceList"),
        },
      },
    },
    ...errorResponses("validation_failed", "invalid_cursor", ...AUTH_ERRORS),
  },
});

export const getPriceRoute = createRoute({
  method: "get",
  path: "/v1/prices/{meter}",
  operationId: "getPrice",
  summary: "A meter's price in force and its versions, newest first",
  tags: ["prices"],
  security: BEARER_SECURITY,
  middleware: [requireService] as const,
  request: { params: MeterParamsSchema, query: PageSchema },
  responses: {
    200: {
      description: "The meter's prices",
      content: {
        "application/json": {
          schema: z
            .object({
              meter: z.string(),
              current: PriceSchema.nullable(),
              versions: z.array(PriceSchema).openapi({ description: "Every version, current, past and scheduled, newest first." }),
              next_cursor: z.string().nullable(),
            })
            .openapi("MeterPriceHistory"),
        },
      },
    },
    ...errorResponses("validation_failed", "invalid_cursor", "not_found", ...AUTH_ERRORS),
  },
});

export const estimateRoute = createRoute({
  method: "post",
  path: "/v1/prices/estimate",
  operationId: "estimatePrice",
  summary: "What usage of these quantities would cost now (nothing is written)",
  tags: ["prices"],
  security: BEARER_SECURITY,
  middleware: [requireService] as const,
  request: { body: jsonBody(EstimateSchema) },
  responses: {
    200: { description: "The amount, by the same rule usage is priced with", content: { "application/json": { schema: EstimateResultSchema } } },
    ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS, "price_not_found"),
  },
});
