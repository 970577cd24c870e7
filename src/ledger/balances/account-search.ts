import { formatNanos, numericToNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { CHECKPOINT_BALANCE, CHECKPOINT_JOINS } from "./balance-sql.js";

/** Page sizes and depth of the console's account search; offsets beyond this are refused, not scanned. */
export const ACCOUNT_SEARCH_PAGE_MAX = 200;
export const ACCOUNT_SEARCH_OFFSET_MAX = 10_000;
export const ACCOUNT_SEARCH_ORDERS = ["id", "balance"] as const;
export type AccountSearchOrder = (typeof ACCOUNT_SEARCH_ORDERS)[number];

/**
 * Accounts whose id starts with `prefix`, with their balances, in id order or lowest balance first (to find the
 * accounts at or below zero). Balances come from the same checkpoint-plus-delta expression every balance read
 * uses (balance-sql.ts). Sorting by balance must read the balance of every matching account, so its cost grows with
 * the number of matches: a narrower prefix is the way to keep it cheap on a very large ledger. An admin listing: it
 * registers no depletion observations.
 */
export async function searchAccounts(
  context: LedgerContext,
  request: { prefix: string; order: AccountSearchOrder; limit: number; offset: number },
): Promise<{ accounts: { id: string; balance: string; created_at: string }[]; has_more: boolean }> {
  const order = request.order === "balance" ? "balance ASC, requested.account_id ASC" : "requested.account_id ASC";
  const rows = await context.database.query<{ account_id: string; balance: string; created_at: Date | string }>(
    `SELECT requested.account_id, ${CHECKPOINT_BALANCE}::text AS balance, requested.created_at
     FROM (SELECT id AS account_id, created_at FROM accounts WHERE starts_with(id, $1::text)) AS requested
     ${CHECKPOINT_JOINS}
     ORDER BY ${order}
     LIMIT $2::int OFFSET $3::int`,
    [request.prefix, request.limit + 1, request.offset],
  );
  return {
    accounts: rows.slice(0, request.limit).map((row) => ({
      id: row.account_id,
      balance: formatNanos(numericToNanos(row.balance)),
      created_at: new Date(row.created_at).toISOString(),
    })),
    has_more: rows.length > request.limit,
  };
}
