import { parseConfig } from "../config.js";
import { openDatabase } from "../db/open.js";

/** `npm run migrate`: applies pending migrations to DATABASE_URL (or the embedded store) and exits. */
async function main(): Promise<void> {
  const config = parseConfig(process.env);
  const database = await openDatabase(config, { migrate: true });
  await database.close();
  process.stdout.write(`migrations applied to ${config.DATABASE_URL ? "PostgreSQL" : `the embedded store in ${config.DATA_DIR}`}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`migrate: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
