/**
 * CPU per row of POST /v1/usage/batch without the database: the body parsed (strictly, as the app does), validated by the route's schema,
 * turned into requests, priced (from a warm price cache) and fingerprinted, and the INSERT's parameter arrays built,
 * for 1,000 plain rows (amounts) and 1,000 priced rows (meter and quantities), the rows the ingest-batch scenario
 * posts. Alternating rounds, so drift lands on both sides. The ingest-batch figure (priced ≥ 0.9 × plain) is bounded
 * by this ratio plus what PostgreSQL pays per row.
 *
 *   npx tsx bench/micro/priced-rows.ts [rounds] [iterations per round]
 *   node --cpu-prof --import tsx bench/micro/priced-rows.ts   # then open the .cpuprofile
 */
import { randomUUID } from "node:crypto";
import { requestHash } from "../../src/ledger/core/entry.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { quantitiesText } from "../../src/ledger/posting/posting.js";
import type { Database } from "../../src/db/port.js";
import { priceRows, UsageBatchSchema, usageRequest } from "../../src/http/routes/postings.js";
import { BODY_DEPTH_MAX } from "../../src/http/body.js";
import { parseStrictJson } from "../../src/http/strict-json.js";
import { METADATA, usageAmount } from "../lib/rows.js";
import { PRICED_METER, pricedQuantities } from "../lib/prices.js";

const ROWS = 1_000;
const rounds = Number(process.argv[2] ?? 5);
const iterations = Number(process.argv[3] ?? 20);

/** Answers the price cache's two statements (the version count and the price rows) with one price, as the bench seeds. */
const pricesOnly = {
  async query(text: string) {
    if (text.includes("COUNT(*)")) return [{ versions: 1 }];
    return [
      {
        meter: PRICED_METER,
        version: 1,
        unit_prices: { input_tokens: "2.5", output_tokens: "10", cached_input_tokens: "1.25" },
        per: 1_000_000,
        valid_from: new Date(0),
        created_at: new Date(0),
      },
    ];
  },
} as unknown as Database;
const ledger = createLedgerContext({ database: pricesOnly, logger: { info: () => {}, warn: () => {} }, refresh_every: 10, delta_max: 1000 });

function body(priced: boolean, sequence: number): string {
  const batch_id = randomUUID();
  const entries = Array.from({ length: ROWS }, (_, row) => ({
    account_id: `batch_${(sequence * ROWS + row * 7919) % 10_000}`,
    ...(priced ? { meter: PRICED_METER, quantities: pricedQuantities(sequence + row) } : { amount: usageAmount(sequence + row) }),
    idempotency_key: `${priced ? "p" : "t"}-${sequence}-${row}`,
    batch_id,
    metadata: METADATA,
  }));
  return JSON.stringify({ entries });
}

/** What the route and postUsageBatch do per row before the INSERT, in the same order. */
async function handle(text: string): Promise<number> {
  const parsed = UsageBatchSchema.safeParse(parseStrictJson(text, { depth_max: BODY_DEPTH_MAX }));
  if (!parsed.success) throw new Error(JSON.stringify(parsed.error.issues.slice(0, 3)));
  const requests = await priceRows(ledger, parsed.data.entries.map(usageRequest));
  let checksum = 0;
  for (const request of requests) {
    checksum += requestHash(request).length;
    checksum += (quantitiesText(request) ?? "").length + JSON.stringify(request.metadata).length + request.amount.length;
  }
  return checksum;
}

const bodies = { plain: Array.from({ length: 8 }, (_, n) => body(false, n)), priced: Array.from({ length: 8 }, (_, n) => body(true, n)) };
const spent_ms = { plain: 0, priced: 0 };
for (const side of ["plain", "priced"] as const) await handle(bodies[side][0]!); // warm the cache and the JIT
const only = process.env.ONLY_SIDE as "plain" | "priced" | undefined;
for (let round = 0; round < rounds; round++) {
  for (const side of ["plain", "priced"] as const) {
    if (only !== undefined && side !== only) continue;
    const started = performance.now();
    for (let iteration = 0; iteration < iterations; iteration++) await handle(bodies[side][iteration % 8]!);
    spent_ms[side] += performance.now() - started;
  }
}
const per_row_us = (side: "plain" | "priced") => (spent_ms[side] * 1000) / (rounds * iterations * ROWS);
process.stdout.write(`plain:  ${per_row_us("plain").toFixed(2)} µs/row` + "\n");
process.stdout.write(`priced: ${per_row_us("priced").toFixed(2)} µs/row` + "\n");
process.stdout.write(`priced costs ${(per_row_us("priced") / per_row_us("plain")).toFixed(2)}× plain per row (CPU before the INSERT)` + "\n");
