import type { Config } from "../config.js";
import { openEmbedded } from "./embedded.js";
import { applyMigrations } from "./migrate.js";
import type { Database } from "./port.js";
import { connectPostgres } from "./postgres.js";

/** PostgreSQL when `DATABASE_URL` is set, otherwise the embedded store under `DATA_DIR`. */
export async function openDatabase(
  config: Pick<Config, "DATABASE_URL" | "DATA_DIR" | "DATABASE_POOL_MAX" | "REQUEST_TIMEOUT_MS">,
  options: { migrate: boolean; on_progress?: (message: string) => void },
): Promise<Database> {
  const database = config.DATABASE_URL
    ? connectPostgres({
        url: config.DATABASE_URL,
        pool_max: config.DATABASE_POOL_MAX,
        statement_timeout_ms: config.REQUEST_TIMEOUT_MS,
      })
    : await openEmbedded({ data_dir: config.DATA_DIR, on_progress: options.on_progress });
  if (options.migrate) {
    try {
      await applyMigrations(database, config.DATABASE_URL, { on_progress: options.on_progress });
    } catch (error) {
      await database.close();
      throw error;
    }
  }
  return database;
}
