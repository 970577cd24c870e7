import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ERROR_CATALOGUE, type ErrorCode } from "../errors.js";

export const PROBLEM_MEDIA_TYPE = "application/problem+json";

/** Sent as `Retry-After` with every 503. */
export const RETRY_AFTER_SECONDS = 1;

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: "https://tally.dev/problems/validation_failed" }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(Object.keys(ERROR_CATALOGUE) as [ErrorCode, ...ErrorCode[]]),
    request_id: z.string().optional(),
    errors: z
      .array(z.object({ field: z.string(), message: z.string() }))
      .optional()
      .openapi({ description: "For validation_failed: each refused field, e.g. `entries[3].amount`." }),
  })
  .catchall(z.unknown())
  .openapi("Problem", { description: "RFC 9457 problem details with a stable `code`." });

export function problemBody(code: ErrorCode, detail: string, extensions: Record<string, unknown> = {}) {
  const { status, title } = ERROR_CATALOGUE[code];
  return { type: `https://tally.dev/problems/${code}`, title, status, detail, code, ...extensions };
}

export function problemResponse(c: Context, code: ErrorCode, detail: string, extensions: Record<string, unknown> = {}) {
  const requestId = c.get("requestId") as string | undefined;
  const body = problemBody(code, detail, { ...extensions, ...(requestId ? { request_id: requestId } : {}) });
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: {
      "content-type": PROBLEM_MEDIA_TYPE,
      ...(requestId ? { "x-request-id": requestId } : {}),
      // Every 503 is transient (the database, a stream limit): tell clients when to come back.
      ...(body.status === 503 ? { "retry-after": String(RETRY_AFTER_SECONDS) } : {}),
    },
  });
}

/** Every authenticated route can answer these. */
export const AUTH_ERRORS = ["unauthorized", "forbidden", "too_many_failed_authentications"] as const;

/** Every route that takes a JSON body can answer these. */
export const BODY_ERRORS = ["validation_failed", "invalid_json", "payload_too_large", "unsupported_media_type"] as const;

/** Every route can answer these. */
const ALWAYS: ErrorCode[] = ["internal_error", "service_unavailable", "request_timeout", "database_timeout", "database_conflict"];

/**
 * The OpenAPI `responses` entries for the codes a route can return, built from the catalogue; codes that share a
 * status are listed together under it.
 */
export function errorResponses(...codes: ErrorCode[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, ...ALWAYS]) {
    const status = ERROR_CATALOGUE[code].status;
    byStatus.set(status, [...new Set([...(byStatus.get(status) ?? []), code])]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, sharing]) => [
      status,
      {
        description: sharing.map((code) => `\`${code}\`: ${ERROR_CATALOGUE[code].title}`).join("; "),
        content: { [PROBLEM_MEDIA_TYPE]: { schema: ProblemSchema } },
      },
    ]),
  );
}
