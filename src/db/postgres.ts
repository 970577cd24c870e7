import postgres from "postgres";
import { drizzle } from "drizzle-orm/postgres-js";
import * as schema from "./schema.js";
import type { Database, Orm, Queryable } from "./port.js";

export interface PostgresOptions {
  url: string;
  pool_max: number;
  /** Server-side cap on any one statement, so a runaway query cannot hold a connection forever. */
  statement_timeout_ms: number;
}

export function connectPostgres(options: PostgresOptions): Database {
  const sql = postgres(options.url, {
    max: options.pool_max,
    idle_timeout: 30,
    connect_timeout: 10,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    connection: {
      application_name: "tally",
      statement_timeout: options.statement_timeout_ms,
      // A transaction left open by a crashed handler must not pin the xmin horizon (and so every checkpoint).
      idle_in_transaction_session_timeout: 60_000,
    },
  });
  const queryOn = (runner: postgres.Sql | postgres.TransactionSql): Queryable => ({
    async query<Row extends object>(text: string, parameters: readonly unknown[] = []) {
      return (await runner.unsafe(text, parameters as postgres.ParameterOrJSON<never>[], {
        prepare: true,
      })) as unknown as Row[];
    },
  });
  return {
    kind: "postgres",
    orm: drizzle(sql, { schema }) as unknown as Orm,
    ...queryOn(sql),
    async transaction<T>(work: (transaction: Queryable) => Promise<T>): Promise<T> {
      // Pinned, whatever the server's default: strict debits and crossing evaluations take a lock and then read in
      // a new statement, which sees everything committed before the lock only under READ COMMITTED.
      return (await sql.begin("isolation level read committed", (transaction) => work(queryOn(transaction)))) as T;
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
