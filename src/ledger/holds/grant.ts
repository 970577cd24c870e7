import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import { CHECKPOINT_BALANCE, CHECKPOINT_JOINS } from "../balances/balance-sql.js";
import { formatNanos, numericToNanos, parseAmount } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { uuidv7 } from "../core/ids.js";
import { observeAtOrBelowZero } from "../events/crossings.js";
import { ensureAccountsExist } from "../posting/posting.js";
import { HELD_TOTAL, activeHoldsJoin } from "./held-sql.js";
import { HOLD_COLUMNS, HOLD_LIMITS, holdRequestHash, toHold, type Hold, type HoldRequest, type HoldRow } from "./hold.js";

/**
 * Advisory-lock namespace (the first key of the two-key form) for hold grants: 12, after the issue that added
 * holds, so that it stays clear of the namespaces other capabilities take (docs/design.md, section 13).
 */
const HOLD_GRANT_LOCK_NAMESPACE = 12;

/** The balance, the held total and the number of active holds, in one statement and one snapshot. */
const GRANT_READ_SQL = `
SELECT ${CHECKPOINT_BALANCE}::text AS balance, ${HELD_TOTAL}::text AS held, COALESCE(held.hold_count, 0)::text AS hold_count
FROM (SELECT $1::text AS account_id) AS requested
${CHECKPOINT_JOINS}
${activeHoldsJoin("$2")}`;

const INSERT_SQL = `
INSERT INTO holds (id, account_id, amount, idempotency_key, request_hash, description, metadata, created_at, expires_at)
VALUES ($1::uuid, $2, $3::numeric, $4, $5, $6, $7::text::jsonb, $8::timestamptz, $9::timestamptz)
ON CONFLICT (account_id, idempotency_key) DO NOTHING
RETURNING ${HOLD_COLUMNS}`;

const FIND_BY_KEY_SQL = `SELECT ${HOLD_COLUMNS} FROM holds WHERE account_id = $1 AND idempotency_key = $2`;

export interface GrantResult {
  hold: Hold;
  replayed: boolean;
}

async function findHoldReplay(
  database: Queryable,
  request: HoldRequest,
  hash: string,
  now: Date,
): Promise<GrantResult | undefined> {
  const [existing] = await database.query<HoldRow>(FIND_BY_KEY_SQL, [request.account_id, request.idempotency_key]);
  if (!existing) return undefined;
  if (existing.request_hash !== hash) {
    throw new TallyError(
      "idempotency_key_reused",
      `idempotency key ${JSON.stringify(request.idempotency_key)} was already used on account ${request.account_id} for a different hold`,
    );
  }
  return { hold: toHold(existing, now), replayed: true };
}

/**
 * Reserves `amount` on the account if its available balance (balance less active holds) covers it. Grants on one
 * account are a serialized decision, like strict debits: a transaction-level advisory lock, then the balance and
 * the held total read in one statement after the lock. Under READ COMMITTED that statement's snapshot includes every
 * grant that committed before this one got the lock, so grants can never reserve more than the balance they read.
 * Usage, captures and releases never take this lock, so the proxy's writes never wait on a grant.
 *
 * A grant refused while the balance itself is at or below zero is an observation (events/crossings.ts), exactly
 * like a refused strict debit: the gateway that was refused is told when credits restore the balance.
 */
export async function grantHold(
  context: LedgerContext,
  request: HoldRequest,
  options: { allow_overdraft: boolean },
): Promise<GrantResult> {
  await ensureAccountsExist(context, [request.account_id]);
  const hash = holdRequestHash(request);
  const parsed = parseAmount(request.amount);
  if (!("nanos" in parsed)) throw new Error("grantHold called with an unvalidated amount");
  const now = context.now();
  const expires_at = new Date(now.getTime() + request.expires_in_s * 1000);
  let refusedAtOrBelowZero = false;
  return context.database
    .transaction(async (transaction) => {
      await transaction.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [
        HOLD_GRANT_LOCK_NAMESPACE,
        request.account_id,
      ]);
      // A replay is answered before the balance check: the hold was granted, whatever the balance is now.
      const replay = await findHoldReplay(transaction, request, hash, now);
      if (replay) return replay;
      // After the lock, in its own statement (see above).
      const [read] = await transaction.query<{ balance: string; held: string; hold_count: string }>(GRANT_READ_SQL, [
        request.account_id,
        now.toISOString(),
      ]);
      const balance = numericToNanos(read!.balance);
      const available = balance - numericToNanos(read!.held);
      if (Number(read!.hold_count) >= HOLD_LIMITS.active_per_account_max) {
        throw new TallyError(
          "too_many_active_holds",
          `account ${request.account_id} has ${HOLD_LIMITS.active_per_account_max} active holds; capture or release some first`,
          { account_id: request.account_id, active_holds_max: HOLD_LIMITS.active_per_account_max },
        );
      }
      if (!options.allow_overdraft && available < parsed.nanos) {
        refusedAtOrBelowZero = balance <= 0n;
        throw new TallyError(
          "insufficient_balance",
          `available ${formatNanos(available)} does not cover a hold of ${request.amount}`,
          {
            account_id: request.account_id,
            balance: formatNanos(balance),
            available: formatNanos(available),
            amount: request.amount,
            deficit: formatNanos(parsed.nanos - available),
          },
        );
      }
      const [inserted] = await transaction.query<HoldRow>(INSERT_SQL, [
        uuidv7(now.getTime()),
        request.account_id,
        request.amount,
        request.idempotency_key,
        hash,
        request.description,
        request.metadata === null ? null : JSON.stringify(request.metadata),
        now.toISOString(),
        expires_at.toISOString(),
      ]);
      if (inserted) return { hold: toHold(inserted, now), replayed: false };
      // Every grant takes the lock and looked for the key above, so nothing can have slipped in.
      throw new Error("hold insert conflicted on the idempotency key under the grant lock");
    })
    .catch(async (error: unknown) => {
      // After the rollback: the observation takes the crossing lock, never while the grant lock is held.
      if (refusedAtOrBelowZero) await observeAtOrBelowZero(context, [request.account_id]);
      throw error;
    });
}
