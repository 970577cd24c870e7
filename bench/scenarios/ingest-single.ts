import { insertEntry } from "../../src/ledger/posting/posting.js";
import { BASELINE_POOL_MAX, connect, createAccounts } from "../lib/database.js";
import { HttpClient } from "../lib/http.js";
import { percentiles, runInterleaved, type LoadResult, type Measured, type Side } from "../lib/load.js";
import { figure, target, type Figure, type Target } from "../lib/report.js";
import { FIXED_REQUEST_HASH, METADATA, queryable, runTag, usageAmount } from "../lib/rows.js";
import { PRICED_METER, pricedQuantities, seedPrice } from "../lib/prices.js";
import { pick, type Scenario, type ScenarioContext } from "../lib/scenario.js";
import { TALLY_POOL_MAX, startCeiling } from "../lib/tally.js";

/**
 * `POST /v1/usage`, one row per request, at 1, 32 and 64 concurrent clients, spread over 10,000 accounts and (at 32
 * and 64) all on one account. Measured side by side, rounds interleaved:
 * - raw insert (the baseline): the same rows through the same statement tally runs alone (`insertEntry`), straight
 *   through a postgres.js pool as large as the client count, from the same process: what the database takes one
 *   row per statement;
 * - the HTTP ceiling: a no-database node:http server (ceiling-server.ts) answering the same request with an entry
 *   of the same shape: what HTTP alone costs here. tally's server CPU per row is reported beside the ceiling's;
 * - the ledger ceiling: tally's own posting path (group commit included) behind bare node:http, with no framework,
 *   validation or auth (ledger-ceiling-server.ts, same pool size): what tally's request path costs beyond its ledger;
 * - at 64 clients, spread: two tally processes on the same database, clients split between them;
 * - tally, priced: the same posts as `{ meter, quantities }` (tokens) instead of an amount, priced by tally from its
 *   price cache (src/ledger/prices/); reported as a ratio to the plain tally side (target ≥ 0.9×).
 * Rows per flush (tally's group commit) are read from the ledger: the rows of one flush share a transaction id.
 */

const ACCOUNTS = 10_000;
const HOT_ACCOUNT = "ingest_hot";
/** One batch of 1,000 rows per 1,000 accounts (10 requests) through `port`. */
async function warmAccounts(port: number, key: string, accounts: readonly string[], hot: string, tag: string): Promise<void> {
  const warm = new HttpClient(port, key, 1);
  for (let from = 0; from < accounts.length; from += 1000) {
    const entries = [...accounts.slice(from, from + 1000), ...(from === 0 ? [hot] : [])].map((account_id, index) => ({
      account_id,
      amount: "0.000001",
      idempotency_key: `warm-${tag}-${from + index}`,
    }));
    await warm.json("POST", "/v1/usage/batch", { entries }, [200]);
  }
  warm.close();
}

/**
 * Rows per grouped INSERT, read from the ledger itself: the rows of one flush share one transaction id. Warm-up
 * rows included; each flush counts once (mean and p99 over flushes).
 */
async function groupSizes(context: ScenarioContext, key_prefix: string): Promise<{ flushes: number; mean: number; p99: number; max: number }> {
  const rows = await context.sql<{ rows: number }[]>`
    SELECT count(*)::int AS rows FROM entries WHERE idempotency_key LIKE ${`${key_prefix}%`} GROUP BY xid`;
  const sizes = percentiles(rows.map((row) => row.rows));
  return { flushes: sizes.count, mean: Math.round(sizes.mean * 10) / 10, p99: sizes.p99, max: sizes.max };
}

/** Each side is measured in this many alternating rounds (tally, raw, tally, raw), so background noise lands on both. */
const ROUNDS = 2;

export const ingestSingle: Scenario = {
  name: "ingest-single",
  title: "POST /v1/usage at 32 and 64 clients, 10,000 accounts and one account, vs raw inserts",
  async run(context) {
    const concurrencies = [1, 32, 64];
    const warmup_ms = pick(context.quick, 2_000, 300);
    // In total per side, split over the rounds.
    const duration_ms = pick(context.quick, 10_000, 1_000);
    const accounts = await createAccounts(context.sql, "ingest_", ACCOUNTS);
    await createAccounts(context.sql, HOT_ACCOUNT, 1);
    const hot = `${HOT_ACCOUNT}1`;

    await seedPrice(context.sql);
    const tally = await context.startTally();
    const tag = runTag();
    // Warm tally's cache of known accounts the way a running service has it warm, so the measured posts do not each
    // look their account up.
    await warmAccounts(tally.port, context.key, accounts, hot, tag);

    const figures: Figure[] = [];
    const targets: Target[] = [];
    const details: Record<string, unknown> = {};
    const pickAccount = (distribution: "spread" | "one", sequence: number) =>
      distribution === "one" ? hot : accounts[(sequence * 7919) % accounts.length]!;
    const usageBody = (key: string, distribution: "spread" | "one", sequence: number) =>
      JSON.stringify({ account_id: pickAccount(distribution, sequence), amount: usageAmount(sequence), idempotency_key: key, metadata: METADATA });
    const pricedBody = (key: string, distribution: "spread" | "one", sequence: number) =>
      JSON.stringify({ account_id: pickAccount(distribution, sequence), meter: PRICED_METER, quantities: pricedQuantities(sequence), idempotency_key: key, metadata: METADATA });
    const ceiling = await startCeiling();
    const ledgerCeiling = await startCeiling("ledger-ceiling-server.ts", [context.database_url, String(TALLY_POOL_MAX)]);
    // A second tally process on the same database, for the two-process measurement (64 clients, spread).
    const second = await context.startTally({ label: "second" });
    await warmAccounts(second.port, context.key, accounts, hot, `${tag}-second`);

    for (const clients of concurrencies) {
      const http = new HttpClient(tally.port, context.key, clients);
      const ceilingHttp = new HttpClient(ceiling.port, context.key, clients);
      const ledgerCeilingHttp = new HttpClient(ledgerCeiling.port, context.key, clients);
      const halves = [new HttpClient(tally.port, context.key, Math.ceil(clients / 2)), new HttpClient(second.port, context.key, Math.ceil(clients / 2))];
      const pool = connect(context.database_url, Math.min(clients, BASELINE_POOL_MAX));
      const database = queryable(pool);
      const results: Record<string, { tally: LoadResult; baseline: LoadResult }> = {};
      const distributions = clients === 1 ? (["spread"] as const) : (["spread", "one"] as const);
      for (const distribution of distributions) {
        const prefix = `t-${tag}-${clients}-${distribution}-`;
        const twoProcesses = clients === 64 && distribution === "spread";
        const sides: Record<string, Side> = {
          tally: {
            workers: clients,
            tally_pid: tally.pid,
            sample_waits: context.sql,
            operation: async (_worker, sequence) => {
              await http.expect("POST", "/v1/usage", usageBody(`${prefix}${sequence}`, distribution, sequence), [201]);
              return 1;
            },
          },
          "tally, priced": {
            workers: clients,
            tally_pid: tally.pid,
            sample_waits: context.sql,
            operation: async (_worker, sequence) => {
              await http.expect("POST", "/v1/usage", pricedBody(`${prefix}priced-${sequence}`, distribution, sequence), [201]);
              return 1;
            },
          },
          "raw insert": {
            workers: clients,
            sample_waits: context.sql,
            operation: async (_worker, sequence) => {
              const row = await insertEntry(
                database,
                {
                  account_id: pickAccount(distribution, sequence),
                  type: "usage",
                  amount: usageAmount(sequence),
                  idempotency_key: `r-${tag}-${clients}-${distribution}-${sequence}`,
                  batch_id: null,
                  description: null,
                  metadata: METADATA,
                },
                FIXED_REQUEST_HASH,
              );
              if (!row) throw new Error("raw insert wrote nothing");
              return 1;
            },
          },
          "HTTP ceiling": {
            workers: clients,
            tally_pid: ceiling.pid,
            operation: async (_worker, sequence) => {
              await ceilingHttp.expect("POST", "/v1/usage", usageBody(`c-${sequence}`, distribution, sequence), [201]);
              return 1;
            },
          },
          "ledger ceiling": {
            workers: clients,
            tally_pid: ledgerCeiling.pid,
            sample_waits: context.sql,
            operation: async (_worker, sequence) => {
              await ledgerCeilingHttp.expect("POST", "/v1/usage", usageBody(`l-${tag}-${clients}-${distribution}-${sequence}`, distribution, sequence), [201]);
              return 1;
            },
          },
          ...(twoProcesses
            ? {
                "tally, 2 processes": {
                  workers: clients,
                  tally_pid: [tally.pid, second.pid],
                  sample_waits: context.sql,
                  operation: async (worker: number, sequence: number) => {
                    await halves[worker % 2]!.expect("POST", "/v1/usage", usageBody(`${prefix}two-${sequence}`, distribution, sequence), [201]);
                    return 1;
                  },
                } satisfies Side,
              }
            : {}),
        };
        const measured = await runInterleaved({
          rounds: ROUNDS,
          warmup_ms,
          duration_ms,
          on_side: (name, round) => context.log(`${clients} clients, ${distribution}: ${name} (round ${round + 1}/${ROUNDS})`),
          sides,
        });
        const viaTally = measured.tally!;
        const priced = measured["tally, priced"]!;
        const raw = measured["raw insert"]!;
        const ceilingResult = measured["HTTP ceiling"]!;
        const ledgerCeilingResult = measured["ledger ceiling"]!;
        const groups = await groupSizes(context, prefix);
        results[distribution] = { tally: viaTally, baseline: raw };
        const cpuPerRow = (result: Measured) => (result.cpu.tally_cores * 1e6) / result.rows_per_s;
        details[`${clients}_${distribution}`] = {
          tally: viaTally,
          baseline: raw,
          ceiling: ceilingResult,
          ledger_ceiling: ledgerCeilingResult,
          priced,
          group_sizes: groups,
          ...(twoProcesses ? { tally_two_processes: measured["tally, 2 processes"] } : {}),
        };
        const label = `${clients} client${clients === 1 ? "" : "s"}, ${distribution === "spread" ? `${ACCOUNTS.toLocaleString("en-US")} accounts` : "one account"}`;
        figures.push(
          figure(`rows/s, ${label}`, "rows/s", viaTally.rows_per_s, raw.rows_per_s, { better: "higher", headline: clients > 1 }),
          figure(`p50 latency, ${label}`, "ms", viaTally.latency_ms.p50, raw.latency_ms.p50, { better: "lower", headline: clients === 1 }),
          figure(`p99 latency, ${label}`, "ms", viaTally.latency_ms.p99, raw.latency_ms.p99, { better: "lower", headline: true }),
          figure(`rows/s, ${label}: tally vs the no-database HTTP ceiling`, "rows/s", viaTally.rows_per_s, ceilingResult.rows_per_s, { better: "higher" }),
          figure(`server CPU per row, ${label}: tally vs the HTTP ceiling`, "µs", cpuPerRow(viaTally), cpuPerRow(ceilingResult), { better: "lower", headline: clients > 1 }),
          figure(`rows/s, ${label}: tally vs the ledger ceiling (its posting path behind bare node:http)`, "rows/s", viaTally.rows_per_s, ledgerCeilingResult.rows_per_s, { better: "higher" }),
          figure(`server CPU per row, ${label}: tally vs the ledger ceiling`, "µs", cpuPerRow(viaTally), cpuPerRow(ledgerCeilingResult), { better: "lower", headline: clients > 1 }),
          figure(`rows per flush (mean / p99), ${label}`, "rows", groups.mean, groups.p99, { compare: false }),
          figure(`rows/s, ${label}: priced (tokens) vs plain (amount)`, "rows/s", priced.rows_per_s, viaTally.rows_per_s, { better: "higher", headline: true }),
          figure(`p99 latency, ${label}: priced vs plain`, "ms", priced.latency_ms.p99, viaTally.latency_ms.p99, { better: "lower" }),
        );
        const pricedShare = priced.rows_per_s / viaTally.rows_per_s;
        targets.push(target(`${label}: priced ≥ 0.9 × plain rate`, `${pricedShare.toFixed(2)}×`, pricedShare >= 0.9));
        if (twoProcesses) {
          const two = measured["tally, 2 processes"]!;
          figures.push(
            figure(`rows/s, ${label}: 2 tally processes vs raw`, "rows/s", two.rows_per_s, raw.rows_per_s, { better: "higher" }),
            figure(`server CPU per row, ${label}: 2 tally processes vs 1`, "µs", cpuPerRow(two), cpuPerRow(viaTally), { better: "lower" }),
          );
        }
        const share = viaTally.rows_per_s / raw.rows_per_s;
        if (clients > 1) {
          targets.push(target(`${label}: tally ≥ 1.0 × raw insert rate`, `${share.toFixed(2)}×`, share >= 1.0));
          targets.push(target(`${label}: tally's server CPU per row ≤ 150 µs`, `${cpuPerRow(viaTally).toFixed(0)} µs`, cpuPerRow(viaTally) <= 150));
        }
        if (clients === 32) {
          const bound = raw.latency_ms.p99 * 2;
          targets.push(target(`${label}: p99 ≤ 2 × raw's p99`, `${viaTally.latency_ms.p99.toFixed(1)} ms vs ${bound.toFixed(1)} ms`, viaTally.latency_ms.p99 <= bound));
        }
      }
      if (clients > 1) {
        const tallyOne = results.one!.tally.rows_per_s / results.spread!.tally.rows_per_s;
        const rawOne = results.one!.baseline.rows_per_s / results.spread!.baseline.rows_per_s;
        figures.push(
          figure(`one-account rate ÷ spread rate, ${clients} clients`, "×", tallyOne, rawOne, { better: "higher", headline: true, compare: false }),
        );
        targets.push(target(`${clients} clients: one-account rate ≥ 0.9 × spread rate`, `${tallyOne.toFixed(2)}×`, tallyOne >= 0.9));
      }
      http.close();
      ceilingHttp.close();
      ledgerCeilingHttp.close();
      for (const half of halves) half.close();
      await pool.end({ timeout: 5 });
    }
    await ceiling.stop();
    await ledgerCeiling.stop();
    await second.stop();

    const memory = tally.memory();
    await tally.stop();
    return {
      parameters: {
        concurrencies,
        accounts: ACCOUNTS,
        warmup_ms,
        duration_ms_per_side: duration_ms,
        rounds: ROUNDS,
        tally_pool_max: tally.pool_max,
        baseline_pool: `postgres.js pool of size = clients, at most ${BASELINE_POOL_MAX}`,
        row: { amount: "0.000001 … 0.000997", metadata: METADATA },
        tally_env: "defaults (CHECKPOINT_REFRESH_EVERY=1000, CHECKPOINT_DELTA_MAX=5000), LOG_LEVEL=warn",
      },
      figures,
      targets,
      details,
      tally_peak_rss_bytes: memory.peak_rss_bytes,
    };
  },
};
