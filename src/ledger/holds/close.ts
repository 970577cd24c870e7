import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { requestHash, toEntry, type Entry, type EntryRequest } from "../core/entry.js";
import { findReplay, insertEntry } from "../posting/posting.js";
import { HOLD_COLUMNS, captureIdempotencyKey, toHold, type Hold, type HoldRow } from "./hold.js";

/**
 * Closing a hold is one conditional UPDATE of its row, `WHERE status = 'active'`. Two concurrent closes of one hold
 * meet on the row lock: the second waits for the first to commit, re-checks the condition on the new row version,
 * finds it closed and updates nothing, and then reads what the first one did in a statement of its own (a new
 * snapshot under READ COMMITTED) to answer a replay or a conflict. Nothing else takes that row lock: usage, grants
 * and balance reads never wait on a capture.
 */
const CLOSE_SQL = `
UPDATE holds
SET status = $2, closed_at = $3::timestamptz, capture_hash = $4, captured_amount = $5::numeric
WHERE id = $1::uuid AND status = 'active'
RETURNING ${HOLD_COLUMNS}`;

const FIND_SQL = `SELECT ${HOLD_COLUMNS} FROM holds WHERE id = $1::uuid`;

export async function findHoldRow(database: Queryable, hold_id: string): Promise<HoldRow | undefined> {
  const [row] = await database.query<HoldRow>(FIND_SQL, [hold_id]);
  return row;
}

function holdNotFound(hold_id: string): TallyError {
  return new TallyError("hold_not_found", `hold ${hold_id} does not exist`);
}

export interface CaptureRequest {
  /** Canonical decimal string: the actual cost, which may exceed the hold. */
  amount: string;
  description: string | null;
  metadata: Record<string, unknown> | null;
  /** Priced capture (src/ledger/prices/): what was measured and the price version `amount` came from. */
  priced?: { meter: string; quantities: Record<string, number>; price_version: number };
}

export interface CaptureResult {
  hold: Hold;
  entry: Entry;
  /** What the hold was when the capture arrived: `expired` when the call finished after the hold lapsed. */
  hold_status: "active" | "expired";
  replayed: boolean;
}

function captureStatus(row: HoldRow): "active" | "expired" {
  return new Date(row.closed_at!).getTime() >= new Date(row.expires_at).getTime() ? "expired" : "active";
}

/**
 * Posts the actual cost as a usage entry naming the hold and closes the hold, in one transaction, so that no
 * snapshot (a balance read, a grant's decision) ever sees the usage with the hold still active, or the hold closed
 * without its usage. The usage is never refused, whatever the balance, and an expired hold is still captured: the
 * call finished late, but its cost is real. `authorize` runs on the hold's account before anything is written.
 */
export async function captureHold(
  context: LedgerContext,
  hold_id: string,
  capture: CaptureRequest,
  authorize: (account_id: string) => void,
): Promise<CaptureResult> {
  const existing = await findHoldRow(context.database, hold_id);
  if (!existing) throw holdNotFound(hold_id);
  authorize(existing.account_id);
  const entry_request: EntryRequest = {
    account_id: existing.account_id,
    type: "usage",
    amount: capture.amount,
    idempotency_key: captureIdempotencyKey(hold_id),
    batch_id: null,
    description: capture.description,
    metadata: capture.metadata,
    hold_id,
    ...(capture.priced ?? {}),
  };
  const hash = requestHash(entry_request);
  const now = context.now();
  const result = await context.database.transaction(async (transaction): Promise<CaptureResult> => {
    const [closed] = await transaction.query<HoldRow>(CLOSE_SQL, [
      hold_id,
      "captured",
      now.toISOString(),
      hash,
      capture.amount,
    ]);
    if (closed) {
      const inserted = await insertEntry(transaction, entry_request, hash);
      // The key is derived from the hold, and only the transaction that closed the hold inserts under it.
      if (!inserted) throw new Error(`capture of hold ${hold_id} found its usage key already taken`);
      return { hold: toHold(closed, now), entry: toEntry(inserted), hold_status: captureStatus(closed), replayed: false };
    }
    const current = await findHoldRow(transaction, hold_id);
    if (!current) throw new Error(`hold ${hold_id} disappeared`);
    if (current.status !== "captured" || current.capture_hash !== hash) {
      throw new TallyError(
        "hold_not_active",
        current.status === "captured"
          ? `hold ${hold_id} was already captured with a different amount, description or metadata`
          : `hold ${hold_id} was released; nothing can be captured on it`,
        { hold_id, hold_status: current.status },
      );
    }
    const replay = await findReplay(transaction, entry_request, hash);
    if (!replay) throw new Error(`captured hold ${hold_id} has no usage entry`);
    return { hold: toHold(current, now), entry: replay.entry, hold_status: captureStatus(current), replayed: true };
  });
  if (!result.replayed) await maybeRefreshAfterWrite(context, new Map([[result.hold.account_id, 1]]));
  return result;
}


/**
 * Closes the hold with nothing posted (the call failed). Idempotent: releasing a released hold answers it again as a
 * replay; releasing a captured hold is `409 hold_not_active`. An expired hold may be released, which only records
 * that the caller is done with it.
 */
export async function releaseHold(
  context: LedgerContext,
  hold_id: string,
  authorize: (account_id: string) => void,
): Promise<{ hold: Hold; replayed: boolean }> {
  const existing = await findHoldRow(context.database, hold_id);
  if (!existing) throw holdNotFound(hold_id);
  authorize(existing.account_id);
  const now = context.now();
  const [closed] = await context.database.query<HoldRow>(CLOSE_SQL, [hold_id, "released", now.toISOString(), null, null]);
  if (closed) return { hold: toHold(closed, now), replayed: false };
  // A separate statement: it sees the close that made the UPDATE match nothing.
  const current = await findHoldRow(context.database, hold_id);
  if (!current) throw new Error(`hold ${hold_id} disappeared`);
  if (current.status === "released") return { hold: toHold(current, now), replayed: true };
  throw new TallyError("hold_not_active", `hold ${hold_id} was captured; it cannot be released`, {
    hold_id,
    hold_status: current.status,
  });
}
