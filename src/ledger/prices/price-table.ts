import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import { formatNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { priceCacheOf } from "./price-cache.js";
import { PRICE_LIMITS, parseUnitPrice, type PricePer } from "./price-rules.js";
import type { PriceVersion } from "./pricing.js";

/** Advisory-lock namespace (the first key of the two-key form) for writing a meter's versions. */
const PRICE_WRITE_LOCK_NAMESPACE = 61;

/** A price version as the API shows it. */
export interface PriceRecord {
  meter: string;
  version: number;
  unit_prices: Record<string, string>;
  per: PricePer;
  valid_from: string;
  created_at: string;
}

export interface PriceRow {
  meter: string;
  version: number;
  unit_prices: Record<string, string>;
  per: number;
  valid_from: Date | string;
  created_at: Date | string;
}

export const PRICE_COLUMNS = "meter, version, unit_prices, per, valid_from, created_at";

export function toPriceRecord(row: PriceRow): PriceRecord {
  return {
    meter: row.meter,
    version: Number(row.version),
    unit_prices: row.unit_prices,
    per: String(row.per) as PricePer,
    valid_from: new Date(row.valid_from).toISOString(),
    created_at: new Date(row.created_at).toISOString(),
  };
}

export function toPriceVersion(row: PriceRow): PriceVersion {
  const unit_price_nanos = new Map<string, bigint>();
  for (const [name, text] of Object.entries(row.unit_prices)) {
    const nanos = parseUnitPrice(text);
    if (nanos === undefined) throw new Error(`stored price ${row.meter} v${row.version} has an unreadable unit price for ${name}`);
    unit_price_nanos.set(name, nanos);
  }
  return { meter: row.meter, version: Number(row.version), unit_price_nanos, per: BigInt(row.per), valid_from: new Date(row.valid_from) };
}

const NEXT_VERSION_SQL = `
SELECT COALESCE(MAX(version), 0)::int AS latest,
       COUNT(*) FILTER (WHERE valid_from > $2::timestamptz)::int AS scheduled
FROM prices WHERE meter = $1`;

const INSERT_PRICE_SQL = `
INSERT INTO prices (meter, version, unit_prices, per, valid_from)
VALUES ($1, $2, $3::text::jsonb, $4, $5::timestamptz)
RETURNING ${PRICE_COLUMNS}`;

function refuse(field: string, message: string): TallyError {
  return new TallyError("validation_failed", `${field}: ${message}`, { errors: [{ field, message }] });
}

/**
 * Adds a version of `meter`'s price, effective from `valid_from` (default: now by the ledger clock; never earlier,
 * so no entry already priced could have been priced differently). Versions of one meter are numbered under an
 * advisory lock on the meter, so two concurrent PUTs get consecutive versions. This process's cache is invalidated
 * at once; other processes see the version within a second (price-cache.ts).
 */
export async function putPrice(
  context: LedgerContext,
  request: { meter: string; unit_prices: Record<string, string>; per: PricePer; valid_from: Date | undefined },
): Promise<PriceRecord> {
  const now = context.now();
  const valid_from = request.valid_from ?? now;
  if (valid_from.getTime() < now.getTime()) {
    throw refuse("valid_from", `must not be in the past (now is ${now.toISOString()}); a price applies from now on`);
  }
  const unit_prices = Object.fromEntries(
    Object.entries(request.unit_prices).map(([name, text]) => {
      const nanos = parseUnitPrice(text);
      if (nanos === undefined) throw new Error("putPrice called with an unvalidated unit price");
      return [name, formatNanos(nanos)];
    }),
  );
  const row = await context.database.transaction(async (transaction) => {
    await transaction.query("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", [PRICE_WRITE_LOCK_NAMESPACE, request.meter]);
    const [counts] = await transaction.query<{ latest: number; scheduled: number }>(NEXT_VERSION_SQL, [request.meter, now.toISOString()]);
    const latest = Number(counts!.latest);
    if (Number(counts!.scheduled) >= PRICE_LIMITS.scheduled_versions_max) {
      throw refuse("valid_from", `meter ${request.meter} already has ${PRICE_LIMITS.scheduled_versions_max} versions scheduled for the future`);
    }
    if (latest === 0) await refuseBeyondMeterLimit(transaction, request.meter);
    const [inserted] = await transaction.query<PriceRow>(INSERT_PRICE_SQL, [
      request.meter,
      latest + 1,
      JSON.stringify(unit_prices),
      Number(request.per),
      valid_from.toISOString(),
    ]);
    return inserted!;
  });
  priceCacheOf(context).invalidate();
  return toPriceRecord(row);
}

async function refuseBeyondMeterLimit(transaction: Queryable, meter: string): Promise<void> {
  const [row] = await transaction.query<{ meters: number }>("SELECT COUNT(DISTINCT meter)::int AS meters FROM prices");
  if (Number(row!.meters) >= PRICE_LIMITS.meters_max) {
    throw refuse("meter", `the price table already holds ${PRICE_LIMITS.meters_max} meters; ${meter} would be one more`);
  }
}

/** A meter's versions, newest first, before `before_version` if given. */
export async function meterVersions(
  context: LedgerContext,
  meter: string,
  page: { limit: number; before_version: number | undefined },
): Promise<PriceRecord[]> {
  const rows = await context.database.query<PriceRow>(
    `SELECT ${PRICE_COLUMNS} FROM prices WHERE meter = $1 AND version < $2 ORDER BY version DESC LIMIT $3`,
    [meter, page.before_version ?? 2_147_483_647, page.limit],
  );
  return rows.map(toPriceRecord);
}

/**
 * For each meter after `after_meter` (in name order), the version in force at `at` and the versions scheduled
 * after it: exactly what the price cache holds.
 */
const IN_FORCE_AND_SCHEDULED_SQL = `
SELECT ${PRICE_COLUMNS} FROM prices p
WHERE ($2::text IS NULL OR p.meter > $2) AND p.meter IN (
  SELECT DISTINCT meter FROM prices WHERE $2::text IS NULL OR meter > $2 ORDER BY meter LIMIT $3)
  AND p.version >= COALESCE((SELECT MAX(q.version) FROM prices q WHERE q.meter = p.meter AND q.valid_from <= $1::timestamptz), 0)
ORDER BY p.meter, p.version`;

export async function pricesInForceAndScheduled(
  database: Queryable,
  at: Date,
  page: { after_meter: string | undefined; meters: number },
): Promise<PriceRow[]> {
  return database.query<PriceRow>(IN_FORCE_AND_SCHEDULED_SQL, [at.toISOString(), page.after_meter ?? null, page.meters]);
}
