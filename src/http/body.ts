import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { TallyError } from "../errors.js";
import type { AppEnv } from "./env.js";
import { parseStrictJson, StrictJsonError } from "./strict-json.js";

/**
 * Reading request bodies: the byte cap and the strict JSON parse.
 *
 * The cap is checked against `Content-Length` when the client sends one, which every HTTP/1.1 client with a known
 * body does. Node's HTTP parser delivers exactly that many bytes, so nothing more needs counting, and the body is
 * later read straight from the socket by @hono/node-server's fast path. Only a body without a length (chunked) is
 * streamed through hono's bodyLimit, which builds a WHATWG Request to count it: touching `c.req.raw.body` for
 * every request (what bodyLimit does first) cost tally about a third of its CPU per request under load.
 */
export function bodyCap(max_bytes: number): MiddlewareHandler<AppEnv> {
  const tooLarge = () => {
    throw new TallyError("payload_too_large", `the body must be at most ${max_bytes} bytes`);
  };
  const streamed = bodyLimit({ maxSize: max_bytes, onError: tooLarge });
  return async (c, next) => {
    const method = c.req.method;
    if (method === "GET" || method === "HEAD") return next();
    const length = c.req.header("content-length");
    if (length !== undefined && c.req.header("transfer-encoding") === undefined) {
      // Node's parser has already refused a Content-Length that is not a number.
      if (Number(length) > max_bytes) tooLarge();
      return next();
    }
    return streamed(c, next);
  };
}

/**
 * The deepest nesting any JSON body may have (an object or array counts one level). A posting batch with the
 * deepest metadata allowed (LIMITS.metadata_depth_max) is well inside it; anything deeper is refused while parsing,
 * before any recursive step (validation, hashing, JSON.stringify) could overflow the stack on it.
 */
export const BODY_DEPTH_MAX = 32;

const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/**
 * Parses JSON bodies with the strict parser (strict-json.ts) and hands the result to the route validators, which
 * read bodies through `c.req.json()`. Runs after authentication, so an anonymous client cannot make tally parse.
 * Bodies that are not JSON are left alone (the route answers 415 if it needs JSON).
 */
export function strictJsonBody(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const method = c.req.method;
    if (method !== "POST" && method !== "PUT" && method !== "PATCH") return next();
    const contentType = c.req.header("content-type");
    if (contentType === undefined) return next();
    const semicolon = contentType.indexOf(";");
    const mediaType = (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim();
    if (!JSON_MEDIA_TYPE.test(mediaType)) return next();
    const text = await c.req.text();
    let parsed: unknown;
    try {
      parsed = parseStrictJson(text, { depth_max: BODY_DEPTH_MAX });
    } catch (error) {
      if (!(error instanceof StrictJsonError)) throw error;
      if (error.kind === "syntax") throw new TallyError("invalid_json", `the body is not valid JSON: ${error.message}`);
      const field = error.field || "body";
      throw new TallyError("validation_failed", `${field}: ${error.message}`, {
        errors: [{ field, message: error.message }],
      });
    }
    // hono's validator reads the body through c.req.json(), which would JSON.parse the text again and undo every
    // refusal above; this request's json() answers the strictly parsed value instead.
    const request = c.req as { json: () => Promise<unknown> };
    request.json = () => Promise.resolve(parsed);
    await next();
  };
}
