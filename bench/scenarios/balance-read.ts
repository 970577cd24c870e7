import { numericToNanos } from "../../src/ledger/core/amount.js";
import { createNamedAccounts } from "../lib/database.js";
import { fillMany } from "../lib/fill.js";
import { CpuMeter } from "../lib/cpu.js";
import { HttpClient } from "../lib/http.js";
import { percentiles, sequentialLatencies } from "../lib/load.js";
import { figure, target, type Figure } from "../lib/report.js";
import { pick, type Scenario } from "../lib/scenario.js";

/**
 * `GET /v1/balances/{id}` for accounts with 1,000, 100,000 and 1,000,000 entries, tally on its default refresh
 * settings (CHECKPOINT_REFRESH_EVERY=1000, CHECKPOINT_DELTA_MAX=5000), against the naive read a checkpoint-less
 * ledger does: `SELECT SUM(delta) FROM entries WHERE account_id = $1`, prepared, through postgres.js.
 *
 * The histories are bulk-filled, so no checkpoint exists yet: the first read of a large account sums its whole
 * history and then refreshes the checkpoint (its delta exceeds CHECKPOINT_DELTA_MAX). That first read is reported
 * on its own as the cold read; the percentiles are the steady state a gateway sees afterwards. Reads are
 * sequential (one client), so the latencies are the read's own cost, not queueing.
 */

/** Steady-state reads run in this many rounds, each visiting every size in turn. */
const ROUNDS = 5;

export const balanceRead: Scenario = {
  name: "balance-read",
  title: "GET /v1/balances/{id} at 1,000 / 100,000 / 1,000,000 entries vs naive SUM",
  async run(context) {
    const sizes = pick(context.quick, [1_000, 100_000, 1_000_000], [1_000, 10_000, 100_000]);
    // Per size and side, in total over the rounds.
    const duration_ms = pick(context.quick, 5_000, 500);
    const warmup_reads = pick(context.quick, 200, 20);
    const ids = sizes.map((size) => `read_${size}`);
    await createNamedAccounts(context.sql, [...ids, "read_warm"]);
    const accountOf = (index: number) => ids[index]!;
    context.log(`filling ${sizes.map((size) => size.toLocaleString("en-US")).join(" / ")} entries`);
    const fills = await fillMany(
      context.sql,
      sizes.map((rows, index) => ({ account_id: accountOf(index), rows })),
    );
    for (const fill of fills) context.log(`filled ${fill.what}: ${fill.rows} rows in ${fill.insert_seconds.toFixed(1)} s`);

    const tally = await context.startTally();
    const http = new HttpClient(tally.port, context.key, 1);
    // Warm tally up (JIT, connections, prepared statements) on an account without history, so the first cold read
    // of a filled account measures the read and not the first request of a new process.
    await http.json("POST", "/v1/credits", { account_id: "read_warm", type: "grant", amount: "1", idempotency_key: "warm" }, [201]);
    for (let warm = 0; warm < warmup_reads; warm++) await http.expect("GET", "/v1/balances/read_warm", undefined, [200]);
    const naive = context.sql;
    const naiveSum = async (account_id: string) => {
      const [row] = await naive.unsafe<{ balance: string | null }[]>(
        "SELECT SUM(delta)::text AS balance FROM entries WHERE account_id = $1",
        [account_id],
        { prepare: true },
      );
      return row!.balance ?? "0";
    };

    const figures: Figure[] = [];
    const details: Record<string, unknown> = {};
    const notes: string[] = [];
    const paths = sizes.map((_, index) => `/v1/balances/${accountOf(index)}`);
    const labels = sizes.map((size) => `${size.toLocaleString("en-US")} entries`);

    // 1. The cold read of each account, checked against the sum of its entries.
    const cold: { ms: number; checkpointed: boolean }[] = [];
    for (const [index, size] of sizes.entries()) {
      const account_id = accountOf(index);
      const started = performance.now();
      const body = await http.json<{ balance: string }>("GET", paths[index]!);
      const ms = performance.now() - started;
      const truth = await naiveSum(account_id);
      if (numericToNanos(body.balance) !== numericToNanos(truth)) {
        throw new Error(`tally's balance of ${account_id} is ${body.balance}, the sum of its entries is ${truth}`);
      }
      const [checkpoint] = await context.sql<{ exists: boolean }[]>`
        SELECT EXISTS (SELECT 1 FROM balance_checkpoints WHERE account_id = ${account_id}) AS exists`;
      cold.push({ ms, checkpointed: checkpoint!.exists });
      notes.push(
        checkpoint!.exists
          ? `${labels[index]}: the cold read summed the whole history and refreshed the checkpoint; later reads sum only rows past it`
          : `${labels[index]}: no checkpoint (the delta never exceeded CHECKPOINT_DELTA_MAX and no write refreshed it), so every read sums all ${size.toLocaleString("en-US")} rows`,
      );
    }

    // 2. Steady state, in rounds that visit every size in turn, so no size gets the process's warm-up (or a burst of
    //    background load) to itself.
    for (const path of paths) for (let warm = 0; warm < warmup_reads; warm++) await http.expect("GET", path, undefined, [200]);
    for (const [index] of sizes.entries()) for (let warm = 0; warm < 3; warm++) await naiveSum(accountOf(index));
    const tallySamples = sizes.map(() => [] as number[]);
    const naiveSamples = sizes.map(() => [] as number[]);
    const meter = new CpuMeter(tally.pid);
    for (let round = 0; round < ROUNDS; round++) {
      context.log(`round ${round + 1}/${ROUNDS}`);
      for (const [index] of sizes.entries()) {
        tallySamples[index]!.push(
          ...(await sequentialLatencies(async () => void (await http.expect("GET", paths[index]!, undefined, [200])), {
            count_max: 50_000,
            duration_ms: duration_ms / ROUNDS,
          })),
        );
        naiveSamples[index]!.push(
          ...(await sequentialLatencies(async () => void (await naiveSum(accountOf(index))), {
            count_max: 50_000,
            duration_ms: duration_ms / ROUNDS,
            count_min: 4,
          })),
        );
      }
    }
    // Both sides together (the naive side's parallel workers escape the split): kept for the record, not for the
    // background check.
    const cpu_all_rounds = meter.read();

    const p99s: { tally: number; naive: number }[] = [];
    for (const [index] of sizes.entries()) {
      const tallyStats = percentiles(tallySamples[index]!);
      const naiveStats = percentiles(naiveSamples[index]!);
      p99s.push({ tally: tallyStats.p99, naive: naiveStats.p99 });
      details[labels[index]!] = { cold_read_ms: cold[index]!.ms, checkpoint_after_cold_read: cold[index]!.checkpointed, tally: tallyStats, naive_sum: naiveStats };
      figures.push(
        figure(`p50 read, ${labels[index]}`, "ms", tallyStats.p50, naiveStats.p50, { better: "lower" }),
        figure(`p99 read, ${labels[index]}`, "ms", tallyStats.p99, naiveStats.p99, { better: "lower", headline: true }),
        figure(`first (cold) read, ${labels[index]}`, "ms", cold[index]!.ms, null, { better: "lower" }),
      );
    }
    details.cpu_all_rounds_both_sides = { ...cpu_all_rounds };
    http.close();
    const memory = tally.memory();
    await tally.stop();

    const growth = p99s.at(-1)!.tally / p99s[0]!.tally;
    const naiveGrowth = p99s.at(-1)!.naive / p99s[0]!.naive;
    const largest = sizes.at(-1)!.toLocaleString("en-US");
    figures.push(
      figure(`p99 at ${largest} ÷ p99 at ${sizes[0]!.toLocaleString("en-US")}`, "×", growth, naiveGrowth, {
        better: "lower",
        headline: true,
        compare: false,
      }),
    );
    return {
      parameters: { sizes, duration_ms_per_size_and_side: duration_ms, rounds: ROUNDS, warmup_reads, clients: 1, tally_env: "defaults: CHECKPOINT_REFRESH_EVERY=1000, CHECKPOINT_DELTA_MAX=5000" },
      figures,
      targets: [target(`p99 at ${largest} entries ≤ 1.5 × p99 at ${sizes[0]!.toLocaleString("en-US")}`, `${growth.toFixed(2)}×`, growth <= 1.5)],
      fills,
      notes,
      details,
      tally_peak_rss_bytes: memory.peak_rss_bytes,
    };
  },
};
