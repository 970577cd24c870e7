import { formatNanos, numericToNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { withLotView, type LotView } from "./view.js";

export interface ExpiringNext {
  expires_at: string;
  amount: string;
}

const EXPIRING_ACCOUNTS_SQL = `
SELECT DISTINCT account_id FROM credit_lots
WHERE account_id = ANY($1::text[]) AND status = 'open' AND expires_at IS NOT NULL`;

/**
 * The earliest future expiry of each account and what remains, now, of the lots expiring then; null if none. Only
 * accounts with an open, expiring lot do any work: `with_expiring_lots` names them when the caller already knows
 * (a balance read learns it in its own statement: getBalances' `lots_expiring`), else one indexed query finds them.
 * For those, the lot view (view.ts) makes the amount reflect every committed debit, not only the ones the fold has
 * reached.
 */
export async function expiringNext(
  context: LedgerContext,
  account_ids: readonly string[],
  with_expiring_lots?: ReadonlySet<string>,
): Promise<Map<string, ExpiringNext | null>> {
  const result = new Map<string, ExpiringNext | null>(account_ids.map((id) => [id, null]));
  if (account_ids.length === 0) return result;
  const expiring =
    with_expiring_lots === undefined
      ? await context.database.query<{ account_id: string }>(EXPIRING_ACCOUNTS_SQL, [[...new Set(account_ids)]])
      : [...new Set(account_ids)].filter((id) => with_expiring_lots.has(id)).map((account_id) => ({ account_id }));
  const nowIso = context.clock.now().toISOString();
  for (const { account_id } of expiring) {
    result.set(account_id, await withLotView(context, account_id, (view) => earliest(view, account_id, nowIso)));
  }
  return result;
}

async function earliest(view: LotView, account_id: string, nowIso: string): Promise<ExpiringNext | null> {
  const fromMemory = new Map<string, bigint>();
  for (const lot of view.book.all()) {
    if (lot.status !== "open" || lot.expires_at === null || lot.expires_at <= nowIso || lot.remaining === 0n) continue;
    fromMemory.set(lot.expires_at, (fromMemory.get(lot.expires_at) ?? 0n) + lot.remaining);
  }
  // The table's earliest group among the lots the view did not touch (the due index serves it).
  const [group] = await view.transaction.query<{ expires_at: Date | string; remaining: string }>(
    `SELECT expires_sort AS expires_at, SUM(remaining)::text AS remaining FROM credit_lots
     WHERE account_id = $1 AND status = 'open' AND expires_at IS NOT NULL AND expires_sort > $2::timestamptz
       AND entry_id <> ALL($3::uuid[]) AND remaining > 0
     GROUP BY expires_sort ORDER BY expires_sort LIMIT 1`,
    [account_id, nowIso, view.memory_ids],
  );
  const tableTime = group ? new Date(group.expires_at).toISOString() : undefined;
  const memoryTime = [...fromMemory.keys()].sort()[0];
  if (tableTime === undefined && memoryTime === undefined) return null;
  const time = tableTime === undefined || (memoryTime !== undefined && memoryTime < tableTime) ? memoryTime! : tableTime;
  const amount = (tableTime === time ? numericToNanos(group!.remaining) : 0n) + (fromMemory.get(time) ?? 0n);
  return { expires_at: time, amount: formatNanos(amount) };
}
