import { sql } from "drizzle-orm";
import { check, integer, jsonb, pgTable, primaryKey, timestamp, text } from "drizzle-orm/pg-core";

/**
 * The versioned price table (src/ledger/prices/). Append-only, as entries are (the database refuses UPDATE, DELETE
 * and TRUNCATE): each PUT adds a version, so every usage entry's `meter` and `price_version` name a row that stays
 * exactly as it was when the entry was priced. Versions count from 1 per meter.
 */
export const prices = pgTable(
  "prices",
  {
    meter: text("meter").notNull(),
    version: integer("version").notNull(),
    // Quantity name → price per `per` units, a decimal string with at most 9 fractional digits ("2.5").
    unitPrices: jsonb("unit_prices").notNull(),
    per: integer("per").notNull(),
    validFrom: timestamp("valid_from", { withTimezone: true, mode: "string" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "string" })
      .notNull()
      .default(sql`date_trunc('milliseconds', now())`),
  },
  (table) => [
    primaryKey({ name: "prices_pkey", columns: [table.meter, table.version] }),
    check("prices_meter_format", sql`${table.meter} ~ '^[A-Za-z0-9._:/@-]{1,128}$'`),
    check("prices_version_positive", sql`${table.version} > 0`),
    check("prices_per_known", sql`${table.per} IN (1, 1000, 1000000)`),
    check("prices_unit_prices_object", sql`jsonb_typeof(${table.unitPrices}) = 'object'`),
  ],
);
