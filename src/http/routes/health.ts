import { createRoute, z } from "@hono/zod-openapi";
import type { Database } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import { errorResponses } from "../problem.js";
import type { Lifecycle } from "../drain.js";
import { createRouter } from "../router.js";

const StatusSchema = z.object({ status: z.literal("ok") }).openapi("Status");

export function healthRoutes(deps: { database: Database; readiness_timeout_ms: number; lifecycle?: Lifecycle }) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/health",
        operationId: "getHealth",
        summary: "The process is up",
        tags: ["health"],
        security: [],
        responses: { 200: { description: "Up", content: { "application/json": { schema: StatusSchema } } } },
      }),
      (c) => c.json({ status: "ok" as const }, 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/ready",
        operationId: "getReadiness",
        summary: "The database answers",
        tags: ["health"],
        security: [],
        responses: {
          200: { description: "Ready", content: { "application/json": { schema: StatusSchema } } },
          ...errorResponses("service_unavailable"),
        },
      }),
      async (c) => {
        // A load balancer stops routing here as soon as the shutdown begins, before the listener closes.
        if (deps.lifecycle?.draining) throw new TallyError("service_unavailable", "this process is shutting down");
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("readiness probe timed out")), deps.readiness_timeout_ms);
        });
        try {
          await Promise.race([deps.database.query("SELECT 1"), timeout]);
        } catch {
          throw new TallyError("service_unavailable", "the database did not answer");
        } finally {
          clearTimeout(timer);
        }
        return c.json({ status: "ok" as const }, 200);
      },
    );
}
