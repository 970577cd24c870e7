import type { LedgerContext } from "../core/context.js";
import { PRICE_COLUMNS, pricesInForceAndScheduled, toPriceRecord, type PriceRecord, type PriceRow } from "./price-table.js";

export interface MeterPrices {
  meter: string;
  current: PriceRecord | null;
  scheduled: PriceRecord[];
}

/**
 * One page of meters in name order, each with the version in force now (by the ledger clock) and the versions
 * that will take over later. Versions a later PUT superseded before they took effect are left out: they never
 * apply (pricing.ts).
 */
export async function meterPricesPage(
  context: LedgerContext,
  page: { after_meter: string | undefined; limit: number },
): Promise<{ prices: MeterPrices[]; last_meter: string | undefined }> {
  const now = context.now();
  const rows = await pricesInForceAndScheduled(context.database, now, { after_meter: page.after_meter, meters: page.limit + 1 });
  const by_meter = new Map<string, MeterPrices>();
  for (const row of rows) {
    const record = toPriceRecord(row);
    const meter = by_meter.get(row.meter) ?? { meter: row.meter, current: null, scheduled: [] };
    by_meter.set(row.meter, meter);
    if (new Date(record.valid_from).getTime() <= now.getTime()) meter.current = record;
    else meter.scheduled.push(record);
  }
  const prices = [...by_meter.values()];
  const more = prices.length > page.limit;
  const shown = prices.slice(0, page.limit);
  return { prices: shown, last_meter: more ? shown[shown.length - 1]!.meter : undefined };
}

/** The version of `meter` in force now, read from the table (not the cache). */
export async function versionInForceRecord(context: LedgerContext, meter: string): Promise<PriceRecord | null> {
  const [row] = await context.database.query<PriceRow>(
    `SELECT ${PRICE_COLUMNS} FROM prices WHERE meter = $1 AND valid_from <= $2::timestamptz ORDER BY version DESC LIMIT 1`,
    [meter, context.now().toISOString()],
  );
  return row ? toPriceRecord(row) : null;
}
