import type postgres from "postgres";
import { formatNanos, numericToNanos } from "../../src/ledger/core/amount.js";
import { readBalances } from "../../src/ledger/balances/balances.js";
import { refreshCheckpoint } from "../../src/ledger/balances/checkpoints.js";
import { insertEntry } from "../../src/ledger/posting/posting.js";
import { connect, createAccounts } from "../lib/database.js";
import { HttpClient } from "../lib/http.js";
import { runMeasured, type LoadResult } from "../lib/load.js";
import { figure, target } from "../lib/report.js";
import { FIXED_REQUEST_HASH, queryable, runTag, usageAmount } from "../lib/rows.js";
import { pick, type Scenario } from "../lib/scenario.js";

/**
 * 64 writers on 4 accounts with a checkpoint refresh after every write; afterwards every balance is compared with
 * the SUM of all its rows. Three runs of the same load:
 *
 * - tally over HTTP, CHECKPOINT_REFRESH_EVERY=1: GET /v1/balances against SUM(delta), and each checkpoint against
 *   the rows below its boundary. Must be exact: any drift fails the run.
 * - tally's own statements straight from 64 connections (insertEntry, then refreshCheckpoint, then readBalances):
 *   the same design under the same concurrency the baseline gets, without the HTTP layer thinning it out.
 * - the baseline, the seq-bounded checkpoint of the dwctl design (seed 002), implemented faithfully on its own
 *   tables: a lock-free insert, then the refresh it runs after a write (one statement computing
 *   checkpoint + SUM(seq > checkpoint_seq) and MAX(seq), then an unconditional upsert of both), on every write.
 *   A row whose transaction took a smaller seq but committed after a refresh recorded a larger MAX(seq) is never
 *   summed again. Its drift is |checkpointed balance − SUM of all rows|, per account, reported, not asserted.
 */

const WRITERS = 64;
const ACCOUNTS = 4;

const SEQ_SETUP_SQL = `
CREATE TABLE bench_seq_entries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq bigint GENERATED ALWAYS AS IDENTITY,
  account_id text NOT NULL,
  type text NOT NULL,
  amount numeric(25, 9) NOT NULL,
  delta numeric(25, 9) NOT NULL,
  source_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, source_id)
);
CREATE INDEX bench_seq_entries_account_seq ON bench_seq_entries (account_id, seq);
CREATE TABLE bench_seq_checkpoints (
  account_id text PRIMARY KEY,
  checkpoint_seq bigint NOT NULL,
  balance numeric NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);`;

/** The seed's calculate_balance_with_seq: checkpoint + rows after its seq, and the account's MAX(seq), in one statement. */
const SEQ_BALANCE_SQL = `
WITH checkpoint AS (
  SELECT checkpoint_seq, balance FROM bench_seq_checkpoints WHERE account_id = $1
)
SELECT (COALESCE((SELECT balance FROM checkpoint), 0) + COALESCE((
          SELECT SUM(delta) FROM bench_seq_entries
          WHERE account_id = $1 AND seq > COALESCE((SELECT checkpoint_seq FROM checkpoint), 0)
        ), 0))::text AS balance,
       (SELECT MAX(seq) FROM bench_seq_entries WHERE account_id = $1)::text AS latest_seq`;

/** The seed's refresh_checkpoint upsert: unconditional, as written there. */
const SEQ_UPSERT_SQL = `
INSERT INTO bench_seq_checkpoints (account_id, checkpoint_seq, balance) VALUES ($1, $2::bigint, $3::numeric)
ON CONFLICT (account_id) DO UPDATE SET checkpoint_seq = EXCLUDED.checkpoint_seq, balance = EXCLUDED.balance, updated_at = now()`;

interface Drift {
  rows: number;
  absolute_amount: string;
  per_account: { account_id: string; balance: string; true_sum: string; drift: string; checkpoint_drift?: string }[];
  total_drift_nanos: bigint;
  checkpoint_drift_nanos: bigint;
  accounts_drifted: number;
}

function drift_percent(drift: Drift): number {
  const absolute = numericToNanos(drift.absolute_amount);
  return absolute === 0n ? 0 : (Number(drift.total_drift_nanos) / Number(absolute)) * 100;
}

const abs = (value: bigint) => (value < 0n ? -value : value);

/** tally's side: the served balance against SUM(delta), and each checkpoint against the rows below its boundary. */
async function tallyDrift(
  sql: postgres.Sql,
  accounts: readonly string[],
  balanceOf: (account_id: string) => Promise<string>,
): Promise<Drift> {
  const truth = await sql<{ account_id: string; total: string; rows: string; absolute: string }[]>`
    SELECT account_id, SUM(delta)::text AS total, COUNT(*)::text AS rows, SUM(amount)::text AS absolute
    FROM entries WHERE account_id = ANY(${accounts as string[]}) GROUP BY account_id`;
  const checkpoints = await sql<{ account_id: string; balance: string; folded: string }[]>`
    SELECT checkpoint.account_id, checkpoint.balance::text AS balance,
           (SELECT COALESCE(SUM(delta), 0) FROM entries
            WHERE entries.account_id = checkpoint.account_id AND entries.xid < checkpoint.xid_boundary)::text AS folded
    FROM balance_checkpoints AS checkpoint WHERE checkpoint.account_id = ANY(${accounts as string[]})`;
  const result: Drift = { rows: 0, absolute_amount: "0", per_account: [], total_drift_nanos: 0n, checkpoint_drift_nanos: 0n, accounts_drifted: 0 };
  let absolute = 0n;
  for (const account_id of accounts) {
    const row = truth.find((candidate) => candidate.account_id === account_id);
    const trueSum = numericToNanos(row?.total ?? "0");
    const balance = numericToNanos(await balanceOf(account_id));
    const checkpoint = checkpoints.find((candidate) => candidate.account_id === account_id);
    const checkpointDrift = checkpoint ? abs(numericToNanos(checkpoint.balance) - numericToNanos(checkpoint.folded)) : 0n;
    const drift = abs(balance - trueSum);
    result.rows += Number(row?.rows ?? 0);
    absolute += numericToNanos(row?.absolute ?? "0");
    result.total_drift_nanos += drift;
    result.checkpoint_drift_nanos += checkpointDrift;
    if (drift !== 0n || checkpointDrift !== 0n) result.accounts_drifted++;
    result.per_account.push({
      account_id,
      balance: formatNanos(balance),
      true_sum: formatNanos(trueSum),
      drift: formatNanos(drift),
      checkpoint_drift: formatNanos(checkpointDrift),
    });
  }
  result.absolute_amount = formatNanos(absolute);
  return result;
}

export const drift: Scenario = {
  name: "drift",
  title: "64 writers on 4 accounts, refresh on every write: tally's xid checkpoint vs the seq-bounded checkpoint",
  async run(context) {
    const duration_ms = pick(context.quick, 30_000, 2_000);
    const accounts = await createAccounts(context.sql, "drift_", ACCOUNTS);
    const directAccounts = await createAccounts(context.sql, "drift_direct_", ACCOUNTS);
    await context.sql.unsafe(SEQ_SETUP_SQL);
    const tag = runTag();

    // 1. tally over HTTP, every write refreshing its account's checkpoint.
    const tally = await context.startTally({ env: { CHECKPOINT_REFRESH_EVERY: "1" } });
    const http = new HttpClient(tally.port, context.key, WRITERS);
    context.log(`tally over HTTP: ${WRITERS} writers on ${ACCOUNTS} accounts for ${duration_ms / 1000} s, refresh every write`);
    const viaHttp = await runMeasured({
      sample_waits: context.sql,
      tally_pid: tally.pid,
      workers: WRITERS,
      warmup_ms: 0,
      duration_ms,
      operation: async (_worker, sequence) => {
        const body = JSON.stringify({
          account_id: accounts[sequence % ACCOUNTS],
          amount: usageAmount(sequence),
          idempotency_key: `t-${tag}-${sequence}`,
        });
        await http.expect("POST", "/v1/usage", body, [201]);
        return 1;
      },
    });
    const httpDrift = await tallyDrift(context.sql, accounts, async (account_id) => {
      const body = await http.json<{ balance: string }>("GET", `/v1/balances/${account_id}`);
      return body.balance;
    });
    http.close();
    const memory = tally.memory();
    const warnings = tally.warnings();
    await tally.stop();

    const pool = connect(context.database_url, WRITERS);
    const database = queryable(pool);

    // 2. tally's statements, straight from 64 connections.
    context.log(`tally's statements direct: ${WRITERS} writers for ${duration_ms / 1000} s`);
    const direct = await runMeasured({
      sample_waits: context.sql,
      workers: WRITERS,
      warmup_ms: 0,
      duration_ms,
      operation: async (_worker, sequence) => {
        const account_id = directAccounts[sequence % ACCOUNTS]!;
        const row = await insertEntry(
          database,
          { account_id, type: "usage", amount: usageAmount(sequence), idempotency_key: `d-${tag}-${sequence}`, batch_id: null, description: null, metadata: null },
          FIXED_REQUEST_HASH,
        );
        if (!row) throw new Error("insert wrote nothing");
        await refreshCheckpoint(database, account_id);
        return 1;
      },
    });
    const directDrift = await tallyDrift(context.sql, directAccounts, async (account_id) => {
      const { found } = await readBalances(database, [account_id]);
      return formatNanos(found.get(account_id)!.nanos);
    });

    // 3. The seq-bounded checkpoint of seed 002.
    context.log(`seq-bounded checkpoint: ${WRITERS} writers for ${duration_ms / 1000} s`);
    const seq = await runMeasured({
      sample_waits: context.sql,
      workers: WRITERS,
      warmup_ms: 0,
      duration_ms,
      operation: async (_worker, sequence) => {
        const account_id = accounts[sequence % ACCOUNTS]!;
        const amount = usageAmount(sequence);
        await pool.unsafe(
          "INSERT INTO bench_seq_entries (account_id, type, amount, delta, source_id) VALUES ($1, 'usage', $2::numeric, -($2::numeric), $3)",
          [account_id, amount, `s-${tag}-${sequence}`],
          { prepare: true },
        );
        const [state] = await pool.unsafe<{ balance: string; latest_seq: string | null }[]>(SEQ_BALANCE_SQL, [account_id], { prepare: true });
        if (state!.latest_seq !== null) {
          await pool.unsafe(SEQ_UPSERT_SQL, [account_id, state!.latest_seq, state!.balance], { prepare: true });
        }
        return 1;
      },
    });
    const seqTruth = await context.sql<{ account_id: string; total: string; rows: string; absolute: string }[]>`
      SELECT account_id, SUM(delta)::text AS total, COUNT(*)::text AS rows, SUM(amount)::text AS absolute
      FROM bench_seq_entries GROUP BY account_id`;
    const seqDrift: Drift = { rows: 0, absolute_amount: "0", per_account: [], total_drift_nanos: 0n, checkpoint_drift_nanos: 0n, accounts_drifted: 0 };
    let seqAbsolute = 0n;
    for (const account_id of accounts) {
      const [state] = await pool.unsafe<{ balance: string }[]>(SEQ_BALANCE_SQL, [account_id]);
      const row = seqTruth.find((candidate) => candidate.account_id === account_id);
      const trueSum = numericToNanos(row?.total ?? "0");
      const balance = numericToNanos(state!.balance);
      const difference = abs(balance - trueSum);
      seqDrift.rows += Number(row?.rows ?? 0);
      seqAbsolute += numericToNanos(row?.absolute ?? "0");
      seqDrift.total_drift_nanos += difference;
      if (difference !== 0n) seqDrift.accounts_drifted++;
      seqDrift.per_account.push({ account_id, balance: formatNanos(balance), true_sum: formatNanos(trueSum), drift: formatNanos(difference) });
    }
    seqDrift.absolute_amount = formatNanos(seqAbsolute);
    await pool.end({ timeout: 5 });

    const credits = (nanos: bigint) => Number(nanos) / 1e9;
    const tallyTotal = httpDrift.total_drift_nanos + httpDrift.checkpoint_drift_nanos;
    const directTotal = directDrift.total_drift_nanos + directDrift.checkpoint_drift_nanos;
    const failures: string[] = [];
    if (tallyTotal !== 0n) failures.push(`tally over HTTP drifted: ${JSON.stringify(httpDrift.per_account)}`);
    if (directTotal !== 0n) failures.push(`tally's statements drifted: ${JSON.stringify(directDrift.per_account)}`);
    const serialize = (value: Drift & { load: LoadResult }) => ({
      ...value,
      total_drift: formatNanos(value.total_drift_nanos),
      checkpoint_drift: formatNanos(value.checkpoint_drift_nanos),
      total_drift_nanos: undefined,
      checkpoint_drift_nanos: undefined,
      drift_percent_of_absolute_amount: drift_percent(value),
    });
    return {
      parameters: {
        writers: WRITERS,
        accounts: ACCOUNTS,
        duration_ms_per_run: duration_ms,
        refresh: "after every write (tally: CHECKPOINT_REFRESH_EVERY=1; baseline: probability 1 instead of 1/1000)",
        tally_pool_max: tally.pool_max,
        direct_pool: WRITERS,
      },
      figures: [
        figure("drift, Σ|balance − SUM(rows)| over 4 accounts (HTTP)", "credits", credits(httpDrift.total_drift_nanos), credits(seqDrift.total_drift_nanos), { better: "lower", headline: true, compare: false }),
        figure("drift as % of Σ|amount| (HTTP)", "%", drift_percent(httpDrift), drift_percent(seqDrift), { better: "lower", headline: true, compare: false }),
        figure("accounts drifted (HTTP)", "accounts", httpDrift.accounts_drifted, seqDrift.accounts_drifted, { better: "lower", compare: false }),
        figure("checkpoint vs rows below its boundary, Σ|difference| (HTTP)", "credits", credits(httpDrift.checkpoint_drift_nanos), null, { better: "lower" }),
        figure("drift, statements direct from 64 connections", "credits", credits(directTotal), credits(seqDrift.total_drift_nanos), { better: "lower", headline: true, compare: false }),
        figure("drift as % of Σ|amount| (statements direct)", "%", drift_percent(directDrift), drift_percent(seqDrift), { better: "lower", compare: false }),
        figure("rows written (HTTP / baseline)", "rows", httpDrift.rows, seqDrift.rows, { compare: false }),
        figure("rows written (statements direct / baseline)", "rows", directDrift.rows, seqDrift.rows, { compare: false }),
        figure("writes/s incl. refresh (HTTP / baseline)", "rows/s", viaHttp.rows_per_s, seq.rows_per_s, { better: "higher" }),
        figure("writes/s incl. refresh (statements direct / baseline)", "rows/s", direct.rows_per_s, seq.rows_per_s, { better: "higher" }),
      ],
      targets: [
        target("tally over HTTP: 0 drift", formatNanos(tallyTotal), tallyTotal === 0n),
        target("tally's statements direct from 64 connections: 0 drift", formatNanos(directTotal), directTotal === 0n),
      ],
      notes: [
        `seq-bounded baseline drift: ${formatNanos(seqDrift.total_drift_nanos)} credits over ${seqDrift.rows.toLocaleString("en-US")} rows (${drift_percent(seqDrift).toFixed(4)} % of Σ|amount|), ${seqDrift.accounts_drifted} of ${ACCOUNTS} accounts`,
        ...(warnings.length > 0 ? [`tally logged ${warnings.length} warning line(s), first: ${warnings[0]}`] : []),
      ],
      details: {
        tally_http: serialize({ ...httpDrift, load: viaHttp }),
        tally_direct: serialize({ ...directDrift, load: direct }),
        seq_baseline: serialize({ ...seqDrift, load: seq }),
      },
      tally_peak_rss_bytes: memory.peak_rss_bytes,
      ...(failures.length > 0 ? { failure: failures.join("; ") } : {}),
    };
  },
};
