import postgres from "postgres";
import { drizzle } from "drizzle-orm/postgres-js";
import * as schema from "./schema.js";
import { PoolGate } from "./pool-gate.js";
import type { Database, Orm, Queryable } from "./port.js";

export interface PostgresOptions {
  url: string;
  pool_max: number;
  /** Server-side cap on any one statement, so a runaway query cannot hold a connection forever. */
  statement_timeout_ms: number;
  /** A connection attempt that has not completed by then fails (the database is treated as unreachable). */
  connect_timeout_ms?: number;
  /** Bounds on waiting for a pooled connection; see PoolGate. */
  acquire_timeout_ms?: number;
  queue_max?: number;
  probe_interval_ms?: number;
}

/** Defaults that keep every answer within about 2 s while the database is away (see docs/design.md). */
export const POOL_DEFAULTS = { connect_timeout_ms: 1_000, acquire_timeout_ms: 1_500, queue_max: 256, probe_interval_ms: 250 };

export function connectPostgres(options: PostgresOptions): Database {
  const gate = new PoolGate({
    slots: options.pool_max,
    queue_max: options.queue_max ?? POOL_DEFAULTS.queue_max,
    acquire_timeout_ms: options.acquire_timeout_ms ?? POOL_DEFAULTS.acquire_timeout_ms,
    probe_interval_ms: options.probe_interval_ms ?? POOL_DEFAULTS.probe_interval_ms,
  });
  const sql = postgres(options.url, {
    max: options.pool_max,
    idle_timeout: 30,
    connect_timeout: (options.connect_timeout_ms ?? POOL_DEFAULTS.connect_timeout_ms) / 1000,
    // postgres.js waits before reconnecting, by default up to 20 s after repeated failures, and a query handed to
    // that connection waits with it: the outage outlasted by tens of seconds. The gate already limits attempts to
    // one probe per interval while the database is away, so the driver's own wait stays short.
    backoff: (retries: number) => Math.min(0.05 * retries, 0.25),
    max_lifetime: 60 * 30,
    onnotice: () => {},
    connection: {
      application_name: "tally",
      statement_timeout: options.statement_timeout_ms,
      // A transaction left open by a crashed handler must not pin the xmin horizon (and so every checkpoint).
      idle_in_transaction_session_timeout: 60_000,
      // tally's statements are short index reads and writes. Where the planner misjudges a row count (a CTE over an
      // account's unfolded rows is estimated at the whole account), the cost passes jit_above_cost and PostgreSQL
      // spends longer compiling than running: 310 ms of JIT for a 10 ms history page (measured, 3,000,000 rows).
      jit: "off",
    },
  });
  const queryOn = (runner: postgres.Sql | postgres.TransactionSql): Queryable => ({
    async query<Row extends object>(text: string, parameters: readonly unknown[] = []) {
      return (await runner.unsafe(text, parameters as postgres.ParameterOrJSON<never>[], {
        prepare: true,
      })) as unknown as Row[];
    },
  });
  const pooled = queryOn(sql);
  return {
    kind: "postgres",
    // drizzle's cold queries (keys, accounts listing) use the pool directly; they are few and short.
    orm: drizzle(sql, { schema }) as unknown as Orm,
    query: (text, parameters) => gate.run(() => pooled.query(text, parameters)),
    async transaction<T>(work: (transaction: Queryable) => Promise<T>): Promise<T> {
      // Pinned, whatever the server's default: strict debits and crossing evaluations take a lock and then read in
      // a new statement, which sees everything committed before the lock only under READ COMMITTED.
      return gate.run(async () => (await sql.begin("isolation level read committed", (transaction) => work(queryOn(transaction)))) as T);
    },
    async listen(channel, on_notify, on_connect) {
      // postgres.js keeps one extra connection for all listeners and re-LISTENs after a reconnect.
      const subscription = await sql.listen(channel, on_notify, on_connect);
      return () => subscription.unlisten();
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}
