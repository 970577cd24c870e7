import { existsSync } from "node:fs";
import path from "node:path";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import * as schema from "./schema.js";
import type { Database, Orm, Queryable } from "./port.js";
import { acquireDirectoryLock } from "./directory-lock.js";
import { loadTemplate } from "./embedded-template.js";

/**
 * The embedded store: PostgreSQL compiled to WebAssembly (PGlite), persisted under `data_dir`. It runs inside this
 * process on a single connection, so it serves one process only; a lock file keeps a second process from opening
 * the same directory, which would corrupt it.
 */
export async function openEmbedded(options: {
  data_dir: string;
  /** One line per slow step of a first start, for the operator watching an otherwise silent wait. */
  on_progress?: (message: string) => void;
  /** Where the first start's template comes from (tests point it elsewhere); see embedded-template.ts. */
  template?: () => ReturnType<typeof loadTemplate>;
}): Promise<Database> {
  const lock = await acquireDirectoryLock(options.data_dir);
  const pgdata = `${options.data_dir}/pgdata`;
  let client: PGlite;
  try {
    if (existsSync(path.join(pgdata, "PG_VERSION"))) {
      client = await PGlite.create(pgdata);
    } else {
      const loaded = (options.template ?? loadTemplate)();
      if ("template" in loaded) {
        options.on_progress?.(`initialising the embedded store in ${pgdata} from the bundled template (first start)`);
        client = await PGlite.create(pgdata, { loadDataDir: loaded.template });
      } else {
        options.on_progress?.(`initialising the embedded store in ${pgdata} with initdb (first start; ${loaded.reason}): about 10 s`);
        client = await PGlite.create(pgdata);
      }
    }
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
