import { createHash } from "node:crypto";
import { canonicalNumeric } from "./amount.js";
import type { EntryType } from "../../db/schema.js";

/** An entry as the API returns it. Amounts are canonical decimal strings; `delta` is signed. */
export interface Entry {
  id: string;
  account_id: string;
  type: EntryType;
  amount: string;
  delta: string;
  idempotency_key: string;
  batch_id: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  created_at: string;
  /** The hold this usage entry captured (src/ledger/holds/); null otherwise. */
  hold_id: string | null;
}

/** What a write asks for, before it becomes a row. `amount` is already canonical. */
export interface EntryRequest {
  account_id: string;
  type: EntryType;
  amount: string;
  idempotency_key: string;
  batch_id: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  /** Set only by a hold capture. */
  hold_id?: string | null;
}

export const DEBIT_TYPES: ReadonlySet<EntryType> = new Set(["usage", "removal"]);

export function deltaOf(type: EntryType, amount: string): string {
  return DEBIT_TYPES.has(type) ? `-${amount}` : amount;
}

/** The columns every query that returns entries selects, in the shape `toEntry` reads. */
export const ENTRY_COLUMNS = `id::text AS id, account_id, type, amount::text AS amount, delta::text AS delta,
  idempotency_key, request_hash, batch_id::text AS batch_id, description, metadata, created_at,
  hold_id::text AS hold_id`;

export interface EntryRow {
  id: string;
  account_id: string;
  type: EntryType;
  amount: string;
  delta: string;
  idempotency_key: string;
  request_hash: string;
  batch_id: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  created_at: Date | string;
  hold_id?: string | null;
}

export function toEntry(row: EntryRow): Entry {
  return {
    id: row.id,
    account_id: row.account_id,
    type: row.type,
    amount: canonicalNumeric(row.amount),
    delta: canonicalNumeric(row.delta),
    idempotency_key: row.idempotency_key,
    batch_id: row.batch_id,
    description: row.description,
    metadata: row.metadata,
    created_at: new Date(row.created_at).toISOString(),
    hold_id: row.hold_id ?? null,
  };
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * The fingerprint an idempotency key is bound to. The account id and the key itself are the lookup, so they are
 * left out; everything else that shapes the row is in, with the amount already canonical ("1.50" and "1.5" are the
 * same request) and metadata keys sorted (key order is not meaning).
 */
export function requestHash(request: EntryRequest): string {
  const fingerprint = canonicalJson({
    type: request.type,
    amount: request.amount,
    batch_id: request.batch_id,
    description: request.description,
    metadata: request.metadata,
  });
  return createHash("sha256").update(fingerprint).digest("hex");
}
