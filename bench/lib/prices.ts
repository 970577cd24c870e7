import type postgres from "postgres";

/**
 * Priced usage for the ingest scenarios' "tally, priced" side: the proxy posts tokens and tally prices them from its
 * in-process price cache. The price is written straight into the scratch database (the bench key is not admin); the
 * first priced request loads it, the warm-up absorbs that load.
 */
export const PRICED_METER = "gpt-x";

export async function seedPrice(sql: postgres.Sql): Promise<void> {
  await sql`
    INSERT INTO prices (meter, version, unit_prices, per, valid_from)
    VALUES (${PRICED_METER}, 1, ${sql.json({ input_tokens: "2.5", output_tokens: "10", cached_input_tokens: "1.25" })}, 1000000, now())
    ON CONFLICT DO NOTHING`;
}

/** Token counts that vary per row, so amounts vary as in the plain rows. */
export function pricedQuantities(sequence: number): { input_tokens: number; output_tokens: number } {
  return { input_tokens: 812 + (sequence % 997), output_tokens: 117 + (sequence % 89) };
}
