import { OpenAPIHono } from "@hono/zod-openapi";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { timeout } from "hono/timeout";
import type { Database } from "./db/port.js";
import { consoleRoutes } from "./console/routes.js";
import { TallyError } from "./errors.js";
import { authenticate, type Authenticators } from "./http/auth.js";
import { bodyCap, strictJsonBody } from "./http/body.js";
import type { AppEnv } from "./http/env.js";
import { problemResponse } from "./http/problem.js";
import { requestLog } from "./http/request-log.js";
import { accountRoutes } from "./http/routes/accounts.js";
import { balanceRoutes } from "./http/routes/balances.js";
import { correctionRoutes } from "./http/routes/corrections.js";
import { eventRoutes, type StreamLimits } from "./http/routes/events.js";
import { healthRoutes } from "./http/routes/health.js";
import { historyRoutes } from "./http/routes/history.js";
import { lotRoutes } from "./http/routes/lots.js";
import { postingRoutes } from "./http/routes/postings.js";
import { holdRoutes } from "./http/routes/holds.js";
import type { LedgerContext } from "./ledger/core/context.js";
import type { Logger } from "./logger.js";
import { databaseSigner, type Signer } from "./signing/signer.js";

export interface AppDependencies {
  database: Database;
  ledger: LedgerContext;
  authenticators: Authenticators;
  logger: Logger;
  limits: { max_body_bytes: number; request_timeout_ms: number; cors_origins: string[] };
  stream_limits?: StreamLimits;
  /** Signs cursors; by default with the key kept in the database (src/signing/signing-key.ts). */
  signer?: Signer;
  /** Serves the admin console at /console (src/console/); CONSOLE_ENABLED=false turns it off. */
  console_enabled?: boolean;
}

/** Connection-level failures from either driver: the database is unreachable, not the request wrong. */
const UNAVAILABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "CONNECT_TIMEOUT", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "57P01", "57P03", "53300"]);

/** Builds the HTTP application. No I/O happens here; everything it talks to is passed in. */
export function createApp(deps: AppDependencies) {
  const app = new OpenAPIHono<AppEnv>();
  const { logger, limits } = deps;
  const signer = deps.signer ?? databaseSigner(deps.database);

  app.use(requestId({ headerName: "X-Request-Id" }));
  app.use(requestLog(logger));
  if (limits.cors_origins.length > 0) {
    app.use(cors({ origin: limits.cors_origins, allowHeaders: ["Authorization", "Content-Type", "X-Request-Id"], exposeHeaders: ["X-Request-Id", "Idempotent-Replayed"] }));
  }
  app.use(
    timeout(
      limits.request_timeout_ms,
      () => new HTTPException(504, { message: `the request did not finish within ${limits.request_timeout_ms} ms` }),
    ),
  );
  app.use("/v1/*", bodyCap(limits.max_body_bytes));
  app.use("/v1/*", authenticate(deps.authenticators));
  app.use("/v1/*", strictJsonBody());

  app.route("/", healthRoutes({ database: deps.database, readiness_timeout_ms: 2_000 }));
  app.route("/", accountRoutes({ ledger: deps.ledger, signer }));
  app.route("/", balanceRoutes({ ledger: deps.ledger }));
  app.route("/", postingRoutes({ ledger: deps.ledger }));
  app.route("/", historyRoutes({ ledger: deps.ledger, signer }));
  app.route("/", eventRoutes({ ledger: deps.ledger, limits: deps.stream_limits }));
  app.route("/", correctionRoutes({ ledger: deps.ledger }));
  app.route("/", holdRoutes({ ledger: deps.ledger, signer }));
  app.route("/", lotRoutes({ ledger: deps.ledger, signer }));
  if (deps.console_enabled !== false) app.route("/", consoleRoutes({ ledger: deps.ledger, signer, authenticators: deps.authenticators }));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "A service key (`tk_…`), the bootstrap admin key, or an end-user JWT whose `sub` is the account id.",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "tally",
      version: "1",
      description: "Append-only, event-sourced credit ledger for usage-billed APIs. Errors are RFC 9457 problem+json with a stable `code`.",
    },
  });

  app.notFound((c) => problemResponse(c, "not_found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((error, c) => {
    if (error instanceof TallyError) return problemResponse(c, error.code, error.detail, error.extensions);
    if (error instanceof HTTPException) {
      if (error.status === 504) return problemResponse(c, "request_timeout", error.message);
      if (error.status === 413) return problemResponse(c, "payload_too_large", error.message);
      if (error.status === 415) return problemResponse(c, "unsupported_media_type", "send the body as Content-Type: application/json");
      // hono's validator raises a 400 HTTPException for a body that does not parse as JSON.
      if (error.status === 400) return problemResponse(c, "invalid_json", "the body is not valid JSON");
    }
    const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "";
    if (UNAVAILABLE_CODES.has(code)) {
      logger.error({ request_id: c.get("requestId"), err: error }, "database unavailable");
      return problemResponse(c, "service_unavailable", "the database is not reachable; retry later");
    }
    logger.error({ request_id: c.get("requestId"), err: error }, "unhandled error");
    return problemResponse(c, "internal_error", "an internal error occurred; quote the request_id when reporting it");
  });
  return app;
}
