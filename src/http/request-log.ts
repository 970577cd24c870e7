import type { MiddlewareHandler } from "hono";
import type { Logger } from "../logger.js";
import type { AppEnv } from "./env.js";

/** One log line per request: id, method, path (never the query or headers), status, time taken, caller. */
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
