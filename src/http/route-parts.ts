import type { z } from "@hono/zod-openapi";

/** The OpenAPI pieces every /v1 route declares the same way. */

/** Every /v1 route needs `Authorization: Bearer …` (the `bearer` scheme registered in app.ts). */
export const BEARER_SECURITY = [{ bearer: [] }];

/** A required application/json request body validated by `schema`. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { content: { "application/json": { schema } }, required: true };
}
