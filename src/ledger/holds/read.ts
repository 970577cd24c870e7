import { TallyError } from "../../errors.js";
import type { LedgerContext } from "../core/context.js";
import { ensureAccountsExist } from "../posting/posting.js";
import { findHoldRow } from "./close.js";
import { HOLD_COLUMNS, toHold, type Hold, type HoldRow, type HoldStatus } from "./hold.js";
import { UUID_MAX } from "../../db/keyset-bounds.js";

/**
 * The condition each listed status adds. `active` and `expired` are both stored as `active` and told apart by the
 * clock ($3), so a hold moves from one listing to the other at its expires_at instant with nothing written. Each
 * condition is served by the (account_id, status, id) index, newest first.
 */
const STATUS_CONDITIONS: Record<HoldStatus | "any", string> = {
  any: "true",
  active: "status = 'active' AND expires_at > $3::timestamptz",
  expired: "status = 'active' AND expires_at <= $3::timestamptz",
  captured: "status = 'captured'",
  released: "status = 'released'",
};

function listSql(status: HoldStatus | "any"): string {
  return `
SELECT ${HOLD_COLUMNS} FROM holds
WHERE account_id = $1 AND id < $2::uuid AND $3::timestamptz IS NOT NULL
  AND ${STATUS_CONDITIONS[status]}
ORDER BY id DESC
LIMIT $4`;
}

/** One hold; `visible` says whether the caller may see the hold's account (an end user sees only their own). */
export async function getHold(
  context: LedgerContext,
  hold_id: string,
  visible: (account_id: string) => boolean,
): Promise<Hold> {
  const row = await findHoldRow(context.database, hold_id);
  // Another account's hold answers exactly like a missing one, so hold ids reveal nothing across accounts.
  if (!row || !visible(row.account_id)) throw new TallyError("hold_not_found", `hold ${hold_id} does not exist`);
  return toHold(row, context.now());
}

/** An account's holds, newest first, optionally of one status; pages by the last id listed. */
export async function listHolds(
  context: LedgerContext,
  account_id: string,
  page: { status: HoldStatus | undefined; limit: number; before_id: string | undefined },
): Promise<{ holds: Hold[]; next_before_id: string | undefined }> {
  await ensureAccountsExist(context, [account_id]);
  const now = context.now();
  const rows = await context.database.query<HoldRow>(listSql(page.status ?? "any"), [
    account_id,
    page.before_id ?? UUID_MAX, // "no bound" as a value (db/keyset-bounds.ts)
    now.toISOString(),
    page.limit + 1,
  ]);
  const pageRows = rows.slice(0, page.limit);
  return {
    holds: pageRows.map((row) => toHold(row, now)),
    next_before_id: rows.length > page.limit ? pageRows.at(-1)?.id : undefined,
  };
}
