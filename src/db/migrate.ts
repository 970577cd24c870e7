import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { sql } from "drizzle-orm";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { readMigrationFiles, type MigrationMeta } from "drizzle-orm/migrator";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type { Database } from "./port.js";

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));

/** Arbitrary, fixed: the session-level advisory lock that makes concurrent starts apply migrations one at a time. */
const MIGRATION_LOCK_KEY = 7_401_305_117;
/** How long a starting process waits for another one's migrations (an index build on a large table takes a while). */
const MIGRATION_LOCK_WAIT_MS = 30 * 60 * 1000;
const MIGRATION_LOCK_POLL_MS = 200;

type Orm = PgDatabase<PgQueryResultHKT, Record<string, never>>;

/**
 * A statement PostgreSQL refuses inside a transaction block. A migration holding one runs outside a transaction,
 * one statement at a time, so that an index on a populated `entries` is built without blocking inserts.
 */
const NON_TRANSACTIONAL = /\b(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX(\s+\w+)?)\s+CONCURRENTLY\b/i;
const CREATE_INDEX_CONCURRENTLY = /^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+"?([A-Za-z0-9_]+)"?/i;

/**
 * Applies pending migrations: drizzle's migration files, journal and bookkeeping table (`drizzle.__drizzle_migrations`,
 * so databases migrated by drizzle's own migrator carry on), applied by tally itself so that a migration can run
 * outside a transaction. A migration is applied when its journal time is later than the last one recorded, as
 * drizzle does. Each ordinary migration runs in a transaction of its own with its bookkeeping row. A migration
 * holding `CREATE INDEX CONCURRENTLY` (or another statement that refuses a transaction block) runs statement by
 * statement outside any transaction, and its row is written after its last statement: if it is interrupted, it
 * runs again from the start, so such a migration must be idempotent (`CREATE INDEX CONCURRENTLY IF NOT EXISTS`,
 * which the migrator insists on). An interrupted concurrent build leaves an INVALID index that IF NOT EXISTS would
 * keep; the migrator drops it first and builds it again.
 *
 * On PostgreSQL the migrations run on a dedicated connection holding a session advisory lock, so several tally
 * processes starting together apply each migration once. Waiting processes poll the lock with a try-lock instead
 * of blocking in `pg_advisory_lock`: a concurrent index build waits for every transaction whose snapshot is older
 * than its own, and a process blocked in that call holds such a snapshot, so the two would deadlock.
 */
export async function applyMigrations(
  database: Database,
  postgresUrl?: string,
  options: { migrations_folder?: string; on_progress?: (message: string) => void } = {},
): Promise<void> {
  const migrations = readMigrationFiles({ migrationsFolder: options.migrations_folder ?? MIGRATIONS_FOLDER });
  if (database.kind === "embedded") {
    // One process owns the embedded store (a directory lock), so there is nobody to coordinate with.
    await runMigrations(database.orm as unknown as Orm, migrations, options.on_progress);
    return;
  }
  if (!postgresUrl) throw new Error("applyMigrations on PostgreSQL needs the connection URL");
  const connection = postgres(postgresUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const deadline = Date.now() + MIGRATION_LOCK_WAIT_MS;
    for (;;) {
      const [row] = await connection<{ locked: boolean }[]>`SELECT pg_try_advisory_lock(${MIGRATION_LOCK_KEY}) AS locked`;
      if (row!.locked) break;
      if (Date.now() > deadline) throw new Error("another process has been applying migrations for 30 minutes");
      await new Promise((resolve) => setTimeout(resolve, MIGRATION_LOCK_POLL_MS));
    }
    await runMigrations(drizzlePostgres(connection) as unknown as Orm, migrations, options.on_progress);
    await connection`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
  } finally {
    await connection.end({ timeout: 5 });
  }
}

async function runMigrations(orm: Orm, migrations: readonly MigrationMeta[], on_progress?: (message: string) => void): Promise<void> {
  await orm.execute(sql`CREATE SCHEMA IF NOT EXISTS drizzle`);
  await orm.execute(sql`
    CREATE TABLE IF NOT EXISTS drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)`);
  const [last] = rowsOf<{ created_at: string | null }>(
    await orm.execute(sql`SELECT created_at::text AS created_at FROM drizzle.__drizzle_migrations ORDER BY created_at DESC LIMIT 1`),
  );
  const appliedUpTo = last?.created_at === null || last === undefined ? undefined : Number(last.created_at);
  const pending = migrations.filter((migration) => appliedUpTo === undefined || migration.folderMillis > appliedUpTo);
  if (pending.length > 0) on_progress?.(`migrating: applying ${pending.length} migration(s)`);
  for (const migration of pending) {
    const statements = migration.sql.filter((statement) => statement.trim() !== "");
    const record = sql`INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES (${migration.hash}, ${migration.folderMillis})`;
    if (statements.some((statement) => NON_TRANSACTIONAL.test(withoutComments(statement)))) {
      for (const statement of statements) await runOutsideTransaction(orm, statement);
      await orm.execute(record);
    } else {
      await orm.transaction(async (transaction) => {
        for (const statement of statements) await transaction.execute(sql.raw(statement));
        await transaction.execute(record);
      });
    }
  }
}

/** A statement without its `--` comment lines, for recognising what it does. */
function withoutComments(statement: string): string {
  return statement.replace(/^\s*--.*$/gm, "");
}

async function runOutsideTransaction(orm: Orm, statement: string): Promise<void> {
  const bare = withoutComments(statement);
  if (/\bCREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\b/i.test(bare)) {
    const name = CREATE_INDEX_CONCURRENTLY.exec(bare)?.[2];
    if (!name) throw new Error(`a concurrent index build must say IF NOT EXISTS, so that it can be run again: ${bare.trim()}`);
    const invalid = rowsOf<{ name: string }>(
      await orm.execute(sql`
        SELECT index.relname AS name FROM pg_index
        JOIN pg_class AS index ON index.oid = pg_index.indexrelid
        WHERE index.relname = ${name} AND index.relnamespace = current_schema()::regnamespace AND NOT pg_index.indisvalid`),
    );
    if (invalid.length > 0) await orm.execute(sql.raw(`DROP INDEX CONCURRENTLY IF EXISTS "${name}"`));
  }
  await orm.execute(sql.raw(statement));
}

/** postgres.js returns the rows themselves, PGlite a result holding them. */
function rowsOf<Row>(result: unknown): Row[] {
  return (Array.isArray(result) ? result : (result as { rows: Row[] }).rows) as Row[];
}
