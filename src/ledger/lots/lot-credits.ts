import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import type { LedgerContext } from "../core/context.js";
import { ENTRY_COLUMNS, deltaOf, requestHash, toEntry, type EntryRequest, type EntryRow } from "../core/entry.js";
import { uuidv7 } from "../core/ids.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import { evaluateCrossing } from "../events/crossings.js";
import { ensureAccountsExist, findReplay, type PostResult } from "../posting/posting.js";
import { DEFAULT_LOT_PRIORITY } from "./allocation.js";

/**
 * A credit with lot attributes (a priority, an expiry, or both). Still one lock-free statement: the entry and, for
 * an expiring credit, its lot row are inserted together, so the expiry sweep and the due check on balance reads
 * know about the lot before any fold has run. The row starts unfolded (remaining = amount); the fold opens it in
 * its place in the allocation order.
 */
const INSERT_LOT_CREDIT_SQL = `
WITH inserted AS (
  INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, description, metadata,
                       priority, expires_at)
  VALUES ($1::uuid, $2, $3, $4::numeric, $5::numeric, $6, $7, $8, $9::text::jsonb, $10::smallint, $11::timestamptz)
  ON CONFLICT (account_id, idempotency_key) DO NOTHING
  RETURNING ${ENTRY_COLUMNS}, seq
), lot AS (
  INSERT INTO credit_lots (account_id, entry_id, entry_seq, type, priority, expires_at, expires_sort, amount,
                           remaining, status, folded, created_at)
  SELECT account_id, id::uuid, seq, type, COALESCE(priority, ${DEFAULT_LOT_PRIORITY}), expires_at, expires_at,
         amount::numeric, amount::numeric, 'open', false, created_at
  FROM inserted WHERE expires_at IS NOT NULL
  ON CONFLICT (account_id, entry_id) DO NOTHING
)
SELECT * FROM inserted`;

/**
 * The insert alone (entry and lot row, one statement), on any connection: renewals (src/ledger/plans/) write their
 * grant inside the transaction that also records the period as granted. Undefined when the key was already used.
 */
export async function insertLotCredit(database: Queryable, request: EntryRequest, hash: string): Promise<EntryRow | undefined> {
  const [inserted] = await database.query<EntryRow>(INSERT_LOT_CREDIT_SQL, [
    uuidv7(),
    request.account_id,
    request.type,
    request.amount,
    deltaOf(request.type, request.amount),
    request.idempotency_key,
    hash,
    request.description,
    request.metadata === null ? null : JSON.stringify(request.metadata),
    request.priority ?? null,
    request.expires_at ?? null,
  ]);
  return inserted;
}

export async function postLotCredit(context: LedgerContext, request: EntryRequest): Promise<PostResult> {
  if (request.expires_at && Date.parse(request.expires_at) <= context.clock.now().getTime()) {
    throw new TallyError("validation_failed", "expires_at must be in the future", {
      errors: [{ field: "expires_at", message: "must be in the future" }],
    });
  }
  await ensureAccountsExist(context, [request.account_id]);
  const hash = requestHash(request);
  const inserted = await insertLotCredit(context.database, request, hash);
  let result: PostResult;
  if (inserted) {
    await maybeRefreshAfterWrite(context, new Map([[request.account_id, 1]]));
    result = { entry: toEntry(inserted), replayed: false };
  } else {
    const replay = await findReplay(context.database, request, hash);
    if (!replay) throw new Error("insert conflicted on the idempotency key but no row holds it");
    result = replay;
  }
  // As for every credit (posting/credits.ts): after it commits, tell a gateway that blocked the account.
  await evaluateCrossing(context, request.account_id, { observed_at_or_below_zero: false });
  return result;
}
