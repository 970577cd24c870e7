import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type * as schema from "./schema.js";

/**
 * The thin port the ledger talks to. The hot paths (posting, batch posting, balance reads) are parameterized SQL
 * run as prepared statements; drizzle serves the schema, the migrations and the cold queries. PostgreSQL
 * (postgres.js) and the embedded store (PGlite) both implement it, so the same SQL runs on both.
 *
 * Values come back as the driver decodes them: NUMERIC as a string, timestamps as Date, jsonb parsed. BIGINT
 * differs between the drivers, so queries that return one cast it to text.
 */
export interface Queryable {
  query<Row extends object>(text: string, parameters?: readonly unknown[]): Promise<Row[]>;
}

export type Orm = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database extends Queryable {
  readonly kind: "postgres" | "embedded";
  readonly orm: Orm;
  /** Runs `work` in one READ COMMITTED transaction; it commits when `work` resolves and rolls back if it throws. */
  transaction<T>(work: (transaction: Queryable) => Promise<T>): Promise<T>;
  /**
   * LISTENs on `channel` on a dedicated connection, calling `on_notify` with each payload; `on_connect` runs each
   * time the listening connection is (re)established, so a caller can catch up on anything missed while it was
   * down. Resolves to a function that stops listening.
   */
  listen(channel: string, on_notify: (payload: string) => void, on_connect?: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** PostgreSQL error fields that both drivers expose. */
export function databaseErrorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  return undefined;
}

export const UNIQUE_VIOLATION = "23505";
