import { formatNanos, numericToNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { HELD_TOTAL, activeHoldsJoin } from "../holds/held-sql.js";
import { EXPIRING_PAGE_COLUMNS, expiringFromPageRow, expiringPageJoins, type ExpiringPageRow, type PageExpiring } from "../lots/expiring-page.js";
import { CHECKPOINT_BALANCE, CHECKPOINT_JOINS } from "./balance-sql.js";

/** Page sizes and depth of the console's account search; offsets beyond this are refused, not scanned. */
export const ACCOUNT_SEARCH_PAGE_MAX = 200;
export const ACCOUNT_SEARCH_OFFSET_MAX = 10_000;
export const ACCOUNT_SEARCH_ORDERS = ["id", "balance"] as const;
export type AccountSearchOrder = (typeof ACCOUNT_SEARCH_ORDERS)[number];

export interface AccountSearchRow {
  id: string;
  balance: string;
  /** The balance less the active holds, as `GET /v1/balances/{id}` answers it. */
  available: string;
  held: string;
  expiring_next: PageExpiring | null;
  created_at: string;
}

/**
 * Accounts whose id starts with `prefix`, with their balances, holds and next expiring credit, in id order or
 * lowest balance first (to find the accounts at or below zero). One statement per page, so every figure on a page
 * comes from one snapshot and a page costs one round trip however many accounts it shows: balances from the same
 * checkpoint-plus-delta expression every balance read uses (balance-sql.ts), holds from the same fragment as
 * `available` (held-sql.ts), and expiring credit from capped reads of the lot fold (lots/expiring-page.ts).
 * Sorting by balance must read the balance of every matching account, so its cost grows with the number of
 * matches: a narrower prefix is the way to keep it cheap on a very large ledger. An admin listing: it registers no
 * depletion observations and expires nothing (the sweep does, every second by default).
 */
export async function searchAccounts(
  context: LedgerContext,
  request: { prefix: string; order: AccountSearchOrder; limit: number; offset: number },
): Promise<{ accounts: AccountSearchRow[]; has_more: boolean }> {
  const order = request.order === "balance" ? "balance_sort ASC, requested.account_id ASC" : "requested.account_id ASC";
  const limit = Math.min(request.limit, ACCOUNT_SEARCH_PAGE_MAX);
  const now = context.now();
  // The page is chosen first, so the holds and lots of only its accounts are read.
  const rows = await context.database.query<ExpiringPageRow & { balance: string; held: string; created_at: Date | string }>(
    `WITH page AS (
       SELECT requested.account_id, requested.created_at, ${CHECKPOINT_BALANCE} AS balance_sort
       FROM (SELECT id AS account_id, created_at FROM accounts WHERE starts_with(id, $1::text)) AS requested
       ${CHECKPOINT_JOINS}
       ORDER BY ${order}
       LIMIT $2::int OFFSET $3::int
     )
     SELECT requested.account_id, requested.created_at, requested.balance_sort::text AS balance, ${HELD_TOTAL}::text AS held,
            ${EXPIRING_PAGE_COLUMNS}
     FROM page AS requested
     ${activeHoldsJoin("$4")}
     ${expiringPageJoins("$4")}
     ORDER BY ${order}`,
    [request.prefix, limit + 1, request.offset, now.toISOString()],
  );
  const accounts: AccountSearchRow[] = [];
  for (const row of rows.slice(0, limit)) {
    const balance = numericToNanos(row.balance);
    const held = numericToNanos(row.held);
    accounts.push({
      id: row.account_id,
      balance: formatNanos(balance),
      available: formatNanos(balance - held),
      held: formatNanos(held),
      expiring_next: await expiringFromPageRow(row, balance, now),
      created_at: new Date(row.created_at).toISOString(),
    });
  }
  return { accounts, has_more: rows.length > limit };
}
