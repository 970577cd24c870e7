import { insertEntry } from "../../src/ledger/posting/posting.js";
import { uuidv7 } from "../../src/ledger/core/ids.js";
import { connect, createAccounts } from "../lib/database.js";
import { HttpClient } from "../lib/http.js";
import { runInterleaved, type Side } from "../lib/load.js";
import { figure, target } from "../lib/report.js";
import { FIXED_REQUEST_HASH, METADATA, queryable, runTag, usageAmount } from "../lib/rows.js";
import { pick, type Scenario } from "../lib/scenario.js";

/**
 * 32 writers on one account. tally posts without any lock; the baseline is the row-lock design of the reference
 * systems (000: "database transactions with FOR UPDATE row locks", balance before/after on every entry; 004: a
 * Prisma transaction that updates the user's balance and writes the ledger entry), implemented here at the
 * database level, with no HTTP in front of it:
 *
 *   BEGIN;
 *   SELECT balance FROM bench_rowlock_balances WHERE account_id = $1 FOR UPDATE;
 *   UPDATE bench_rowlock_balances SET balance = balance - $2, version = version + 1 … RETURNING balance;
 *   INSERT INTO bench_rowlock_entries (… balance_before, balance_after …);
 *   COMMIT;
 *
 * Every writer queues on the balance row and holds it across three round trips and the commit's WAL flush, so
 * the account takes one write per (round trips + flush), whatever the number of writers. Two tally figures are
 * compared with it: tally over HTTP (what a client sees, and what the target is about) and tally's own insert
 * statement run directly (design against design, both without HTTP).
 */

const WRITERS = 32;
/** Alternating rounds per side, so background noise lands on all three. */
const ROUNDS = 2;
const ACCOUNT = "hot_1";

const SETUP_SQL = `
CREATE TABLE bench_rowlock_balances (
  account_id text PRIMARY KEY,
  balance numeric NOT NULL,
  version bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench_rowlock_entries (
  id uuid PRIMARY KEY,
  account_id text NOT NULL,
  type text NOT NULL,
  amount numeric(25, 9) NOT NULL,
  balance_before numeric NOT NULL,
  balance_after numeric NOT NULL,
  idempotency_key text NOT NULL,
  metadata jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, idempotency_key)
);`;

export const hotAccount: Scenario = {
  name: "hot-account",
  title: "32 writers on one account: lock-free posting vs SELECT … FOR UPDATE row-lock design",
  async run(context) {
    const warmup_ms = pick(context.quick, 2_000, 300);
    const duration_ms = pick(context.quick, 10_000, 1_000);
    await createAccounts(context.sql, "hot_", 1);
    await context.sql.unsafe(SETUP_SQL);
    await context.sql`INSERT INTO bench_rowlock_balances (account_id, balance) VALUES (${ACCOUNT}, 1000000)`;
    const tag = runTag();
    const tally = await context.startTally();
    const http = new HttpClient(tally.port, context.key, WRITERS);
    await http.json("GET", `/v1/balances/${ACCOUNT}`);

    const pool = connect(context.database_url, WRITERS);
    const database = queryable(pool);
    const tallySide: Side = {
      sample_waits: context.sql,
      workers: WRITERS,
      tally_pid: tally.pid,
      operation: async (_worker, sequence) => {
        const body = JSON.stringify({
          account_id: ACCOUNT,
          amount: usageAmount(sequence),
          idempotency_key: `t-${tag}-${sequence}`,
          metadata: METADATA,
        });
        await http.expect("POST", "/v1/usage", body, [201]);
        return 1;
      },
    };
    const directSide: Side = {
      sample_waits: context.sql,
      workers: WRITERS,
      operation: async (_worker, sequence) => {
        const row = await insertEntry(
          database,
          {
            account_id: ACCOUNT,
            type: "usage",
            amount: usageAmount(sequence),
            idempotency_key: `d-${tag}-${sequence}`,
            batch_id: null,
            description: null,
            metadata: METADATA,
          },
          FIXED_REQUEST_HASH,
        );
        if (!row) throw new Error("insert wrote nothing");
        return 1;
      },
    };
    const rowLockSide: Side = {
      sample_waits: context.sql,
      workers: WRITERS,
      operation: async (_worker, sequence) => {
        const amount = usageAmount(sequence);
        await pool.begin(async (transaction) => {
          const [locked] = await transaction<{ balance: string }[]>`
            SELECT balance FROM bench_rowlock_balances WHERE account_id = ${ACCOUNT} FOR UPDATE`;
          const [updated] = await transaction<{ balance: string }[]>`
            UPDATE bench_rowlock_balances SET balance = balance - ${amount}::numeric, version = version + 1, updated_at = now()
            WHERE account_id = ${ACCOUNT} RETURNING balance`;
          await transaction`
            INSERT INTO bench_rowlock_entries (id, account_id, type, amount, balance_before, balance_after, idempotency_key, metadata)
            VALUES (${uuidv7()}, ${ACCOUNT}, 'usage', ${amount}::numeric, ${locked!.balance}::numeric, ${updated!.balance}::numeric,
                    ${`r-${tag}-${sequence}`}, ${transaction.json(METADATA)})`;
        });
        return 1;
      },
    };
    const measured = await runInterleaved({
      rounds: ROUNDS,
      warmup_ms,
      duration_ms,
      on_side: (name, round) => context.log(`${name}: ${WRITERS} writers (round ${round + 1}/${ROUNDS})`),
      sides: { "tally over HTTP": tallySide, "tally's insert direct": directSide, "row-lock design": rowLockSide },
    });
    const viaTally = measured["tally over HTTP"];
    const lockFree = measured["tally's insert direct"];
    const rowLock = measured["row-lock design"];
    http.close();
    await pool.end({ timeout: 5 });
    const memory = tally.memory();
    await tally.stop();

    const ratio = viaTally.rows_per_s / rowLock.rows_per_s;
    return {
      parameters: { writers: WRITERS, warmup_ms, duration_ms_per_side: duration_ms, rounds: ROUNDS, tally_pool_max: tally.pool_max, baseline_pool: WRITERS },
      figures: [
        figure("rows/s, tally over HTTP vs row-lock (DB)", "rows/s", viaTally.rows_per_s, rowLock.rows_per_s, { better: "higher", headline: true }),
        figure("rows/s, tally's insert direct vs row-lock (DB)", "rows/s", lockFree.rows_per_s, rowLock.rows_per_s, { better: "higher", headline: true }),
        figure("p50 latency, tally over HTTP vs row-lock", "ms", viaTally.latency_ms.p50, rowLock.latency_ms.p50, { better: "lower" }),
        figure("p99 latency, tally over HTTP vs row-lock", "ms", viaTally.latency_ms.p99, rowLock.latency_ms.p99, { better: "lower" }),
        figure("p99 latency, tally's insert direct vs row-lock", "ms", lockFree.latency_ms.p99, rowLock.latency_ms.p99, { better: "lower" }),
      ],
      targets: [target("tally ≥ 5 × the row-lock design (32 writers, one account)", `${ratio.toFixed(2)}×`, ratio >= 5)],
      details: { tally_http: viaTally, tally_insert_direct: lockFree, row_lock: rowLock },
      tally_peak_rss_bytes: memory.peak_rss_bytes,
    };
  },
};
