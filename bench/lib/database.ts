import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import postgres from "postgres";
import { createServiceKey } from "../../src/auth/service-keys.js";
import type { Scope } from "../../src/auth/scopes.js";
import { applyMigrations } from "../../src/db/migrate.js";
import { connectPostgres } from "../../src/db/postgres.js";

/**
 * The scratch database. Every scenario starts from an empty database: it is dropped and created again, then
 * migrated, so no scenario's figures depend on what ran before it. Only the database named by BENCH_DATABASE_URL
 * (default `tally_bench` on the local server) is ever created or dropped, and only if its name contains "bench",
 * so a mistyped URL cannot drop a real database.
 */

export const DEFAULT_BENCH_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tally_bench";

export interface ScratchDatabase {
  url: string;
  name: string;
  /** Drops (if present) and creates the database, then applies tally's migrations. */
  reset(): Promise<void>;
  drop(): Promise<void>;
  /** The server's `max_connections`, read through the maintenance database (the scratch one may not exist yet). */
  maxConnections(): Promise<number>;
}

export function scratchDatabase(url: string): ScratchDatabase {
  const parsed = new URL(url);
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
  if (!/^[a-z_][a-z0-9_]*$/.test(name) || !name.includes("bench")) {
    throw new Error(
      `BENCH_DATABASE_URL must name a scratch database whose name contains "bench" (lower case letters, digits, _); got "${name}". ` +
        "The benchmark drops and recreates it.",
    );
  }
  const maintenance = new URL(url);
  maintenance.pathname = "/postgres";
  /** Runs `work` on a one-connection session of the maintenance database, closed afterwards. */
  async function withAdmin<T>(work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
    const sql = postgres(maintenance.toString(), { max: 1, onnotice: () => {}, connect_timeout: 10 });
    try {
      return await work(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
  }

  return {
    url,
    name,
    drop: () => withAdmin(async (sql) => void (await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
    maxConnections: () =>
      withAdmin(async (sql) => Number((await sql<{ max_connections: string }[]>`SHOW max_connections`)[0]!.max_connections)),
    async reset() {
      await withAdmin(async (sql) => {
        await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await sql.unsafe(`CREATE DATABASE ${name}`);
      });
      const database = connectPostgres({ url, pool_max: 1, statement_timeout_ms: 600_000 });
      try {
        await applyMigrations(database, url);
      } finally {
        await database.close();
      }
    },
  };
}

/**
 * The largest pool a baseline opens, whatever its client count. The bench must run on PostgreSQL's default
 * `max_connections` of 100: at 64 clients `ingest-single` keeps three 20-connection pools of tally's open (two tally
 * processes and the ledger ceiling) beside the baseline's, so a 64-connection baseline pool was refused (`53300`).
 * 32 connections are many more than 2 cores can keep busy.
 */
export const BASELINE_POOL_MAX = 32;

/** The smallest `max_connections` the bench runs on (PostgreSQL's default); the runner refuses a server below it. */
export const MAX_CONNECTIONS_NEEDED = 100;

/** A postgres.js pool on the scratch database, for fills, baselines and checks. */
export function connect(url: string, max: number): postgres.Sql {
  return postgres(url, {
    max,
    onnotice: () => {},
    connect_timeout: 10,
    idle_timeout: 30,
    connection: { application_name: "tally-bench" },
  });
}

export interface Machine {
  cores: number;
  cpu_model: string;
  memory_bytes: number;
  postgres_version: string;
  postgres_settings: Record<string, string>;
  /**
   * The kernel's huge pages as this machine reports them (`/proc/meminfo`), when PostgreSQL runs on it. Without
   * them every new PostgreSQL backend maps shared_buffers 4 kB at a time: on this VM its first pass over 128 MB of
   * buffers cost about 30 µs per 8 kB buffer, which the never-read history figure shows (README, "Huge pages").
   */
  huge_pages?: string;
  node_version: string;
  platform: string;
}

export async function describeMachine(sql: postgres.Sql): Promise<Machine> {
  const [version] = await sql<{ server_version: string }[]>`SHOW server_version`;
  const settings = await sql<{ name: string; setting: string; unit: string | null }[]>`
    SELECT name, setting, unit FROM pg_settings
    WHERE name IN ('shared_buffers', 'max_connections', 'synchronous_commit', 'fsync', 'work_mem',
                   'max_parallel_workers_per_gather', 'wal_level', 'huge_pages')`;
  return {
    cores: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? "unknown",
    memory_bytes: os.totalmem(),
    postgres_version: version!.server_version,
    postgres_settings: Object.fromEntries(
      settings.map((row) => [row.name, row.unit && row.unit !== "" ? `${row.setting} (${row.unit})` : row.setting]),
    ),
    ...hugePages(),
    node_version: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

function hugePages(): { huge_pages?: string } {
  try {
    const meminfo = readFileSync("/proc/meminfo", "utf8");
    const field = (name: string) => new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(meminfo)?.[1];
    const total = field("HugePages_Total");
    if (total === undefined) return {};
    const in_use = Number(total) - Number(field("HugePages_Free") ?? 0) + Number(field("HugePages_Rsvd") ?? 0);
    return { huge_pages: `${total} of ${field("Hugepagesize") ?? "?"} kB reserved, ${in_use} in use or promised` };
  } catch {
    return {};
  }
}

/** A service key on the scratch database, made the way `npm run keys -- create` makes one. */
export async function createBenchKey(url: string, scopes: Scope[]): Promise<string> {
  const database = connectPostgres({ url, pool_max: 1, statement_timeout_ms: 60_000 });
  try {
    return (await createServiceKey(database.orm, { name: `bench-${scopes.join("+")}`, scopes })).key;
  } finally {
    await database.close();
  }
}

/** Creates `count` accounts named `${prefix}${n}` (n from 1) in one statement. */
export async function createAccounts(sql: postgres.Sql, prefix: string, count: number): Promise<string[]> {
  await sql`
    INSERT INTO accounts (id)
    SELECT ${prefix} || g FROM generate_series(1, ${count}::int) AS g
    ON CONFLICT (id) DO NOTHING`;
  return Array.from({ length: count }, (_, index) => `${prefix}${index + 1}`);
}

/** Creates the accounts named in `ids`. */
export async function createNamedAccounts(sql: postgres.Sql, ids: readonly string[]): Promise<void> {
  await sql`INSERT INTO accounts (id) SELECT unnest(${ids as string[]}::text[]) ON CONFLICT (id) DO NOTHING`;
}

export interface Source {
  commit: string | null;
  /** Uncommitted changes outside bench/ when the scenario ran: the figures may not match the commit. */
  uncommitted_changes: boolean | null;
}

/** Which tally was measured: the checked-out commit, and whether src/ and the rest differed from it (read-only git: rev-parse, and status without optional locks, so it never writes the index). */
export function describeSource(repository_root: string): Source {
  const git = (...args: string[]) => execFileSync("git", args, { cwd: repository_root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    return { commit: git("rev-parse", "HEAD"), uncommitted_changes: git("--no-optional-locks", "status", "--porcelain", "--", ".", ":(exclude)bench") !== "" };
  } catch {
    return { commit: null, uncommitted_changes: null };
  }
}
