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
  /** Present only on corrections (src/ledger/corrections/): the entry a refund or reversal corrects. */
  original_entry_id?: string;
  /** Present only on a transfer leg: the other leg, and the transfer both share. */
  counterpart_entry_id?: string;
  transfer_id?: string;
  /** Present only on a hold's capture (src/ledger/holds/): the hold it closed. */
  hold_id?: string;
  /** Credit lots only (src/ledger/lots/), and present only when set: a credit's priority and expiry. */
  priority?: number;
  expires_at?: string;
  /** An expiration's lot: the credit entry it ended. */
  lot_id?: string;
  /** Priced usage only (src/ledger/prices/): what was measured, and the price version the amount came from. */
  meter?: string;
  quantities?: Record<string, number>;
  price_version?: number;
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
  /** Links of a correction; absent (or null) on every other write. */
  original_entry_id?: string | null;
  counterpart_entry_id?: string | null;
  transfer_id?: string | null;
  /** The sign of a signed type (an adjustment): "debit" makes the delta negative. Ignored for other types. */
  direction?: "credit" | "debit";
  /** Set only by a hold capture. */
  hold_id?: string | null;
  /** Credit lots only: priority 0-100 (null is the default, 50) and an expiry (ISO 8601, milliseconds). */
  priority?: number | null;
  expires_at?: string | null;
  /**
   * Priced usage only: the meter and quantities the client sent and the price version `amount` was computed from.
   * The idempotency fingerprint covers meter and quantities instead of the amount, so a replay after a price
   * change is still a replay (of the original entry, at its original price).
   */
  meter?: string | null;
  quantities?: Record<string, number> | null;
  price_version?: number | null;
}

export const DEBIT_TYPES: ReadonlySet<EntryType> = new Set(["usage", "removal", "reversal", "transfer_out", "expiration"]);

export function deltaOf(type: EntryType, amount: string, direction?: "credit" | "debit"): string {
  if (type === "adjustment") return direction === "debit" ? `-${amount}` : amount;
  return DEBIT_TYPES.has(type) ? `-${amount}` : amount;
}

/** The columns every query that returns entries selects, in the shape `toEntry` reads. */
export const ENTRY_COLUMNS = `id::text AS id, account_id, type, amount::text AS amount, delta::text AS delta,
  idempotency_key, request_hash, batch_id::text AS batch_id, description, metadata, created_at,
  original_entry_id::text AS original_entry_id, counterpart_entry_id::text AS counterpart_entry_id,
  transfer_id::text AS transfer_id, hold_id::text AS hold_id, priority, expires_at, lot_id::text AS lot_id,
  meter, quantities, price_version`;

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
  original_entry_id?: string | null;
  counterpart_entry_id?: string | null;
  transfer_id?: string | null;
  hold_id?: string | null;
  priority?: number | null;
  expires_at?: Date | string | null;
  lot_id?: string | null;
  meter?: string | null;
  quantities?: Record<string, number> | null;
  price_version?: number | null;
}

/** The links a row carries, only those that are set (entries without links look exactly as they always have). */
export function entryLinks(row: {
  original_entry_id?: string | null;
  counterpart_entry_id?: string | null;
  transfer_id?: string | null;
  hold_id?: string | null;
}): Pick<Entry, "original_entry_id" | "counterpart_entry_id" | "transfer_id" | "hold_id"> {
  const links: Pick<Entry, "original_entry_id" | "counterpart_entry_id" | "transfer_id" | "hold_id"> = {};
  if (row.original_entry_id) links.original_entry_id = row.original_entry_id;
  if (row.counterpart_entry_id) links.counterpart_entry_id = row.counterpart_entry_id;
  if (row.transfer_id) links.transfer_id = row.transfer_id;
  if (row.hold_id) links.hold_id = row.hold_id;
  return links;
}

export function toEntry(row: EntryRow): Entry {
  const entry: Entry = {
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
    ...entryLinks(row),
  };
  if (row.priority !== null && row.priority !== undefined) entry.priority = Number(row.priority);
  if (row.expires_at !== null && row.expires_at !== undefined) entry.expires_at = new Date(row.expires_at).toISOString();
  if (row.lot_id !== null && row.lot_id !== undefined) entry.lot_id = row.lot_id;
  if (row.meter !== null && row.meter !== undefined) {
    entry.meter = row.meter;
    entry.quantities = row.quantities ?? {};
    entry.price_version = Number(row.price_version);
  }
  return entry;
}

/** JSON with object keys sorted, so that key order is never meaning; the input of every request fingerprint. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) {
    let text = "[";
    for (let index = 0; index < value.length; index++) {
      if (index > 0) text += ",";
      // As Array.prototype.join writes it: an item JSON cannot hold (undefined, a function) is empty.
      text += canonicalJson(value[index]) ?? "";
    }
    return `${text}]`;
  }
  const keys = Object.keys(value).sort();
  let text = "{";
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index]!;
    if (index > 0) text += ",";
    text += `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`;
  }
  return `${text}}`;
}

/**
 * The fingerprint an idempotency key is bound to. The account id and the key itself are the lookup, so they are
 * left out; everything the client sent that shapes the row is in, with the amount already canonical ("1.50" and "1.5" are the
 * same request) and metadata keys sorted (key order is not meaning).
 *
 * Fingerprints are stored (entries.request_hash) and compared with every retry, so the text hashed must never
 * change. It is canonicalJson of the object `fingerprintObject` in test/unit/request-hash.test.ts describes, written
 * out here field by field in sorted key order because it runs once per row of every batch (building the object and
 * sorting its keys cost more than the hash itself); that test holds the two to the same text.
 */
export function requestHash(request: EntryRequest): string {
  return createHash("sha256").update(fingerprintText(request)).digest("hex");
}

export function fingerprintText(request: EntryRequest): string {
  // Priced usage is bound to what the client sent (meter and quantities), not to what the price made of it.
  const priced = request.meter !== undefined && request.meter !== null;
  let text = priced ? "{" : `{"amount":${canonicalJson(request.amount)},`;
  text += `"batch_id":${canonicalJson(request.batch_id)},"description":${canonicalJson(request.description)},`;
  // Links and lot attributes only when set, so the fingerprint of every request without them is what it always was.
  if (request.direction && request.type === "adjustment") text += `"direction":${canonicalJson(request.direction)},`;
  if (request.expires_at !== undefined && request.expires_at !== null) text += `"expires_at":${canonicalJson(request.expires_at)},`;
  text += `"metadata":${canonicalJson(request.metadata)},`;
  if (priced) text += `"meter":${canonicalJson(request.meter)},`;
  if (request.original_entry_id) text += `"original_entry_id":${canonicalJson(request.original_entry_id)},`;
  if (request.priority !== undefined && request.priority !== null) text += `"priority":${canonicalJson(request.priority)},`;
  if (priced) text += `"quantities":${canonicalJson(request.quantities)},`;
  return `${text}"type":${canonicalJson(request.type)}}`;
}
