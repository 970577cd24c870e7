import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import type { Database } from "./db/port.js";
import { databaseProblem } from "./db/database-errors.js";
import { consoleRoutes } from "./console/routes.js";
import { TallyError } from "./errors.js";
import { authenticate, type Authenticators } from "./http/auth.js";
import { bodyCap, strictJsonBody } from "./http/body.js";
import { deadline } from "./http/deadline.js";
import type { AppEnv } from "./http/env.js";
import { problemResponse } from "./http/problem.js";
import { requestLog } from "./http/request-log.js";
import type { Lifecycle } from "./http/drain.js";
import { accountRoutes } from "./http/routes/accounts.js";
import { balanceRoutes } from "./http/routes/balances.js";
import { correctionRoutes } from "./http/routes/corrections.js";
import { eventRoutes, type StreamLimits } from "./http/routes/events.js";
import { healthRoutes } from "./http/routes/health.js";
import { historyRoutes } from "./http/routes/history.js";
import { lotRoutes } from "./http/routes/lots.js";
import { postingRoutes } from "./http/routes/postings.js";
import { holdRoutes } from "./http/routes/holds.js";
import { priceRoutes } from "./http/routes/prices.js";
import { docsRoutes } from "./http/routes/docs.js";
import { keyRoutes } from "./http/routes/keys.js";
import { webhookRoutes } from "./http/routes/webhooks.js";
import { autoTopupRoutes } from "./http/routes/auto-topup.js";
import { stripeWebhookRoutes } from "./http/routes/stripe-webhooks.js";
import type { StripeSettings } from "./payments/stripe/handle.js";
import { planRoutes } from "./http/routes/plans.js";
import { subscriptionRoutes } from "./http/routes/subscriptions.js";
import { openApiDocument } from "./http/openapi/document.js";
import { createMetrics } from "./metrics/metrics.js";
import { metricsRoutes } from "./metrics/route.js";
import type { LedgerContext } from "./ledger/core/context.js";
import type { Logger } from "./logger.js";
import { databaseSigner, type Signer } from "./signing/signer.js";
import { databaseSecretBox, type SecretBox } from "./webhooks/secret-box.js";

export interface AppDependencies {
  database: Database;
  ledger: LedgerContext;
  authenticators: Authenticators;
  logger: Logger;
  limits: { max_body_bytes: number; request_timeout_ms: number; cors_origins: string[] };
  stream_limits?: StreamLimits;
  /** Signs cursors; by default with the key kept in the database (src/signing/signing-key.ts). */
  signer?: Signer;
  /** Set by the process entry; while draining, /ready answers 503. */
  lifecycle?: Lifecycle;
  /** Serves the admin console at /console (src/console/); CONSOLE_ENABLED=false turns it off. */
  console_enabled?: boolean;
  /** Encrypts webhook signing secrets at rest; by default under the key kept in the database (src/webhooks/secret-box.ts). */
  secret_box?: SecretBox;
  /** Verifies and applies Stripe webhooks at POST /webhooks/stripe; unset, that route answers 404. */
  stripe?: StripeSettings;
}

const RETRY_AFTER_SECONDS = 1;

/** Builds the HTTP application. No I/O happens here; everything it talks to is passed in. */
export function createApp(deps: AppDependencies) {
  const app = new OpenAPIHono<AppEnv>();
  const { logger, limits } = deps;
  const signer = deps.signer ?? databaseSigner(deps.database);

  app.use(requestId({ headerName: "X-Request-Id" }));
  const metrics = createMetrics({ database: deps.database, ledger: deps.ledger });
  app.use(metrics.middleware);
  app.use(requestLog(logger));
  if (limits.cors_origins.length > 0) {
    app.use(cors({ origin: limits.cors_origins, allowHeaders: ["Authorization", "Content-Type", "X-Request-Id"], exposeHeaders: ["X-Request-Id", "Idempotent-Replayed"] }));
  }
  app.use(deadline(limits.request_timeout_ms));
  app.use("/v1/*", bodyCap(limits.max_body_bytes));
  app.use("/v1/*", authenticate(deps.authenticators));
  app.use("/v1/*", strictJsonBody());
  // Webhooks from payment providers: capped, but outside bearer auth (their signature authenticates them).
  app.use("/webhooks/*", bodyCap(limits.max_body_bytes));

  app.route("/", healthRoutes({ database: deps.database, readiness_timeout_ms: 2_000, lifecycle: deps.lifecycle }));
  app.route("/", accountRoutes({ ledger: deps.ledger, signer }));
  app.route("/", balanceRoutes({ ledger: deps.ledger }));
  app.route("/", postingRoutes({ ledger: deps.ledger }));
  app.route("/", historyRoutes({ ledger: deps.ledger, signer }));
  app.route("/", eventRoutes({ ledger: deps.ledger, limits: deps.stream_limits }));
  app.route("/", keyRoutes({ orm: deps.database.orm }));
  app.route("/", correctionRoutes({ ledger: deps.ledger }));
  app.route("/", holdRoutes({ ledger: deps.ledger, signer }));
  app.route("/", lotRoutes({ ledger: deps.ledger, signer }));
  app.route("/", priceRoutes({ ledger: deps.ledger, signer }));
  app.route("/", webhookRoutes({ ledger: deps.ledger, signer, secret_box: deps.secret_box ?? databaseSecretBox(deps.database) }));
  app.route("/", autoTopupRoutes({ ledger: deps.ledger }));
  app.route("/", stripeWebhookRoutes({ ledger: deps.ledger, stripe: deps.stripe }));
  app.route("/", planRoutes({ ledger: deps.ledger, signer }));
  app.route("/", subscriptionRoutes({ ledger: deps.ledger }));
  if (deps.console_enabled !== false) app.route("/", consoleRoutes({ ledger: deps.ledger, signer, authenticators: deps.authenticators }));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "A service key (`tk_…`), the bootstrap admin key, or an end-user JWT whose `sub` is the account id.",
  });
  const document = openApiDocument(app);
  app.get("/openapi.json", (c) => c.json(document()));
  app.route("/", docsRoutes());
  app.route("/", metricsRoutes({ metrics, authenticators: deps.authenticators }));

  app.notFound((c) => problemResponse(c, "not_found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((error, c) => {
    const response = problemFor(error, c);
    // Every 503 and 429 is temporary: say when to come back.
    if (response.status === 503 || response.status === 429) {
      const seconds = error instanceof TallyError ? error.extensions.retry_after_s : undefined;
      response.headers.set("Retry-After", String(typeof seconds === "number" ? seconds : RETRY_AFTER_SECONDS));
    }
    return response;
  });
  const problemFor = (error: Error, c: Context<AppEnv>): Response => {
    if (error instanceof TallyError) return problemResponse(c, error.code, error.detail, error.extensions);
    if (error instanceof HTTPException) {
      if (error.status === 504) return problemResponse(c, "request_timeout", error.message);
      if (error.status === 413) return problemResponse(c, "payload_too_large", error.message);
      if (error.status === 415) return problemResponse(c, "unsupported_media_type", "send the body as Content-Type: application/json");
      // hono's validator raises a 400 HTTPException for a body that does not parse as JSON.
      if (error.status === 400) return problemResponse(c, "invalid_json", "the body is not valid JSON");
    }
    const database = databaseProblem(error);
    if (database) {
      logger.warn({ request_id: c.get("requestId"), err: error, code: database.code }, database.detail);
      return problemResponse(c, database.code, database.detail);
    }
    logger.error({ request_id: c.get("requestId"), err: error }, "unhandled error");
    return problemResponse(c, "internal_error", "an internal error occurred; quote the request_id when reporting it");
  };
  return app;
}
