import { randomUUID } from "node:crypto";
import { uuidv7 } from "../../src/ledger/core/ids.js";
import { connect, createAccounts } from "../lib/database.js";
import { HttpClient } from "../lib/http.js";
import { runInterleaved, type Side } from "../lib/load.js";
import { figure, target } from "../lib/report.js";
import { FIXED_REQUEST_HASH, METADATA, runTag, usageAmount } from "../lib/rows.js";
import { pick, type Scenario } from "../lib/scenario.js";
import { PRICED_METER, pricedQuantities, seedPrice } from "../lib/prices.js";

/**
 * `POST /v1/usage/batch` with 1,000 rows per request, rows spread over 10,000 accounts, from a few concurrent
 * clients (a proxy flushing its buffer). Baseline: the same 1,000 rows as one multi-row `INSERT … VALUES` with the
 * same conflict clause, through a postgres.js pool of the same size. Beside plain tally, "tally, priced" posts the
 * same rows as `{ meter, quantities }` (tokens), priced by tally from its price cache (target ≥ 0.9× plain).
 */

const ACCOUNTS = 10_000;
const ROWS_PER_REQUEST = 1_000;
const CLIENTS = 4;
/** Alternating rounds per side (tally, raw, tally, raw), so background noise lands on both. */
const ROUNDS = 2;

const COLUMNS = ["id", "account_id", "type", "amount", "delta", "idempotency_key", "request_hash", "batch_id", "metadata"] as const;

export const ingestBatch: Scenario = {
  name: "ingest-batch",
  title: "POST /v1/usage/batch, 1,000 rows per request, vs raw multi-row INSERT",
  async run(context) {
    const warmup_ms = pick(context.quick, 2_000, 300);
    const duration_ms = pick(context.quick, 10_000, 1_000);
    const accounts = await createAccounts(context.sql, "batch_", ACCOUNTS);
    await seedPrice(context.sql);
    const tally = await context.startTally();
    const tag = runTag();
    const accountOf = (request: number, row: number) => accounts[(request * ROWS_PER_REQUEST + row * 7919) % ACCOUNTS]!;

    const http = new HttpClient(tally.port, context.key, CLIENTS);
    const pool = connect(context.database_url, CLIENTS);
    const tallySide: Side = {
      sample_waits: context.sql,
      workers: CLIENTS,
      tally_pid: tally.pid,
      operation: async (_worker, sequence) => {
        const batch_id = randomUUID();
        const entries = Array.from({ length: ROWS_PER_REQUEST }, (_, row) => ({
          account_id: accountOf(sequence, row),
          amount: usageAmount(sequence + row),
          idempotency_key: `t-${tag}-${sequence}-${row}`,
          batch_id,
          metadata: METADATA,
        }));
        const response = await http.expect("POST", "/v1/usage/batch", JSON.stringify({ entries }), [200]);
        const result = JSON.parse(response.body) as { inserted: number; replayed: number };
        if (result.inserted !== ROWS_PER_REQUEST) throw new Error(`batch inserted ${result.inserted} of ${ROWS_PER_REQUEST}`);
        return ROWS_PER_REQUEST;
      },
    };
    const pricedSide: Side = {
      sample_waits: context.sql,
      workers: CLIENTS,
      tally_pid: tally.pid,
      operation: async (_worker, sequence) => {
        const batch_id = randomUUID();
        const entries = Array.from({ length: ROWS_PER_REQUEST }, (_, row) => ({
          account_id: accountOf(sequence, row),
          meter: PRICED_METER,
          quantities: pricedQuantities(sequence + row),
          idempotency_key: `p-${tag}-${sequence}-${row}`,
          batch_id,
          metadata: METADATA,
        }));
        const response = await http.expect("POST", "/v1/usage/batch", JSON.stringify({ entries }), [200]);
        const result = JSON.parse(response.body) as { inserted: number; replayed: number };
        if (result.inserted !== ROWS_PER_REQUEST) throw new Error(`priced batch inserted ${result.inserted} of ${ROWS_PER_REQUEST}`);
        return ROWS_PER_REQUEST;
      },
    };
    const rawSide: Side = {
      sample_waits: context.sql,
      workers: CLIENTS,
      operation: async (_worker, sequence) => {
        const batch_id = randomUUID();
        const rows = Array.from({ length: ROWS_PER_REQUEST }, (_, row) => {
          const amount = usageAmount(sequence + row);
          return {
            id: uuidv7(),
            account_id: accountOf(sequence, row),
            type: "usage",
            amount,
            delta: `-${amount}`,
            idempotency_key: `b-${tag}-${sequence}-${row}`,
            request_hash: FIXED_REQUEST_HASH,
            batch_id,
            metadata: METADATA as unknown as string,
          };
        });
        const result = await pool`
          INSERT INTO entries ${pool(rows, ...COLUMNS)}
          ON CONFLICT (account_id, idempotency_key) DO NOTHING`;
        if (result.count !== ROWS_PER_REQUEST) throw new Error(`raw insert wrote ${result.count} of ${ROWS_PER_REQUEST}`);
        return ROWS_PER_REQUEST;
      },
    };
    const measured = await runInterleaved({
      rounds: ROUNDS,
      warmup_ms,
      duration_ms,
      on_side: (name, round) => context.log(`${name}: ${CLIENTS} clients × ${ROWS_PER_REQUEST} rows (round ${round + 1}/${ROUNDS})`),
      sides: { tally: tallySide, "tally, priced": pricedSide, "raw multi-row INSERT": rawSide },
    });
    const viaTally = measured.tally;
    const priced = measured["tally, priced"];
    const raw = measured["raw multi-row INSERT"];
    http.close();
    await pool.end({ timeout: 5 });

    const memory = tally.memory();
    await tally.stop();
    const share = viaTally.rows_per_s / raw.rows_per_s;
    const pricedShare = priced.rows_per_s / viaTally.rows_per_s;
    return {
      parameters: { clients: CLIENTS, rows_per_request: ROWS_PER_REQUEST, accounts: ACCOUNTS, warmup_ms, duration_ms_per_side: duration_ms, rounds: ROUNDS, tally_pool_max: tally.pool_max },
      figures: [
        figure("rows/s", "rows/s", viaTally.rows_per_s, raw.rows_per_s, { better: "higher", headline: true }),
        figure("p50 latency per 1,000-row request", "ms", viaTally.latency_ms.p50, raw.latency_ms.p50, { better: "lower" }),
        figure("p99 latency per 1,000-row request", "ms", viaTally.latency_ms.p99, raw.latency_ms.p99, { better: "lower" }),
        figure("rows/s: priced (tokens) vs plain (amount)", "rows/s", priced.rows_per_s, viaTally.rows_per_s, { better: "higher", headline: true }),
        figure("p99 latency per 1,000-row request: priced vs plain", "ms", priced.latency_ms.p99, viaTally.latency_ms.p99, { better: "lower" }),
      ],
      targets: [
        target("tally ≥ 30,000 rows/s", `${Math.round(viaTally.rows_per_s).toLocaleString("en-US")} rows/s`, viaTally.rows_per_s >= 30_000),
        target("tally ≥ 0.7 × raw multi-row INSERT", `${share.toFixed(2)}×`, share >= 0.7),
        target("priced ≥ 0.9 × plain rate", `${pricedShare.toFixed(2)}×`, pricedShare >= 0.9),
      ],
      details: { tally: viaTally, priced, baseline: raw },
      tally_peak_rss_bytes: memory.peak_rss_bytes,
    };
  },
};
