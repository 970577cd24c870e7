import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import { canonicalNumeric } from "../core/amount.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { requestHash, type EntryRequest } from "../core/entry.js";
import { uuidv7 } from "../core/ids.js";
import { ensureAccountsExist, quantitiesText } from "./posting.js";

/** The most rows one batch may carry. */
export const BATCH_ROWS_MAX = 10_000;

/**
 * One multi-row INSERT. The rows travel as one array per column and are expanded by unnest(), so a batch of any
 * size is one prepared statement with eleven parameters (the wire protocol allows at most 65,535 parameters, which a
 * VALUES list of 10,000 rows would exceed). Every array is sent as text[] and cast here, because postgres.js has
 * no serializer for numeric[].
 */
const INSERT_BATCH_SQL = `
INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id, description, metadata,
                     meter, quantities, price_version)
SELECT row.id::uuid, row.account_id, 'usage', row.amount::numeric, -(row.amount::numeric), row.idempotency_key,
       row.request_hash, row.batch_id::uuid, row.description, row.metadata::jsonb,
       row.meter, row.quantities::jsonb, row.price_version::integer
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::text[])
  AS row(id, account_id, amount, idempotency_key, request_hash, batch_id, description, metadata,
         meter, quantities, price_version)
ON CONFLICT (account_id, idempotency_key) DO NOTHING
RETURNING account_id, idempotency_key`;

const FIND_HASHES_SQL = `
SELECT entries.account_id, entries.idempotency_key, entries.request_hash
FROM unnest($1::text[], $2::text[]) AS wanted(account_id, idempotency_key)
JOIN entries ON entries.account_id = wanted.account_id AND entries.idempotency_key = wanted.idempotency_key`;

const FIND_STORED_SQL = `
SELECT entries.account_id, entries.idempotency_key, entries.amount::text AS amount, entries.price_version
FROM unnest($1::text[], $2::text[]) AS wanted(account_id, idempotency_key)
JOIN entries ON entries.account_id = wanted.account_id AND entries.idempotency_key = wanted.idempotency_key`;

/**
 * The rows already posted under the keys of `requests`, by usageIdentity(account_id, idempotency_key): what a
 * retried batch replays. One statement; rows are never deleted, so a row found here is there when the batch inserts.
 */
export async function storedUsage(
  database: Queryable,
  requests: readonly EntryRequest[],
): Promise<Map<string, { amount: string; price_version: number | null }>> {
  const rows = await database.query<{ account_id: string; idempotency_key: string; amount: string; price_version: number | null }>(
    FIND_STORED_SQL,
    [requests.map((request) => request.account_id), requests.map((request) => request.idempotency_key)],
  );
  return new Map(rows.map((row) => [usageIdentity(row.account_id, row.idempotency_key), { amount: canonicalNumeric(row.amount), price_version: row.price_version }]));
}

interface HashedRow {
  index: number;
  request: EntryRequest;
  hash: string;
}

/** A row's identity in the ledger: its account and idempotency key. */
export const usageIdentity = (account_id: string, idempotency_key: string) => JSON.stringify([account_id, idempotency_key]);
const identity = usageIdentity;

/**
 * Drops exact repeats within the batch (the caller counts them as replayed) and refuses a key that appears twice
 * with different bodies, naming both rows.
 */
function distinctRows(requests: readonly EntryRequest[]): HashedRow[] {
  const seen = new Map<string, HashedRow>();
  requests.forEach((request, index) => {
    const hash = requestHash(request);
    const key = identity(request.account_id, request.idempotency_key);
    const earlier = seen.get(key);
    if (!earlier) {
      seen.set(key, { index, request, hash });
    } else if (earlier.hash !== hash) {
      throw new TallyError(
        "idempotency_key_reused",
        `entries[${index}] reuses the idempotency key of entries[${earlier.index}] with a different body`,
        { index },
      );
    }
  });
  return [...seen.values()];
}

/**
 * Posts usage rows all or nothing. Rows already present with the same body count as replayed; a key already used
 * for a different body rejects the whole batch (409) and the transaction writes nothing.
 */
export async function postUsageBatch(
  context: LedgerContext,
  requests: readonly EntryRequest[],
): Promise<{ inserted: number; replayed: number }> {
  const rows = distinctRows(requests);
  await ensureAccountsExist(
    context,
    rows.map((row) => row.request.account_id),
  );
  // Insert in key order: two batches that share keys then meet them in the same order, and neither can wait on
  // a key the other holds while holding one it needs (a deadlock).
  rows.sort((left, right) =>
    left.request.account_id === right.request.account_id
      ? compare(left.request.idempotency_key, right.request.idempotency_key)
      : compare(left.request.account_id, right.request.account_id),
  );
  const inserted = await context.database.transaction(async (transaction) => {
    const returned = await transaction.query<{ account_id: string; idempotency_key: string }>(INSERT_BATCH_SQL, [
      rows.map(() => uuidv7()),
      rows.map((row) => row.request.account_id),
      rows.map((row) => row.request.amount),
      rows.map((row) => row.request.idempotency_key),
      rows.map((row) => row.hash),
      rows.map((row) => row.request.batch_id),
      rows.map((row) => row.request.description),
      rows.map((row) => (row.request.metadata === null ? null : JSON.stringify(row.request.metadata))),
      rows.map((row) => row.request.meter ?? null),
      rows.map((row) => quantitiesText(row.request)),
      rows.map((row) => (row.request.price_version === undefined || row.request.price_version === null ? null : String(row.request.price_version))),
    ]);
    if (returned.length === rows.length) return returned;
    const insertedKeys = new Set(returned.map((row) => identity(row.account_id, row.idempotency_key)));
    const existing = rows.filter((row) => !insertedKeys.has(identity(row.request.account_id, row.request.idempotency_key)));
    const found = await transaction.query<{ account_id: string; idempotency_key: string; request_hash: string }>(
      FIND_HASHES_SQL,
      [existing.map((row) => row.request.account_id), existing.map((row) => row.request.idempotency_key)],
    );
    const storedHash = new Map(found.map((row) => [identity(row.account_id, row.idempotency_key), row.request_hash]));
    for (const row of existing) {
      if (storedHash.get(identity(row.request.account_id, row.request.idempotency_key)) !== row.hash) {
        throw new TallyError(
          "idempotency_key_reused",
          `entries[${row.index}]: idempotency key ${JSON.stringify(row.request.idempotency_key)} was already used on account ${row.request.account_id} for a different request; nothing in this batch was written`,
          { index: row.index },
        );
      }
    }
    return returned;
  });
  const rowsByAccount = new Map<string, number>();
  for (const row of inserted) rowsByAccount.set(row.account_id, (rowsByAccount.get(row.account_id) ?? 0) + 1);
  await maybeRefreshAfterWrite(context, rowsByAccount);
  return { inserted: inserted.length, replayed: requests.length - inserted.length };
}

function compare(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}
