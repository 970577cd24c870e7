/**
 * The held total of `available`, as a fragment joined to a row source `requested(account_id)` next to
 * CHECKPOINT_JOINS, so that a balance and its holds come from one statement and one snapshot. A capture closes its
 * hold and posts its usage in one transaction, so no snapshot sees the usage without the hold closed, or the hold
 * closed without the usage: available never shows a value that did not exist.
 *
 * The partial index `holds_account_active_expires_at` holds only active holds, and the range `expires_at > now`
 * skips the expired ones, so the read costs O(active holds), however many holds the account ever had. An expired
 * hold stops counting at its expires_at instant with nothing written.
 *
 * `now_parameter` names the statement's parameter holding the ledger clock's time (`$2`, ...).
 */
export function activeHoldsJoin(now_parameter: string): string {
  return `
LEFT JOIN LATERAL (
  SELECT SUM(hold.amount) AS total, COUNT(*) AS hold_count
  FROM holds AS hold
  WHERE hold.account_id = requested.account_id
    AND hold.status = 'active'
    AND hold.expires_at > ${now_parameter}::timestamptz
) AS held ON true`;
}

export const HELD_TOTAL = "COALESCE(held.total, 0)";
