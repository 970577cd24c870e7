import { PGlite, type Transaction } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import * as schema from "./schema.js";
import type { Database, Orm, Queryable } from "./port.js";
import { acquireDirectoryLock } from "./directory-lock.js";

/**
 * The embedded store: PostgreSQL compiled to WebAssembly (PGlite), persisted under `data_dir`. It runs inside this
 * process on a single connection, so it serves one process only; a lock file keeps a second process from opening
 * the same directory, which would corrupt it.
 */
export async function openEmbedded(options: { data_dir: string }): Promise<Database> {
  const lock = await acquireDirectoryLock(options.data_dir);
  let client: PGlite;
  try {
    client = await PGlite.create(`${options.data_dir}/pgdata`);
  } catch (error) {
    await lock.release();
    throw error;
  }
  const queryOn = (runner: PGlite | Transaction): Queryable => ({
    async query<Row extends object>(text: string, parameters: readonly unknown[] = []) {
      return (await runner.query<Row>(text, parameters as unknown[])).rows;
    },
  });
  return {
    kind: "embedded",
    orm: drizzle(client, { schema }) as unknown as Orm,
    ...queryOn(client),
    async transaction<T>(work: (transaction: Queryable) => Promise<T>): Promise<T> {
      return client.transaction(async (transaction) => {
        await transaction.query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED");
        return work(queryOn(transaction));
      });
    },
    async listen(channel, on_notify, on_connect) {
      const unsubscribe = await client.listen(channel, on_notify);
      on_connect?.();
      return unsubscribe;
    },
    async close() {
      try {
        await client.close();
      } finally {
        await lock.release();
      }
    },
  };
}
