import type { PlanPeriodKind } from "../../db/schema.js";
import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import { AMOUNT_MAX_NANOS, canonicalNumeric, formatNanos, numericToNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { periodLabel, planPeriod, type PlanPeriod } from "./period.js";

/** Plans are made by hand, a few per product: a page of them is small, and the listing is bounded anyway. */
export const PLAN_LIMITS = { name_length_max: 200, page_size_max: 500 } as const;
/** Plan credit burns before purchases (lot priority 50) unless the plan says otherwise. */
export const DEFAULT_PLAN_PRIORITY = 10;

/** A plan as the API shows it. `rollover` is "none" or the most unconsumed credit carried into the next period. */
export interface Plan {
  id: string;
  name: string;
  credits: string;
  period: "day" | "week" | "month" | number;
  rollover: string;
  priority: number;
  metadata: Record<string, unknown>;
  archived: boolean;
  archived_at: string | null;
  created_at: string;
  updated_at: string;
}

/** What renewals need of a plan, with amounts in nano-credits. */
export interface PlanTerms {
  id: string;
  name: string;
  credits: bigint;
  period: PlanPeriod;
  rollover_max: bigint | null;
  priority: number;
  archived: boolean;
}

export interface PlanRow {
  id: string;
  name: string;
  credits: string;
  period_kind: PlanPeriodKind;
  period_days: number | string | null;
  rollover_max: string | null;
  priority: number | string;
  metadata: Record<string, unknown>;
  archived_at: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

export const PLAN_COLUMNS = `id, name, credits::text AS credits, period_kind, period_days, rollover_max::text AS rollover_max,
  priority, metadata, archived_at, created_at, updated_at`;

const iso = (value: Date | string) => new Date(value).toISOString();

export function toPlan(row: PlanRow): Plan {
  const terms = toPlanTerms(row);
  return {
    id: row.id,
    name: row.name,
    credits: canonicalNumeric(row.credits),
    period: periodLabel(terms.period),
    rollover: row.rollover_max === null ? "none" : canonicalNumeric(row.rollover_max),
    priority: terms.priority,
    metadata: row.metadata,
    archived: row.archived_at !== null,
    archived_at: row.archived_at === null ? null : iso(row.archived_at),
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

export function toPlanTerms(row: PlanRow): PlanTerms {
  return {
    id: row.id,
    name: row.name,
    credits: numericToNanos(row.credits),
    period: planPeriod(row.period_kind, row.period_days === null ? null : Number(row.period_days)),
    rollover_max: row.rollover_max === null ? null : numericToNanos(row.rollover_max),
    priority: Number(row.priority),
    archived: row.archived_at !== null,
  };
}

/** A plan's writable attributes, already validated and canonical (amounts as nano-credits). */
export interface PlanInput {
  name: string;
  credits: bigint;
  period: PlanPeriod;
  rollover_max: bigint | null;
  priority: number;
  metadata: Record<string, unknown>;
}

/** Rollover beyond one period's credits would let carried credit grow past what the plan grants. */
function checkRollover(credits: bigint, rollover_max: bigint | null): void {
  if (rollover_max !== null && rollover_max > credits) {
    throw new TallyError("validation_failed", "rollover must not exceed credits", {
      errors: [{ field: "rollover", message: "must be \"none\" or at most credits" }],
    });
  }
  // A grant is credits + rollover, one entry, and no entry may exceed the largest amount.
  if (rollover_max !== null && credits + rollover_max > AMOUNT_MAX_NANOS) {
    throw new TallyError("validation_failed", "credits + rollover must be at most 1000000000000000", {
      errors: [{ field: "rollover", message: "credits + rollover must be at most 1000000000000000" }],
    });
  }
}

function periodColumns(period: PlanPeriod): [PlanPeriodKind, number | null] {
  return period.kind === "days" ? ["days", period.days] : [period.kind, null];
}

export async function createPlan(context: LedgerContext, id: string, input: PlanInput): Promise<Plan> {
  checkRollover(input.credits, input.rollover_max);
  const now = context.clock.now().toISOString();
  const [kind, days] = periodColumns(input.period);
  const [row] = await context.database.query<PlanRow>(
    `INSERT INTO plans (id, name, credits, period_kind, period_days, rollover_max, priority, metadata, created_at, updated_at)
     VALUES ($1, $2, $3::numeric, $4, $5::smallint, $6::numeric, $7::smallint, $8::text::jsonb, $9::timestamptz, $9::timestamptz)
     ON CONFLICT (id) DO NOTHING
     RETURNING ${PLAN_COLUMNS}`,
    [
      id,
      input.name,
      formatNanos(input.credits),
      kind,
      days,
      input.rollover_max === null ? null : formatNanos(input.rollover_max),
      input.priority,
      JSON.stringify(input.metadata),
      now,
    ],
  );
  if (!row) throw new TallyError("plan_exists", `plan ${id} already exists; change it with PATCH /v1/plans/${id}`);
  return toPlan(row);
}

export async function loadPlanRow(database: Queryable, id: string, options: { for_update?: boolean } = {}): Promise<PlanRow> {
  const [row] = await database.query<PlanRow>(
    `SELECT ${PLAN_COLUMNS} FROM plans WHERE id = $1${options.for_update ? " FOR UPDATE" : ""}`,
    [id],
  );
  if (!row) throw new TallyError("plan_not_found", `plan ${id} does not exist`);
  return row;
}

export async function getPlan(context: LedgerContext, id: string): Promise<Plan> {
  return toPlan(await loadPlanRow(context.database, id));
}

/** Plans in id order after `after_id`; one more than `limit` is read to know whether there is a next page. */
export async function listPlans(
  context: LedgerContext,
  options: { limit: number; after_id?: string },
): Promise<{ plans: Plan[]; next_after_id?: string }> {
  const rows = await context.database.query<PlanRow>(
    // '' sorts before every id: the keyset bound stays an index condition in a generic plan.
    `SELECT ${PLAN_COLUMNS} FROM plans WHERE id > $1::text ORDER BY id LIMIT $2`,
    [options.after_id ?? "", options.limit + 1],
  );
  const page = rows.slice(0, options.limit).map(toPlan);
  return { plans: page, next_after_id: rows.length > options.limit ? page.at(-1)?.id : undefined };
}

export type PlanChanges = Partial<PlanInput> & { archived?: boolean };

/**
 * Changes a plan. Past grants are entries and never change; the next renewal of each subscription reads the plan as
 * it is then. The row is locked so that two concurrent changes cannot each pass the rollover check against the
 * other's old credits.
 */
export async function updatePlan(context: LedgerContext, id: string, changes: PlanChanges): Promise<Plan> {
  return context.database.transaction(async (transaction) => {
    const current = toPlanTerms(await loadPlanRow(transaction, id, { for_update: true }));
    const credits = changes.credits ?? current.credits;
    const rollover_max = changes.rollover_max === undefined ? current.rollover_max : changes.rollover_max;
    checkRollover(credits, rollover_max);
    const [kind, days] = periodColumns(changes.period ?? current.period);
    const now = context.clock.now().toISOString();
    const [row] = await transaction.query<PlanRow>(
      `UPDATE plans SET name = COALESCE($2, name), credits = $3::numeric, period_kind = $4, period_days = $5::smallint,
         rollover_max = $6::numeric, priority = COALESCE($7::smallint, priority), metadata = COALESCE($8::text::jsonb, metadata),
         archived_at = CASE WHEN $9::boolean IS NULL THEN archived_at WHEN $9::boolean THEN COALESCE(archived_at, $10::timestamptz) ELSE NULL END,
         updated_at = $10::timestamptz
       WHERE id = $1
       RETURNING ${PLAN_COLUMNS}`,
      [
        id,
        changes.name ?? null,
        formatNanos(credits),
        kind,
        days,
        rollover_max === null ? null : formatNanos(rollover_max),
        changes.priority ?? null,
        changes.metadata === undefined ? null : JSON.stringify(changes.metadata),
        changes.archived ?? null,
        now,
      ],
    );
    return toPlan(row!);
  });
}
