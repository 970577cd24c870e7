import { insertEntry } from "../../src/ledger/posting/posting.js";
import { connect, createAccounts } from "../lib/database.js";
import { HttpClient } from "../lib/http.js";
import { runInterleaved, type LoadResult } from "../lib/load.js";
import { figure, target, type Figure, type Target } from "../lib/report.js";
import { FIXED_REQUEST_HASH, METADATA, queryable, runTag, usageAmount } from "../lib/rows.js";
import { pick, type Scenario } from "../lib/scenario.js";

/**
 * `POST /v1/usage`, one row per request, at 32 and 64 concurrent clients, spread over 10,000 accounts and all on
 * one account. Baseline: the same rows inserted by the same statement tally runs (`insertEntry`), straight through
 * a postgres.js pool as large as the client count, from the same process: what the database alone can take, so the
 * ratio is the cost of HTTP, validation, auth and the account check on top of the insert.
 */

const ACCOUNTS = 10_000;
const HOT_ACCOUNT = "ingest_hot";
/** Each side is measured in this many alternating rounds (tally, raw, tally, raw), so background noise lands on both. */
const ROUNDS = 2;

export const ingestSingle: Scenario = {
  name: "ingest-single",
  title: "POST /v1/usage at 32 and 64 clients, 10,000 accounts and one account, vs raw inserts",
  async run(context) {
    const concurrencies = [32, 64];
    const warmup_ms = pick(context.quick, 2_000, 300);
    // In total per side, split over the rounds.
    const duration_ms = pick(context.quick, 10_000, 1_000);
    const accounts = await createAccounts(context.sql, "ingest_", ACCOUNTS);
    await createAccounts(context.sql, HOT_ACCOUNT, 1);
    const hot = `${HOT_ACCOUNT}1`;

    const tally = await context.startTally();
    const tag = runTag();
    // Warm tally's cache of known accounts the way a running service has it warm: one batch of 1,000 rows per
    // 1,000 accounts (10 requests), so the measured posts do not each look their account up.
    const warm = new HttpClient(tally.port, context.key, 1);
    for (let from = 0; from < accounts.length; from += 1000) {
      const entries = [...accounts.slice(from, from + 1000), ...(from === 0 ? [hot] : [])].map((account_id, index) => ({
        account_id,
        amount: "0.000001",
        idempotency_key: `warm-${tag}-${from + index}`,
      }));
      await warm.json("POST", "/v1/usage/batch", { entries }, [200]);
    }
    warm.close();

    const figures: Figure[] = [];
    const targets: Target[] = [];
    const details: Record<string, unknown> = {};
    const pickAccount = (distribution: "spread" | "one", sequence: number) =>
      distribution === "one" ? hot : accounts[(sequence * 7919) % accounts.length]!;

    for (const clients of concurrencies) {
      const http = new HttpClient(tally.port, context.key, clients);
      const pool = connect(context.database_url, clients);
      const database = queryable(pool);
      const results: Record<string, { tally: LoadResult; baseline: LoadResult }> = {};
      for (const distribution of ["spread", "one"] as const) {
        const measured = await runInterleaved({
          rounds: ROUNDS,
          warmup_ms,
          duration_ms,
          on_side: (name, round) => context.log(`${clients} clients, ${distribution}: ${name} (round ${round + 1}/${ROUNDS})`),
          sides: {
            tally: {
              workers: clients,
              tally_pid: tally.pid,
              sample_waits: context.sql,
              operation: async (_worker, sequence) => {
                const body = JSON.stringify({
                  account_id: pickAccount(distribution, sequence),
                  amount: usageAmount(sequence),
                  idempotency_key: `t-${tag}-${clients}-${distribution}-${sequence}`,
                  metadata: METADATA,
                });
                await http.expect("POST", "/v1/usage", body, [201]);
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
                    idempotency_key: `b-${tag}-${clients}-${distribution}-${sequence}`,
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
          },
        });
        const viaTally = measured.tally;
        const raw = measured["raw insert"];
        results[distribution] = { tally: viaTally, baseline: raw };
        details[`${clients}_${distribution}`] = { tally: viaTally, baseline: raw };
        const label = `${clients} clients, ${distribution === "spread" ? `${ACCOUNTS.toLocaleString("en-US")} accounts` : "one account"}`;
        figures.push(
          figure(`rows/s, ${label}`, "rows/s", viaTally.rows_per_s, raw.rows_per_s, { better: "higher", headline: true }),
          figure(`p50 latency, ${label}`, "ms", viaTally.latency_ms.p50, raw.latency_ms.p50, { better: "lower" }),
          figure(`p99 latency, ${label}`, "ms", viaTally.latency_ms.p99, raw.latency_ms.p99, { better: "lower", headline: true }),
        );
        const share = viaTally.rows_per_s / raw.rows_per_s;
        targets.push(target(`${label}: tally ≥ 0.6 × raw insert rate`, `${share.toFixed(2)}×`, share >= 0.6));
      }
      const tallyOne = results.one!.tally.rows_per_s / results.spread!.tally.rows_per_s;
      const rawOne = results.one!.baseline.rows_per_s / results.spread!.baseline.rows_per_s;
      figures.push(
        figure(`one-account rate ÷ spread rate, ${clients} clients`, "×", tallyOne, rawOne, { better: "higher", headline: true, compare: false }),
      );
      targets.push(target(`${clients} clients: one-account rate ≥ 0.9 × spread rate`, `${tallyOne.toFixed(2)}×`, tallyOne >= 0.9));
      http.close();
      await pool.end({ timeout: 5 });
    }

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
        baseline_pool: "postgres.js pool of size = clients",
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
