import type { Queryable } from "../../db/port.js";
import { CHECKPOINT_BALANCE, CHECKPOINT_JOINS } from "./balance-sql.js";
import { TallyError } from "../../errors.js";
import { formatNanos, numericToNanos } from "../core/amount.js";
import { refreshQuietly } from "./checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { observeAtOrBelowZero } from "../events/crossings.js";
import { HELD_TOTAL, activeHoldsJoin } from "../holds/held-sql.js";
import { settleAccount } from "../lots/settle.js";

/** The most accounts one bulk balance query may ask for. */
export const BULK_BALANCE_ACCOUNTS_MAX = 1000;

/**
 * balance = checkpoint + the account's rows at or above the checkpoint's transaction-id boundary. One statement, so
 * the checkpoint and the delta come from one snapshot; the (account_id, xid) index makes the delta read touch only
 * the delta rows. The same prepared statement serves one account and a thousand.
 *
 * It also reads the earliest expiry among the account's open lots (one probe of the partial index
 * credit_lots_account_expiring), so that a read learns in the same round trip whether a lot is due (the read must
 * settle it first) and whether `expiring_next` has anything to find: an account without expiring lots costs one
 * statement, not three.
 */
const BALANCES_SQL = `
SELECT requested.account_id,
       account.id IS NOT NULL AS account_exists,
       ${CHECKPOINT_BALANCE}::text AS balance,
       delta.row_count::text AS delta_rows,
       ${HELD_TOTAL}::text AS held,
       expiring.first_expiry IS NOT NULL AS lots_expiring,
       COALESCE(expiring.first_expiry <= $2::timestamptz, false) AS lots_due
FROM unnest($1::text[]) AS requested(account_id)
LEFT JOIN accounts AS account ON account.id = requested.account_id
${CHECKPOINT_JOINS}
${activeHoldsJoin("$2")}
LEFT JOIN LATERAL (
  SELECT MIN(lot.expires_sort) AS first_expiry FROM credit_lots AS lot
  WHERE lot.account_id = requested.account_id AND lot.status = 'open' AND lot.expires_at IS NOT NULL
) AS expiring ON true`;

interface BalanceRow {
  account_id: string;
  account_exists: boolean;
  balance: string;
  delta_rows: string;
  held: string;
  lots_expiring: boolean;
  lots_due: boolean;
}

export interface ReadBalance {
  nanos: bigint;
  delta_rows: number;
  held_nanos: bigint;
  /** The account has an open lot that expires (so `expiring_next` may be non-null). */
  lots_expiring: boolean;
  /** An open lot's expiry is at or before `now`: the balance still includes credit that has expired. */
  lots_due: boolean;
}

export interface AccountBalance {
  account_id: string;
  balance: string;
}

/**
 * Reads balances without refreshing or settling anything; usable inside a transaction (strict debits use it).
 * `held_nanos` is the total of the active holds unexpired at `now` (the ledger clock's time), and `lots_due` is
 * judged at `now` too, all in the same statement.
 */
export async function readBalances(
  database: Queryable,
  account_ids: readonly string[],
  now: Date = new Date(),
): Promise<{ found: Map<string, ReadBalance>; missing: string[] }> {
  const rows = await database.query<BalanceRow>(BALANCES_SQL, [[...new Set(account_ids)], now.toISOString()]);
  const found = new Map<string, ReadBalance>();
  const missing: string[] = [];
  for (const row of rows) {
    if (!row.account_exists) missing.push(row.account_id);
    else {
      found.set(row.account_id, {
        nanos: numericToNanos(row.balance),
        delta_rows: Number(row.delta_rows),
        held_nanos: numericToNanos(row.held),
        lots_expiring: row.lots_expiring,
        lots_due: row.lots_due,
      });
    }
  }
  return { found, missing };
}

/**
 * Balances for up to BULK_BALANCE_ACCOUNTS_MAX accounts in one query. Accounts whose delta has grown past
 * CHECKPOINT_DELTA_MAX rows are refreshed afterwards, so the next read is cheap again.
 *
 * Every balance at or below zero is an observation a gateway may block on, so it is registered (see
 * crossings.ts) before it is returned; `observe: false` is for admin listings that no gateway acts on.
 */
export async function getBalances(
  context: LedgerContext,
  account_ids: readonly string[],
  options: { observe: boolean } = { observe: true },
): Promise<{ balances: Map<string, bigint>; available: Map<string, bigint>; missing: string[]; lots_expiring: Set<string> }> {
  const now = context.now();
  let { found, missing } = await readBalances(context.database, account_ids, now);
  // A lot due at the clock's now expires before the balance is answered, so a read never includes expired credit
  // (src/ledger/lots/): settle those accounts, then read again. Rare; otherwise the read above was the only one.
  const due = [...found].filter(([, balance]) => balance.lots_due).map(([id]) => id);
  if (due.length > 0) {
    for (const account_id of due) await settleAccount(context, account_id, { now });
    ({ found, missing } = await readBalances(context.database, account_ids, now));
  }
  const overgrown = [...found].filter(([, balance]) => balance.delta_rows > context.checkpoint_policy.delta_max);
  if (overgrown.length > 0) await refreshQuietly(context, overgrown.map(([id]) => id));
  for (const id of found.keys()) context.known_accounts.remember(id);
  if (options.observe) {
    await observeAtOrBelowZero(
      context,
      [...found].filter(([, balance]) => balance.nanos <= 0n).map(([id]) => id),
    );
  }
  return {
    balances: new Map([...found].map(([id, balance]) => [id, balance.nanos])),
    // Events stay about the balance; `available` only informs the answer (holds never change a balance).
    available: new Map([...found].map(([id, balance]) => [id, balance.nanos - balance.held_nanos])),
    missing,
    lots_expiring: new Set([...found].filter(([, balance]) => balance.lots_expiring).map(([id]) => id)),
  };
}

export async function getBalance(context: LedgerContext, account_id: string): Promise<bigint> {
  return (await getBalanceAndAvailable(context, account_id)).balance;
}

export async function getBalanceAndAvailable(
  context: LedgerContext,
  account_id: string,
): Promise<{ balance: bigint; available: bigint; lots_expiring: boolean }> {
  const { balances, available, lots_expiring } = await getBalances(context, [account_id]);
  const balance = balances.get(account_id);
  if (balance === undefined) throw new TallyError("account_not_found", `account ${account_id} does not exist`);
  return { balance, available: available.get(account_id)!, lots_expiring: lots_expiring.has(account_id) };
}

export interface BalanceCheck {
  account_id: string;
  balance: string;
  available: string;
  amount: string;
  sufficient: boolean;
  deficit: string;
}

/**
 * Would a debit (or a hold) of `amount_nanos` fit? Judged on `available`, the balance less active holds, because
 * credit already reserved for calls in flight is not there to spend. Advisory only: nothing is reserved.
 */
export async function checkBalance(
  context: LedgerContext,
  account_id: string,
  amount_nanos: bigint,
): Promise<BalanceCheck> {
  const { balance, available } = await getBalanceAndAvailable(context, account_id);
  const deficit = amount_nanos > available ? amount_nanos - available : 0n;
  return {
    account_id,
    balance: formatNanos(balance),
    available: formatNanos(available),
    amount: formatNanos(amount_nanos),
    sufficient: deficit === 0n,
    deficit: formatNanos(deficit),
  };
}
