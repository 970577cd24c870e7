/**
 * tally's migrator runs a migration that builds an index CONCURRENTLY outside any transaction, so that upgrading a
 * running deployment does not block the inserts of the proxies on a populated table; an interrupted build (an INVALID
 * index) is dropped and built again on the next run. On a database of the test's own, with a migrations folder of
 * the test's own. (The embedded store runs the same migrator over tally's real migrations, concurrent index build
 * included, in embedded.test.ts.)
 */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { applyMigrations, MIGRATIONS_FOLDER } from "../../src/db/migrate.js";
import { connectPostgres } from "../../src/db/postgres.js";

const TABLE_SQL = "CREATE TABLE load_target (id bigserial PRIMARY KEY, value int NOT NULL);";
const INDEX_SQL = "CREATE INDEX CONCURRENTLY IF NOT EXISTS load_target_value ON load_target (value);";

let folder: string;
let admin: postgres.Sql;
let databaseUrl: string;
let databaseName: string;

/** Writes a drizzle migrations folder holding the given migrations, in order. */
async function writeMigrations(migrations: { tag: string; sql: string }[]): Promise<void> {
  await mkdir(path.join(folder, "meta"), { recursive: true });
  const entries = migrations.map((migration, index) => ({ idx: index, version: "7", when: 1_700_000_000_000 + index, tag: migration.tag, breakpoints: true }));
  await writeFile(path.join(folder, "meta", "_journal.json"), JSON.stringify({ version: "7", dialect: "postgresql", entries }));
  for (const migration of migrations) await writeFile(path.join(folder, `${migration.tag}.sql`), migration.sql);
}

async function migrate(): Promise<void> {
  const database = connectPostgres({ url: databaseUrl, pool_max: 1, statement_timeout_ms: 60_000 });
  try {
    await applyMigrations(database, databaseUrl, { migrations_folder: folder });
  } finally {
    await database.close();
  }
}

async function waitUntil(condition: () => Promise<boolean>, timeout_ms: number): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

beforeAll(async () => {
  folder = await mkdtemp(path.join(tmpdir(), "tally-migrations-"));
  const shared = inject("databaseUrl");
  databaseName = `tally_migrate_${process.pid}_${Date.now()}`;
  admin = postgres(shared, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${databaseName}`);
  databaseUrl = shared.replace(/\/[^/?]+(\?|$)/, `/${databaseName}$1`);
});

afterAll(async () => {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
  await admin.end();
  await rm(folder, { recursive: true, force: true });
});

describe("CREATE INDEX CONCURRENTLY in a migration", () => {
  it("does not block inserts while it runs, and an interrupted build is rebuilt on the next run", async () => {
    await writeMigrations([{ tag: "0000_table", sql: TABLE_SQL }]);
    await migrate();
    const sql = postgres(databaseUrl, { max: 4, onnotice: () => {} });
    const holder = await sql.reserve();
    try {
      await sql`INSERT INTO load_target (value) SELECT g FROM generate_series(1, 20000) AS g`;
      // A writer in the middle of a transaction, as the proxies always are somewhere: a concurrent build waits for it.
      await holder`BEGIN`;
      await holder`INSERT INTO load_target (value) VALUES (-1)`;

      await writeMigrations([{ tag: "0000_table", sql: TABLE_SQL }, { tag: "0001_index", sql: INDEX_SQL }]);
      // The migrator's statement while it waits for the open writer: the build, or the drop of an interrupted one.
      const building = (statement: string) =>
        sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity
          WHERE datname = ${databaseName} AND query LIKE ${`${statement}%`} AND wait_event_type IS NOT NULL`;
      const insertIsNotBlocked = async () => {
        const inserter = await sql.reserve();
        try {
          await inserter`SET lock_timeout = '3s'`;
          const started = performance.now();
          await inserter`INSERT INTO load_target (value) VALUES (42)`;
          expect(performance.now() - started).toBeLessThan(3_000);
        } finally {
          inserter.release();
        }
      };

      // First run: other inserts go through while the build waits; then it is interrupted (as a deploy that is
      // killed would be), and leaves an INVALID index behind.
      const interrupted = migrate();
      interrupted.catch(() => {});
      await waitUntil(async () => (await building("CREATE INDEX CONCURRENTLY")).length > 0, 20_000);
      await insertIsNotBlocked();
      expect(await building("CREATE INDEX CONCURRENTLY")).toHaveLength(1); // still building: the insert did not wait for it
      await sql`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = ${databaseName} AND query LIKE 'CREATE INDEX CONCURRENTLY%'`;
      await expect(interrupted).rejects.toThrow();
      const [left] = await sql<{ valid: boolean }[]>`
        SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'load_target_value'::regclass`;
      expect(left!.valid).toBe(false);

      // Second run: drops the invalid index (concurrently: it waits for the open writer, and inserts go through),
      // then builds it again.
      const completing = migrate();
      await waitUntil(async () => (await building("DROP INDEX CONCURRENTLY")).length > 0, 20_000);
      await insertIsNotBlocked();
      await holder`COMMIT`;
      await completing;

      const [index] = await sql<{ valid: boolean }[]>`
        SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'load_target_value'::regclass`;
      expect(index!.valid).toBe(true);
      const applied = await sql<{ created_at: string }[]>`SELECT created_at::text FROM drizzle.__drizzle_migrations ORDER BY id`;
      expect(applied.map((row) => row.created_at)).toEqual(["1700000000000", "1700000000001"]);
      // Applied once: a further run changes nothing.
      await migrate();
      expect(await sql`SELECT 1 FROM drizzle.__drizzle_migrations`).toHaveLength(2);
    } finally {
      await holder`ROLLBACK`.catch(() => {});
      holder.release();
      await sql.end();
    }
  });

  it("refuses a concurrent index build that could not be run again", async () => {
    await writeMigrations([
      { tag: "0000_table", sql: TABLE_SQL },
      { tag: "0001_index", sql: INDEX_SQL },
      { tag: "0002_bad", sql: "CREATE INDEX CONCURRENTLY load_target_value_again ON load_target (value);" },
    ]);
    await expect(migrate()).rejects.toThrow(/IF NOT EXISTS/);
  });

  it("tally's own migrations build every index on entries concurrently, after the first releases", async () => {
    // 0000–0004 shipped before the concurrent builds existed, when entries was empty on every new deployment.
    const files = (await readdir(MIGRATIONS_FOLDER)).filter((file) => /^\d{4}_.*\.sql$/.test(file) && file >= "0005");
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const text = await readFile(path.join(MIGRATIONS_FOLDER, file), "utf8");
      for (const statement of text.split("--> statement-breakpoint")) {
        if (/CREATE\s+(UNIQUE\s+)?INDEX\b[\s\S]*\bON\s+"?entries"?\s/i.test(statement)) {
          expect(statement, file).toMatch(/CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS/i);
        }
      }
    }
  });
});
