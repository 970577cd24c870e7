import { connectPostgres } from "../../src/db/postgres.js";
import { numericToNanos } from "../../src/ledger/core/amount.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { foldLots } from "../../src/ledger/lots/settle.js";
import { createLogger } from "../../src/logger.js";
import { createAccounts, createNamedAccounts } from "../lib/database.js";
import { fillMany } from "../lib/fill.js";
import { HttpClient } from "../lib/http.js";
import { percentiles, sequentialLatencies } from "../lib/load.js";
import { figure, target, type Figure } from "../lib/report.js";
import { pick, sleep, type Scenario } from "../lib/scenario.js";

/**
 * Credit lots (src/ledger/lots/), two figures:
 *
 * 1. Balance p99 with many lots: `GET /v1/balances/{id}` (which also computes `expiring_next`) and
 *    `GET /v1/accounts/{id}/lots?limit=50` on an account with 10,000 lots, nearly all consumed, and 1,000,000
 *    entries, against the same reads on an account with one lot and 1,000 entries. The lots are bulk-inserted
 *    before the history, so the first read folds the whole history (reported as the cold read); the percentiles are
 *    the steady state afterwards. The claim is O(delta) and O(page): the ratio of the two accounts' p99s.
 * 2. Expiry throughput: 10,000 accounts with one lot each, all due at the same instant, expired by tally's own
 *    sweep (EXPIRY_SWEEP_INTERVAL_MS=100): lots expired per second from the due instant to the last expiration.
 */

const ROUNDS = 5;

/** 10,000 grants of 0.04 (priority 10, half expiring in a year) on one account: the lots the fill's usage consumes. */
const MANY_LOTS_SQL = `
INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, priority, expires_at, created_at)
SELECT gen_random_uuid(), $1::text, 'grant', 0.04, 0.04, 'lot-' || g, md5(g::text) || md5((-g)::text), 10,
       CASE WHEN g % 2 = 0 THEN now() + interval '365 days' END, now() - interval '31 days'
FROM generate_series(1, $2::int) AS g`;

/** One lot per account, all due at $2, as POST /v1/credits writes them (the entry and its unfolded lot row). */
const DUE_LOTS_SQL = `
WITH inserted AS (
  INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, priority, expires_at)
  SELECT gen_random_uuid(), $1::text || g, 'grant', 10, 10, 'due', md5(g::text) || md5((-g)::text), 50, $2::timestamptz
  FROM generate_series(1, $3::int) AS g
  RETURNING id, account_id, seq, type, priority, expires_at, amount, created_at
)
INSERT INTO credit_lots (account_id, entry_id, entry_seq, type, priority, expires_at, expires_sort, amount, remaining,
                         status, folded, created_at)
SELECT account_id, id, seq, type, priority, expires_at, expires_at, amount, amount, 'open', false, created_at
FROM inserted`;

export const lots: Scenario = {
  name: "lots",
  title: "Credit lots: balance and lot listing at 10,000 lots / 1,000,000 entries vs 1 lot / 1,000; expiry throughput",
  async run(context) {
    const manyEntries = pick(context.quick, 1_000_000, 20_000);
    const manyLots = pick(context.quick, 10_000, 1_000);
    const dueAccounts = pick(context.quick, 10_000, 500);
    const duration_ms = pick(context.quick, 4_000, 400);
    const warmup_reads = pick(context.quick, 100, 10);
    const figures: Figure[] = [];
    const details: Record<string, unknown> = {};
    const notes: string[] = [];

    // --- 1. Balance and listing with many lots -------------------------------------------------------------------
    await createNamedAccounts(context.sql, ["lots_many", "lots_few"]);
    await context.sql.unsafe(MANY_LOTS_SQL, ["lots_many", manyLots]);
    await context.sql.unsafe(MANY_LOTS_SQL, ["lots_few", 1]);
    const fills = await fillMany(context.sql, [
      { account_id: "lots_many", rows: manyEntries },
      { account_id: "lots_few", rows: 1_000 },
    ]);
    // The first fold of a history that was bulk-loaded under its lots reads all of it (O(history), once), in chunks
    // of 2,000 entries; it runs here, timed, rather than inside a request that would time out.
    const foldDatabase = connectPostgres({ url: context.database_url, pool_max: 2, statement_timeout_ms: 600_000 });
    const foldStarted = performance.now();
    try {
      const ledger = createLedgerContext({ database: foldDatabase, logger: createLogger("silent"), refresh_every: 1000, delta_max: 5000 });
      for (const account of ["lots_many", "lots_few"]) await foldLots(ledger, account);
    } finally {
      await foldDatabase.close();
    }
    const initialFoldSeconds = (performance.now() - foldStarted) / 1000;
    const tally = await context.startTally({ env: { EXPIRY_SWEEP_INTERVAL_MS: "100" } });
    const http = new HttpClient(tally.port, context.key, 1);
    const accounts = ["lots_many", "lots_few"] as const;
    const cold: Record<string, number> = {};
    for (const account of accounts) {
      const started = performance.now();
      const body = await http.json<{ balance: string }>("GET", `/v1/balances/${account}`);
      cold[account] = performance.now() - started;
      const [truth] = await context.sql<{ total: string }[]>`
        SELECT COALESCE(SUM(delta), 0)::text AS total FROM entries WHERE account_id = ${account}`;
      if (numericToNanos(body.balance) !== numericToNanos(truth!.total)) {
        throw new Error(`tally's balance of ${account} is ${body.balance}, the sum of its entries is ${truth!.total}`);
      }
    }
    const paths = accounts.flatMap((account) => [`/v1/balances/${account}`, `/v1/accounts/${account}/lots?limit=50`]);
    for (const path of paths) for (let warm = 0; warm < warmup_reads; warm++) await http.expect("GET", path, undefined, [200]);
    const [lotCounts] = await context.sql<{ open: string; consumed: string }[]>`
      SELECT COUNT(*) FILTER (WHERE status = 'open')::text AS open, COUNT(*) FILTER (WHERE status = 'consumed')::text AS consumed
      FROM credit_lots WHERE account_id = 'lots_many'`;
    notes.push(`lots_many after warm-up (its first listing folds the history): ${lotCounts!.open} open lots, ${lotCounts!.consumed} consumed`);
    const samples = paths.map(() => [] as number[]);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [index, path] of paths.entries()) {
        samples[index]!.push(
          ...(await sequentialLatencies(async () => void (await http.expect("GET", path, undefined, [200])), {
            count_max: 50_000,
            duration_ms: duration_ms / ROUNDS,
          })),
        );
      }
    }
    const stats = paths.map((_, index) => percentiles(samples[index]!));
    const [manyBalance, manyList, fewBalance, fewList] = stats as [typeof stats[0], typeof stats[0], typeof stats[0], typeof stats[0]];
    details.reads = Object.fromEntries(paths.map((path, index) => [path, stats[index]]));
    details.cold_read_ms = cold;
    details.initial_fold_seconds = initialFoldSeconds;
    notes.push(`the initial lot fold of the bulk-loaded histories took ${initialFoldSeconds.toFixed(1)} s (once; afterwards reads apply only the entries after the fold)`);
    const manyLabel = `${manyLots.toLocaleString("en-US")} lots / ${manyEntries.toLocaleString("en-US")} entries`;
    figures.push(
      figure(`balance p99, ${manyLabel} (baseline: 1 lot / 1,000)`, "ms", manyBalance.p99, fewBalance.p99, { better: "lower", headline: true }),
      figure(`lot listing p99 (50), ${manyLabel} (baseline: 1 lot / 1,000)`, "ms", manyList.p99, fewList.p99, { better: "lower", headline: true }),
      figure(`first balance read after the initial fold, ${manyLabel}`, "ms", cold.lots_many!, cold.lots_few!, { better: "lower" }),
    );
    http.close();

    // --- 2. Expiry throughput ----------------------------------------------------------------------------------
    await createAccounts(context.sql, "due_", dueAccounts);
    const dueAt = new Date(Date.now() + 5_000);
    await context.sql.unsafe(DUE_LOTS_SQL, ["due_", dueAt.toISOString(), dueAccounts]);
    const remainingBeforeDue = dueAt.getTime() - Date.now();
    if (remainingBeforeDue < 500) notes.push("the due lots were inserted less than 0.5 s before their expiry");
    await sleep(Math.max(0, remainingBeforeDue));
    let expired = 0;
    const deadline = Date.now() + pick(context.quick, 300_000, 60_000);
    while (expired < dueAccounts && Date.now() < deadline) {
      await sleep(50);
      const [row] = await context.sql<{ count: string }[]>`
        SELECT COUNT(*)::text AS count FROM credit_lots WHERE account_id LIKE 'due\\_%' AND status = 'expired'`;
      expired = Number(row!.count);
    }
    const expirySeconds = (Date.now() - dueAt.getTime()) / 1000;
    if (expired < dueAccounts) throw new Error(`only ${expired} of ${dueAccounts} due lots expired before the deadline`);
    const [duplicates] = await context.sql<{ count: string }[]>`
      SELECT COUNT(*)::text AS count FROM (
        SELECT lot_id FROM entries WHERE type = 'expiration' GROUP BY account_id, lot_id HAVING COUNT(*) > 1) AS twice`;
    if (duplicates!.count !== "0") throw new Error(`${duplicates!.count} lots expired more than once`);
    const rate = dueAccounts / expirySeconds;
    figures.push(figure(`expiry throughput, ${dueAccounts.toLocaleString("en-US")} accounts due at once`, "lots/s", rate, null, { better: "higher", headline: true }));
    details.expiry = { accounts: dueAccounts, seconds_from_due_to_last: expirySeconds };
    const memory = tally.memory();
    await tally.stop();

    const growth = manyBalance.p99 / fewBalance.p99;
    const listGrowth = manyList.p99 / fewList.p99;
    return {
      parameters: { many_lots: manyLots, many_entries: manyEntries, due_accounts: dueAccounts, rounds: ROUNDS, duration_ms_per_read: duration_ms, clients: 1, tally_env: "EXPIRY_SWEEP_INTERVAL_MS=100, defaults otherwise" },
      figures,
      targets: [
        target(`balance p99 at ${manyLabel} ≤ 1.5 × at 1 lot / 1,000 entries`, `${growth.toFixed(2)}×`, growth <= 1.5),
        target(`lot listing p99 at ${manyLabel} ≤ 1.5 × at 1 lot / 1,000 entries`, `${listGrowth.toFixed(2)}×`, listGrowth <= 1.5),
      ],
      fills,
      notes,
      details,
      tally_peak_rss_bytes: memory.peak_rss_bytes,
    };
  },
};
