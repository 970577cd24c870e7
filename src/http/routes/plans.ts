import { z } from "@hono/zod-openapi";
import type { LedgerContext } from "../../ledger/core/context.js";
import type { PlanPeriod } from "../../ledger/plans/period.js";
import { createPlan, getPlan, listPlans, updatePlan } from "../../ledger/plans/plans.js";
import { runRenewals } from "../../ledger/plans/run.js";
import type { Signer } from "../../signing/signer.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import { createRouter } from "../router.js";
import { amountNanos } from "../schemas.js";
import { createPlanRoute, getPlanRoute, listPlansRoute, runRenewalsRoute, updatePlanRoute } from "./plans.routes.js";

const PlanCursorSchema = z.strictObject({ after_id: z.string().max(128) });

function toPeriod(period: "day" | "week" | "month" | number): PlanPeriod {
  return typeof period === "number" ? { kind: "days", days: period } : { kind: period };
}

function toRollover(rollover: string): bigint | null {
  return rollover === "none" ? null : amountNanos(rollover);
}

/**
 * Plans and operator-run renewals, admin only (src/ledger/plans/; docs/design.md, "Plans and renewals"). The
 * scheduler inside every tally process renews on its own; POST /v1/renewals/run is for previewing and for now.
 */
export function planRoutes(deps: { ledger: LedgerContext; signer: Signer }) {
  const { ledger, signer } = deps;
  return createRouter()
    .openapi(createPlanRoute, async (c) => {
      const body = c.req.valid("json");
      const plan = await createPlan(ledger, body.id, {
        name: body.name,
        credits: amountNanos(body.credits),
        period: toPeriod(body.period),
        rollover_max: toRollover(body.rollover),
        priority: body.priority,
        metadata: body.metadata ?? {},
      });
      return c.json(plan, 201);
    })
    .openapi(listPlansRoute, async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const binding = ["plans"];
      const after_id = cursor === undefined ? undefined : (await decodeCursor(signer, binding, cursor, PlanCursorSchema)).after_id;
      const page = await listPlans(ledger, { limit, after_id });
      const next_cursor = page.next_after_id === undefined ? null : await encodeCursor(signer, binding, { after_id: page.next_after_id });
      return c.json({ plans: page.plans, next_cursor }, 200);
    })
    .openapi(getPlanRoute, async (c) => c.json(await getPlan(ledger, c.req.valid("param").id), 200))
    .openapi(updatePlanRoute, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const plan = await updatePlan(ledger, id, {
        name: body.name,
        credits: body.credits === undefined ? undefined : amountNanos(body.credits),
        period: body.period === undefined ? undefined : toPeriod(body.period),
        rollover_max: body.rollover === undefined ? undefined : toRollover(body.rollover),
        priority: body.priority,
        metadata: body.metadata,
        archived: body.archived,
      });
      return c.json(plan, 200);
    })
    .openapi(runRenewalsRoute, async (c) => {
      const body = c.req.valid("json");
      return c.json(await runRenewals(ledger, body), 200);
    });
}
