import { TallyError } from "../../errors.js";
import type { LedgerContext } from "../core/context.js";
import { previewRenewal, renewAccount, type Renewal } from "./renewal.js";

export const RUN_LIMITS = {
  /** Subscriptions one run takes at most (the CLI calls again until nothing is due). */
  limit_max: 1000,
  limit_default: 100,
  account_ids_max: 1000,
  /** Failures a run reports in detail; the count is always complete. */
  errors_max: 100,
  /** Accounts renewed at once by one run. */
  concurrency: 4,
} as const;

export interface RunRequest {
  plan_id?: string;
  account_ids?: readonly string[];
  limit?: number;
  dry_run: boolean;
}

export interface RunError {
  account_id: string;
  code: string;
  detail: string;
}

export interface RunResult {
  dry_run: boolean;
  processed: number;
  granted: number;
  skipped: number;
  failed: number;
  errors: RunError[];
  /** What was granted, or in a dry run what would be, in the order the subscriptions were taken. */
  renewals: Renewal[];
}

/**
 * Due subscriptions in a stable order (due time, then account), so a dry run and the real run that follows it take
 * the same ones. Only active subscriptions have a next renewal; the filters are optional.
 */
const DUE_SQL = `
SELECT account_id FROM plan_subscriptions
WHERE next_renewal_at <= $1::timestamptz
  AND ($2::text IS NULL OR plan_id = $2::text)
  AND ($3::text[] IS NULL OR account_id = ANY($3::text[]))
ORDER BY next_renewal_at, account_id
LIMIT $4`;

/** The accounts due now, as the operator filters them. */
export async function dueAccounts(context: LedgerContext, request: RunRequest, now: Date): Promise<string[]> {
  const limit = request.limit ?? RUN_LIMITS.limit_default;
  const rows = await context.database.query<{ account_id: string }>(DUE_SQL, [
    now.toISOString(),
    request.plan_id ?? null,
    request.account_ids === undefined ? null : [...new Set(request.account_ids)],
    limit,
  ]);
  return rows.map((row) => row.account_id);
}

/**
 * POST /v1/renewals/run and `tally renewals`: renews the due subscriptions now (or, with dry_run, lists what would be
 * granted and writes nothing), continuing past failures. Safe beside the scheduler and other runs: each account is
 * renewed under its subscription row lock, so a period another process granted first is counted as skipped.
 */
export async function runRenewals(context: LedgerContext, request: RunRequest): Promise<RunResult> {
  const now = context.clock.now();
  if (request.plan_id !== undefined) {
    const [plan] = await context.database.query<{ id: string }>("SELECT id FROM plans WHERE id = $1", [request.plan_id]);
    if (!plan) throw new TallyError("plan_not_found", `plan ${request.plan_id} does not exist`);
  }
  const accounts = await dueAccounts(context, request, now);
  const result: RunResult = { dry_run: request.dry_run, processed: 0, granted: 0, skipped: 0, failed: 0, errors: [], renewals: [] };
  const slots: (Renewal | undefined)[] = new Array(accounts.length);
  let next = 0;
  const worker = async () => {
    for (let index = next++; index < accounts.length; index = next++) {
      const account_id = accounts[index]!;
      try {
        if (request.dry_run) {
          const renewal = await previewRenewal(context, account_id, now);
          slots[index] = renewal;
          if (renewal) result.granted++;
          else result.skipped++;
        } else {
          const outcome = await renewAccount(context, account_id, now);
          if (outcome.kind === "granted") {
            slots[index] = outcome.renewal;
            result.granted++;
          } else result.skipped++;
        }
      } catch (error) {
        result.failed++;
        if (result.errors.length < RUN_LIMITS.errors_max) result.errors.push(describeError(account_id, error));
        context.logger.warn({ err: error, account_id }, "renewal failed");
      }
      result.processed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(RUN_LIMITS.concurrency, accounts.length) }, worker));
  result.renewals = slots.filter((renewal): renewal is Renewal => renewal !== undefined);
  return result;
}

/** A failure as the operator sees it: a catalogued code and its detail, or a generic line (no internals leak). */
function describeError(account_id: string, error: unknown): RunError {
  if (error instanceof TallyError) return { account_id, code: error.code, detail: error.detail };
  return { account_id, code: "internal_error", detail: "the renewal failed; it is retried by the next run (see the server log)" };
}
