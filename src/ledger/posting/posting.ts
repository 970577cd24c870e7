import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import type { LedgerContext } from "../core/context.js";
import {
  ENTRY_COLUMNS,
  deltaOf,
  toEntry,
  type Entry,
  type EntryRequest,
  type EntryRow,
} from "../core/entry.js";
import { uuidv7 } from "../core/ids.js";
import { groupCommitterOf } from "./group-commit.js";

export interface PostResult {
  entry: Entry;
  /** True when the idempotency key had already been used for this same request: nothing new was written. */
  replayed: boolean;
}

/**
 * One INSERT: no row lock, no advisory lock, no balance read. A concurrent request with the same key waits on the
 * unique index for the first to commit and then inserts nothing, so any number of identical requests make one row.
 */
const INSERT_SQL = `
INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id, description, metadata,
                     original_entry_id, counterpart_entry_id, transfer_id, hold_id, meter, quantities, price_version)
VALUES ($1::uuid, $2, $3, $4::numeric, $5::numeric, $6, $7, $8::uuid, $9, $10::text::jsonb, $11::uuid, $12::uuid, $13::uuid, $14::uuid,
        $15, $16::text::jsonb, $17::integer)
ON CONFLICT (account_id, idempotency_key) DO NOTHING
RETURNING ${ENTRY_COLUMNS}`;

const FIND_BY_KEY_SQL = `SELECT ${ENTRY_COLUMNS} FROM entries WHERE account_id = $1 AND idempotency_key = $2`;

/** `id` may be chosen by the caller (the two legs of a transfer name each other before either is written). */
export async function insertEntry(
  database: Queryable,
  request: EntryRequest,
  hash: string,
  id: string = uuidv7(),
): Promise<EntryRow | undefined> {
  const rows = await database.query<EntryRow>(INSERT_SQL, [
    id,
    request.account_id,
    request.type,
    request.amount,
    deltaOf(request.type, request.amount, request.direction),
    request.idempotency_key,
    hash,
    request.batch_id,
    request.description,
    request.metadata === null ? null : JSON.stringify(request.metadata),
    request.original_entry_id ?? null,
    request.counterpart_entry_id ?? null,
    request.transfer_id ?? null,
    request.hold_id ?? null,
    request.meter ?? null,
    quantitiesText(request),
    request.price_version ?? null,
  ]);
  return rows[0];
}

/** The quantities of priced usage as JSON text (postgres.js sends text; the SQL casts it to jsonb). */
export function quantitiesText(request: EntryRequest): string | null {
  return request.quantities === undefined || request.quantities === null ? null : JSON.stringify(request.quantities);
}

/**
 * The entry already written under this key, as a replay, or a 409 if it was written for a different request.
 * Rows are never deleted, so after a conflicting insert the row is always there to find; this runs as its own
 * statement so that its snapshot includes the row the conflict waited for.
 */
export async function findReplay(database: Queryable, request: EntryRequest, hash: string): Promise<PostResult | undefined> {
  const [existing] = await database.query<EntryRow>(FIND_BY_KEY_SQL, [request.account_id, request.idempotency_key]);
  if (!existing) return undefined;
  if (existing.request_hash !== hash) {
    throw new TallyError(
      "idempotency_key_reused",
      `idempotency key ${JSON.stringify(request.idempotency_key)} was already used on account ${request.account_id} for a different request`,
    );
  }
  return { entry: toEntry(existing), replayed: true };
}

export async function ensureAccountsExist(context: LedgerContext, account_ids: readonly string[]): Promise<void> {
  const missing = await context.known_accounts.missing(context.database, account_ids);
  if (missing.length > 0) {
    throw new TallyError("account_not_found", `account ${missing.slice(0, 10).join(", ")} does not exist`, {
      account_ids: missing.slice(0, 100),
    });
  }
}

/**
 * Posts a usage row, a credit, or an overdraft-allowed debit: the lock-free path. Concurrent posts of this process
 * are written together by the group committer (group-commit.ts); the result is this request's own row (or the
 * replay), answered after it has committed and after its checkpoint-refresh draw.
 */
export function postEntry(context: LedgerContext, request: EntryRequest): Promise<PostResult> {
  return groupCommitterOf(context).post(request);
}
