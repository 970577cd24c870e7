import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../env.js";
import { REPLAYED_HEADER } from "../schemas.js";

/**
 * The OpenAPI document served at /openapi.json, /docs and used to generate clients/typescript. The routes describe
 * themselves (zod schemas, the error catalogue); this module adds what is the same for every operation and would
 * otherwise be repeated in each route file: the servers, the headers every response carries, `Idempotent-Replayed`
 * on replays and `Retry-After` on 503s. Doing it here also covers routes added later without touching them.
 */

const INFO = {
  title: "tally",
  version: "1",
  description:
    "Append-only, event-sourced credit ledger for usage-billed APIs. Errors are RFC 9457 problem+json with a " +
    "stable `code`. Every response carries `X-Request-Id`.",
};

// Relative: the API is served by the same tally that serves this document, wherever it is deployed.
const SERVERS = [{ url: "/", description: "The tally serving this document" }];

const HEADERS = {
  "X-Request-Id": {
    description:
      "The request id: yours, if you sent one of up to 255 characters of `A-Z a-z 0-9 _ - =`, else a generated UUID. " +
      "It is in the server's log line for the request and, on errors, in the body as `request_id`.",
    schema: { type: "string", maxLength: 255 },
  },
  [REPLAYED_HEADER]: {
    description: "`true` when the write was a replay of an earlier request with the same idempotency key; nothing was written.",
    schema: { type: "string", enum: ["true"] },
  },
  "Retry-After": {
    description: "Seconds to wait before retrying.",
    schema: { type: "integer", minimum: 1 },
  },
} as const;

const headerRef = (name: keyof typeof HEADERS) => ({ $ref: `#/components/headers/${name}` });

const REQUEST_ID_PARAMETER = {
  name: "X-Request-Id",
  in: "header",
  required: false,
  description: "Your id for the request, echoed in the response and logged; up to 255 characters of `A-Z a-z 0-9 _ - =`.",
  schema: { type: "string", pattern: "^[A-Za-z0-9_=-]{1,255}$" },
};

const TRACEPARENT_PARAMETER = {
  name: "traceparent",
  in: "header",
  required: false,
  description: "W3C Trace Context; its trace id is logged with the request line. A malformed value is ignored.",
  schema: { type: "string", pattern: "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$" },
};

type Json = Record<string, unknown>;
const asJson = (value: unknown): Json => (value ?? {}) as Json;
const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

/** Adds the shared parts to a generated document, in place, and returns it. */
export function completeDocument(document: Json): Json {
  const components = asJson((document.components ??= {}));
  document.info = { ...INFO, ...asJson(document.info) };
  document.servers = SERVERS;
  components.headers = { ...HEADERS, ...asJson(components.headers) };
  for (const item of Object.values(asJson(document.paths)).map(asJson)) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const operation = asJson(item[method]);
      const parameters = (operation.parameters ?? []) as Json[];
      const names = new Set(parameters.map((parameter) => String(parameter.name).toLowerCase()));
      operation.parameters = [
        ...parameters,
        ...[REQUEST_ID_PARAMETER, TRACEPARENT_PARAMETER].filter((parameter) => !names.has(parameter.name.toLowerCase())),
      ];
      const responses = asJson(operation.responses);
      for (const [status, value] of Object.entries(responses)) {
        const response = asJson(value);
        const headers: Json = { "X-Request-Id": headerRef("X-Request-Id"), ...asJson(response.headers) };
        // A write answers 200 only for a replay (201 when it wrote); those responses carry the replay header.
        if (method === "post" && status === "200" && responses["201"]) headers[REPLAYED_HEADER] = headerRef(REPLAYED_HEADER);
        if (status === "503") headers["Retry-After"] = headerRef("Retry-After");
        response.headers = headers;
      }
    }
  }
  return document;
}

/** The generated document for `app`, completed; built once, since routes do not change after start. */
export function openApiDocument(app: OpenAPIHono<AppEnv>): () => Json {
  let built: Json | undefined;
  return () => (built ??= completeDocument(app.getOpenAPI31Document({ openapi: "3.1.0", info: INFO }) as unknown as Json));
}
