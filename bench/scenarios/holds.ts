import { randomUUID } from "node:crypto";
import { connectPostgres } from "../../src/db/postgres.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { captureHold } from "../../src/ledger/holds/close.js";
import { grantHold } from "../../src/ledger/holds/grant.js";
import { connect, createAccounts } from "../lib/database.js";
import { HttpClient } from "../lib/http.js";
import { percentiles, runInterleaved, type Side } from "../lib/load.js";
import { figure } from "../lib/report.js";
import { METADATA, runTag, usageAmount } from "../lib/rows.js";
import { pick, type Scenario } from "../lib/scenario.js";

/**
 * Hold-then-capture pairs, the LLM proxy's flow (reserve the worst case, then post the real cost), at 32 clients,
 * spread over 1,000 accounts and all on one account. One operation is one pair: `POST /v1/holds`, then
 * `POST /v1/holds/{id}/capture`. Three designs side by side, interleaved:
 *
 * - tally over HTTP (what a proxy sees);
 * - tally's own functions (`grantHold`, `captureHold`) called directly on a postgres.js pool, design against design;
 * - the row-lock design of the reference systems applied to holds (a `held` column beside the balance), at the
 *   database level with no HTTP in front:
 *
 *     hold:    BEGIN; SELECT balance, held … FOR UPDATE; UPDATE … SET held = held + $amount; INSERT the hold; COMMIT
 *     capture: BEGIN; UPDATE the hold … WHERE status = 'active' RETURNING amount; SELECT … FOR UPDATE;
 *              UPDATE … SET balance = balance - $cost, held = held - $amount; INSERT the entry; COMMIT
 *
 * tally serializes only the grant decision (an advisory lock around one read and one insert); a capture takes no
 * lock but its hold's row. The row-lock design serializes both calls of every pair on the account's balance row.
 */

const CLIENTS = 32;
const ROUNDS = 2;
const SPREAD_ACCOUNTS = 1_000;
const HOLD_AMOUNT = "0.001";
/** Each account's credit: far more than a run can hold or capture, so no grant is refused. */
const FUNDING = "1000000000";

const SETUP_SQL = `
CREATE TABLE bench_rowlock_hold_balances (
  account_id text PRIMARY KEY,
  balance numeric NOT NULL,
  held numeric NOT NULL DEFAULT 0
);
CREATE TABLE bench_rowlock_holds (
  id uuid PRIMARY KEY,
  account_id text NOT NULL,
  amount numeric(25, 9) NOT NULL,
  status text NOT NULL DEFAULT 'active',
  idempotency_key text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, idempotency_key)
);
CREATE TABLE bench_rowlock_hold_entries (
  id uuid PRIMARY KEY,
  account_id text NOT NULL,
  hold_id uuid NOT NULL,
  amount numeric(25, 9) NOT NULL,
  balance_after numeric NOT NULL,
  metadata jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);`;

/** Latencies of each call of the pair, kept after the side's warm-up. */
class CallLatencies {
  readonly hold: number[] = [];
  readonly capture: number[] = [];
  private started: number | undefined;
  constructor(private readonly warmup_ms: number) {}
  record(call: "hold" | "capture", since: number): void {
    const now = performance.now();
    this.started ??= since;
    if (since - this.started >= this.warmup_ms) this[call].push(now - since);
  }
  summary() {
    return { hold_ms: percentiles(this.hold), capture_ms: percentiles(this.capture) };
  }
}

export const holds: Scenario = {
  name: "holds",
  title: "Hold-then-capture pairs at 32 clients: tally vs the row-lock design, 1,000 accounts and one account",
  async run(context) {
    const warmup_ms = pick(context.quick, 2_000, 300);
    const duration_ms = pick(context.quick, 10_000, 1_000);
    const accounts = await createAccounts(context.sql, "holds_", SPREAD_ACCOUNTS);
    const hot = accounts[0]!;
    await context.sql`
      INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash)
      SELECT gen_random_uuid(), account_id, 'purchase', ${FUNDING}::numeric, ${FUNDING}::numeric, 'funding', ${"0".repeat(64)}
      FROM unnest(${accounts}::text[]) AS account_id`;
    await context.sql.unsafe(SETUP_SQL);
    await context.sql`
      INSERT INTO bench_rowlock_hold_balances (account_id, balance)
      SELECT account_id, ${FUNDING}::numeric FROM unnest(${accounts}::text[]) AS account_id`;
    await context.sql`VACUUM ANALYZE`;

    const tag = runTag();
    const tally = await context.startTally();
    const http = new HttpClient(tally.port, context.key, CLIENTS);
    const pool = connect(context.database_url, CLIENTS);
    // tally's default connect timeout (1 s) is for a service; 32 connections opened at once on a loaded 2-core CI
    // machine took longer, and this side is a measurement, not a service that should fail fast.
    const database = connectPostgres({ url: context.database_url, pool_max: CLIENTS, statement_timeout_ms: 60_000, connect_timeout_ms: 10_000 });
    const ledger = createLedgerContext({
      database,
      logger: { info: () => {}, warn: () => {} },
      refresh_every: 1000,
      delta_max: 5000,
    });
    const latencies = new Map<string, CallLatencies>();
    const tracked = (name: string) => {
      const tracker = new CallLatencies(warmup_ms);
      latencies.set(name, tracker);
      return tracker;
    };

    const tallySide = (name: string, account: (sequence: number) => string): Side => {
      const calls = tracked(name);
      return {
        sample_waits: context.sql,
        workers: CLIENTS,
        tally_pid: tally.pid,
        operation: async (_worker, sequence) => {
          let since = performance.now();
          const held = await http.json<{ id: string }>("POST", "/v1/holds", {
            account_id: account(sequence),
            amount: HOLD_AMOUNT,
            idempotency_key: `t-${tag}-${name.length}-${sequence}`,
          }, [201]);
          calls.record("hold", since);
          since = performance.now();
          await http.expect("POST", `/v1/holds/${held.id}/capture`, JSON.stringify({ amount: usageAmount(sequence), metadata: METADATA }), [201]);
          calls.record("capture", since);
          return 1;
        },
      };
    };
    const directSide = (name: string, account: (sequence: number) => string): Side => {
      const calls = tracked(name);
      return {
        sample_waits: context.sql,
        workers: CLIENTS,
        operation: async (_worker, sequence) => {
          let since = performance.now();
          const granted = await grantHold(
            ledger,
            {
              account_id: account(sequence),
              amount: HOLD_AMOUNT,
              idempotency_key: `d-${tag}-${name.length}-${sequence}`,
              expires_in_s: 600,
              description: null,
              metadata: null,
            },
            { allow_overdraft: false },
          );
          calls.record("hold", since);
          since = performance.now();
          await captureHold(ledger, granted.hold.id, { amount: usageAmount(sequence), description: null, metadata: METADATA }, () => {});
          calls.record("capture", since);
          return 1;
        },
      };
    };
    const rowLockSide = (name: string, account: (sequence: number) => string): Side => {
      const calls = tracked(name);
      return {
        sample_waits: context.sql,
        workers: CLIENTS,
        operation: async (_worker, sequence) => {
          const account_id = account(sequence);
          const hold_id = randomUUID();
          let since = performance.now();
          await pool.begin(async (transaction) => {
            const [row] = await transaction<{ covered: boolean }[]>`
              SELECT balance - held >= ${HOLD_AMOUNT}::numeric AS covered
              FROM bench_rowlock_hold_balances WHERE account_id = ${account_id} FOR UPDATE`;
            if (!row?.covered) throw new Error("row-lock baseline refused a hold");
            await transaction`UPDATE bench_rowlock_hold_balances SET held = held + ${HOLD_AMOUNT}::numeric WHERE account_id = ${account_id}`;
            await transaction`
              INSERT INTO bench_rowlock_holds (id, account_id, amount, idempotency_key)
              VALUES (${hold_id}, ${account_id}, ${HOLD_AMOUNT}::numeric, ${`r-${tag}-${name.length}-${sequence}`})`;
          });
          calls.record("hold", since);
          since = performance.now();
          const cost = usageAmount(sequence);
          await pool.begin(async (transaction) => {
            const [closed] = await transaction<{ amount: string }[]>`
              UPDATE bench_rowlock_holds SET status = 'captured' WHERE id = ${hold_id} AND status = 'active' RETURNING amount::text`;
            if (!closed) throw new Error("row-lock baseline lost a hold");
            await transaction`SELECT balance FROM bench_rowlock_hold_balances WHERE account_id = ${account_id} FOR UPDATE`;
            const [updated] = await transaction<{ balance: string }[]>`
              UPDATE bench_rowlock_hold_balances SET balance = balance - ${cost}::numeric, held = held - ${closed.amount}::numeric
              WHERE account_id = ${account_id} RETURNING balance::text`;
            await transaction`
              INSERT INTO bench_rowlock_hold_entries (id, account_id, hold_id, amount, balance_after, metadata)
              VALUES (${randomUUID()}, ${account_id}, ${hold_id}, ${cost}::numeric, ${updated!.balance}::numeric, ${transaction.json(METADATA)})`;
          });
          calls.record("capture", since);
          return 1;
        },
      };
    };

    const spread = (sequence: number) => accounts[sequence % SPREAD_ACCOUNTS]!;
    const one = () => hot;
    const measured = await runInterleaved({
      rounds: ROUNDS,
      warmup_ms,
      duration_ms,
      on_side: (name, round) => context.log(`${name}: ${CLIENTS} clients (round ${round + 1}/${ROUNDS})`),
      sides: {
        "tally HTTP, 1,000 accounts": tallySide("tally HTTP, 1,000 accounts", spread),
        "tally direct, 1,000 accounts": directSide("tally direct, 1,000 accounts", spread),
        "row-lock, 1,000 accounts": rowLockSide("row-lock, 1,000 accounts", spread),
        "tally HTTP, one account": tallySide("tally HTTP, one account", one),
        "tally direct, one account": directSide("tally direct, one account", one),
        "row-lock, one account": rowLockSide("row-lock, one account", one),
      },
    });
    http.close();
    await pool.end({ timeout: 5 });
    await database.close();
    const memory = tally.memory();
    await tally.stop();

    // Correctness, not timing: every account's holds are closed and balances still equal the sum of their entries.
    const [open] = await context.sql<{ open: string }[]>`SELECT COUNT(*)::text AS open FROM holds WHERE status = 'active'`;
    if (open!.open !== "0") throw new Error(`${open!.open} holds were left active after every pair captured`);

    const calls = Object.fromEntries([...latencies].map(([name, tracker]) => [name, tracker.summary()]));
    const rate = (name: keyof typeof measured) => measured[name].operations_per_s;
    const call = (name: string, which: "hold_ms" | "capture_ms", quantile: "p50" | "p99") => calls[name]![which][quantile];
    const figures = [];
    for (const where of ["1,000 accounts", "one account"] as const) {
      const http_side = `tally HTTP, ${where}`;
      const direct_side = `tally direct, ${where}`;
      const lock_side = `row-lock, ${where}`;
      figures.push(
        figure(`pairs/s, ${where}: tally over HTTP vs row-lock (DB)`, "pairs/s", rate(http_side as never), rate(lock_side as never), { better: "higher", headline: true }),
        figure(`pairs/s, ${where}: tally direct vs row-lock (DB)`, "pairs/s", rate(direct_side as never), rate(lock_side as never), { better: "higher", headline: true }),
      );
      for (const which of ["hold_ms", "capture_ms"] as const) {
        for (const quantile of ["p50", "p99"] as const) {
          figures.push(
            figure(
              `${which === "hold_ms" ? "hold" : "capture"} ${quantile}, ${where}: tally over HTTP vs row-lock`,
              "ms",
              call(http_side, which, quantile),
              call(lock_side, which, quantile),
              { better: "lower" },
            ),
          );
        }
      }
    }
    return {
      parameters: {
        clients: CLIENTS,
        spread_accounts: SPREAD_ACCOUNTS,
        hold_amount: HOLD_AMOUNT,
        warmup_ms,
        duration_ms_per_side: duration_ms,
        rounds: ROUNDS,
        tally_pool_max: tally.pool_max,
        baseline_pool: CLIENTS,
      },
      figures,
      targets: [],
      details: { measured, calls },
      tally_peak_rss_bytes: memory.peak_rss_bytes,
    };
  },
};
