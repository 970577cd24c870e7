import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import { migrate as migrateEmbedded } from "drizzle-orm/pglite/migrator";
import type { PgliteDatabase } from "drizzle-orm/pglite";
import type { Database } from "./port.js";

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));

/** Arbitrary, fixed: the session-level advisory lock that makes concurrent starts apply migrations one at a time. */
const MIGRATION_LOCK_KEY = 7_401_305_117;

/**
 * Applies pending migrations. On PostgreSQL it uses a dedicated single connection holding an advisory lock, so
 * several tally processes (or test workers) starting together never apply the same migration twice.
 */
export async function applyMigrations(database: Database, postgresUrl?: string): Promise<void> {
  if (database.kind === "embedded") {
    await migrateEmbedded(database.orm as unknown as PgliteDatabase, { migrationsFolder: MIGRATIONS_FOLDER });
    return;
  }
  if (!postgresUrl) throw new Error("applyMigrations on PostgreSQL needs the connection URL");
  const connection = postgres(postgresUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await connection`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migratePostgres(drizzlePostgres(connection), { migrationsFolder: MIGRATIONS_FOLDER });
    await connection`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
  } finally {
    await connection.end({ timeout: 5 });
  }
}
