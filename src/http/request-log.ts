import type { MiddlewareHandler } from "hono";
import type { Logger } from "../logger.js";
import type { AppEnv } from "./env.js";

/**
 * The trace id of a W3C `traceparent` header (version-traceid-parentid-flags), so a request line can be found from
 * the caller's trace. Anything malformed, the invalid version ff, or an all-zero id is ignored (the spec says to
 * treat them as absent).
 */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$/;
export function traceId(header: string | undefined): string | undefined {
  const match = header === undefined || header.length > 512 ? null : TRACEPARENT.exec(header.trim());
  if (!match) return undefined;
  const [, version, trace, parent] = match as unknown as [string, string, string, string];
  if (version === "ff" || (version === "00" && match[4] !== undefined)) return undefined;
  if (/^0+$/.test(trace) || /^0+$/.test(parent)) return undefined;
  return trace;
}

/** One log line per request: id, trace id, method, path (never the query or headers), status, time taken, caller. */
export function requestLog(logger: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    // At a level above info the line is dropped anyway: skip building it (the hot routes run this per request).
    if (!logger.isLevelEnabled("info")) return;
    const principal = c.get("principal") as AppEnv["Variables"]["principal"] | undefined;
    logger.info(
      {
        request_id: c.get("requestId"),
        trace_id: traceId(c.req.header("traceparent")),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
        caller: principal === undefined ? undefined : principal.kind === "user" ? `user:${principal.account_id}` : `key:${principal.key_id}`,
      },
      "request",
    );
  };
}
