import { createHash } from "node:crypto";
import type { HoldStoredStatus } from "../../db/schema.js";
import { canonicalNumeric } from "../core/amount.js";
import { canonicalJson } from "../core/entry.js";

/** Limits of holds (docs/design.md, section 18). */
export const HOLD_LIMITS = {
  /** Active, unexpired holds per account; a grant beyond is `409 too_many_active_holds`. */
  active_per_account_max: 10_000,
  expires_in_s_default: 600,
  expires_in_s_max: 86_400,
} as const;

/** What a client sees: the stored status, with `expired` for an active hold whose expires_at has passed. */
export const HOLD_STATUSES = ["active", "captured", "released", "expired"] as const;
export type HoldStatus = (typeof HOLD_STATUSES)[number];

export interface Hold {
  id: string;
  account_id: string;
  amount: string;
  status: HoldStatus;
  idempotency_key: string;
  description: string | null;
  metadata: Record<string, unknown> | null;
  created_at: string;
  expires_at: string;
  closed_at: string | null;
  captured_amount: string | null;
}

export interface HoldRequest {
  account_id: string;
  /** Canonical decimal string. */
  amount: string;
  idempotency_key: string;
  expires_in_s: number;
  description: string | null;
  metadata: Record<string, unknown> | null;
  /**
   * Set when the amount was priced from a meter and quantities (src/ledger/prices/): the fingerprint then covers
   * those instead of the amount, so a retry after a price change is still a replay of the original hold.
   */
  priced_from?: { meter: string; quantities: Record<string, number> };
}

export const HOLD_COLUMNS = `id::text AS id, account_id, amount::text AS amount, status, idempotency_key, request_hash,
  description, metadata, created_at, expires_at, closed_at, capture_hash, captured_amount::text AS captured_amount`;

export interface HoldRow {
  id: string;
  account_id: string;
  amount: string;
  status: HoldStoredStatus;
  idempotency_key: string;
  request_hash: string;
  description: string | null;
  metadata: Record<string, unknown> | null;
  created_at: Date | string;
  expires_at: Date | string;
  closed_at: Date | string | null;
  capture_hash: string | null;
  captured_amount: string | null;
}

/** Expiry is a comparison, not a write: from its expires_at instant an active hold is expired. */
export function holdStatus(row: Pick<HoldRow, "status" | "expires_at">, now: Date): HoldStatus {
  if (row.status === "active" && new Date(row.expires_at).getTime() <= now.getTime()) return "expired";
  return row.status;
}

export function toHold(row: HoldRow, now: Date): Hold {
  return {
    id: row.id,
    account_id: row.account_id,
    amount: canonicalNumeric(row.amount),
    status: holdStatus(row, now),
    idempotency_key: row.idempotency_key,
    description: row.description,
    metadata: row.metadata,
    created_at: new Date(row.created_at).toISOString(),
    expires_at: new Date(row.expires_at).toISOString(),
    closed_at: row.closed_at === null ? null : new Date(row.closed_at).toISOString(),
    captured_amount: row.captured_amount === null ? null : canonicalNumeric(row.captured_amount),
  };
}

/**
 * The fingerprint a hold's idempotency key is bound to: everything that shapes the stored hold. `allow_overdraft`
 * is left out, as for debits: it changes how the grant is judged, not what is written.
 */
export function holdRequestHash(request: HoldRequest): string {
  const fingerprint = canonicalJson({
    kind: "hold",
    // A priced hold is bound to what the client sent, not to what the price made of it (src/ledger/prices/).
    ...(request.priced_from ? { meter: request.priced_from.meter, quantities: request.priced_from.quantities } : { amount: request.amount }),
    expires_in_s: request.expires_in_s,
    description: request.description,
    metadata: request.metadata,
  });
  return createHash("sha256").update(fingerprint).digest("hex");
}

/**
 * The idempotency key of a capture's usage entry. Client keys are printable ASCII without spaces, so a key with
 * spaces can never collide with one a client chose; the unique (account_id, idempotency_key) index then makes a
 * second usage row for one hold impossible, whatever the code above it does.
 */
export function captureIdempotencyKey(hold_id: string): string {
  return `hold capture ${hold_id}`;
}
