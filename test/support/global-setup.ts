import { existsSync } from "node:fs";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { applyMigrations } from "../../src/db/migrate.js";
import { connectPostgres } from "../../src/db/postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

const LOCAL_URL = "postgres://postgres@127.0.0.1:5432/postgres";

async function answers(url: string): Promise<boolean> {
  const probe = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await probe`SELECT 1`;
    return true;
  } catch {
    return false;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

function dockerAnswers(): boolean {
  return Boolean(process.env.DOCKER_HOST) || existsSync("/var/run/docker.sock");
}

/**
 * Finds a PostgreSQL for the integration tests, in this order: TEST_DATABASE_URL; a throwaway container when a
 * Docker engine answers; the local server at 127.0.0.1:5432 (in a fresh database of its own); otherwise it stops
 * with instructions. Integration tests never skip: without a database the run fails.
 */
async function resolveDatabase(): Promise<{ url: string; teardown: () => Promise<void> }> {
  if (process.env.TEST_DATABASE_URL) return { url: process.env.TEST_DATABASE_URL, teardown: async () => {} };
  if (dockerAnswers()) {
    try {
      const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
      const container = await new PostgreSqlContainer("postgres:15-alpine").start();
      return { url: container.getConnectionUri(), teardown: async () => void (await container.stop()) };
    } catch (error) {
      process.stderr.write(`testcontainers could not start PostgreSQL (${String(error)}); trying 127.0.0.1:5432\n`);
    }
  }
  if (await answers(LOCAL_URL)) {
    const name = `tally_test_${process.pid}_${Date.now()}`;
    const admin = postgres(LOCAL_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const url = LOCAL_URL.replace(/\/postgres$/, `/${name}`);
    return {
      url,
      teardown: async () => {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.end();
      },
    };
  }
  throw new Error(
    "the integration tests need PostgreSQL: set TEST_DATABASE_URL=postgres://user@host:port/db, start a Docker " +
      "engine for testcontainers, or run PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres",
  );
}

export default async function setup(project: TestProject) {
  const { url, teardown } = await resolveDatabase();
  const database = connectPostgres({ url, pool_max: 1, statement_timeout_ms: 60_000 });
  try {
    await applyMigrations(database, url);
  } finally {
    await database.close();
  }
  project.provide("databaseUrl", url);
  return teardown;
}
