import { createRoute, z } from "@hono/zod-openapi";
import { PERIOD_DAYS_MAX } from "../../ledger/plans/period.js";
import { DEFAULT_PLAN_PRIORITY, PLAN_LIMITS } from "../../ledger/plans/plans.js";
import { RUN_LIMITS } from "../../ledger/plans/run.js";
import { requireScope } from "../auth.js";
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from "../problem.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import {
  AccountIdSchema,
  AmountSchema,
  DescriptionSchema,
  LIMITS,
  LotPrioritySchema,
  MetadataSchema,
  amountNanos,
} from "../schemas.js";

/** The OpenAPI definitions of the plan and renewal routes (src/ledger/plans/); the handlers are in plans.ts. */

export const PlanIdSchema = AccountIdSchema.openapi({ description: "Same characters as an account id.", example: "professional" });

const PeriodSchema = z
  .union([z.enum(["day", "week", "month"]), z.number().int().min(1).max(PERIOD_DAYS_MAX)])
  .openapi({
    description: `\`day\`, \`week\`, \`month\` (calendar months from the anchor, the 31st clamped to the month's last day), or a number of days, 1-${PERIOD_DAYS_MAX}.`,
    example: "month",
  });

const RolloverSchema = z.union([z.literal("none"), AmountSchema]).openapi({
  description: "`none`, or the most unconsumed plan credit carried into the next period (at most `credits`).",
  example: "500",
});

const NameSchema = DescriptionSchema.min(1).max(PLAN_LIMITS.name_length_max);

const PlanPrioritySchema = LotPrioritySchema.openapi({
  description: `Priority of the lots the plan grants, 0-100; default ${DEFAULT_PLAN_PRIORITY}, so plan credit burns before purchases (50).`,
  example: DEFAULT_PLAN_PRIORITY,
});

/** Rollover is compared with the credits it would carry beside; both already passed AmountSchema. */
function rolloverWithinCredits(value: { credits?: string; rollover?: string }, context: z.RefinementCtx): void {
  if (value.credits === undefined || value.rollover === undefined || value.rollover === "none") return;
  try {
    if (amountNanos(value.rollover) > amountNanos(value.credits)) {
      context.addIssue({ code: "custom", path: ["rollover"], message: "must be \"none\" or at most credits" });
    }
  } catch {
    // One of them is not a valid amount: its own issue already says so.
  }
}

export const CreatePlanSchema = z
  .strictObject({
    id: PlanIdSchema,
    name: NameSchema,
    credits: AmountSchema.openapi({ description: "Credits granted each period.", example: "2000" }),
    period: PeriodSchema,
    rollover: RolloverSchema.default("none"),
    priority: PlanPrioritySchema.default(DEFAULT_PLAN_PRIORITY),
    metadata: MetadataSchema.optional(),
  })
  .superRefine(rolloverWithinCredits)
  .openapi("PlanRequest", { example: { id: "professional", name: "Professional", credits: "2000", period: 30, rollover: "500" } });

export const UpdatePlanSchema = z
  .strictObject({
    name: NameSchema.optional(),
    credits: AmountSchema.optional(),
    period: PeriodSchema.optional(),
    rollover: RolloverSchema.optional(),
    priority: PlanPrioritySchema.optional(),
    metadata: MetadataSchema.optional(),
    archived: z.boolean().optional().openapi({ description: "An archived plan takes no new subscriptions; existing ones renew." }),
  })
  .superRefine(rolloverWithinCredits)
  .openapi("PlanUpdate", { example: { credits: "2500" } });

export const PlanSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    credits: z.string(),
    period: z.union([z.enum(["day", "week", "month"]), z.number().int()]),
    rollover: z.string().openapi({ description: "`none` or the maximum carried into the next period." }),
    priority: z.number().int(),
    metadata: z.record(z.string(), z.unknown()),
    archived: z.boolean(),
    archived_at: z.iso.datetime().nullable(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi("Plan");

export const PlanIdParamsSchema = z.object({ id: PlanIdSchema.openapi({ param: { name: "id", in: "path" } }) });

export const PlanListQuerySchema = z.strictObject({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(PLAN_LIMITS.page_size_max)
    .default(LIMITS.page_size_default)
    .openapi({ param: { name: "limit", in: "query" } }),
  cursor: z.string().max(LIMITS.cursor_length_max).optional().openapi({ param: { name: "cursor", in: "query" } }),
});

const planJson = { "application/json": { schema: PlanSchema } };

export const createPlanRoute = createRoute({
  method: "post",
  path: "/v1/plans",
  operationId: "createPlan",
  summary: "Create a plan: credits granted every period",
  tags: ["plans"],
  security: BEARER_SECURITY,
  middleware: [requireScope("admin")] as const,
  request: { body: jsonBody(CreatePlanSchema) },
  responses: {
    201: { description: "Created", content: planJson },
    ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS, "plan_exists"),
  },
});

export const listPlansRoute = createRoute({
  method: "get",
  path: "/v1/plans",
  operationId: "listPlans",
  summary: "Every plan, archived ones included, by id",
  tags: ["plans"],
  security: BEARER_SECURITY,
  middleware: [requireScope("admin")] as const,
  request: { query: PlanListQuerySchema },
  responses: {
    200: {
      description: "A page of plans",
      content: { "application/json": { schema: z.object({ plans: z.array(PlanSchema), next_cursor: z.string().nullable() }).openapi("PlanPage") } },
    },
    ...errorResponses("validation_failed", "invalid_cursor", ...AUTH_ERRORS),
  },
});

export const getPlanRoute = createRoute({
  method: "get",
  path: "/v1/plans/{id}",
  operationId: "getPlan",
  summary: "One plan",
  tags: ["plans"],
  security: BEARER_SECURITY,
  middleware: [requireScope("admin")] as const,
  request: { params: PlanIdParamsSchema },
  responses: { 200: { description: "The plan", content: planJson }, ...errorResponses("validation_failed", ...AUTH_ERRORS, "plan_not_found") },
});

export const updatePlanRoute = createRoute({
  method: "patch",
  path: "/v1/plans/{id}",
  operationId: "updatePlan",
  summary: "Change or archive a plan; it applies from each subscription's next renewal, past grants never change",
  tags: ["plans"],
  security: BEARER_SECURITY,
  middleware: [requireScope("admin")] as const,
  request: { params: PlanIdParamsSchema, body: jsonBody(UpdatePlanSchema) },
  responses: { 200: { description: "The plan as changed", content: planJson }, ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS, "plan_not_found") },
});

const RunRenewalsSchema = z
  .strictObject({
    plan_id: PlanIdSchema.optional().openapi({ description: "Only subscriptions to this plan." }),
    account_ids: z.array(AccountIdSchema).min(1).max(RUN_LIMITS.account_ids_max).optional().openapi({ description: "Only these accounts." }),
    limit: z
      .number()
      .int()
      .min(1)
      .max(RUN_LIMITS.limit_max)
      .default(RUN_LIMITS.limit_default)
      .openapi({ description: `Due subscriptions taken, earliest due first; default ${RUN_LIMITS.limit_default}.` }),
    dry_run: z.boolean().openapi({ description: "List what would be granted now and write nothing." }),
  })
  .openapi("RenewalRunRequest", { example: { plan_id: "professional", dry_run: true } });

const RenewalSchema = z
  .object({
    account_id: z.string(),
    plan_id: z.string(),
    period_start: z.iso.datetime(),
    period_end: z.iso.datetime().openapi({ description: "When the grant expires: the next period's start." }),
    credits: z.string(),
    rollover: z.string().openapi({ description: "Unconsumed credit of the previous period carried into this grant." }),
    amount: z.string().openapi({ description: "credits + rollover: the grant entry's amount." }),
    priority: z.number().int(),
    entry_id: z.uuid().nullable().openapi({ description: "The grant entry; null in a dry run." }),
  })
  .openapi("Renewal");

const RunResultSchema = z
  .object({
    dry_run: z.boolean(),
    processed: z.number().int().openapi({ description: "Due subscriptions taken." }),
    granted: z.number().int().openapi({ description: "Grants written (in a dry run: that would be written)." }),
    skipped: z.number().int().openapi({ description: "Due but nothing to grant (for example granted by another process first)." }),
    failed: z.number().int(),
    errors: z.array(z.object({ account_id: z.string(), code: z.string(), detail: z.string() })).openapi({
      description: `The first ${RUN_LIMITS.errors_max} failures; the run continued past them.`,
    }),
    renewals: z.array(RenewalSchema),
  })
  .openapi("RenewalRunResult");

export const runRenewalsRoute = createRoute({
  method: "post",
  path: "/v1/renewals/run",
  operationId: "runRenewals",
  summary: "Renew due subscriptions now, or with dry_run list what would be granted",
  tags: ["plans"],
  security: BEARER_SECURITY,
  middleware: [requireScope("admin")] as const,
  request: { body: jsonBody(RunRenewalsSchema) },
  responses: {
    200: { description: "What was (or would be) granted", content: { "application/json": { schema: RunResultSchema } } },
    ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS, "plan_not_found"),
  },
});
