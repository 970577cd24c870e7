import { Hono } from "hono";
import { authenticate, requireScope, type Authenticators } from "../http/auth.js";
import type { AppEnv } from "../http/env.js";
import type { Metrics } from "./metrics.js";

/**
 * GET /metrics, for Prometheus: the same bearer credentials as the API, with the `metrics:read` scope (or admin),
 * so it can be exposed on the public port without leaking traffic figures. Prometheus sends the key with
 * `authorization: { credentials_file: … }` in its scrape config.
 */
export function metricsRoutes(deps: { metrics: Metrics; authenticators: Authenticators }) {
  return new Hono<AppEnv>().get("/metrics", authenticate(deps.authenticators), requireScope("metrics:read"), async (c) =>
    c.body(await deps.metrics.render(), 200, { "content-type": deps.metrics.contentType }),
  );
}
