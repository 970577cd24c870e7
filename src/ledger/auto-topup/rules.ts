import { TallyError } from "../../errors.js";
import { canonicalNumeric } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { ensureAccountsExist } from "../posting/posting.js";
import { utcMonthOf } from "./month.js";

/**
 * Auto top-up rules: one per account. Writing a rule never evaluates the balance; it clears the rule's saved
 * snapshot, so the next detector pass (detector.ts) evaluates the account under the new rule within its interval.
 */

export interface AutoTopupRuleInput {
  /** Canonical decimal strings; exactly one of `amount` and `target_balance`. */
  threshold: string;
  amount: string | null;
  target_balance: string | null;
  monthly_limit: string;
  enabled: boolean;
}

export type AutoTopupRequestStatus = "open" | "fulfilled" | "expired" | "superseded";

export interface AutoTopupRule extends AutoTopupRuleInput {
  account_id: string;
  /** What was requested in the current UTC calendar month (by the ledger clock), fulfilled or not. */
  requested_this_month: string;
  /** The most recent request, if any, with its status now. */
  last_request: {
    id: string;
    amount: string;
    balance: string;
    requested_at: string;
    expires_at: string;
    status: AutoTopupRequestStatus;
  } | null;
  created_at: string;
  updated_at: string;
}

const UPSERT_SQL = `
INSERT INTO auto_topup_rules (account_id, threshold, amount, target_balance, monthly_limit, enabled)
VALUES ($1, $2::numeric, $3::numeric, $4::numeric, $5::numeric, $6)
ON CONFLICT (account_id) DO UPDATE SET
  threshold = EXCLUDED.threshold, amount = EXCLUDED.amount, target_balance = EXCLUDED.target_balance,
  monthly_limit = EXCLUDED.monthly_limit, enabled = EXCLUDED.enabled, updated_at = now(),
  -- Re-evaluate under the new rule at the next pass, even if no entry is written meanwhile.
  evaluated_snapshot = NULL
RETURNING (xmax = 0) AS created`;

// `status` of the last request: fulfilled if an entry carries its id as idempotency key; otherwise open while it
// blocks the next request, expired past expires_at, superseded once the balance was seen above the threshold again.
const READ_SQL = `
SELECT rule.account_id, rule.threshold::text AS threshold, rule.amount::text AS amount,
       rule.target_balance::text AS target_balance, rule.monthly_limit::text AS monthly_limit, rule.enabled,
       rule.created_at, rule.updated_at, rule.open_request_id::text AS open_request_id,
       (SELECT COALESCE(SUM(request.amount), 0)::text FROM auto_topup_requests AS request
        WHERE request.account_id = rule.account_id AND request.requested_at >= $2 AND request.requested_at < $3)
         AS requested_this_month,
       last.id::text AS last_id, last.amount::text AS last_amount, last.balance::text AS last_balance,
       last.requested_at AS last_requested_at, last.expires_at AS last_expires_at,
       EXISTS (SELECT 1 FROM entries AS entry WHERE entry.account_id = rule.account_id AND entry.idempotency_key = last.id::text)
         AS last_fulfilled
FROM auto_topup_rules AS rule
LEFT JOIN LATERAL (
  SELECT * FROM auto_topup_requests AS request WHERE request.account_id = rule.account_id
  ORDER BY request.requested_at DESC, request.id DESC LIMIT 1
) AS last ON true
WHERE rule.account_id = $1`;

interface RuleRow {
  account_id: string;
  threshold: string;
  amount: string | null;
  target_balance: string | null;
  monthly_limit: string;
  enabled: boolean;
  created_at: Date | string;
  updated_at: Date | string;
  open_request_id: string | null;
  requested_this_month: string;
  last_id: string | null;
  last_amount: string | null;
  last_balance: string | null;
  last_requested_at: Date | string | null;
  last_expires_at: Date | string | null;
  last_fulfilled: boolean;
}

const iso = (value: Date | string) => new Date(value).toISOString();

function toRule(row: RuleRow, now: Date): AutoTopupRule {
  let last_request: AutoTopupRule["last_request"] = null;
  if (row.last_id !== null) {
    const expires_at = iso(row.last_expires_at!);
    const status: AutoTopupRequestStatus = row.last_fulfilled
      ? "fulfilled"
      : new Date(expires_at) <= now
        ? "expired"
        : row.open_request_id === row.last_id
          ? "open"
          : "superseded";
    last_request = {
      id: row.last_id,
      amount: canonicalNumeric(row.last_amount!),
      balance: canonicalNumeric(row.last_balance!),
      requested_at: iso(row.last_requested_at!),
      expires_at,
      status,
    };
  }
  return {
    account_id: row.account_id,
    threshold: canonicalNumeric(row.threshold),
    amount: row.amount === null ? null : canonicalNumeric(row.amount),
    target_balance: row.target_balance === null ? null : canonicalNumeric(row.target_balance),
    monthly_limit: canonicalNumeric(row.monthly_limit),
    enabled: row.enabled,
    requested_this_month: canonicalNumeric(row.requested_this_month),
    last_request,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

export async function getAutoTopupRule(context: LedgerContext, account_id: string): Promise<AutoTopupRule> {
  const now = context.now();
  const month = utcMonthOf(now);
  const [row] = await context.database.query<RuleRow>(READ_SQL, [account_id, month.start.toISOString(), month.end.toISOString()]);
  if (!row) {
    await ensureAccountsExist(context, [account_id]);
    throw new TallyError("not_found", `account ${account_id} has no auto top-up rule`);
  }
  return toRule(row, now);
}

/** Creates or replaces the account's rule; `created` says which. */
export async function putAutoTopupRule(
  context: LedgerContext,
  account_id: string,
  input: AutoTopupRuleInput,
): Promise<{ rule: AutoTopupRule; created: boolean }> {
  await ensureAccountsExist(context, [account_id]);
  const [row] = await context.database.query<{ created: boolean }>(UPSERT_SQL, [
    account_id,
    input.threshold,
    input.amount,
    input.target_balance,
    input.monthly_limit,
    input.enabled,
  ]);
  return { rule: await getAutoTopupRule(context, account_id), created: row!.created };
}

/** Removes the rule. Requests already made stay (the billing side may still fulfil them) and still count. */
export async function deleteAutoTopupRule(context: LedgerContext, account_id: string): Promise<void> {
  const rows = await context.database.query("DELETE FROM auto_topup_rules WHERE account_id = $1 RETURNING account_id", [account_id]);
  if (rows.length === 0) {
    await ensureAccountsExist(context, [account_id]);
    throw new TallyError("not_found", `account ${account_id} has no auto top-up rule`);
  }
}
