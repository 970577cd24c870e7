import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseConfig } from "../../config.js";
import { applyMigrations, MIGRATIONS_FOLDER } from "../../db/migrate.js";
import { openDatabase } from "../../db/open.js";
import type { Database } from "../../db/port.js";
import { wantsHelp } from "./usage.js";

const USAGE = "usage: tally migrate   applies the pending migrations in drizzle/ to DATABASE_URL (or the embedded store) and lists them";

async function appliedCount(database: Database): Promise<number> {
  try {
    const [row] = await database.query<{ count: string }>("SELECT count(*)::text AS count FROM drizzle.__drizzle_migrations");
    return Number(row?.count ?? 0);
  } catch {
    return 0; // a fresh database has no migrations table yet
  }
}

export async function run(args: string[]): Promise<void> {
  wantsHelp(args, USAGE);
  const config = parseConfig(process.env);
  const journal = JSON.parse(await readFile(path.join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8")) as { entries: { tag: string }[] };
  const target = config.DATABASE_URL ? "PostgreSQL" : `the embedded store in ${config.DATA_DIR}`;
  const database = await openDatabase(config, { migrate: false, on_progress: (message) => process.stderr.write(`${message}\n`) });
  let before: number;
  let after: number;
  try {
    before = await appliedCount(database);
    await applyMigrations(database, config.DATABASE_URL);
    after = await appliedCount(database);
  } finally {
    await database.close();
  }
  const applied = journal.entries.slice(before, after).map((entry) => entry.tag);
  process.stdout.write(
    applied.length === 0
      ? `${target} is up to date (${after} migrations)\n`
      : `applied ${applied.length} migration(s) to ${target}:\n${applied.map((tag) => `  ${tag}`).join("\n")}\n`,
  );
}
